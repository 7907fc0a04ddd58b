// A watch over undici's `request`: one newline-delimited JSON event per line of the response body.
// client-node's Watch reads the same stream through fetch, a WHATWG stream turned back into a Node
// stream and node:readline, and resets a timer per chunk with a new setTimeout; every report write
// comes back as one of these events, so that path cost the cold start ~5% of its main thread. This one
// splits the body's Buffers itself and keeps one timer. Same contract as client-node's Watch: `done`
// is called once, with null when the server ends the watch, the error otherwise (a TimeoutError after
// `inactivityTimeoutMs` without a byte; the AbortError of the returned controller when aborted).
import { HttpMethod, RequestContext } from '@kubernetes/client-node';
import type { KubeConfig } from '@kubernetes/client-node';
import { request } from 'undici';
import type { WatchClient } from './informer.js';

const NEWLINE = 0x0a;

export class StreamingWatch implements WatchClient {
  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly inactivityTimeoutMs: number,
  ) {}

  async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const cluster = this.kubeConfig.getCurrentCluster();
    if (cluster === null) throw new Error('kubeconfig has no current cluster');
    const url = new URL(cluster.server + path);
    url.searchParams.set('watch', 'true');
    for (const [key, value] of Object.entries(queryParams)) if (value !== undefined) url.searchParams.set(key, String(value));
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    await this.kubeConfig.applySecurityAuthentication(ctx);

    const controller = new AbortController();
    let finished = false;
    const finish = (err: unknown): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      controller.abort();
      done(err);
    };
    // Armed for the connection too; after that, refreshed by every chunk (refresh() allocates nothing).
    const timer = setTimeout(() => finish(new DOMException(`no data from the watch of ${path} for ${this.inactivityTimeoutMs} ms`, 'TimeoutError')), this.inactivityTimeoutMs);
    timer.unref();

    try {
      const dispatcher = ctx.getDispatcher();
      const response = await request(url, {
        method: 'GET',
        headers: ctx.getHeaders(),
        signal: controller.signal,
        ...(dispatcher === undefined ? {} : { dispatcher }),
      });
      const body = response.body;
      if (response.statusCode !== 200) {
        const text = await body.text().catch(() => '');
        throw Object.assign(new Error(`watch ${path}: HTTP ${response.statusCode}${text === '' ? '' : `: ${text.slice(0, 200)}`}`), { statusCode: response.statusCode });
      }
      timer.refresh();
      let partial: Buffer | undefined;
      const deliver = (line: Buffer): void => {
        if (line.length === 0) return;
        let event: { type?: unknown; object?: unknown };
        try {
          event = JSON.parse(line.toString('utf8')) as { type?: unknown; object?: unknown };
        } catch {
          return; // A line that is not JSON is skipped, as client-node's Watch does.
        }
        if (typeof event !== 'object' || event === null || typeof event.type !== 'string') return;
        try {
          callback(event.type, event.object);
        } catch (err) {
          finish(err); // A throwing callback ends this watch with its error (the informer logs it and watches again).
        }
      };
      body.on('data', (chunk: Buffer) => {
        if (finished) return;
        timer.refresh();
        let start = 0;
        for (let end = chunk.indexOf(NEWLINE); end !== -1; end = chunk.indexOf(NEWLINE, start)) {
          const piece = chunk.subarray(start, end);
          deliver(partial === undefined ? piece : Buffer.concat([partial, piece]));
          partial = undefined;
          start = end + 1;
          if (finished) return;
        }
        if (start < chunk.length) partial = partial === undefined ? Buffer.from(chunk.subarray(start)) : Buffer.concat([partial, chunk.subarray(start)]);
      });
      body.on('end', () => {
        if (partial !== undefined && !finished) deliver(partial);
        finish(null);
      });
      body.on('error', (err: unknown) => finish(err));
      body.on('close', () => finish(null));
    } catch (err) {
      finish(err);
    }
    return controller;
  }
}
