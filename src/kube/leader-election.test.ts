import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeApiServer, type FakeApiServer } from '../../e2e/fake-apiserver/index.js';
import { LeaderElector, type LeaderElectorOptions } from './leader-election.js';
import { LeadershipFence } from './write-fence.js';

// Short timings keep the suite fast; the Lease records whole seconds, so 1 s is the shortest lease.
const LEASE_MS = 1000;
const RENEW_MS = 600;
const RETRY_MS = 100;

interface LeaseWrite {
  /** Server clock (ms) when the write was accepted. */
  at: number;
  verb: 'create' | 'replace';
  user: string;
  holder: string;
  transitions: number;
  renewTimeText: string;
}

interface StoredLease {
  resourceVersion: number;
  object: Record<string, unknown> & { spec?: Record<string, unknown>; metadata?: Record<string, unknown> };
}

/**
 * A loopback server that plays the three Lease endpoints the way the API server does: 404 NotFound,
 * 409 AlreadyExists on create, 409 Conflict on a stale resourceVersion. `partitioned` users get
 * their requests held forever, as a network partition would.
 */
class LeaseServer {
  readonly writes: LeaseWrite[] = [];
  readonly partitioned = new Set<string>();
  private readonly leases = new Map<string, StoredLease>();
  private resourceVersion = 100;
  private server: Server | undefined;
  private readonly held: ServerResponse[] = [];
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const res of this.held) res.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }

  lease(namespace: string, name: string): StoredLease['object'] | undefined {
    return this.leases.get(`${namespace}/${name}`)?.object;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const user = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (this.partitioned.has(user)) {
      this.held.push(res);
      return;
    }
    const match = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases(?:\/([^/?]+))?/.exec(req.url ?? '');
    if (!match) return this.status(res, 404, 'NotFound', 'no such path');
    const [, namespace = '', name] = match;
    const body = chunks.length > 0 ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as StoredLease['object']) : undefined;

    if (req.method === 'GET' && name !== undefined) {
      const stored = this.leases.get(`${namespace}/${name}`);
      if (!stored) return this.status(res, 404, 'NotFound', `leases "${name}" not found`);
      return this.json(res, 200, stored.object);
    }
    if (req.method === 'POST' && name === undefined && body) {
      const objectName = String(body.metadata?.['name'] ?? '');
      if (this.leases.has(`${namespace}/${objectName}`)) return this.status(res, 409, 'AlreadyExists', `leases "${objectName}" already exists`);
      return this.store(res, 201, 'create', user, namespace, objectName, body);
    }
    if (req.method === 'PUT' && name !== undefined && body) {
      const stored = this.leases.get(`${namespace}/${name}`);
      if (!stored) return this.status(res, 404, 'NotFound', `leases "${name}" not found`);
      if (String(body.metadata?.['resourceVersion']) !== String(stored.resourceVersion)) {
        return this.status(res, 409, 'Conflict', 'the object has been modified; please apply your changes to the latest version and try again');
      }
      return this.store(res, 200, 'replace', user, namespace, name, body);
    }
    return this.status(res, 405, 'MethodNotAllowed', 'not supported here');
  }

  private store(res: ServerResponse, code: number, verb: LeaseWrite['verb'], user: string, namespace: string, name: string, body: StoredLease['object']): void {
    const resourceVersion = ++this.resourceVersion;
    const object = { ...body, apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { ...body.metadata, name, namespace, resourceVersion: String(resourceVersion) } };
    this.leases.set(`${namespace}/${name}`, { resourceVersion, object });
    const spec = body.spec ?? {};
    this.writes.push({
      at: Date.now(),
      verb,
      user,
      holder: String(spec['holderIdentity'] ?? ''),
      transitions: Number(spec['leaseTransitions'] ?? 0),
      renewTimeText: String(spec['renewTime'] ?? ''),
    });
    this.json(res, code, object);
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    this.json(res, code, { kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code });
  }

  private json(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  }
}

function leaseClient(url: string, token: string): CoordinationV1Api {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'test', server: url, skipTLSVerify: true }],
    users: [{ name: token, token }],
    contexts: [{ name: 'test', cluster: 'test', user: token }],
    currentContext: 'test',
  });
  return kc.makeApiClient(CoordinationV1Api);
}

