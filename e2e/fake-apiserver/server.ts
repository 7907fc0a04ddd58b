// The fake API server: HTTP routing, auth by bearer token, request log, fault injection, watch
// streams, restart, control endpoints. See README.md for what it models and what it does not.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { AdmissionWebhooks } from './admission-webhooks.js';
import type { AdmissionAttributes, AdmissionOperation } from './admission-webhooks.js';
import { apiGroup, apiGroupList, apiResourceList, apiVersions, openApiV3, SERVER_VERSION } from './discovery.js';
import { ApiError, badRequest, entityTooLarge, expired, internalError, notFound, pathNotFound, unsupportedMediaType } from './errors.js';
import { FaultInjector } from './faults.js';
import type { FaultConfig, FaultStats } from './faults.js';
import { ObjectApi } from './object-api.js';
import type { FieldValidation, WriteOptions, WriteResult } from './object-api.js';
import { APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH } from './patch.js';
import { ResourceRegistry } from './registry.js';
import { RequestLog } from './request-log.js';
import type { RequestFilter, RequestRecord } from './request-log.js';
import { apiVersionOf, readCrdFiles, resourceKey } from './resources.js';
import type { ResourceDef } from './resources.js';
import { Seeder } from './seeder.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import type { Matcher } from './selectors.js';
import { ObjectStore } from './store.js';
import type { StoreEvent, StoredObject, WatchSink } from './store.js';
import { buildTable } from './table.js';
import type { IncludeObject } from './table.js';
import { decodeKubeProtobuf } from './protobuf.js';
import { RbacAuthorizer, forbiddenMessage } from './rbac.js';
import type { PermissionUsage } from './rbac.js';
import { answerSubjectAccessReview, answerTokenReview } from './reviews.js';
import { runningPodStatus } from './seed.js';
import type { KubeObject, Verb } from './types.js';
import { isRecord } from './types.js';
import { warningHeaders } from './warnings.js';

const MiB = 1024 * 1024;

// Kubeconfig folders of servers still running; removed at process exit if nobody called stop()
// (a test that failed before its cleanup). One shared hook instead of one listener per server.
const liveTempDirs = new Set<string>();
process.once('exit', () => {
  for (const dir of liveTempDirs) rmSync(dir, { recursive: true, force: true });
});
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface FakeApiServerOptions {
  /** Port to listen on (default 0: any free port). Host is always 127.0.0.1 unless `host` says otherwise. */
  port?: number;
  host?: string;
  /** Directories whose CRD YAML files are installed at start (default: the repo's `crds/`). */
  crdDirs?: string[];
  /** Extra CRD objects installed at start. */
  crds?: KubeObject[];
  /** Bearer token → user name. Unknown tokens map to a user named like the token, unless requireAuth. */
  tokens?: Record<string, string>;
  /** Answer 401 to requests without a known token (default false). */
  requireAuth?: boolean;
  /** Namespaces that exist from the start (default: default, kube-system, kube-public). */
  namespaces?: string[];
  /** Objects stored at start, status kept (pods may be "running"). */
  seed?: KubeObject[];
  /** Watch events kept for resuming watches (default 10000); older resourceVersions get 410. */
  historySize?: number;
  /** Bookmark period for watches with allowWatchBookmarks (default 5000 ms). */
  bookmarkIntervalMs?: number;
  /** Upper bound of a watch's life when the client gives no timeoutSeconds (default 1800 s). */
  maxWatchSeconds?: number;
  /** Continue tokens older than this get 410 Expired (default 5 minutes). */
  continueTtlMs?: number;
  /** Request bodies above this get 413 (default 3 MiB, as the real server). */
  maxBodyBytes?: number;
  /** Stored objects above this get 413 (default 1.5 MiB, etcd's default request limit). */
  maxObjectBytes?: number;
  /** Answer a watch from a too-old resourceVersion with HTTP 410 instead of an in-stream ERROR event. */
  expiredWatchAsHttpError?: boolean;
  /** Pods created over HTTP (e.g. by kubectl) get a running status with imageIDs at once. */
  autoRunPods?: boolean;
  /** Keep at most this many request records (default 200000). */
  requestLogLimit?: number;
  /** Also append every request record to this JSON-lines file. */
  requestLogFile?: string;
  /** Clock and randomness, injectable for tests. */
  now?: () => Date;
  random?: () => number;
  /** Identity of the kubeconfig written at start (default `admin`). */
  defaultIdentity?: string;
  /**
   * Enforce RBAC from these Role/ClusterRole/(Cluster)RoleBinding objects for the listed identities
   * (e.g. `system:serviceaccount:imagescan-system:imagescan-operator`); everyone else may do anything.
   */
  rbac?: { objects: KubeObject[]; enforceFor: string[] };
  /**
   * Where the `clientConfig.service` of a webhook is served, by `namespace/name` (the fake has no
   * Services): `{ 'imagescan-system/imagescan-operator': { host: '127.0.0.1', port: 9443 } }`.
   * The server certificate must still be valid for `<name>.<namespace>.svc`.
   */
  webhookServices?: Record<string, { host: string; port: number }>;
}

export interface RestartOptions {
  /** Also drop the watch history, so every client must relist (default false). */
  compact?: boolean;
  /** How long the port stays closed (default 0). */
  downMs?: number;
  /** How far the resourceVersion counter jumps (default 100). */
  rvJump?: number;
}

/** Typed access to stored objects, bypassing HTTP (and the request log and faults). */
export interface ObjectAccess {
  /** Creates an object as given (status kept, namespace auto-created); returns the stored object. */
  create(obj: KubeObject): KubeObject;
  /** Creates or replaces (unconditionally) an object; status kept. */
  upsert(obj: KubeObject): KubeObject;
  /** `resource` is the plural, qualified with the group for non-core types: `pods`, `imagescanreports.imagescan.dev`. */
  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined;
  list(resource: string, namespace?: string): KubeObject[];
  count(resource: string, namespace?: string): number;
  delete(resource: string, namespace: string | undefined, name: string): boolean;
}

