// An HTTP server that records Alertmanager webhook notifications by receiver (the URL path), for
// tests that check which team got which alert.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Alertmanager's webhook payload (version 4), the fields tests look at. */
export interface WebhookNotification {
  receiver: string;
  status: 'firing' | 'resolved';
  alerts: {
    status: 'firing' | 'resolved';
    labels: Record<string, string>;
    annotations: Record<string, string>;
    /** RFC 3339; when Prometheus started firing it. */
    startsAt: string;
  }[];
}

export interface WebhookReceiver {
  /** Base URL; Alertmanager posts to `${url}/<receiver>`. */
  url: string;
  /** Notifications received so far on `/<receiver>`. */
  received(receiver: string): WebhookNotification[];
  /** Resolves with the first notification on `/<receiver>` that matches; rejects after timeoutMs. */
  waitFor(receiver: string, match: (n: WebhookNotification) => boolean, timeoutMs?: number): Promise<WebhookNotification>;
  close(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const byReceiver = new Map<string, WebhookNotification[]>();
  const waiters = new Set<() => void>();
  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const receiver = (req.url ?? '/').slice(1);
      try {
        const notification = JSON.parse(body) as WebhookNotification;
        byReceiver.set(receiver, [...(byReceiver.get(receiver) ?? []), notification]);
        res.writeHead(200).end();
      } catch {
        res.writeHead(400).end();
      }
      for (const wake of waiters) wake();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const received = (receiver: string): WebhookNotification[] => byReceiver.get(receiver) ?? [];
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    waitFor: (receiver, match, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const found = received(receiver).find(match);
          if (found === undefined) return;
          done();
          resolve(found);
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`no matching notification for ${receiver} within ${timeoutMs} ms; got ${JSON.stringify([...byReceiver])}`));
        }, timeoutMs);
        const done = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