interface Replica {
  identity: string;
  elector: LeaderElector;
  events: { type: 'started' | 'stopped' | 'new-leader'; at: number; leader?: string }[];
  run: Promise<void>;
}

const servers: LeaseServer[] = [];
const replicas: Replica[] = [];

afterEach(async () => {
  for (const replica of replicas.splice(0)) await replica.elector.stop();
  for (const server of servers.splice(0)) await server.stop();
});

async function startServer(): Promise<LeaseServer> {
  const server = new LeaseServer();
  await server.start();
  servers.push(server);
  return server;
}

function startReplica(server: LeaseServer, identity: string, options: Partial<LeaderElectorOptions> = {}): Replica {
  const events: Replica['events'] = [];
  const elector = new LeaderElector({
    client: leaseClient(server.url, identity),
    namespace: 'imagescan-system',
    name: 'imagescan-operator',
    identity,
    leaseDurationMs: LEASE_MS,
    renewDeadlineMs: RENEW_MS,
    retryPeriodMs: RETRY_MS,
    requestTimeoutMs: 300,
    logger: pino({ level: 'silent' }),
    onStartedLeading: () => events.push({ type: 'started', at: Date.now() }),
    onStoppedLeading: () => {
      events.push({ type: 'stopped', at: Date.now() });
    },
    onNewLeader: (leader) => events.push({ type: 'new-leader', at: Date.now(), leader }),
    ...options,
  });
  const replica = { identity, elector, events, run: elector.run() };
  replicas.push(replica);
  return replica;
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return Date.now();
}

/** Samples both replicas every few ms and fails if both ever claim to lead. */
function watchForTwoLeaders(a: Replica, b: Replica): { stop: () => boolean } {
  let both = false;
  const timer = setInterval(() => {
    if (a.elector.isLeader() && b.elector.isLeader()) both = true;
  }, 2);
  return {
    stop: () => {
      clearInterval(timer);
      return both;
    },
  };
}

/** Holder changes in the Lease's write history: each is [previous holder's last write, first write of the next]. */
function handovers(writes: LeaseWrite[]): { from: LeaseWrite; to: LeaseWrite }[] {
  const result: { from: LeaseWrite; to: LeaseWrite }[] = [];
  for (let i = 1; i < writes.length; i++) {
    const previous = writes[i - 1];
    const current = writes[i];
    if (previous && current && current.holder !== '' && previous.holder !== current.holder) result.push({ from: previous, to: current });
  }
  return result;
}

