// The install manifests as a platform team applies them: `kubectl kustomize` builds the base and the
// base with each component; every object must be valid against the Kubernetes API schemas
// (kubernetes-models, generated from a current release's OpenAPI; Prometheus Operator kinds from
// their CRDs), and the security posture is asserted object by object on what kustomize emits.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IService } from 'kubernetes-models/v1/Service';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IPolicyRule } from 'kubernetes-models/rbac.authorization.k8s.io/v1/PolicyRule';
import type { IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import type { IClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { loadConfig } from '../../src/config.js';
import type { IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const LINK_LOCAL = /^(169\.254\.\d+\.\d+\/32|fd00:ec2::[0-9a-f]+\/128)$/;
const NAMESPACE = 'imagescan-system';
const SA = 'imagescan-operator';
const COMPONENTS_DIR = path.join(repoRoot, 'manifests/components');
const MONITORING = path.join(COMPONENTS_DIR, 'monitoring/kustomization.yaml');

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

/** A validated object, viewed through its kubernetes-models type (safe once validate() passed). */
function as<T>(obj: KubeObject): T {
  return obj as unknown as T;
}

type ModelClass = new (data: unknown) => { validate(): void };

/** Resolves apiVersion/kind to the schema-validating model class; unknown kinds are an error. */
async function modelFor(apiVersion: string, kind: string): Promise<ModelClass> {
  const slash = apiVersion.indexOf('/');
  const group = slash < 0 ? '' : apiVersion.slice(0, slash);
  const specifier =
    group === 'monitoring.coreos.com'
      ? `@kubernetes-models/prometheus-operator/${apiVersion}`
      : group === 'cert-manager.io'
        ? `@kubernetes-models/cert-manager/${apiVersion}`
        : `kubernetes-models/${apiVersion}`;
  const mod = (await import(specifier)) as Record<string, unknown>;
  const cls = mod[kind];
  if (typeof cls !== 'function') throw new Error(`no schema for ${apiVersion} ${kind}`);
  return cls as ModelClass;
}

function kustomize(dir: string): KubeObject[] {
  const out = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return parseAllDocuments(out).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`kustomize output of ${dir} is not YAML: ${doc.errors[0]?.message}`);
    const obj: unknown = doc.toJS();
    if (typeof obj !== 'object' || obj === null) throw new Error(`kustomize output of ${dir}: not an object`);
    const o = obj as Partial<KubeObject>;
    if (typeof o.apiVersion !== 'string' || typeof o.kind !== 'string' || typeof o.metadata?.name !== 'string') {
      throw new Error(`kustomize output of ${dir}: object without apiVersion/kind/metadata.name`);
    }
    return o as KubeObject;
  });
}

// Overlays are generated so the monitoring component (owned elsewhere, added by users) is only
// built when it exists, and so no test fixture can drift from the real component list.
const variants: { name: string; components: string[] }[] = [
  { name: 'base', components: [] },
  { name: 'trivy-server', components: ['trivy-server'] },
  { name: 'no-private-registries', components: ['no-private-registries'] },
  { name: 'cloud-metadata-egress', components: ['cloud-metadata-egress'] },
  { name: 'trivy-server-tls', components: ['trivy-server', 'trivy-server-tls'] },
  { name: 'admission', components: ['admission'] },
  ...(existsSync(MONITORING) ? [{ name: 'monitoring', components: ['monitoring'] }] : []),
];
variants.push({ name: 'all-components', components: [...new Set(variants.flatMap((v) => v.components))] });

const builds = new Map<string, KubeObject[]>();
let overlayRoot = '';

beforeAll(() => {
  overlayRoot = mkdtempSync(path.join(tmpdir(), 'imagescan-overlays-'));
  for (const v of variants) {
    const dir = path.join(overlayRoot, v.name);
    mkdirSync(dir);
    const rel = (p: string): string => path.relative(dir, p);
    const lines = [
      'apiVersion: kustomize.config.k8s.io/v1beta1',
      'kind: Kustomization',
      'resources:',
      `  - ${rel(path.join(repoRoot, 'manifests/base'))}`,
    ];
    if (v.components.length > 0) {
      lines.push('components:', ...v.components.map((c) => `  - ${rel(path.join(COMPONENTS_DIR, c))}`));
    }
    writeFileSync(path.join(dir, 'kustomization.yaml'), lines.join('\n') + '\n');
    builds.set(v.name, kustomize(dir));
  }
});

afterAll(() => {
  if (overlayRoot) rmSync(overlayRoot, { recursive: true, force: true });
});

function build(name: string): KubeObject[] {
  const objs = builds.get(name);
  if (!objs) throw new Error(`no build ${name}`);
  return objs;
}
function ofKind<T>(objs: KubeObject[], kind: string): (T & KubeObject)[] {
  return objs.filter((o) => o.kind === kind).map((o) => as<T & KubeObject>(o));
}
function one<T>(objs: KubeObject[], kind: string, name: string): T & KubeObject {
  const found = objs.filter((o) => o.kind === kind && o.metadata.name === name);
  expect(found, `${kind}/${name}`).toHaveLength(1);
  return as<T & KubeObject>(found[0] as KubeObject);
}

// ---- RBAC semantics: what a set of rules grants, as the API server evaluates it -------------------

interface Permission {
  group: string;
  resource: string; // "pods", "imagescanreports/status"
  verb: string;
}
const key = (p: Permission): string => `${p.group}|${p.resource}|${p.verb}`;

function ruleAllows(rule: IPolicyRule, p: Permission): boolean {
  const has = (list: string[] | undefined, v: string): boolean => (list ?? []).some((x) => x === v || x === '*');
  return has(rule.apiGroups, p.group) && has(rule.resources, p.resource) && has(rule.verbs, p.verb) && !rule.resourceNames?.length;
}

/** Every (group, resource, verb) the rules name explicitly (wildcards are asserted absent elsewhere). */
function granted(rules: IPolicyRule[]): Set<string> {
  const out = new Set<string>();
  for (const r of rules) for (const g of r.apiGroups ?? []) for (const res of r.resources ?? []) for (const v of r.verbs) out.add(key({ group: g, resource: res, verb: v }));
  return out;
}