export interface FakeApiServer {
  /** `http://127.0.0.1:PORT`. */
  readonly url: string;
  readonly port: number;
  /** A kubeconfig for `defaultIdentity`, written at start (0600, removed by stop()). */
  readonly kubeconfigPath: string;
  /** Writes a kubeconfig whose bearer token maps to `identity`; returns its path. */
  kubeconfigFor(identity: string, opts?: { token?: string; namespace?: string; path?: string }): string;
  readonly objects: ObjectAccess;
  readonly seed: Seeder;
  readonly faults: {
    set(config: FaultConfig): void;
    clear(): void;
    current(): FaultConfig;
    stats(): FaultStats;
  };
  /** Ends every open watch now; returns how many. */
  dropWatches(mode?: 'close' | 'reset'): number;
  openWatches(): number;
  /** Drops the watch history: watches and continue tokens from older resourceVersions get 410. */
  compact(): void;
  resourceVersion(): string;
  requests(filter?: RequestFilter): RequestRecord[];
  clearRequests(): void;
  /** Points a webhook `clientConfig.service` at a local address (undefined removes it). */
  setWebhookService(namespace: string, name: string, address: { host: string; port: number } | undefined): void;
  /** With `rbac`: every granted permission and how many requests used it (empty without `rbac`). */
  rbacUsage(): PermissionUsage[];
  /** Stops listening (connections dropped), keeps all data. */
  stopServing(): Promise<void>;
  /** Listens again on the same port with the same data. */
  startServing(): Promise<void>;
  /** stopServing + startServing, with the resourceVersion counter moved on (and optionally compacted). */
  restart(opts?: RestartOptions): Promise<void>;
  /** Final shutdown: closes everything and removes the kubeconfig files. */
  stop(): Promise<void>;
}

interface ResourceRequest {
  group: string;
  version: string;
  namespace: string | undefined;
  resource: string;
  name: string | undefined;
  subresource: string | undefined;
}