describe('LeaderElector', () => {
  it('lets exactly one of two replicas lead and keeps it leading while it renews', async () => {
    const server = await startServer();
    const a = startReplica(server, 'pod-a');
    const b = startReplica(server, 'pod-b');
    const watch = watchForTwoLeaders(a, b);
    await waitFor(() => a.elector.isLeader() || b.elector.isLeader(), 2000);
    await new Promise((resolve) => setTimeout(resolve, 3 * LEASE_MS));
    expect(watch.stop()).toBe(false);

    const leader = a.elector.isLeader() ? a : b;
    const standby = leader === a ? b : a;
    expect(standby.elector.isLeader()).toBe(false);
    const lease = server.lease('imagescan-system', 'imagescan-operator');
    expect(lease?.spec?.['holderIdentity']).toBe(leader.identity);
    expect(lease?.spec?.['leaseDurationSeconds']).toBe(1);
    expect(lease?.spec?.['leaseTransitions']).toBe(0);
    // Renewals happened: more than one write, all by the leader.
    expect(server.writes.length).toBeGreaterThan(5);
    expect(new Set(server.writes.map((w) => w.user))).toStrictEqual(new Set([leader.identity]));
    expect(leader.events.filter((e) => e.type === 'started')).toHaveLength(1);
    expect(standby.events.filter((e) => e.type === 'new-leader').map((e) => e.leader)).toStrictEqual([leader.identity]);
    expect(standby.elector.leaderIdentity()).toBe(leader.identity);
    expect(leader.elector.leaderIdentity()).toBe(leader.identity);
  });

  it('writes renewTime as a MicroTime with six fractional digits', async () => {
    const server = await startServer();
    const a = startReplica(server, 'pod-a');
    await waitFor(() => a.elector.isLeader(), 2000);
    expect(server.writes[0]?.renewTimeText).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('hands over within the lease duration when the leader can no longer reach the API server, and never overlaps', async () => {
    const server = await startServer();
    const a = startReplica(server, 'pod-a');
    await waitFor(() => a.elector.isLeader(), 2000);
    const b = startReplica(server, 'pod-b');
    await waitFor(() => b.events.some((e) => e.type === 'new-leader'), 2000);
    const watch = watchForTwoLeaders(a, b);

    server.partitioned.add('pod-a');
    const partitionedAt = Date.now();
    const lastWriteOfA = server.writes.filter((w) => w.user === 'pod-a').at(-1);
    const aStopped = await waitFor(() => !a.elector.isLeader(), 2000);
    const bStarted = await waitFor(() => b.elector.isLeader(), 3000);
    expect(watch.stop()).toBe(false);

    // A gives up within its renew deadline; B waits out the lease, measured from A's last renewal.
    expect(aStopped - partitionedAt).toBeLessThanOrEqual(RENEW_MS + 150);
    expect(aStopped).toBeLessThan(bStarted);
    const takeover = handovers(server.writes).at(-1);
    expect(takeover?.from).toBe(lastWriteOfA);
    expect(takeover?.to.holder).toBe('pod-b');
    const gap = (takeover?.to.at ?? 0) - (takeover?.from.at ?? 0);
    expect(gap).toBeGreaterThanOrEqual(LEASE_MS);
    expect(gap).toBeLessThanOrEqual(LEASE_MS + 2 * RETRY_MS * 2.2 + 250);
    expect(takeover?.to.transitions).toBe(1);
    expect(a.events.map((e) => e.type)).toContain('stopped');
    await a.run; // run() resolves after leadership is lost
  });

  it('hands over only after the lease expires when the leader stops without releasing', async () => {
    const server = await startServer();
    const a = startReplica(server, 'pod-a', { releaseOnStop: false });
    await waitFor(() => a.elector.isLeader(), 2000);
    const b = startReplica(server, 'pod-b');
    await waitFor(() => b.events.some((e) => e.type === 'new-leader'), 2000);

    await a.elector.stop();
    const bStarted = await waitFor(() => b.elector.isLeader(), 3000);
    const lastWriteOfA = server.writes.filter((w) => w.user === 'pod-a').at(-1);
    expect(lastWriteOfA?.holder).toBe('pod-a');
    expect(bStarted - (lastWriteOfA?.at ?? 0)).toBeGreaterThanOrEqual(LEASE_MS);
  });

  it('hands over at once when the leader releases the Lease on stop', async () => {
    const server = await startServer();
    const a = startReplica(server, 'pod-a');
    await waitFor(() => a.elector.isLeader(), 2000);
    const b = startReplica(server, 'pod-b');
    await waitFor(() => b.events.some((e) => e.type === 'new-leader'), 2000);

    await a.elector.stop();
    const released = server.writes.at(-1);
    expect(released?.holder).toBe('');
    expect(released?.user).toBe('pod-a');
    // onStoppedLeading ran before the release was written.
    expect(a.events.find((e) => e.type === 'stopped')?.at ?? Infinity).toBeLessThanOrEqual(released?.at ?? 0);

    const bStarted = await waitFor(() => b.elector.isLeader(), 3000);
    // Well under the lease duration: B only waits for its next retry.
    expect(bStarted - (released?.at ?? 0)).toBeLessThan(LEASE_MS / 2);
    expect(server.lease('imagescan-system', 'imagescan-operator')?.spec?.['holderIdentity']).toBe('pod-b');
  });

  it('on stop closes the write fence at once, releases the Lease, and only then waits for onStoppedLeading to drain', async () => {
    const server = await startServer();
    let finishWork: () => void = () => undefined;
    const fence = new LeadershipFence();
    const a = startReplica(server, 'pod-a', {
      fence,
      onStoppedLeading: () => new Promise<void>((resolve) => (finishWork = resolve)),
    });
    await waitFor(() => a.elector.isLeader(), 2000);
    expect(fence.mayWrite()).toBe(true);
    const inFlight = fence.signal();
    const stopping = a.elector.stop();
    expect(fence.mayWrite()).toBe(false);
    expect(inFlight?.aborted).toBe(true);
    // The successor need not wait for the drain: the Lease is released while onStoppedLeading runs.
    await waitFor(() => server.lease('imagescan-system', 'imagescan-operator')?.spec?.['holderIdentity'] === '', 2000);
    let stopped = false;
    void stopping.then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 2 * RETRY_MS));
    expect(stopped).toBe(false);
    finishWork();
    await stopping;
  });

  it('closes the write fence when the renew deadline passes, before the lease can expire for a standby', async () => {
    const server = await startServer();
    const fence = new LeadershipFence();
    const a = startReplica(server, 'pod-a', { fence });
    await waitFor(() => a.elector.isLeader(), 2000);
    const lastRenew = () => Math.max(...server.writes.filter((w) => w.user === 'pod-a').map((w) => w.at));
    server.partitioned.add('pod-a');
    const closedAt = await waitFor(() => !fence.mayWrite(), 2 * LEASE_MS);
    expect(closedAt - lastRenew()).toBeLessThan(LEASE_MS);
  });

  it('starts a new term only after the previous onStoppedLeading has finished', async () => {
    const server = await startServer();
    const order: string[] = [];
    let finishStopping: () => void = () => undefined;
    const a = startReplica(server, 'pod-a', {
      onStartedLeading: () => order.push('started'),
      onStoppedLeading: () =>
        // Only the first term's stop is slow; later ones (the test's cleanup) finish at once.
        order.includes('stopping')
          ? undefined
          : new Promise<void>((resolve) => {
              order.push('stopping');
              finishStopping = () => {
                order.push('stopped');
                resolve();
              };
            }),
    });
    await waitFor(() => a.elector.isLeader(), 2000);
    server.partitioned.add('pod-a');
    await waitFor(() => !a.elector.isLeader(), 2000);
    await a.run;
    server.partitioned.delete('pod-a');
    a.run = a.elector.run();
    // The Lease is still ours and the server answers again, yet no new term while stopping is unfinished.
    await new Promise((resolve) => setTimeout(resolve, 4 * RETRY_MS));
    expect(a.elector.isLeader()).toBe(false);
    finishStopping();
    await waitFor(() => a.elector.isLeader(), 2000);
    expect(order).toStrictEqual(['started', 'stopping', 'stopped', 'started']);
  });

  it('never records two holders at once across repeated handovers', async () => {
    const server = await startServer();
    const a = startReplica(server, 'pod-a');
    const b = startReplica(server, 'pod-b');
    const watch = watchForTwoLeaders(a, b);
    for (let round = 0; round < 3; round++) {
      const leader = await waitFor(() => a.elector.isLeader() || b.elector.isLeader(), 3000).then(() => (a.elector.isLeader() ? a : b));
      server.partitioned.add(leader.identity);
      await waitFor(() => !leader.elector.isLeader(), 2000);
      await leader.run;
      await waitFor(() => (leader === a ? b : a).elector.isLeader(), 3000);
      // The replica rejoins as a standby once the other leads (before that it would simply renew
      // its own still-valid Lease, which is also correct).
      server.partitioned.delete(leader.identity);
      leader.run = leader.elector.run();
    }
    expect(watch.stop()).toBe(false);
    // Every change of holder in the record came at least a lease duration after the previous holder's last write.
    const changes = handovers(server.writes);
    expect(changes.length).toBeGreaterThanOrEqual(3);
    for (const change of changes) expect(change.to.at - change.from.at).toBeGreaterThanOrEqual(LEASE_MS);
    expect(server.lease('imagescan-system', 'imagescan-operator')?.spec?.['leaseTransitions']).toBe(changes.length);
  });

  it('refuses timings where a leader could outlive its lease', () => {
    const client = leaseClient('http://127.0.0.1:1', 'x');
    const base = { client, namespace: 'ns', name: 'lease', identity: 'me', logger: pino({ level: 'silent' }) };
    expect(() => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 })).toThrow(RangeError);
    expect(() => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 })).toThrow(RangeError);
    expect(() => new LeaderElector({ ...base, identity: '' })).toThrow(RangeError);
  });
});