/** The rules bound to the operator's ServiceAccount through (Cluster)RoleBindings in a build. */
function operatorRules(objs: KubeObject[]): { cluster: IPolicyRule[]; namespaced: IPolicyRule[] } {
  const isOurs = (b: IClusterRoleBinding): boolean =>
    (b.subjects ?? []).some((s) => s.kind === 'ServiceAccount' && s.name === SA && s.namespace === NAMESPACE);
  const roleRules = (kind: string, name: string): IPolicyRule[] => {
    const role = one<IClusterRole>(objs, kind, name);
    return role.rules ?? [];
  };
  const cluster = ofKind<IClusterRoleBinding>(objs, 'ClusterRoleBinding')
    .filter(isOurs)
    .flatMap((b) => roleRules(b.roleRef.kind, b.roleRef.name));
  const namespaced = ofKind<IClusterRoleBinding>(objs, 'RoleBinding')
    .filter(isOurs)
    .flatMap((b) => roleRules(b.roleRef.kind, b.roleRef.name));
  return { cluster, namespaced };
}

// What the operator's code does with the API (see the README's security posture). Changing a rule
// in manifests/ must change this table, the README and the least-privilege e2e together.
const EXPECTED_CLUSTER = [
  ...['pods', 'nodes', 'namespaces'].flatMap((r) => ['list', 'watch'].map((v) => ({ group: '', resource: r, verb: v }))),
  { group: 'apps', resource: 'replicasets', verb: 'get' },
  { group: 'batch', resource: 'jobs', verb: 'get' },
  ...['get', 'list', 'watch', 'create', 'patch', 'delete'].map((v) => ({ group: 'imagescan.dev', resource: 'imagescanreports', verb: v })),
  { group: 'imagescan.dev', resource: 'imagescanreports/status', verb: 'patch' },
  { group: '', resource: 'events', verb: 'create' },
  // ImageScanPolicies: the store's informer, and the audit's status writes.
  ...['list', 'watch'].map((v) => ({ group: 'imagescan.dev', resource: 'imagescanpolicies', verb: v })),
  { group: 'imagescan.dev', resource: 'imagescanpolicies/status', verb: 'patch' },
];
const PULL_SECRETS = [
  { group: '', resource: 'secrets', verb: 'get' },
  { group: '', resource: 'serviceaccounts', verb: 'get' },
];
/** Secure /metrics: who a scrape's token is, and whether that user may get /metrics. */
const METRICS_AUTH = [
  { group: 'authentication.k8s.io', resource: 'tokenreviews', verb: 'create' },
  { group: 'authorization.k8s.io', resource: 'subjectaccessreviews', verb: 'create' },
];
const EXPECTED_LEASE = ['get', 'create', 'update'].map((v) => ({ group: 'coordination.k8s.io', resource: 'leases', verb: v }));

// ---- pod hardening -------------------------------------------------------------------------------

function podTemplates(objs: KubeObject[]): { owner: string; spec: IPodSpec }[] {
  return ofKind<IDeployment>(objs, 'Deployment').map((d) => {
    const spec = d.spec?.template.spec;
    if (!spec) throw new Error(`Deployment ${d.metadata.name} has no pod spec`);
    return { owner: `Deployment/${d.metadata.name}`, spec };
  });
}

function assertHardenedContainer(owner: string, pod: IPodSpec, c: IContainer): void {
  const where = `${owner} container ${c.name}`;
  const sc = c.securityContext;
  const psc = pod.securityContext;
  expect(sc, `${where}: securityContext`).toBeDefined();
  expect(sc?.allowPrivilegeEscalation, `${where}: allowPrivilegeEscalation`).toBe(false);
  expect(sc?.readOnlyRootFilesystem, `${where}: readOnlyRootFilesystem`).toBe(true);
  expect(sc?.privileged ?? false, `${where}: privileged`).toBe(false);
  expect(sc?.capabilities?.drop, `${where}: capabilities.drop`).toContain('ALL');
  expect(sc?.capabilities?.add ?? [], `${where}: capabilities.add`).toEqual([]);
  expect(sc?.runAsNonRoot ?? psc?.runAsNonRoot, `${where}: runAsNonRoot`).toBe(true);
  const uid = sc?.runAsUser ?? psc?.runAsUser;
  const gid = sc?.runAsGroup ?? psc?.runAsGroup;
  expect(typeof uid === 'number' && uid > 0, `${where}: numeric non-root runAsUser (${uid})`).toBe(true);
  expect(typeof gid === 'number' && gid > 0, `${where}: numeric non-root runAsGroup (${gid})`).toBe(true);
  expect((sc?.seccompProfile ?? psc?.seccompProfile)?.type, `${where}: seccomp`).toBe('RuntimeDefault');
  for (const kind of ['requests', 'limits'] as const) {
    for (const r of ['cpu', 'memory']) {
      expect(c.resources?.[kind]?.[r], `${where}: resources.${kind}.${r}`).toBeDefined();
    }
  }
  expect(c.livenessProbe?.httpGet, `${where}: liveness probe`).toBeDefined();
  expect(c.readinessProbe?.httpGet, `${where}: readiness probe`).toBeDefined();
  // A read-only root filesystem needs writable emptyDirs, each bounded; anything else (certificates
  // from a Secret) is mounted read-only.
  const mounts = c.volumeMounts ?? [];
  for (const m of mounts) {
    const vol = (pod.volumes ?? []).find((v) => v.name === m.name);
    if (vol?.secret !== undefined) {
      expect(m.readOnly, `${where}: Secret volume ${m.name} read-only`).toBe(true);
      continue;
    }
    expect(vol?.emptyDir, `${where}: volume ${m.name} is an emptyDir`).toBeDefined();
    expect(vol?.emptyDir?.sizeLimit, `${where}: volume ${m.name} has a sizeLimit`).toBeDefined();
  }
}

