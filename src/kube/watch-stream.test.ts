import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { StreamingWatch } from './watch-stream.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

let server: http.Server | undefined;

async function serve(handler: Handler): Promise<KubeConfig> {
  server = http.createServer(handler);
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'secret-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server === undefined ? resolve() : server.close(() => resolve())));
  server = undefined;
});

/** Runs one watch to its end; resolves with the events seen and what `done` was called with. */
function watchToEnd(kc: KubeConfig, timeoutMs = 5_000, onEvent?: (type: string) => void): { result: Promise<{ events: [string, unknown][]; err: unknown; calls: number }>; controller: Promise<AbortController> } {
  const events: [string, unknown][] = [];
  let calls = 0;
  let controller!: Promise<AbortController>;
  const result = new Promise<{ events: [string, unknown][]; err: unknown; calls: number }>((resolve) => {
    controller = new StreamingWatch(kc, timeoutMs).watch(
      '/api/v1/pods',
      { resourceVersion: '7', labelSelector: undefined, allowWatchBookmarks: true },
      (type, obj) => {
        events.push([type, obj]);
        onEvent?.(type);
      },
      (err) => {
        calls += 1;
        // Resolve on the next turn, so a second call of done would be counted.
        setTimeout(() => resolve({ events, err, calls }), 50);
      },
    );
  });
  return { result, controller };
}

describe('StreamingWatch', () => {
  it('delivers every event however the server splits its lines, with the credentials and query of the watch', async () => {
    let seen: http.IncomingMessage | undefined;
    const line = (type: string, name: string): string => `${JSON.stringify({ type, object: { metadata: { name, resourceVersion: '8' } } })}\n`;
    const kc = await serve((req, res) => {
      seen = req;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const all = Buffer.from(line('ADDED', 'a') + line('MODIFIED', 'crème-brûlée') + line('DELETED', 'c') + JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '9' } } }));
      // Bytes 1, then a cut inside the multi-byte "è", then the rest with a last line and no newline.
      const cut = all.indexOf(Buffer.from('è')) + 1;
      const pieces = [all.subarray(0, 1), all.subarray(1, cut), all.subarray(cut)];
      const next = (): void => {
        const piece = pieces.shift();
        if (piece === undefined) {
          res.end();
          return;
        }
        res.write(piece);
        setTimeout(next, 20);
      };
      next();
    });
    const { result } = watchToEnd(kc);
    const { events, err, calls } = await result;
    expect(events.map(([type, obj]) => `${type} ${(obj as { metadata: { name?: string; resourceVersion: string } }).metadata.name ?? (obj as { metadata: { resourceVersion: string } }).metadata.resourceVersion}`)).toEqual(['ADDED a', 'MODIFIED crème-brûlée', 'DELETED c', 'BOOKMARK 9']);
    expect(err).toBeNull();
    expect(calls).toBe(1);
    const url = new URL(seen?.url ?? '', 'http://x');
    expect(url.pathname).toBe('/api/v1/pods');
    expect(Object.fromEntries(url.searchParams)).toEqual({ watch: 'true', resourceVersion: '7', allowWatchBookmarks: 'true' });
    expect(seen?.headers.authorization).toBe('Bearer secret-token');
  });

  it('skips a line that is not JSON and goes on', async () => {
    const kc = await serve((_req, res) => {
      res.writeHead(200);
      res.end(`not json\n${JSON.stringify({ type: 'ADDED', object: { n: 1 } })}\n`);
    });
    const { events, err } = await watchToEnd(kc).result;
    expect(events).toEqual([['ADDED', { n: 1 }]]);
    expect(err).toBeNull();
  });

  it('ends with an error carrying the status code when the server refuses the watch', async () => {
    const kc = await serve((_req, res) => {
      res.writeHead(410, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired' }));
    });
    const { events, err, calls } = await watchToEnd(kc).result;
    expect(events).toEqual([]);
    expect(err).toMatchObject({ statusCode: 410 });
    expect(String(err)).toContain('HTTP 410');
    expect(calls).toBe(1);
  });

  it('ends with a TimeoutError when no byte comes for the inactivity timeout, and closes the connection', async () => {
    let closed = false;
    const kc = await serve((req, res) => {
      res.writeHead(200);
      res.write(`${JSON.stringify({ type: 'ADDED', object: {} })}\n`);
      req.socket.on('close', () => (closed = true));
    });
    const { events, err } = await watchToEnd(kc, 300).result;
    expect(events).toHaveLength(1);
    expect(err).toMatchObject({ name: 'TimeoutError' });
    await expect.poll(() => closed).toBe(true);
  });

  it('ends with an AbortError when the returned controller is aborted', async () => {
    const kc = await serve((_req, res) => {
      res.writeHead(200);
      res.write(`${JSON.stringify({ type: 'ADDED', object: {} })}\n`);
    });
    const watch = watchToEnd(kc, 5_000, () => void watch.controller.then((c) => c.abort()));
    const { err, calls } = await watch.result;
    expect(err).toMatchObject({ name: 'AbortError' });
    expect(calls).toBe(1);
  });

  it('ends with the error of a callback that throws', async () => {
    const kc = await serve((_req, res) => {
      res.writeHead(200);
      res.write(`${JSON.stringify({ type: 'ADDED', object: {} })}\n${JSON.stringify({ type: 'ADDED', object: {} })}\n`);
    });
    const { events, err } = await watchToEnd(kc, 5_000, () => {
      throw new Error('handler failed');
    }).result;
    expect(events).toHaveLength(1);
    expect(err).toMatchObject({ message: 'handler failed' });
  });

  it('ends with the connection error when nothing listens', async () => {
    const kc = await serve(() => undefined);
    await new Promise<void>((resolve) => server?.close(() => resolve()));
    server = undefined;
    const { err } = await watchToEnd(kc).result;
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).not.toBe('AbortError');
  });
});