describe('LeaderElector against the in-repo fake API server', () => {
  const fakes: FakeApiServer[] = [];
  afterEach(async () => {
    for (const replica of replicas.splice(0)) await replica.elector.stop();
    for (const fake of fakes.splice(0)) await fake.stop();
  });

  async function startFake(): Promise<FakeApiServer> {
    const fake = await startFakeApiServer({ namespaces: ['imagescan-system'] });
    fakes.push(fake);
    return fake;
  }

  function replicaOn(fake: FakeApiServer, identity: string, options: Partial<LeaderElectorOptions> = {}): Replica {
    const kc = new KubeConfig();
    kc.loadFromFile(fake.kubeconfigFor(identity));
    const events: Replica['events'] = [];
    const elector = new LeaderElector({
      client: kc.makeApiClient(CoordinationV1Api),
      namespace: 'imagescan-system',
      name: 'imagescan-operator',
      identity,
      leaseDurationMs: LEASE_MS,
      renewDeadlineMs: RENEW_MS,
      retryPeriodMs: RETRY_MS,
      requestTimeoutMs: 300,
      logger: pino({ level: 'silent' }),
      onStartedLeading: () => events.push({ type: 'started', at: Date.now() }),
      onStoppedLeading: () => {
        events.push({ type: 'stopped', at: Date.now() });
      },
      ...options,
    });
    const replica = { identity, elector, events, run: elector.run() };
    replicas.push(replica);
    return replica;
  }

  function leaseHolder(fake: FakeApiServer): unknown {
    const lease = fake.objects.get('leases.coordination.k8s.io', 'imagescan-system', 'imagescan-operator') as { spec?: { holderIdentity?: string } } | undefined;
    return lease?.spec?.holderIdentity;
  }

  it('elects one leader, fails over when the leader gets only errors, and hands over at once on release', async () => {
    const fake = await startFake();
    const a = replicaOn(fake, 'pod-a');
    await waitFor(() => a.elector.isLeader(), 3000);
    const b = replicaOn(fake, 'pod-b');
    const watch = watchForTwoLeaders(a, b);
    await new Promise((resolve) => setTimeout(resolve, 2 * LEASE_MS));
    expect(b.elector.isLeader()).toBe(false);
    expect(leaseHolder(fake)).toBe('pod-a');

    // Every request of the leader now fails with 500: it must step down, and B take over after the lease.
    fake.faults.set({ errorRate: 1, errorCodes: [500], identities: ['pod-a'] });
    const failingSince = Date.now();
    const aStopped = await waitFor(() => !a.elector.isLeader(), 3000);
    const bStarted = await waitFor(() => b.elector.isLeader(), 3000);
    expect(watch.stop()).toBe(false);
    expect(aStopped - failingSince).toBeLessThanOrEqual(RENEW_MS + 150);
    expect(bStarted).toBeGreaterThan(aStopped);
    expect(bStarted - failingSince).toBeGreaterThanOrEqual(LEASE_MS - RETRY_MS);
    expect(leaseHolder(fake)).toBe('pod-b');

    // B releases on stop; A (healthy again) takes over well within the lease duration.
    fake.faults.clear();
    await a.run;
    a.run = a.elector.run();
    await b.elector.stop();
    const releasedAt = Date.now();
    expect(leaseHolder(fake)).toBe('');
    await waitFor(() => a.elector.isLeader(), 3000);
    expect(Date.now() - releasedAt).toBeLessThan(LEASE_MS / 2);
  });

  it('uses only get, create and update on leases (what the Role grants)', async () => {
    const fake = await startFake();
    const a = replicaOn(fake, 'pod-a');
    const b = replicaOn(fake, 'pod-b');
    await waitFor(() => a.elector.isLeader() || b.elector.isLeader(), 3000);
    await new Promise((resolve) => setTimeout(resolve, 3 * RETRY_MS));
    await a.elector.stop();
    await b.elector.stop();
    const records = fake.requests({ resource: 'leases' });
    expect(new Set(records.map((r) => r.verb))).toStrictEqual(new Set(['get', 'create', 'update']));
    expect(records.every((r) => r.namespace === 'imagescan-system')).toBe(true);
    // No write was refused as invalid (MicroTime format, duration).
    expect(records.filter((r) => r.code === 422)).toStrictEqual([]);
  });
});