/** Splits /api/v1/... and /apis/g/v/... into its parts; undefined for discovery of that group-version. */
function parseResourcePath(segments: string[]): { gv: { group: string; version: string }; rr: ResourceRequest | undefined } | undefined {
  let group: string;
  let version: string;
  let rest: string[];
  if (segments[0] === 'api' && segments.length >= 2) {
    group = '';
    version = segments[1] ?? '';
    rest = segments.slice(2);
  } else if (segments[0] === 'apis' && segments.length >= 3) {
    group = segments[1] ?? '';
    version = segments[2] ?? '';
    rest = segments.slice(3);
  } else return undefined;
  if (rest.length === 0) return { gv: { group, version }, rr: undefined };
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3 && !(rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize'))) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length > 3) throw pathNotFound();
  return { gv: { group, version }, rr: { group, version, namespace, resource: rest[0] ?? '', name: rest[1], subresource: rest[2] } };
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

/**
 * Whether one media range of the Accept header asks for the meta.k8s.io form `kind` of the answer:
 * `application/json;as=Table;v=v1;g=meta.k8s.io` (kubectl's tables) or `as=PartialObjectMetadata`.
 */
function acceptsAs(accept: string | undefined, kind: 'Table' | 'PartialObjectMetadata'): boolean {
  return (accept ?? '').split(',').some((range) => {
    const params = range.split(';').map((p) => p.trim());
    return params.includes(`as=${kind}`) && params.includes('g=meta.k8s.io');
  });
}

/** An object's metadata alone, as meta.k8s.io/v1 PartialObjectMetadata. */
function partialObjectMetadataJson(stored: StoredObject): string {
  return JSON.stringify({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: stored.obj.metadata });
}

interface ContinueToken {
  rv: number;
  start: string;
  t: number;
}

function encodeContinue(token: ContinueToken): string {
  return Buffer.from(JSON.stringify(token)).toString('base64url');
}

function decodeContinue(raw: string): ContinueToken {
  try {
    const v: unknown = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    if (isRecord(v) && typeof v.rv === 'number' && typeof v.start === 'string' && typeof v.t === 'number') return { rv: v.rv, start: v.start, t: v.t };
  } catch {
    // fall through
  }
  throw badRequest('continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Starts a fake API server on 127.0.0.1 and resolves once it listens. */
export async function startFakeApiServer(options: FakeApiServerOptions = {}): Promise<FakeApiServer> {
  const instance = new FakeApiServerImpl(options);
  await instance.init();
  return instance;
}

class FakeApiServerImpl implements FakeApiServer {
  private readonly opts: FakeApiServerOptions;
  private readonly now: () => Date;
  private readonly registry = new ResourceRegistry();
  private readonly store: ObjectStore;
  private readonly api: ObjectApi;
  private readonly log: RequestLog;
  private readonly injector: FaultInjector;
  private readonly tokens: Map<string, string>;
  private readonly watches = new Set<OpenWatch>();
  private readonly sockets = new Set<Socket>();
  private readonly tmpDir: string;
  private server: Server | undefined;
  private readonly authorizer: RbacAuthorizer | undefined;
  private readonly webhooks: AdmissionWebhooks;
  private readonly webhookServices: Map<string, { host: string; port: number }>;
  private listenPort: number;
  readonly seed: Seeder;
  readonly objects: ObjectAccess;
  kubeconfigPath = '';

  constructor(opts: FakeApiServerOptions) {
    this.opts = opts;
    this.now = opts.now ?? (() => new Date());
    this.listenPort = opts.port ?? 0;
    this.store = new ObjectStore({ historySize: opts.historySize ?? 10_000 });
    this.api = new ObjectApi(this.registry, this.store, {
      now: this.now,
      autoRunPods: opts.autoRunPods ?? false,
      maxObjectBytes: opts.maxObjectBytes ?? 1.5 * MiB,
      runningPodStatus: (pod, now) => runningPodStatus(pod, now),
    });
    this.log = new RequestLog(opts.requestLogLimit ?? 200_000, opts.requestLogFile);
    this.injector = new FaultInjector(opts.random ?? Math.random, (mode) => this.dropWatches(mode, false));
    this.tokens = new Map(Object.entries(opts.tokens ?? {}));
    this.authorizer = opts.rbac ? new RbacAuthorizer(opts.rbac.objects) : undefined;
    this.webhookServices = new Map(Object.entries(opts.webhookServices ?? {}));
    this.webhooks = new AdmissionWebhooks({
      configurations: () => this.store.list('admissionregistration.k8s.io/validatingwebhookconfigurations').map((s) => s.obj),
      namespaceLabels: (name) => this.store.get('/namespaces', '', name)?.obj.metadata?.labels,
      serviceAddress: (namespace, name) => this.webhookServices.get(`${namespace}/${name}`),
    });
    this.tmpDir = mkdtempSync(path.join(tmpdir(), 'fake-apiserver-'));
    liveTempDirs.add(this.tmpDir);
    this.objects = this.makeObjectAccess();
    this.seed = new Seeder((obj) => this.objects.create(obj), (ns) => this.store.get('/namespaces', '', ns) !== undefined, this.now);
  }

  get url(): string {
    return `http://127.0.0.1:${this.listenPort}`;
  }

  get port(): number {
    return this.listenPort;
  }

  get faults(): FakeApiServer['faults'] {
    return {
      set: (c) => this.injector.set(c),
      clear: () => this.injector.clear(),
      current: () => this.injector.current(),
      stats: () => this.injector.stats(),
    };
  }

  async init(): Promise<void> {
    for (const ns of this.opts.namespaces ?? ['default', 'kube-system', 'kube-public']) {
      this.api.create(this.defOf('namespaces'), undefined, { metadata: { name: ns } }, { keepStatus: true });
    }
    const crdDef = this.defOf('customresourcedefinitions.apiextensions.k8s.io');
    const crds = [...(this.opts.crdDirs ?? [path.join(REPO_ROOT, 'crds')]).flatMap((d) => readCrdFiles(d)), ...(this.opts.crds ?? [])];
    for (const crd of crds) {
      try {
        this.api.create(crdDef, undefined, crd, { keepStatus: true });
      } catch (err) {
        throw new Error(`installing CRD ${crd.metadata?.name ?? '?'}: ${err instanceof ApiError ? err.message : String(err)}`, { cause: err });
      }
    }
    for (const obj of this.opts.seed ?? []) this.objects.create(obj);
    await this.startServing();
    this.kubeconfigPath = this.kubeconfigFor(this.opts.defaultIdentity ?? 'admin');
  }

  setWebhookService(namespace: string, name: string, address: { host: string; port: number } | undefined): void {
    if (address) this.webhookServices.set(`${namespace}/${name}`, address);
    else this.webhookServices.delete(`${namespace}/${name}`);
  }

  private defOf(resource: string): ResourceDef {
    const dot = resource.indexOf('.');
    const plural = dot >= 0 ? resource.slice(0, dot) : resource;
    const group = dot >= 0 ? resource.slice(dot + 1) : '';
    const def = this.registry.byKey(resourceKey(group, plural));
    if (!def) throw new Error(`unknown resource ${resource}`);
    return def;
  }

  private makeObjectAccess(): ObjectAccess {
    const defFor = (obj: KubeObject): ResourceDef => {
      const def = this.registry.byKind(String(obj.apiVersion ?? ''), String(obj.kind ?? ''));
      if (!def) throw new Error(`no resource serves ${String(obj.apiVersion)} ${String(obj.kind)}`);
      return def;
    };
    const versionOf = (obj: KubeObject): string => String(obj.apiVersion ?? '').split('/').pop() ?? 'v1';
    const ensureNamespace = (def: ResourceDef, obj: KubeObject): void => {
      const ns = obj.metadata?.namespace;
      if (def.namespaced && ns && !this.store.get('/namespaces', '', ns)) {
        this.api.create(this.defOf('namespaces'), undefined, { metadata: { name: ns } }, { keepStatus: true });
      }
    };
    return {
      create: (obj) => {
        const def = defFor(obj);
        ensureNamespace(def, obj);
        return this.api.create(def, def.namespaced ? (obj.metadata?.namespace ?? 'default') : undefined, obj, { keepStatus: true, version: versionOf(obj) }).stored.obj;
      },
      upsert: (obj) => {
        const def = defFor(obj);
        ensureNamespace(def, obj);
        const ns = def.namespaced ? (obj.metadata?.namespace ?? 'default') : '';
        const existing = this.store.get(resourceKey(def.group, def.resource), ns, obj.metadata?.name ?? '');
        if (!existing) return this.api.create(def, def.namespaced ? ns : undefined, obj, { keepStatus: true, version: versionOf(obj) }).stored.obj;
        const body = structuredClone(obj);
        if (body.metadata) delete body.metadata.resourceVersion;
        const { status } = body;
        const result = this.api.update(def, ns, existing.name, undefined, { ...body, metadata: { ...body.metadata, resourceVersion: String(existing.rv) } }, { version: versionOf(obj) });
        if (!def.statusSubresource || status === undefined) return result.stored.obj;
        return this.api.update(def, ns, existing.name, 'status', { ...result.stored.obj, status }, { version: versionOf(obj) }).stored.obj;
      },
      get: (resource, namespace, name) => {
        const def = this.defOf(resource);
        return this.store.get(resourceKey(def.group, def.resource), def.namespaced ? (namespace ?? '') : '', name)?.obj;
      },
      list: (resource, namespace) => {
        const def = this.defOf(resource);
        return this.store.list(resourceKey(def.group, def.resource), def.namespaced ? namespace : undefined).map((s) => s.obj);
      },
      count: (resource, namespace) => {
        const def = this.defOf(resource);
        return this.store.count(resourceKey(def.group, def.resource), def.namespaced ? namespace : undefined);
      },
      delete: (resource, namespace, name) => {
        const def = this.defOf(resource);
        try {
          this.api.remove(def, namespace ?? '', name);
          return true;
        } catch (err) {
          if (err instanceof ApiError && err.code === 404) return false;
          throw err;
        }
      },
    };
  }

  kubeconfigFor(identity: string, opts: { token?: string; namespace?: string; path?: string } = {}): string {
    const token = opts.token ?? identity;
    this.tokens.set(token, identity);
    const file = opts.path ?? path.join(this.tmpDir, `kubeconfig-${identity.replace(/[^A-Za-z0-9_.-]/g, '_')}`);
    const yaml = [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      '  cluster:',
      `    server: ${this.url}`,
      '    insecure-skip-tls-verify: true',
      'users:',
      `- name: ${JSON.stringify(identity)}`,
      '  user:',
      `    token: ${JSON.stringify(token)}`,
      // kubectl sends no token over plain http; it does send this as Impersonate-User.
      `    as: ${JSON.stringify(identity)}`,
      'contexts:',
      '- name: fake',
      '  context:',
      '    cluster: fake',
      `    user: ${JSON.stringify(identity)}`,
      `    namespace: ${opts.namespace ?? 'default'}`,
      'current-context: fake',
      '',
    ].join('\n');
    writeFileSync(file, yaml, { mode: 0o600 });
    return file;
  }

  resourceVersion(): string {
    return String(this.store.currentRv());
  }

  compact(): void {
    this.store.compact();
  }

  openWatches(): number {
    return this.watches.size;
  }

  dropWatches(mode: 'close' | 'reset' = 'reset', count = true): number {
    const all = [...this.watches];
    for (const w of all) w.end(mode);
    if (count) this.injector.countDropped(all.length);
    return all.length;
  }

  requests(filter?: RequestFilter): RequestRecord[] {
    return this.log.list(filter);
  }

  clearRequests(): void {
    this.log.clear();
  }

  rbacUsage(): PermissionUsage[] {
    return this.authorizer?.report() ?? [];
  }

  async startServing(): Promise<void> {
    if (this.server) return;
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        // Anything unexpected becomes a 500 Status; the server keeps running.
        if (!res.headersSent) this.sendError(res, internalError(err instanceof Error ? err.message : String(err)));
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 65_000;
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenPort, this.opts.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.listenPort = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async stopServing(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.dropWatches('reset', false);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
  }

  async restart(opts: RestartOptions = {}): Promise<void> {
    await this.stopServing();
    this.store.advanceRv(opts.rvJump ?? 100);
    if (opts.compact) this.store.compact();
    if ((opts.downMs ?? 0) > 0) await sleep(opts.downMs ?? 0);
    await this.startServing();
  }

  async stop(): Promise<void> {
    this.injector.dispose();
    await this.stopServing();
    rmSync(this.tmpDir, { recursive: true, force: true });
    liveTempDirs.delete(this.tmpDir);
  }

  // ---------------------------------------------------------------- HTTP

  private identityOf(req: IncomingMessage): string | undefined {
    const auth = req.headers.authorization;
    const m = auth ? /^Bearer\s+(.+)$/i.exec(auth) : null;
    if (!m) {
      // kubectl 1.32 here sends no bearer token over plain http, but does send Impersonate-User
      // (our kubeconfigs set `as:`), so that header names the caller when no token came.
      const impersonated = req.headers['impersonate-user'];
      if (typeof impersonated === 'string' && impersonated !== '') {
        return this.opts.requireAuth && ![...this.tokens.values()].includes(impersonated) ? undefined : impersonated;
      }
      return this.opts.requireAuth ? undefined : 'system:anonymous';
    }
    const token = m[1]?.trim() ?? '';
    const user = this.tokens.get(token);
    if (user !== undefined) return user;
    return this.opts.requireAuth ? undefined : token;
  }

  private sendJson(res: ServerResponse, code: number, body: string, headers: Record<string, string> = {}): void {
    res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', ...headers });
    res.end(body);
  }

  private sendError(res: ServerResponse, err: ApiError): void {
    this.sendJson(res, err.code, JSON.stringify(err.toStatus()), { ...err.headers, ...warningHeaders(err.warnings) });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname.startsWith('/__fake/')) {
      await this.handleControl(req, res, url);
      return;
    }
    const startMs = Date.now();
    const segments = url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
    const identity = this.identityOf(req);
    const record = this.log.start(
      {
        method: req.method ?? 'GET',
        path: url.pathname + url.search,
        identity: identity ?? 'unauthenticated',
        userAgent: req.headers['user-agent'],
        contentType: req.headers['content-type'],
        ...(req.headers['content-length'] === undefined ? {} : { requestBytes: Number(req.headers['content-length']) }),
        accept: req.headers.accept,
      },
      startMs,
    );
    let status = 200;
    let reason: string | undefined;
    const finish = (): void => this.log.finish(record, status, reason, Date.now());
    try {
      if (identity === undefined) {
        status = 401;
        this.sendJson(res, 401, JSON.stringify({ kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 }));
        finish();
        return;
      }
      const nonResource = this.nonResource(segments);
      if (nonResource !== undefined) {
        await drain(req);
        if (nonResource === null) throw pathNotFound();
        this.sendJson(res, 200, JSON.stringify(nonResource));
        finish();
        return;
      }
      const parsed = parseResourcePath(segments);
      if (!parsed) throw pathNotFound();
      if (!parsed.rr) {
        await drain(req);
        const list = apiResourceList(this.registry, parsed.gv.group, parsed.gv.version);
        if (!list) throw pathNotFound();
        this.sendJson(res, 200, JSON.stringify(list));
        finish();
        return;
      }
      const rr = parsed.rr;
      const verb = this.verbOf(req.method ?? 'GET', rr, url);
      Object.assign(record, {
        verb,
        apiGroup: rr.group,
        apiVersion: rr.version,
        resource: rr.resource,
        subresource: rr.subresource,
        namespace: rr.namespace,
        name: rr.name,
      });
      const def = this.registry.lookup(rr.group, rr.version, rr.resource);
      if (!def) throw pathNotFound();
      if (!def.namespaced && rr.namespace !== undefined) throw pathNotFound();
      if (def.namespaced && rr.namespace === undefined && rr.name !== undefined) throw pathNotFound();
      if (rr.subresource !== undefined && !(rr.subresource === 'status' && def.statusSubresource)) throw pathNotFound();
      if (!def.verbs.includes(verb)) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
      if (this.authorizer && this.opts.rbac?.enforceFor.includes(identity)) {
        const attrs = { verb, apiGroup: rr.group, resource: rr.resource, subresource: rr.subresource, namespace: rr.namespace, name: rr.name };
        if (!this.authorizer.allows(identity, attrs)) {
          await drain(req);
          const details: { kind: string; group?: string; name?: string } = { kind: rr.resource };
          if (rr.group !== '') details.group = rr.group;
          if (rr.name !== undefined) details.name = rr.name;
          throw new ApiError(403, 'Forbidden', forbiddenMessage(identity, attrs), details);
        }
      }
      const delay = this.injector.delayFor(identity);
      if (delay > 0) {
        await sleep(delay);
        // Like the real API server, whose request context is cancelled when the client goes away: a
        // request its client gave up on while it waited is not served (and changes nothing).
        if (req.socket.destroyed) {
          status = 499;
          reason = 'ClientClosedRequest';
          finish();
          return;
        }
      }
      const injected = this.injector.failureFor({ verb, group: rr.group, resource: rr.resource, subresource: rr.subresource, identity }, rr.name ?? '');
      if (injected) {
        record.injected = true;
        await drain(req);
        throw injected;
      }
      if (verb === 'watch') {
        status = this.watch(req, res, def, rr, url, () => finish());
        return;
      }
      const result = await this.serveResource(req, res, def, rr, url, verb, identity);
      status = result;
      finish();
    } catch (err) {
      const apiErr = err instanceof ApiError ? err : internalError(err instanceof Error ? err.message : String(err));
      status = apiErr.code;
      reason = apiErr.reason;
      if (!res.headersSent) {
        if (apiErr.code === 413) res.setHeader('Connection', 'close');
        this.sendError(res, apiErr);
      }
      finish();
    }
  }

  /** Discovery and other non-resource URLs: the body to send, null for 404, undefined if not one. */
  private nonResource(segments: string[]): unknown {
    const p = segments.join('/');
    if (p === 'api') return apiVersions(`127.0.0.1:${this.listenPort}`);
    if (p === 'apis') return apiGroupList(this.registry);
    if (p === 'version') return SERVER_VERSION;
    if (p === 'healthz' || p === 'readyz' || p === 'livez') return 'ok';
    if (segments[0] === 'apis' && segments.length === 2) return apiGroup(this.registry, segments[1] ?? '') ?? null;
    if (segments[0] === 'openapi') {
      if (segments[1] === 'v3') return openApiV3(this.registry, segments.slice(2).join('/')) ?? null;
      return null;
    }
    return undefined;
  }

  private verbOf(method: string, rr: ResourceRequest, url: URL): Verb {
    switch (method) {
      case 'GET': {
        if (rr.name !== undefined) return 'get';
        const w = url.searchParams.get('watch');
        return w === 'true' || w === '1' ? 'watch' : 'list';
      }
      case 'POST':
        if (rr.name !== undefined) throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
        return 'create';
      case 'PUT':
        return 'update';
      case 'PATCH':
        return 'patch';
      case 'DELETE':
        return rr.name === undefined ? 'deletecollection' : 'delete';
      default:
        throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }
  }

  private async readBody(req: IncomingMessage): Promise<Buffer> {
    const limit = this.opts.maxBodyBytes ?? 3 * MiB;
    const chunks: Buffer[] = [];
    let total = 0;
    let tooLarge = Number(req.headers['content-length'] ?? '0') > limit;
    for await (const chunk of req) {
      const buf = chunk as Buffer;
      total += buf.length;
      if (total > limit) tooLarge = true;
      if (!tooLarge) chunks.push(buf);
    }
    if (tooLarge) throw entityTooLarge(limit);
    return Buffer.concat(chunks);
  }

  private async readObjectBody(req: IncomingMessage): Promise<unknown> {
    const type = mediaType(req.headers['content-type']);
    const raw = await this.readBody(req);
    if (type === 'application/vnd.kubernetes.protobuf') {
      const decoded = decodeKubeProtobuf(raw);
      if ('unsupported' in decoded) {
        throw unsupportedMediaType(type, ['application/json', 'application/yaml', `application/vnd.kubernetes.protobuf (not for ${decoded.unsupported})`]);
      }
      return decoded.obj;
    }
    const text = raw.toString('utf8');
    if (type === 'application/yaml' || type === 'application/apply-patch+yaml') {
      try {
        return parseYaml(text) as unknown;
      } catch (err) {
        throw badRequest(`error decoding YAML: ${(err as Error).message}`);
      }
    }
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw badRequest(`couldn't get version/kind; json parse error: ${(err as Error).message}`);
    }
  }

  private writeOptions(url: URL, version: string): WriteOptions {
    const fv = url.searchParams.get('fieldValidation');
    const opts: WriteOptions = { version };
    if (fv !== null) {
      if (fv !== 'Strict' && fv !== 'Warn' && fv !== 'Ignore') throw badRequest(`fieldValidation must be one of Strict, Warn, Ignore, got ${fv}`);
      opts.fieldValidation = fv as FieldValidation;
    }
    const fm = url.searchParams.get('fieldManager');
    if (fm !== null) opts.fieldManager = fm;
    if (url.searchParams.getAll('dryRun').includes('All')) opts.dryRun = true;
    if (url.searchParams.get('force') === 'true') opts.force = true;
    return opts;
  }

  private objectJson(def: ResourceDef, version: string, stored: StoredObject): string {
    const apiVersion = apiVersionOf(def.group, version);
    if (stored.obj.apiVersion === apiVersion) return stored.json;
    return JSON.stringify({ ...stored.obj, apiVersion });
  }

  /** The answer to a write: the object, or only its metadata when the Accept header asks for that (as client-go's metadata client does). */
  private writeResponse(req: IncomingMessage, res: ServerResponse, def: ResourceDef, version: string, result: WriteResult, created: boolean): number {
    const code = created ? 201 : 200;
    const headers = warningHeaders(result.warnings);
    const body = acceptsAs(req.headers.accept, 'PartialObjectMetadata')
      ? partialObjectMetadataJson(result.stored)
      : this.objectJson(def, version, result.stored);
    this.sendJson(res, code, body, headers);
    return code;
  }

  private async serveResource(req: IncomingMessage, res: ServerResponse, def: ResourceDef, rr: ResourceRequest, url: URL, verb: Verb, identity: string): Promise<number> {
    const ns = rr.namespace ?? '';
    const name = rr.name ?? '';
    const now = this.now();
    switch (verb) {
      case 'get': {
        await drain(req);
        const stored = this.api.get(def, ns, name);
        if (acceptsAs(req.headers.accept, 'Table')) {
          const table = buildTable(def, rr.version, [stored.obj], { now, includeObject: includeObjectOf(url), resourceVersion: String(stored.rv) });
          this.sendJson(res, 200, JSON.stringify(table));
        } else if (acceptsAs(req.headers.accept, 'PartialObjectMetadata')) {
          this.sendJson(res, 200, partialObjectMetadataJson(stored));
        } else this.sendJson(res, 200, this.objectJson(def, rr.version, stored));
        return 200;
      }
      case 'list':
        await drain(req);
        return this.list(req, res, def, rr, url);
      case 'create': {
        const body = await this.readObjectBody(req);
        if (def.resource === 'tokenreviews' || def.resource === 'subjectaccessreviews') {
          if (!isRecord(body)) throw badRequest('the body is not an object');
          const review =
            def.resource === 'tokenreviews'
              ? answerTokenReview(body as KubeObject, this.tokens)
              : answerSubjectAccessReview(body as KubeObject, { authorizer: this.authorizer, enforceFor: this.opts.rbac?.enforceFor ?? [] });
          this.sendJson(res, 201, JSON.stringify(review));
          return 201;
        }
        const opts = this.writeOptions(url, rr.version);
        const admitted = await this.admitWrite(def, rr, identity, opts, 'CreateOptions', () => this.api.create(def, rr.namespace, body, { ...opts, dryRun: true }));
        const result = this.api.create(def, rr.namespace, admitted.body(body), { ...opts, ...admitted.uid });
        return this.writeResponse(req, res, def, rr.version, { ...result, warnings: [...result.warnings, ...admitted.warnings] }, true);
      }
      case 'update': {
        const body = await this.readObjectBody(req);
        const opts = this.writeOptions(url, rr.version);
        const admitted = await this.admitWrite(def, rr, identity, opts, 'UpdateOptions', () => this.api.update(def, ns, name, rr.subresource, body, { ...opts, dryRun: true }));
        const result = this.api.update(def, ns, name, rr.subresource, body, opts);
        return this.writeResponse(req, res, def, rr.version, { ...result, warnings: [...result.warnings, ...admitted.warnings] }, false);
      }
      case 'patch': {
        const type = mediaType(req.headers['content-type']);
        if (![MERGE_PATCH, JSON_PATCH, STRATEGIC_MERGE_PATCH, APPLY_PATCH].includes(type)) {
          await drain(req);
          throw unsupportedMediaType(type, def.custom ? [JSON_PATCH, MERGE_PATCH, APPLY_PATCH] : [JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_MERGE_PATCH]);
        }
        const raw = await this.readBody(req);
        let body: unknown;
        try {
          body = type === APPLY_PATCH ? (parseYaml(raw.toString('utf8')) as unknown) : (JSON.parse(raw.toString('utf8')) as unknown);
        } catch (err) {
          throw badRequest(`error decoding patch: ${(err as Error).message}`);
        }
        const opts = this.writeOptions(url, rr.version);
        const admitted = await this.admitWrite(def, rr, identity, opts, 'PatchOptions', () => this.api.patch(def, ns, name, rr.subresource, type, body, { ...opts, dryRun: true }));
        const result = this.api.patch(def, ns, name, rr.subresource, type, body, { ...opts, ...admitted.uid });
        return this.writeResponse(req, res, def, rr.version, { ...result, warnings: [...result.warnings, ...admitted.warnings] }, result.created);
      }
      case 'delete': {
        const raw = await this.readBody(req);
        let options: unknown;
        if (raw.length > 0) {
          try {
            options = JSON.parse(raw.toString('utf8')) as unknown;
          } catch {
            throw badRequest('DeleteOptions must be JSON');
          }
        }
        const dryRun = url.searchParams.getAll('dryRun').includes('All');
        const warnings = await this.admitDelete(def, rr, identity, this.api.get(def, ns, name), options, dryRun);
        const deleted = this.api.remove(def, ns, name, options, dryRun);
        this.sendJson(res, 200, this.objectJson(def, rr.version, deleted), warningHeaders(warnings));
        return 200;
      }
      case 'deletecollection': {
        await drain(req);
        const label = parseLabelSelector(url.searchParams.get('labelSelector'));
        const field = parseFieldSelector(url.searchParams.get('fieldSelector'));
        const victims = this.store.list(resourceKey(def.group, def.resource), rr.namespace).filter((s) => label(s.obj) && field(s.obj));
        const deleted: StoredObject[] = [];
        for (const v of victims) {
          await this.admitDelete(def, rr, identity, v, undefined, false);
          deleted.push(this.api.remove(def, v.namespace, v.name));
        }
        this.sendListJson(res, def, rr.version, deleted, String(this.store.currentRv()), undefined, undefined);
        return 200;
      }
      default:
        throw new ApiError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource');
    }
  }

  /**
   * Validating webhooks for a create, update or patch: the write is first run as a dry run to get the
   * object as it would be stored (defaulted and validated, as the real server shows webhooks), then
   * the webhooks judge it. Returns their warnings, and for a create the uid (and generated name) the
   * webhooks saw, so the real write stores the same object. Throws the webhooks' refusal.
   */
  private async admitWrite(
    def: ResourceDef,
    rr: ResourceRequest,
    identity: string,
    opts: WriteOptions,
    optionsKind: 'CreateOptions' | 'UpdateOptions' | 'PatchOptions',
    preview: () => WriteResult,
  ): Promise<{ warnings: string[]; uid: { uid?: string }; body: (body: unknown) => unknown }> {
    const unchanged = { warnings: [], uid: {}, body: (b: unknown) => b };
    if (this.webhooks.isEmpty()) return unchanged;
    const old = rr.name === undefined ? undefined : this.store.get(resourceKey(def.group, def.resource), def.namespaced ? (rr.namespace ?? '') : '', rr.name);
    const planned = preview();
    const operation: AdmissionOperation = planned.created ? 'CREATE' : 'UPDATE';
    const options: Record<string, unknown> = { kind: planned.created ? 'CreateOptions' : optionsKind, apiVersion: 'meta.k8s.io/v1' };
    if (opts.dryRun) options.dryRun = ['All'];
    if (opts.fieldManager !== undefined) options.fieldManager = opts.fieldManager;
    const warnings = await this.webhooks.admit(this.admissionAttributes(def, rr, identity, operation, planned.stored.obj, operation === 'UPDATE' ? old?.obj : undefined, planned.stored.name, opts.dryRun ?? false, options));
    const uid = planned.created ? planned.stored.obj.metadata?.uid : undefined;
    const name = planned.stored.name;
    return {
      warnings,
      uid: uid === undefined ? {} : { uid },
      // A generated name must stay the one the webhooks judged.
      body: (body) => (isRecord(body) && isRecord(body.metadata) && !body.metadata.name ? { ...body, metadata: { ...body.metadata, name } } : body),
    };
  }

  private async admitDelete(def: ResourceDef, rr: ResourceRequest, identity: string, old: StoredObject, options: unknown, dryRun: boolean): Promise<string[]> {
    if (this.webhooks.isEmpty()) return [];
    const opts: Record<string, unknown> = { kind: 'DeleteOptions', apiVersion: 'meta.k8s.io/v1', ...(isRecord(options) ? options : {}) };
    if (dryRun) opts.dryRun = ['All'];
    return this.webhooks.admit(this.admissionAttributes(def, rr, identity, 'DELETE', undefined, old.obj, old.name, dryRun, opts));
  }

  private admissionAttributes(
    def: ResourceDef,
    rr: ResourceRequest,
    identity: string,
    operation: AdmissionOperation,
    object: KubeObject | undefined,
    oldObject: KubeObject | undefined,
    name: string,
    dryRun: boolean,
    options: Record<string, unknown>,
  ): AdmissionAttributes {
    const isNamespace = def.group === '' && def.resource === 'namespaces';
    const sa = /^system:serviceaccount:([^:]+):[^:]+$/.exec(identity);
    const groups = identity === 'system:anonymous' ? ['system:unauthenticated'] : sa ? ['system:serviceaccounts', `system:serviceaccounts:${sa[1] ?? ''}`, 'system:authenticated'] : ['system:authenticated'];
    return {
      operation,
      group: def.group,
      version: rr.version,
      resource: def.resource,
      subresource: rr.subresource,
      kind: def.kind,
      namespace: def.namespaced ? (object ?? oldObject)?.metadata?.namespace ?? rr.namespace : isNamespace ? name : undefined,
      name,
      object: object === undefined ? undefined : { ...object, apiVersion: apiVersionOf(def.group, rr.version) },
      oldObject: oldObject === undefined ? undefined : { ...oldObject, apiVersion: apiVersionOf(def.group, rr.version) },
      userInfo: { username: identity, groups },
      dryRun,
      options,
    };
  }

  private sendListJson(res: ServerResponse, def: ResourceDef, version: string, items: StoredObject[], rv: string, cont: string | undefined, remaining: number | undefined): void {
    const meta: Record<string, unknown> = { resourceVersion: rv };
    if (cont !== undefined) meta.continue = cont;
    if (remaining !== undefined) meta.remainingItemCount = remaining;
    // Items are concatenated from their stored serialization: no re-stringification of the collection.
    const head = `{"kind":${JSON.stringify(`${def.kind}List`)},"apiVersion":${JSON.stringify(apiVersionOf(def.group, version))},"metadata":${JSON.stringify(meta)},"items":[`;
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.write(head);
    for (let i = 0; i < items.length; i += 500) {
      const chunk = items.slice(i, i + 500).map((item) => this.objectJson(def, version, item));
      res.write((i === 0 ? '' : ',') + chunk.join(','));
    }
    res.end(']}');
  }

  private list(req: IncomingMessage, res: ServerResponse, def: ResourceDef, rr: ResourceRequest, url: URL): number {
    const label = parseLabelSelector(url.searchParams.get('labelSelector'));
    const field = parseFieldSelector(url.searchParams.get('fieldSelector'));
    const limitRaw = url.searchParams.get('limit');
    const limit = limitRaw !== null && Number(limitRaw) > 0 ? Math.floor(Number(limitRaw)) : 0;
    const contRaw = url.searchParams.get('continue');
    let rv = this.store.currentRv();
    let start = '';
    if (contRaw) {
      const token = decodeContinue(contRaw);
      const ttl = this.opts.continueTtlMs ?? 5 * 60_000;
      if (token.rv < this.store.oldestWatchableRv() || Date.now() - token.t > ttl) {
        throw expired(
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.',
        );
      }
      rv = token.rv;
      start = token.start;
    }
    const keyOf = (s: StoredObject): string => `${s.namespace}/${s.name}`;
    const rkey = resourceKey(def.group, def.resource);
    const listNs = def.namespaced ? rr.namespace : undefined;
    let all = this.store.list(rkey, listNs);
    if (rv < this.store.currentRv()) all = this.snapshotAt(rkey, listNs, rv, all, keyOf);
    let idx = 0;
    if (start !== '') {
      // Binary search for the first key after `start`.
      let lo = 0;
      let hi = all.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        const m = all[mid];
        if (m && keyOf(m) <= start) lo = mid + 1;
        else hi = mid;
      }
      idx = lo;
    }
    const selected: StoredObject[] = [];
    const filtering = url.searchParams.has('labelSelector') || url.searchParams.has('fieldSelector');
    for (; idx < all.length; idx++) {
      const s = all[idx];
      if (!s || !label(s.obj) || !field(s.obj)) continue;
      if (limit > 0 && selected.length === limit) break;
      selected.push(s);
    }
    let cont: string | undefined;
    let remaining: number | undefined;
    if (limit > 0 && idx < all.length) {
      const last = selected[selected.length - 1];
      if (last) {
        cont = encodeContinue({ rv, start: keyOf(last), t: contRaw ? decodeContinue(contRaw).t : Date.now() });
        if (!filtering) remaining = all.length - idx;
      }
    }
    if (acceptsAs(req.headers.accept, 'Table')) {
      const table = buildTable(
        def,
        rr.version,
        selected.map((s) => s.obj),
        { now: this.now(), includeObject: includeObjectOf(url), resourceVersion: String(rv), ...(cont !== undefined ? { continueToken: cont } : {}) },
      );
      this.sendJson(res, 200, JSON.stringify(table));
      return 200;
    }
    this.sendListJson(res, def, rr.version, selected, String(rv), cont, remaining);
    return 200;
  }

  /**
   * The collection as it was at `rv`, from the current objects and the history since: later pages of
   * a paginated list show the first page's snapshot, as etcd's MVCC read does.
   */
  private snapshotAt(rkey: string, namespace: string | undefined, rv: number, current: StoredObject[], keyOf: (s: StoredObject) => string): StoredObject[] {
    const atRv = new Map<string, StoredObject | null>();
    for (const ev of this.store.eventsSince(rkey, rv, namespace)) {
      const key = keyOf(ev.object);
      // The first change after rv tells what the object was at rv (nothing, if it was added later).
      if (!atRv.has(key)) atRv.set(key, ev.type === 'ADDED' ? null : (ev.previous ?? null));
    }
    if (atRv.size === 0) return current;
    const byKey = new Map(current.map((s) => [keyOf(s), s]));
    for (const [key, state] of atRv) {
      if (state) byKey.set(key, state);
      else byKey.delete(key);
    }
    return [...byKey.keys()].sort().map((k) => byKey.get(k)).filter((s): s is StoredObject => s !== undefined);
  }

  private watch(req: IncomingMessage, res: ServerResponse, def: ResourceDef, rr: ResourceRequest, url: URL, onEnd: () => void): number {
    const label = parseLabelSelector(url.searchParams.get('labelSelector'));
    const field = parseFieldSelector(url.searchParams.get('fieldSelector'));
    const rvParam = url.searchParams.get('resourceVersion') ?? '';
    const rkey = resourceKey(def.group, def.resource);
    const namespace = def.namespaced ? rr.namespace : undefined;
    const fromRv = rvParam === '' || rvParam === '0' ? undefined : Number(rvParam);
    if (fromRv !== undefined && Number.isNaN(fromRv)) throw badRequest(`invalid resource version: ${rvParam}`);
    if (fromRv !== undefined && fromRv < this.store.oldestWatchableRv()) {
      const err = expired(`too old resource version: ${fromRv} (${this.store.oldestWatchableRv()})`);
      if (this.opts.expiredWatchAsHttpError) throw err;
      res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
      res.end(`${JSON.stringify({ type: 'ERROR', object: err.toStatus() })}\n`);
      onEnd();
      return 200;
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    const timeoutParam = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    const maxSeconds = this.opts.maxWatchSeconds ?? 1800;
    const seconds = timeoutParam > 0 ? Math.min(timeoutParam, maxSeconds) : maxSeconds;
    const watch = new OpenWatch({
      res,
      def,
      version: rr.version,
      namespace,
      label,
      field,
      table: acceptsAs(req.headers.accept, 'Table'),
      now: this.now,
      currentRv: () => this.store.currentRv(),
      bookmarkMs: url.searchParams.get('allowWatchBookmarks') === 'true' ? (this.opts.bookmarkIntervalMs ?? 5000) : 0,
      timeoutMs: seconds * 1000,
    });
    this.watches.add(watch);
    const unsubscribe = this.store.subscribe(rkey, watch);
    let ended = false;
    const cleanup = (): void => {
      if (ended) return;
      ended = true;
      unsubscribe();
      watch.dispose();
      this.watches.delete(watch);
      onEnd();
    };
    res.on('close', cleanup);
    req.on('close', cleanup);
    // Replay what the client has not seen, synchronously, before any new write can interleave.
    if (fromRv === undefined) {
      for (const s of this.store.list(rkey, namespace)) watch.sendInitial(s);
    } else {
      for (const ev of this.store.eventsSince(rkey, fromRv, namespace)) watch.deliver(ev);
    }
    return 200;
  }

  // ---------------------------------------------------------------- control endpoints

  private async handleControl(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const route = `${req.method ?? 'GET'} ${url.pathname.replace(/\/+$/, '')}`;
    const ok = (body: unknown): void => this.sendJson(res, 200, JSON.stringify(body));
    try {
      switch (route) {
        case 'GET /__fake/requests':
          await drain(req);
          ok(this.log.list({ ...(url.searchParams.has('since') ? { sinceSeq: Number(url.searchParams.get('since')) } : {}) }));
          return;
        case 'DELETE /__fake/requests':
          await drain(req);
          this.log.clear();
          ok({ cleared: true });
          return;
        case 'GET /__fake/faults':
          await drain(req);
          ok({ config: this.injector.current(), stats: this.injector.stats() });
          return;
        case 'PUT /__fake/faults':
        case 'POST /__fake/faults': {
          const body = await this.readObjectBody(req);
          if (!isRecord(body)) throw badRequest('fault config must be a JSON object');
          this.injector.set(body as FaultConfig);
          ok({ config: this.injector.current() });
          return;
        }
        case 'DELETE /__fake/faults':
          await drain(req);
          this.injector.clear();
          ok({ config: {} });
          return;
        case 'POST /__fake/drop-watches': {
          await drain(req);
          const mode = url.searchParams.get('mode') === 'close' ? 'close' : 'reset';
          ok({ dropped: this.dropWatches(mode) });
          return;
        }
        case 'POST /__fake/compact':
          await drain(req);
          this.compact();
          ok({ resourceVersion: this.resourceVersion() });
          return;
        case 'POST /__fake/restart': {
          await drain(req);
          const opts: RestartOptions = {
            compact: url.searchParams.get('compact') === 'true',
            downMs: Number(url.searchParams.get('downMs') ?? '0'),
          };
          ok({ restarting: true });
          // Answer first: the restart drops this very connection.
          setTimeout(() => void this.restart(opts), 10);
          return;
        }
        case 'POST /__fake/seed': {
          const body = await this.readObjectBody(req);
          const created = seedList(body).map((o) => this.objects.upsert(o));
          ok({ created: created.length });
          return;
        }
        case 'POST /__fake/kubeconfig': {
          await drain(req);
          const identity = url.searchParams.get('identity') ?? 'admin';
          ok({ path: this.kubeconfigFor(identity) });
          return;
        }
        case 'GET /__fake/stats': {
          await drain(req);
          const counts: Record<string, number> = {};
          for (const key of this.store.resourceKeys()) counts[key] = this.store.count(key);
          ok({ resourceVersion: this.resourceVersion(), oldestWatchableRv: String(this.store.oldestWatchableRv()), openWatches: this.watches.size, objects: counts, faults: this.injector.stats() });
          return;
        }
        default:
          await drain(req);
          throw notFound('', 'control endpoints', url.pathname);
      }
    } catch (err) {
      this.sendError(res, err instanceof ApiError ? err : internalError(String(err)));
    }
  }
}

function includeObjectOf(url: URL): IncludeObject {
  const v = url.searchParams.get('includeObject');
  return v === 'None' || v === 'Object' ? v : 'Metadata';
}

async function drain(req: IncomingMessage): Promise<void> {
  for await (const _chunk of req) {
    // discard
  }
}

/** A seed body: an array, a `List` with items, or YAML documents. */
export function seedList(body: unknown): KubeObject[] {
  const items = Array.isArray(body) ? body : isRecord(body) && Array.isArray(body.items) ? body.items : [body];
  return items.filter(isRecord) as KubeObject[];
}

/** Parses a seed file's text (JSON, or YAML with one or more documents). */
export function parseSeedText(text: string): KubeObject[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) return seedList(JSON.parse(trimmed) as unknown);
  return parseAllDocuments(text).flatMap((d) => seedList(d.toJS() as unknown));
}

interface OpenWatchOptions {
  res: ServerResponse;
  def: ResourceDef;
  version: string;
  namespace: string | undefined;
  label: Matcher;
  field: Matcher;
  table: boolean;
  now: () => Date;
  currentRv: () => number;
  bookmarkMs: number;
  timeoutMs: number;
}

/** One watch stream: selector-aware event delivery, bookmarks, timeout, and being dropped. */
class OpenWatch implements WatchSink {
  readonly namespace: string | undefined;
  private readonly bookmarkTimer: NodeJS.Timeout | undefined;
  private readonly timeoutTimer: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly o: OpenWatchOptions) {
    this.namespace = o.namespace;
    if (o.bookmarkMs > 0) {
      this.bookmarkTimer = setInterval(() => this.bookmark(), o.bookmarkMs);
      this.bookmarkTimer.unref();
    }
    this.timeoutTimer = setTimeout(() => this.end('close'), o.timeoutMs);
    this.timeoutTimer.unref();
  }

  private matches(obj: KubeObject): boolean {
    return this.o.label(obj) && this.o.field(obj);
  }

  private write(type: string, stored: StoredObject): void {
    if (this.closed) return;
    const { def, version } = this.o;
    let objectJson: string;
    if (this.o.table) {
      objectJson = JSON.stringify(buildTable(def, version, [stored.obj], { now: this.o.now(), includeObject: 'Metadata', resourceVersion: String(stored.rv) }));
    } else {
      const apiVersion = apiVersionOf(def.group, version);
      objectJson = stored.obj.apiVersion === apiVersion ? stored.json : JSON.stringify({ ...stored.obj, apiVersion });
    }
    this.o.res.write(`{"type":"${type}","object":${objectJson}}\n`);
  }

  sendInitial(stored: StoredObject): void {
    if (this.matches(stored.obj)) this.write('ADDED', stored);
  }

  deliver(event: StoreEvent): void {
    const now = this.matches(event.object.obj);
    if (event.type === 'ADDED') {
      if (now) this.write('ADDED', event.object);
    } else if (event.type === 'MODIFIED') {
      const was = event.previous !== undefined && this.matches(event.previous.obj);
      // An object moving into or out of the selection is an ADDED or DELETED for this watch.
      if (now && was) this.write('MODIFIED', event.object);
      else if (now) this.write('ADDED', event.object);
      else if (was) this.write('DELETED', event.object);
    } else if (now) this.write('DELETED', event.object);
  }

  private bookmark(): void {
    if (this.closed) return;
    const { def, version } = this.o;
    const object = { kind: def.kind, apiVersion: apiVersionOf(def.group, version), metadata: { resourceVersion: String(this.o.currentRv()) } };
    this.o.res.write(`${JSON.stringify({ type: 'BOOKMARK', object })}\n`);
  }

  end(mode: 'close' | 'reset'): void {
    if (this.closed) return;
    this.closed = true;
    this.dispose();
    if (mode === 'reset') this.o.res.destroy();
    else this.o.res.end();
  }

  dispose(): void {
    if (this.bookmarkTimer) clearInterval(this.bookmarkTimer);
    clearTimeout(this.timeoutTimer);
  }
}