/** Resolves a probe/Service port (number or name) to the container port number. */
function portNumber(c: IContainer, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

// ---- the tests -----------------------------------------------------------------------------------

describe.each(variants.map((v) => v.name))('kustomize build %s', (name) => {
  test('builds, and every object is valid against its API schema', async () => {
    const objs = build(name);
    expect(objs.length).toBeGreaterThan(10);
    for (const obj of objs) {
      const Model = await modelFor(obj.apiVersion, obj.kind);
      expect(() => new Model(obj).validate(), `${obj.kind}/${obj.metadata.name}`).not.toThrow();
    }
  });

  test('names are unique and namespaced objects live in imagescan-system', () => {
    const objs = build(name);
    const ids = objs.map((o) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`);
    expect(new Set(ids).size).toBe(ids.length);
    const clusterScoped = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PriorityClass', 'ValidatingWebhookConfiguration']);
    // Prometheus Operator objects may sit with Prometheus instead (its selectors decide).
    const monitoringKinds = new Set(['ServiceMonitor', 'PodMonitor', 'PrometheusRule']);
    for (const o of objs.filter((x) => !clusterScoped.has(x.kind))) {
      const allowed = monitoringKinds.has(o.kind) ? [NAMESPACE, 'monitoring'] : [NAMESPACE];
      expect(allowed, `${o.kind}/${o.metadata.name} in ${o.metadata.namespace}`).toContain(o.metadata.namespace);
    }
  });

  test('RBAC: no wildcard anywhere, secrets never listed or watched', () => {
    const objs = build(name);
    const roles = [...ofKind<IClusterRole>(objs, 'ClusterRole'), ...ofKind<IClusterRole>(objs, 'Role')];
    expect(roles.length).toBeGreaterThan(0);
    for (const role of roles) {
      for (const rule of role.rules ?? []) {
        const all = [...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs, ...(rule.nonResourceURLs ?? [])];
        expect(all.filter((x) => x.includes('*')), `${role.kind}/${role.metadata.name}`).toEqual([]);
        for (const verb of ['list', 'watch', 'deletecollection', 'create', 'update', 'patch', 'delete']) {
          expect(ruleAllows(rule, { group: '', resource: 'secrets', verb }), `${role.metadata.name} ${verb} secrets`).toBe(false);
        }
      }
    }
  });

  test('every container of every workload is hardened, with resources and probes', () => {
    const objs = build(name);
    const pods = podTemplates(objs);
    expect(pods.length).toBeGreaterThan(0);
    for (const { owner, spec } of pods) {
      expect(spec.securityContext?.runAsNonRoot, `${owner}: pod runAsNonRoot`).toBe(true);
      expect(spec.securityContext?.seccompProfile?.type, `${owner}: pod seccomp`).toBe('RuntimeDefault');
      expect(spec.hostNetwork ?? false, `${owner}: hostNetwork`).toBe(false);
      expect(spec.hostPID ?? false).toBe(false);
      expect(spec.hostIPC ?? false).toBe(false);
      expect(spec.containers.length).toBeGreaterThan(0);
      for (const c of [...spec.containers, ...(spec.initContainers ?? [])]) assertHardenedContainer(owner, spec, c);
    }
  });

  test('deny-by-default NetworkPolicy; ingress only from the monitoring namespace', () => {
    const objs = build(name);
    const policies = ofKind<INetworkPolicy>(objs, 'NetworkPolicy');
    const denyAll = policies.filter(
      (p) =>
        Object.keys(p.spec?.podSelector?.matchLabels ?? {}).length === 0 &&
        (p.spec?.podSelector?.matchExpressions ?? []).length === 0 &&
        (p.spec?.policyTypes ?? []).includes('Ingress') &&
        (p.spec?.policyTypes ?? []).includes('Egress') &&
        (p.spec?.ingress ?? []).length === 0 &&
        (p.spec?.egress ?? []).length === 0,
    );
    expect(denyAll, 'a policy selecting every pod with no allowed traffic').toHaveLength(1);
    for (const p of policies) {
      for (const rule of p.spec?.ingress ?? []) {
        // Any ingress rule must name its peers (no "from everywhere") and its ports.
        expect(rule.from?.length, `${p.metadata.name}: ingress peers`).toBeGreaterThan(0);
        expect(rule.ports?.length, `${p.metadata.name}: ingress ports`).toBeGreaterThan(0);
        // The admission webhook's callers are the API server, which is no pod: address blocks, on that port only.
        if ((rule.ports ?? []).every((port) => port.port === 'webhook')) {
          expect((rule.from ?? []).every((peer) => peer.ipBlock !== undefined && peer.namespaceSelector === undefined && peer.podSelector === undefined), `${p.metadata.name}: webhook peers`).toBe(true);
          continue;
        }
        for (const peer of rule.from ?? []) {
          const ns = peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'];
          // Either the monitoring namespace, or pods of this namespace (operator -> Trivy server).
          expect(ns === 'monitoring' || (peer.namespaceSelector === undefined && peer.podSelector !== undefined && peer.ipBlock === undefined), `${p.metadata.name}: peer ${JSON.stringify(peer)}`).toBe(true);
        }
      }
      for (const rule of p.spec?.egress ?? []) {
        expect(rule.ports?.length, `${p.metadata.name}: egress has ports`).toBeGreaterThan(0);
        // Plain-HTTP ports only towards the node's link-local metadata endpoints (cloud-metadata-egress).
        const linkLocalOnly = (rule.to ?? []).length > 0 && (rule.to ?? []).every((t) => LINK_LOCAL.test(t.ipBlock?.cidr ?? ''));
        for (const port of rule.ports ?? []) expect([53, 443, 6443, 4954, ...(linkLocalOnly ? [80, 988] : [])], `${p.metadata.name}: egress port`).toContain(port.port);
        for (const peer of rule.to ?? []) {
          // An ipBlock may name a single link-local address (node DNS cache, metadata), never a range.
          if (peer.ipBlock) expect(peer.ipBlock.cidr, `${p.metadata.name}: ipBlock`).toMatch(LINK_LOCAL);
        }
      }
    }
    // DNS, then HTTPS (API server, registries, Trivy DB) for the operator.
    const dns = policies.flatMap((p) => p.spec?.egress ?? []).flatMap((r) => r.ports ?? []).filter((p) => p.port === 53);
    expect(dns.map((p) => p.protocol).sort()).toEqual(['TCP', 'UDP']);
  });

  test('Services target ports that their pods expose', () => {
    const objs = build(name);
    for (const svc of ofKind<IService>(objs, 'Service')) {
      const selector = svc.spec?.selector ?? {};
      expect(Object.keys(selector).length, `${svc.metadata.name}: selector`).toBeGreaterThan(0);
      const matching = ofKind<IDeployment>(objs, 'Deployment').filter((d) =>
        Object.entries(selector).every(([k, v]) => d.spec?.template.metadata?.labels?.[k] === v),
      );
      expect(matching, `${svc.metadata.name}: exactly one Deployment behind it`).toHaveLength(1);
      const containers = matching[0]?.spec?.template.spec?.containers ?? [];
      for (const port of svc.spec?.ports ?? []) {
        const target = port.targetPort ?? port.port;
        expect(containers.some((c) => portNumber(c, target) !== undefined), `${svc.metadata.name}: port ${String(target)}`).toBe(true);
      }
    }
  });
});

describe('base', () => {
  test('installs the CRDs, and never the monitoring component (users add it)', () => {
    const objs = build('base');
    const crd = one<KubeObject & { spec: { group: string } }>(objs, 'CustomResourceDefinition', 'imagescanreports.imagescan.dev');
    expect(crd.spec.group).toBe('imagescan.dev');
    const policies = one<KubeObject & { spec: { group: string; scope: string } }>(objs, 'CustomResourceDefinition', 'imagescanpolicies.imagescan.dev');
    expect(policies.spec).toMatchObject({ group: 'imagescan.dev', scope: 'Cluster' });
    expect(objs.filter((o) => o.apiVersion.startsWith('monitoring.coreos.com/'))).toEqual([]);
  });

  test('the operator gets exactly the permissions its code uses', () => {
    const { cluster, namespaced } = operatorRules(build('base'));
    expect([...granted(cluster)].sort()).toEqual([...EXPECTED_CLUSTER, ...PULL_SECRETS, ...METRICS_AUTH].map(key).sort());
    expect([...granted(namespaced)].sort()).toEqual(EXPECTED_LEASE.map(key).sort());
    // The Lease permission is a Role in the operator's namespace, not cluster-wide.
    expect(cluster.some((r) => ruleAllows(r, { group: 'coordination.k8s.io', resource: 'leases', verb: 'update' }))).toBe(false);
    const lease = ofKind<IClusterRoleBinding>(build('base'), 'RoleBinding').filter((b) => b.roleRef.kind === 'Role');
    expect(lease.map((b) => b.metadata.namespace)).toEqual([NAMESPACE]);
  });

  test('a ClusterRole aggregated to view lets namespace viewers read reports, and nothing else', () => {
    const views = ofKind<IClusterRole>(build('base'), 'ClusterRole').filter(
      (r) => r.metadata.labels?.['rbac.authorization.k8s.io/aggregate-to-view'] === 'true',
    );
    expect(views).toHaveLength(1);
    const perms = granted(views[0]?.rules ?? []);
    expect([...perms].sort()).toEqual(['get', 'list', 'watch'].map((v) => key({ group: 'imagescan.dev', resource: 'imagescanreports', verb: v })).sort());
  });

  test('operator Deployment: 2 replicas with leader election, token only where needed, probes on metrics', () => {
    const objs = build('base');
    const d = one<IDeployment>(objs, 'Deployment', 'imagescan-operator');
    expect(d.spec?.replicas).toBe(2);
    const pod = d.spec?.template.spec;
    const c = pod?.containers.find((x) => x.name === 'operator');
    expect(c).toBeDefined();
    if (!pod || !c) return;
    const env = new Map((c.env ?? []).map((e) => [e.name, e]));
    expect(env.get('IMAGESCAN_LEADER_ELECT')?.value).toBe('true');
    expect(env.get('IMAGESCAN_IDENTITY')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.name');
    expect(env.get('IMAGESCAN_LEADER_ELECTION_NAMESPACE')?.valueFrom?.fieldRef?.fieldPath).toBe('metadata.namespace');
    // Secrets never travel in plain env values.
    for (const e of c.env ?? []) expect(/TOKEN|PASSWORD|SECRET/i.test(e.name) && e.value !== undefined, e.name).toBe(false);
    expect(pod.serviceAccountName).toBe(SA);
    expect(pod.automountServiceAccountToken).toBe(true);
    expect(one<IServiceAccount>(objs, 'ServiceAccount', SA).automountServiceAccountToken).toBe(false);
    expect(portNumber(c, 'metrics')).toBe(8080);
    expect(c.livenessProbe?.httpGet?.path).toBe('/healthz');
    expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(portNumber(c, c.livenessProbe?.httpGet?.port)).toBe(8080);
    expect(portNumber(c, c.readinessProbe?.httpGet?.port)).toBe(8080);
    // Secure metrics serve HTTPS on that port; the probes must speak it (the kubelet skips verification).
    expect(env.get('IMAGESCAN_METRICS_SECURE')?.value).toBe('true');
    expect([c.livenessProbe?.httpGet?.scheme, c.readinessProbe?.httpGet?.scheme]).toEqual(['HTTPS', 'HTTPS']);
    expect((c.volumeMounts ?? []).map((m) => m.mountPath)).toContain('/tmp');
    const cacheDir = env.get('IMAGESCAN_TRIVY_CACHE_DIR')?.value;
    expect(cacheDir).toBe('/var/cache/trivy');
    expect((c.volumeMounts ?? []).map((m) => m.mountPath)).toContain(cacheDir);
    expect(pod.topologySpreadConstraints?.map((t) => t.topologyKey)).toContain('kubernetes.io/hostname');
    const svc = one<IService>(objs, 'Service', 'imagescan-operator');
    expect(svc.spec?.ports?.map((p) => [p.name, p.port])).toEqual([['metrics', 8080]]);
  });

  test.each(variants.map((v) => v.name))('%s: every IMAGESCAN_* variable of the Deployment is read and accepted by the config loader', (name) => {
    const d = one<IDeployment>(build(name), 'Deployment', 'imagescan-operator');
    const c = d.spec?.template.spec?.containers.find((x) => x.name === 'operator');
    // What the kubelet would put in the environment: fieldRefs and secrets get sample values.
    const env: Record<string, string> = {};
    for (const e of c?.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.name') env[e.name] = 'imagescan-operator-7d9f-abcde';
      else if (e.valueFrom?.fieldRef?.fieldPath === 'metadata.namespace') env[e.name] = NAMESPACE;
      else if (e.valueFrom?.secretKeyRef) env[e.name] = 'sample-token';
      else throw new Error(`env ${e.name}: unexpected source ${JSON.stringify(e.valueFrom)}`);
    }
    const read = new Set<string>();
    const recording = new Proxy(env, {
      get: (target, prop) => {
        if (typeof prop === 'string') read.add(prop);
        return typeof prop === 'string' ? target[prop] : undefined;
      },
    });
    const config = loadConfig([], recording, { inCluster: true, serviceAccountNamespace: NAMESPACE });
    const ours = Object.keys(env).filter((k) => k.startsWith('IMAGESCAN_'));
    expect(ours.filter((k) => !read.has(k)), 'IMAGESCAN_* variables the operator ignores (typos?)').toEqual([]);
    expect(config.leaderElect).toBe(true);
    expect(config.identity).toBe('imagescan-operator-7d9f-abcde');
    expect(config.leaderElectionNamespace).toBe(NAMESPACE);
    expect(config.metrics.port).toBe(portNumber(c as IContainer, 'metrics'));
    expect(config.trivyCacheDir).toBe('/var/cache/trivy');
    if (name === 'trivy-server') {
      expect(config.trivyServer).toMatch(/^http:\/\/imagescan-trivy-server\./);
      expect(config.trivyServerToken).toBe('sample-token');
    } else if (name === 'trivy-server-tls' || name === 'all-components') {
      expect(config.trivyServer).toMatch(/^https:\/\/imagescan-trivy-server\./);
      expect(config.trivyServerToken).toBe('sample-token');
      expect(config.trivyServerCa).toBe('/etc/imagescan/trivy-server-ca/ca.crt');
    } else {
      expect(config.trivyServer).toBeUndefined();
    }
  });

  test('registry credentials go to a memory-backed volume; Trivy\'s scratch stays on disk', () => {
    const d = one<IDeployment>(build('base'), 'Deployment', 'imagescan-operator');
    const pod = d.spec?.template.spec;
    const c = pod?.containers.find((x) => x.name === 'operator');
    const env = new Map((c?.env ?? []).map((e) => [e.name, e.value]));
    const volumeAt = (dir: string | undefined) => pod?.volumes?.find((v) => v.name === c?.volumeMounts?.find((m) => m.mountPath === dir)?.name);
    const config = loadConfig([], Object.fromEntries([...env].filter((e): e is [string, string] => e[1] !== undefined)));
    expect(config.registryCredentialsDir).toBeDefined();
    const credentials = volumeAt(config.registryCredentialsDir);
    expect(credentials?.emptyDir?.medium).toBe('Memory');
    // A few KiB per running scan; small, since tmpfs counts against the container's memory limit.
    expect(credentials?.emptyDir?.sizeLimit).toBe('16Mi');
    expect(env.get('TMPDIR')).toBe('/tmp');
    expect(volumeAt('/tmp')?.emptyDir?.medium ?? '').toBe('');
    expect(volumeAt('/tmp')?.emptyDir?.sizeLimit).toBeDefined();
  });

  test('a not-Ready replica never blocks a node drain; a priority class above workloads that never preempts them', () => {
    const objs = build('base');
    const pdb = one<KubeObject & { spec: { unhealthyPodEvictionPolicy?: string; maxUnavailable?: number } }>(objs, 'PodDisruptionBudget', 'imagescan-operator');
    expect(pdb.spec.unhealthyPodEvictionPolicy).toBe('AlwaysAllow');
    expect(pdb.spec.maxUnavailable).toBe(1);
    const pc = one<KubeObject & { value: number; preemptionPolicy?: string; globalDefault?: boolean }>(objs, 'PriorityClass', 'imagescan-operator');
    expect(pc.value).toBeGreaterThan(0);
    expect(pc.value).toBeLessThan(1_000_000_000); // user classes stay below the system-* range
    expect(pc.preemptionPolicy).toBe('Never');
    expect(pc.globalDefault).toBe(false);
    for (const variant of ['base', 'trivy-server-tls']) {
      for (const d of ofKind<IDeployment>(build(variant), 'Deployment')) expect(d.spec?.template.spec?.priorityClassName, d.metadata.name).toBe('imagescan-operator');
    }
  });

  test('replicas spread over zones, then nodes, without blocking scheduling on a single zone or node', () => {
    for (const d of ofKind<IDeployment>(build('trivy-server'), 'Deployment')) {
      const spread = d.spec?.template.spec?.topologySpreadConstraints ?? [];
      expect(spread.map((t) => t.topologyKey), d.metadata.name).toEqual(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
      for (const t of spread) {
        expect(t.whenUnsatisfiable).toBe('ScheduleAnyway');
        expect(t.labelSelector?.matchLabels).toEqual(d.spec?.selector.matchLabels);
      }
    }
  });

  test('DNS works through kube-dns and through NodeLocal DNSCache, both protocols', () => {
    const dns = one<INetworkPolicy>(build('base'), 'NetworkPolicy', 'allow-dns-egress');
    expect(dns.spec?.podSelector).toEqual({});
    const [rule] = dns.spec?.egress ?? [];
    expect(rule?.to).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } },
      { ipBlock: { cidr: '169.254.20.10/32' } },
    ]);
    expect(rule?.ports?.map((p) => `${p.protocol}/${p.port}`).sort()).toEqual(['TCP/53', 'UDP/53']);
  });

  test('an overlay names another monitoring namespace with the patch the NetworkPolicy documents', () => {
    const policyFile = readFileSync(path.join(repoRoot, 'manifests/base/networkpolicy.yaml'), 'utf8');
    // The example as written in the comment, un-commented.
    const lines = policyFile.split('\n');
    const start = lines.findIndex((l) => l === '#   patches:');
    const end = lines.findIndex((l, i) => i > start && !l.startsWith('#    '));
    const patches = lines.slice(start, end).map((l) => l.slice('#   '.length)).join('\n');
    expect(patches).toContain('kubernetes.io/metadata.name: prometheus');
    const dir = mkdtempSync(path.join(repoRoot, '.overlay-'));
    try {
      writeFileSync(path.join(dir, 'kustomization.yaml'), ['apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization', 'resources:', '  - ../manifests/base', patches, ''].join('\n'));
      const objs = kustomize(dir);
      const ingress = one<INetworkPolicy>(objs, 'NetworkPolicy', 'imagescan-operator-metrics-ingress').spec?.ingress;
      expect(ingress?.[0]?.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'prometheus' } } }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('metrics ingress is allowed from the monitoring namespace to port 8080 of the operator only', () => {
    const objs = build('base');
    const ingress = ofKind<INetworkPolicy>(objs, 'NetworkPolicy').flatMap((p) =>
      (p.spec?.ingress ?? []).map((r) => ({ selector: p.spec?.podSelector?.matchLabels ?? {}, rule: r })),
    );
    expect(ingress).toHaveLength(1);
    expect(ingress[0]?.selector['app.kubernetes.io/component']).toBe('controller');
    expect(ingress[0]?.rule.from?.map((f) => f.namespaceSelector?.matchLabels)).toEqual([{ 'kubernetes.io/metadata.name': 'monitoring' }]);
    const c = one<IDeployment>(objs, 'Deployment', 'imagescan-operator').spec?.template.spec?.containers[0];
    expect(c && ingress[0]?.rule.ports?.map((p) => portNumber(c, p.port))).toEqual([8080]);
  });
});

describe('components', () => {
  test('no-private-registries removes exactly the secrets and serviceaccounts permissions', () => {
    const { cluster } = operatorRules(build('no-private-registries'));
    const perms = granted(cluster);
    expect([...perms].sort()).toEqual([...EXPECTED_CLUSTER, ...METRICS_AUTH].map(key).sort());
    for (const p of PULL_SECRETS) expect(cluster.some((r) => ruleAllows(r, p)), key(p)).toBe(false);
  });

  test('trivy-server: a hardened server, the operator pointed at it, token from a Secret', () => {
    const objs = build('trivy-server');
    const server = one<IDeployment>(objs, 'Deployment', 'imagescan-trivy-server');
    const sc = server.spec?.template.spec?.containers[0];
    expect(sc?.image).toMatch(/^aquasec\/trivy:\d+\.\d+\.\d+/);
    expect(sc?.image).not.toMatch(/:0\.69\.[4-6]\b/);
    expect(server.spec?.template.spec?.automountServiceAccountToken).toBe(false);
    // The token is never on the command line.
    expect((sc?.args ?? []).concat(sc?.command ?? []).join(' ')).not.toMatch(/token/i);
    const tokenRef = sc?.env?.find((e) => e.name === 'TRIVY_TOKEN')?.valueFrom?.secretKeyRef;
    expect(tokenRef?.name).toBeTruthy();

    const svc = one<IService>(objs, 'Service', 'imagescan-trivy-server');
    const port = svc.spec?.ports?.[0]?.port;
    const operator = one<IDeployment>(objs, 'Deployment', 'imagescan-operator');
    const op = operator.spec?.template.spec?.containers[0];
    const env = new Map((op?.env ?? []).map((e) => [e.name, e]));
    expect(env.get('IMAGESCAN_TRIVY_SERVER')?.value).toBe(`http://${svc.metadata.name}.${NAMESPACE}.svc:${port}`);
    expect(env.get('IMAGESCAN_TRIVY_SERVER_TOKEN')?.valueFrom?.secretKeyRef).toEqual(tokenRef);
    // The base settings survive the patch (strategic merge by env name).
    expect(env.get('IMAGESCAN_LEADER_ELECT')?.value).toBe('true');

    // Traffic operator -> server on the server's port is allowed in both directions of the policy.
    const policies = ofKind<INetworkPolicy>(objs, 'NetworkPolicy');
    const opLabels = operator.spec?.template.metadata?.labels ?? {};
    const serverLabels = server.spec?.template.metadata?.labels ?? {};
    const selects = (sel: Record<string, string> | undefined, labels: Record<string, string>): boolean =>
      Object.entries(sel ?? {}).every(([k, v]) => labels[k] === v);
    const egressOk = policies.some((p) =>
      selects(p.spec?.podSelector?.matchLabels, opLabels) &&
      (p.spec?.egress ?? []).some((r) => (r.ports ?? []).some((x) => x.port === port) && (r.to ?? []).some((t) => selects(t.podSelector?.matchLabels, serverLabels))),
    );
    const ingressOk = policies.some((p) =>
      selects(p.spec?.podSelector?.matchLabels, serverLabels) &&
      (p.spec?.ingress ?? []).some((r) => (r.ports ?? []).some((x) => x.port === port) && (r.from ?? []).some((f) => selects(f.podSelector?.matchLabels, opLabels))),
    );
    expect(egressOk, 'operator egress to the server').toBe(true);
    expect(ingressOk, 'server ingress from the operator').toBe(true);
  });

  test('cloud-metadata-egress: only the operator, only the node\'s metadata and Pod Identity endpoints, nothing else changed', () => {
    const base = build('base');
    const objs = build('cloud-metadata-egress');
    const added = objs.filter((o) => !base.some((b) => b.kind === o.kind && b.metadata.name === o.metadata.name));
    expect(added.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(['NetworkPolicy/imagescan-operator-cloud-metadata-egress']);
    expect(objs.length).toBe(base.length + 1);
    for (const b of base) expect(objs.find((o) => o.kind === b.kind && o.metadata.name === b.metadata.name), `${b.kind}/${b.metadata.name}`).toEqual(b);
    const policy = as<INetworkPolicy>(added[0] as KubeObject);
    expect(policy.spec?.podSelector?.matchLabels).toEqual({ 'app.kubernetes.io/name': 'imagescan-operator', 'app.kubernetes.io/component': 'controller' });
    expect(policy.spec?.policyTypes).toEqual(['Egress']);
    expect(policy.spec?.ingress).toBeUndefined();
    const allowed = (policy.spec?.egress ?? []).flatMap((r) => (r.to ?? []).flatMap((t) => (r.ports ?? []).map((p) => `${t.ipBlock?.cidr ?? '?'} ${p.protocol}/${p.port}`)));
    expect(allowed.sort()).toEqual([
      '169.254.169.252/32 TCP/988', // GKE metadata server behind the iptables redirect
      '169.254.169.254/32 TCP/80', // EC2/Azure IMDS, GCE/GKE metadata
      '169.254.170.23/32 TCP/80', // EKS Pod Identity agent
      'fd00:ec2::23/128 TCP/80',
      'fd00:ec2::254/128 TCP/80', // EC2 IMDS over IPv6
    ]);
  });

  test('trivy-server-tls: TLS on the Service port, Trivy on loopback only, the operator trusting the issuing CA', () => {
    const objs = build('trivy-server-tls');
    const server = one<IDeployment>(objs, 'Deployment', 'imagescan-trivy-server');
    const spec = server.spec?.template.spec;
    const trivy = spec?.containers.find((c) => c.name === 'trivy');
    const tls = spec?.containers.find((c) => c.name === 'tls');
    expect(trivy?.args).toContain('--listen=127.0.0.1:4955');
    expect(trivy?.ports ?? []).toEqual([]);
    expect(tls?.image).toMatch(/^ghostunnel\/ghostunnel:v\d+\.\d+\.\d+/);
    expect(tls?.args).toEqual(expect.arrayContaining(['server', '--listen=0.0.0.0:4954', '--target=127.0.0.1:4955', '--disable-authentication']));
    for (const probe of [trivy?.startupProbe, trivy?.livenessProbe, trivy?.readinessProbe]) expect(probe?.httpGet).toMatchObject({ path: '/healthz', port: 4954, scheme: 'HTTPS' });
    // The Service's port reaches the tunnel, not Trivy.
    const svc = one<IService>(objs, 'Service', 'imagescan-trivy-server');
    expect(tls && portNumber(tls, svc.spec?.ports?.[0]?.targetPort)).toBe(4954);
    // ghostunnel reads the certificate cert-manager writes.
    const certs = ofKind<KubeObject & { spec: { secretName: string; dnsNames?: string[]; isCA?: boolean; issuerRef: { name: string; kind?: string } } }>(objs, 'Certificate');
    const serverCert = certs.find((c) => !c.spec.isCA);
    const tlsVolume = spec?.volumes?.find((v) => v.name === tls?.volumeMounts?.[0]?.name);
    expect(tlsVolume?.secret?.secretName).toBe(serverCert?.spec.secretName);
    expect(tls?.args).toEqual(expect.arrayContaining([`--cert=${tls?.volumeMounts?.[0]?.mountPath}/tls.crt`, `--key=${tls?.volumeMounts?.[0]?.mountPath}/tls.key`]));
    // The certificate names the host the operator connects to, and chains to an issuer in the component.
    const operator = one<IDeployment>(objs, 'Deployment', 'imagescan-operator');
    const op = operator.spec?.template.spec?.containers.find((c) => c.name === 'operator');
    const env = new Map((op?.env ?? []).map((e) => [e.name, e.value]));
    const url = new URL(env.get('IMAGESCAN_TRIVY_SERVER') ?? '');
    expect(url.protocol).toBe('https:');
    expect(serverCert?.spec.dnsNames).toContain(url.hostname);
    expect(url.port).toBe(String(svc.spec?.ports?.[0]?.port));
    const issuers = ofKind<KubeObject>(objs, 'Issuer').map((i) => i.metadata.name);
    for (const c of certs) expect(issuers).toContain(c.spec.issuerRef.name);
    // The operator mounts only ca.crt of the server's Secret (never its key), where --trivy-server-ca points.
    const caFile = env.get('IMAGESCAN_TRIVY_SERVER_CA') ?? '';
    const mount = op?.volumeMounts?.find((m) => caFile.startsWith(`${m.mountPath}/`));
    const caVolume = operator.spec?.template.spec?.volumes?.find((v) => v.name === mount?.name);
    expect(caVolume?.secret?.secretName).toBe(serverCert?.spec.secretName);
    expect(caVolume?.secret?.items).toEqual([{ key: 'ca.crt', path: path.basename(caFile) }]);
    // Only the Service port is reachable from the operator: the loopback port and ghostunnel's status port are not in any policy.
    const ports = ofKind<INetworkPolicy>(objs, 'NetworkPolicy').flatMap((p) => [...(p.spec?.ingress ?? []), ...(p.spec?.egress ?? [])]).flatMap((r) => r.ports ?? []).map((p) => p.port);
    expect(ports).not.toContain(4955);
    expect(ports).not.toContain(6060);
  });

  test('admission: the design\'s webhook scope, the certificate where --webhook-cert-dir points, no new RBAC, the posture kept', () => {
    const base = build('base');
    const objs = build('admission');
    type Webhook = { name: string; failurePolicy: string; timeoutSeconds: number; sideEffects: string; admissionReviewVersions: string[]; matchPolicy?: string; clientConfig: { service: { namespace: string; name: string; path: string; port: number } }; rules: { apiGroups: string[]; apiVersions: string[]; resources: string[]; operations: string[] }[]; namespaceSelector: { matchExpressions: { key: string; operator: string; values: string[] }[] } };
    const config = one<KubeObject & { webhooks: Webhook[] }>(objs, 'ValidatingWebhookConfiguration', 'imagescan-operator');
    const [webhook, ...others] = config.webhooks;
    expect(others).toEqual([]);
    expect(webhook).toMatchObject({ failurePolicy: 'Ignore', timeoutSeconds: 5, sideEffects: 'NoneOnDryRun', admissionReviewVersions: ['v1'] });
    const scope = (webhook?.rules ?? []).flatMap((r) => r.resources.map((res) => `${r.apiGroups.join()}/${res} ${[...r.operations].sort().join('+')}`)).sort();
    expect(scope).toEqual([
      '/pods CREATE',
      'apps/daemonsets CREATE+UPDATE', 'apps/deployments CREATE+UPDATE', 'apps/replicasets CREATE+UPDATE', 'apps/statefulsets CREATE+UPDATE',
      'batch/cronjobs CREATE+UPDATE', 'batch/jobs CREATE+UPDATE',
    ]);
    expect(webhook?.namespaceSelector.matchExpressions).toEqual([{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [NAMESPACE, 'kube-system'] }]);

    // The Service reaches the operator's webhook port; the certificate names the Service and is injected as the CA.
    const svc = one<IService>(objs, 'Service', webhook?.clientConfig.service.name ?? '');
    expect(svc.metadata.namespace).toBe(webhook?.clientConfig.service.namespace);
    expect(svc.spec?.ports?.find((p) => p.port === webhook?.clientConfig.service.port)?.targetPort).toBe('webhook');
    const certificate = one<KubeObject & { spec: { secretName: string; dnsNames: string[]; issuerRef: { name: string } } }>(objs, 'Certificate', 'imagescan-operator-webhook');
    expect(certificate.spec.dnsNames).toContain(`${svc.metadata.name}.${NAMESPACE}.svc`);
    expect(one<KubeObject>(objs, 'Issuer', certificate.spec.issuerRef.name)).toBeDefined();
    expect((config.metadata as { annotations?: Record<string, string> }).annotations?.['cert-manager.io/inject-ca-from']).toBe(`${NAMESPACE}/${certificate.metadata.name}`);

    const operator = one<IDeployment>(objs, 'Deployment', 'imagescan-operator');
    const op = operator.spec?.template.spec?.containers.find((c) => c.name === 'operator');
    const env = new Map((op?.env ?? []).map((e) => [e.name, e.value]));
    const config2 = loadConfig([], { IMAGESCAN_WEBHOOK_ADDRESS: env.get('IMAGESCAN_WEBHOOK_ADDRESS') ?? '', IMAGESCAN_WEBHOOK_CERT_DIR: env.get('IMAGESCAN_WEBHOOK_CERT_DIR') ?? '' });
    expect(op && portNumber(op, 'webhook')).toBe(config2.webhook.port);
    const mount = op?.volumeMounts?.find((m) => m.mountPath === config2.webhookCertDir);
    expect(mount?.readOnly).toBe(true);
    const volume = operator.spec?.template.spec?.volumes?.find((v) => v.name === mount?.name);
    expect(volume?.secret?.secretName).toBe(certificate.spec.secretName);
    expect(volume?.secret?.items?.map((i) => i.path).sort()).toEqual(['tls.crt', 'tls.key']);
    // Nothing else about the pod changes: same securityContext, and no new permission.
    const baseOperator = one<IDeployment>(base, 'Deployment', 'imagescan-operator');
    expect(operator.spec?.template.spec?.securityContext).toEqual(baseOperator.spec?.template.spec?.securityContext);
    expect(op?.securityContext).toEqual(baseOperator.spec?.template.spec?.containers.find((c) => c.name === 'operator')?.securityContext);
    expect(granted(operatorRules(objs).cluster)).toEqual(granted(operatorRules(base).cluster));

    // Ingress on the webhook port only, for the operator's pods.
    const ingress = one<INetworkPolicy>(objs, 'NetworkPolicy', 'imagescan-operator-webhook-ingress');
    expect(ingress.spec?.podSelector?.matchLabels).toEqual(operator.spec?.template.metadata?.labels && { 'app.kubernetes.io/name': 'imagescan-operator', 'app.kubernetes.io/component': 'controller' });
    expect((ingress.spec?.ingress ?? []).flatMap((r) => r.ports ?? [])).toEqual([{ protocol: 'TCP', port: 'webhook' }]);
    expect((ingress.spec?.ingress ?? []).flatMap((r) => r.from ?? []).map((f) => f.ipBlock?.cidr)).toEqual(['0.0.0.0/0', '::/0']);
  });

  test.skipIf(!existsSync(MONITORING))('monitoring: the ServiceMonitor scrapes the metrics Service by its port name', () => {
    const objs = build('monitoring');
    const monitors = ofKind<IServiceMonitor>(objs, 'ServiceMonitor');
    expect(monitors.length).toBeGreaterThan(0);
    expect(ofKind<KubeObject>(objs, 'PrometheusRule').length).toBeGreaterThan(0);
    const svc = one<IService>(objs, 'Service', 'imagescan-operator');
    for (const m of monitors) {
      if (m.metadata?.namespace !== svc.metadata.namespace) {
        expect(m.spec.namespaceSelector?.matchNames, `${m.metadata?.name} looks in ${NAMESPACE}`).toContain(NAMESPACE);
      }
      const sel = m.spec.selector.matchLabels ?? {};
      expect(Object.entries(sel).every(([k, v]) => svc.metadata?.labels?.[k] === v), `${m.metadata?.name} selects the metrics Service`).toBe(true);
      const portNames = (svc.spec?.ports ?? []).map((p) => p.name);
      for (const ep of m.spec.endpoints ?? []) {
        expect(portNames).toContain(ep.port);
        // Secure metrics: HTTPS with Prometheus' own token (never a token written into the manifest).
        expect(ep.scheme).toBe('https');
        expect(ep.bearerTokenFile).toBe('/var/run/secrets/kubernetes.io/serviceaccount/token');
        expect(ep.tlsConfig?.insecureSkipVerify).toBe(true);
      }
    }
    // Prometheus' ServiceAccount may get /metrics, and nothing else through this binding.
    const binding = one<IClusterRoleBinding>(objs, 'ClusterRoleBinding', 'imagescan-operator-metrics-reader');
    expect(binding.subjects?.map((s) => `${s.kind}/${s.namespace ?? ''}/${s.name}`)).toEqual(['ServiceAccount/monitoring/prometheus-k8s']);
    const reader = one<IClusterRole>(objs, 'ClusterRole', binding.roleRef.name);
    expect(reader.rules).toEqual([{ nonResourceURLs: ['/metrics'], verbs: ['get'] }]);
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(path.join(repoRoot, 'Dockerfile'), 'utf8');
  const from = (stage: string): string | undefined => new RegExp(`^FROM (\\S+) AS ${stage}$`, 'm').exec(dockerfile)?.[1];

  test('copies a Trivy release that is not one of the malicious 0.69.4-0.69.6', () => {
    const version = /^aquasec\/trivy:(\d+\.\d+\.\d+)(?:@sha256:[0-9a-f]{64})?$/.exec(from('trivy') ?? '')?.[1];
    expect(version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(['0.69.4', '0.69.5', '0.69.6']).not.toContain(version);
    expect(dockerfile).toMatch(/COPY .*--from=trivy \/usr\/local\/bin\/trivy \/usr\/local\/bin\/trivy/);
  });

  test('everything the build copies from the context gets past .dockerignore', () => {
    const ignore = readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    // The file denies everything, then allows named paths: each local COPY source must be allowed.
    expect(ignore[0]).toBe('*');
    const allowed = new Set(ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, '')));
    const sources = [...dockerfile.matchAll(/^COPY (?!.*--from=)(?:--\S+ )*(.+) \S+$/gm)].flatMap((m) => (m[1] ?? '').split(/\s+/));
    expect(sources.length).toBeGreaterThan(0);
    for (const src of sources) expect(allowed, `COPY ${src}`).toContain(src.replace(/^\.\//, '').replace(/\/$/, ''));
    // `npm run build` runs the build script over src/: both must be in the context.
    expect(dockerfile).toMatch(/^RUN npm run build\b/m);
    const buildScript = /tsx (\S+)/.exec((JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.build ?? '')?.[1];
    expect(sources).toContain(buildScript);
    expect(sources).toContain('src');
  });

  test('runs as the numeric non-root user the manifests expect, on a Node 24 base', () => {
    const users = [...dockerfile.matchAll(/^USER (\S+)$/gm)].map((m) => m[1]);
    expect(users.at(-1)).toBe('65532:65532');
    const d = one<IDeployment>(build('base'), 'Deployment', 'imagescan-operator');
    expect(d.spec?.template.spec?.securityContext?.runAsUser).toBe(65532);
    expect([...dockerfile.matchAll(/^FROM (\S+)$/gm)].map((m) => m[1])).toEqual([expect.stringMatching(/^gcr\.io\/distroless\/nodejs24-/)]);
    expect(from('build')).toMatch(/^node:24/);
    expect(dockerfile).toMatch(/^ENTRYPOINT \[.*"\/app\/dist\/main\.mjs"\]$/m);
  });
});
