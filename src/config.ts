// The operator's settings: command-line flags and IMAGESCAN_* environment variables, parsed and
// validated once at start into one frozen object. This is the only module that reads process.env.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { homedir, hostname } from 'node:os';
import { delimiter, join } from 'node:path';
import { parseArgs } from 'node:util';
import cron from 'node-cron';
import { SEVERITIES, type Severity } from './scanner/scan-result.js';
import { CRD_MAX_ITEMS } from './reports/report-builder.js';
import { REPORT_DETAILS, type ReportDetails } from './reports/image-scan-report.js';
import { parseTeamOverrides, type TeamOverride } from './images/team-overrides.js';

/** pino's level names, least to most verbose, plus `silent`. */
export const LOG_LEVELS = ['silent', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Where the Kubernetes client configuration comes from. */
export type KubeconfigSource =
  /** Load the first file and merge the others into it (the order `$KUBECONFIG` lists them in). */
  | { kind: 'file'; paths: readonly string[] }
  /** The pod's service account (token, CA and namespace under /var/run/secrets/kubernetes.io/serviceaccount). */
  | { kind: 'in-cluster' };

export interface OperatorConfig {
  readonly kubeconfig: KubeconfigSource;
  /** Namespaces to watch; empty means every namespace. */
  readonly namespaces: readonly string[];
  /** Namespaces never watched (never overlaps `namespaces`). */
  readonly excludeNamespaces: readonly string[];
  /** node-cron expression (5 or 6 fields) for the scheduled rescan of every running digest. */
  readonly rescanSchedule: string;
  /** Rescans of one scheduled pass are spread randomly over this window; 0 disables the spread. */
  readonly rescanJitterMs: number;
  /** Trivy processes at once, 1..64. */
  readonly scanConcurrency: number;
  readonly scanTimeoutMs: number;
  /** Wait before the first retry of a digest whose scan failed; doubled after each failure in a row. */
  readonly scanRetryBackoffMs: number;
  /** Failed scans in a row after which a digest is tried only by the scheduled rescan. */
  readonly maxScanAttempts: number;
  readonly trivyPath: string;
  /**
   * GOMEMLIMIT of each Trivy child in bytes (undefined: none): Trivy runs inside the operator's
   * container, and on cgroup v2 one child's OOM kill takes the whole container with it.
   */
  readonly trivyMemoryLimitBytes: number | undefined;
  readonly trivyCacheDir: string;
  /** Where each scan's DOCKER_CONFIG folder is made; undefined = inside the scan's temp folder. */
  readonly registryCredentialsDir: string | undefined;
  /** Trivy server URL (client/server mode); undefined = standalone. */
  readonly trivyServer: string | undefined;
  /** PEM file of the CA(s) that signed an https Trivy server's certificate, trusted besides the system CAs. */
  readonly trivyServerCa: string | undefined;
  /** From IMAGESCAN_TRIVY_SERVER_TOKEN only, never a flag, so it never appears in argv. Never log it. */
  readonly trivyServerToken: string | undefined;
  /**
   * Proxy, CA and cloud credential variables of the operator's own environment, handed on to Trivy
   * (which otherwise gets a minimal environment): clusters behind a proxy or a private CA need them to
   * reach registries, and ECR/GCR/ACR images are pulled with the pod's cloud identity. Never log it.
   */
  readonly trivyEnv: Readonly<Record<string, string>>;
  /** Trivy's --db-repository (comma list allowed); undefined = Trivy's default. */
  readonly trivyDbRepository: string | undefined;
  /** Trivy's --java-db-repository (comma list allowed); undefined = Trivy's default. */
  readonly trivyJavaDbRepository: string | undefined;
  /** Interval between vulnerability DB downloads. */
  readonly trivyDbRefreshMs: number;
  /** Severities reported, in SEVERITIES order (worst first), never empty. */
  readonly severities: readonly Severity[];
  readonly ignoreUnfixed: boolean;
  /** Label key (pod, then namespace) that names the owning team. */
  readonly teamLabel: string;
  /** Container names and repositories whose images belong to a given team (e.g. injected sidecars). */
  readonly teamOverrides: readonly TeamOverride[];
  readonly reportGracePeriodMs: number;
  /** Vulnerabilities kept in one report's status (worst first); the rest are counted as omitted. */
  readonly maxReportVulnerabilities: number;
  /** --report-details: whether reports also carry the per-vulnerability list. */
  readonly reportDetails: ReportDetails;
  /** Listen address of /metrics, /healthz, /readyz; host undefined = every interface. */
  readonly metrics: { readonly host: string | undefined; readonly port: number };
  /** HTTPS on the metrics address, and /metrics only for users RBAC allows (TokenReview + SubjectAccessReview). */
  readonly metricsSecure: boolean;
  /** Directory with tls.crt and tls.key for secure metrics; undefined = a self-signed certificate made at start. */
  readonly metricsCertDir: string | undefined;
  /** Listen address of the admission webhook (HTTPS, POST /validate); host undefined = every interface. */
  readonly webhook: { readonly host: string | undefined; readonly port: number };
  /** Directory with the webhook's tls.crt and tls.key; the webhook is served once they are there. */
  readonly webhookCertDir: string;
  readonly leaderElect: boolean;
  readonly leaderElectionNamespace: string;
  /** Name of the coordination.k8s.io Lease. */
  readonly leaderElectionId: string;
  /** This replica's identity in the Lease (the pod name in cluster). */
  readonly identity: string;
  readonly logLevel: LogLevel;
  /** Whether the process runs in a pod (decided by the caller of loadConfig). */
  readonly inCluster: boolean;
}

/** Standard proxy and CA variables passed through to Trivy when the operator has them. */
const TRIVY_PASSTHROUGH_ENV = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy', 'NO_PROXY', 'no_proxy', 'SSL_CERT_FILE', 'SSL_CERT_DIR'] as const;

/**
 * The cloud SDKs' credential variables, passed through so Trivy's ECR, GCR/Artifact Registry and ACR
 * support sees the workload identity the pod was given (IRSA, EKS Pod Identity, GKE and Azure Workload
 * Identity) or keys an admin put on the Deployment. An explicit list: the Trivy child never sees the
 * rest of the operator's environment. Names as the Go SDKs that Trivy builds with read them.
 */
export const CLOUD_CREDENTIAL_ENV: Readonly<Record<'AWS' | 'Azure' | 'Google Cloud', readonly string[]>> = {
  AWS: [
    'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_STS_REGIONAL_ENDPOINTS', 'AWS_USE_FIPS_ENDPOINT',
    // IRSA (web identity), injected by EKS's pod identity webhook.
    'AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_SESSION_NAME',
    // EKS Pod Identity (and ECS): the container credentials endpoint.
    'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE', 'AWS_CONTAINER_AUTHORIZATION_TOKEN',
    // The node's instance profile through IMDS.
    'AWS_EC2_METADATA_DISABLED', 'AWS_EC2_METADATA_SERVICE_ENDPOINT', 'AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE', 'AWS_EC2_METADATA_V1_DISABLED',
    // Static keys or a mounted shared config.
    'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE',
  ],
  // Trivy's ACR support uses DefaultAzureCredential and needs AZURE_TENANT_ID even for a managed identity.
  Azure: [
    'AZURE_CLIENT_ID', 'AZURE_TENANT_ID', 'AZURE_FEDERATED_TOKEN_FILE', 'AZURE_AUTHORITY_HOST',
    'AZURE_CLIENT_SECRET', 'AZURE_CLIENT_CERTIFICATE_PATH', 'AZURE_CLIENT_CERTIFICATE_PASSWORD', 'AZURE_ADDITIONALLY_ALLOWED_TENANTS',
  ],
  'Google Cloud': ['GOOGLE_APPLICATION_CREDENTIALS', 'GCE_METADATA_HOST'],
};

/** Facts about the process that loadConfig needs but must not look up itself, so it stays pure. */
export interface ConfigRuntime {
  /** Running in a pod with a service account. Default false. */
  inCluster?: boolean;
  /** Content of /var/run/secrets/kubernetes.io/serviceaccount/namespace, when present. */
  serviceAccountNamespace?: string;
  /** os.hostname(), used for --identity when HOSTNAME is not set. */
  hostname?: string;
  /** Random text appended to the host name so two local runs do not share an identity. */
  randomSuffix?: string;
  /** The user's home directory, for ~/.kube/config. */
  homeDir?: string;
  /** The memory limit of the operator's container (its cgroup's), when it has one. */
  memoryLimitBytes?: number;
}

/** A bad flag or environment value. The message is one line naming the flag (or variable) and the value. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const ENV_PREFIX = 'IMAGESCAN_';
const TRIVY_SERVER_TOKEN_ENV = 'IMAGESCAN_TRIVY_SERVER_TOKEN';
const DEFAULT_LEADER_ELECTION_NAMESPACE = 'imagescan-system';
/** setTimeout fires at once for delays above 2^31-1 ms, so no duration may be longer. */
const MAX_DURATION_MS = 2 ** 31 - 1;

interface FlagSpec {
  name: string;
  boolean?: true;
  /** Shown after the flag in --help, e.g. "<duration>". */
  value?: string;
  defaultText: string;
  help: string;
}

// One table drives parsing, environment names and --help, so they cannot drift apart.
const FLAGS: readonly FlagSpec[] = [
  { name: 'kubeconfig', value: '<path>', defaultText: 'in cluster: the service account; outside: $KUBECONFIG, then ~/.kube/config', help: 'Kubeconfig file to use.' },
  { name: 'namespaces', value: '<ns,...>', defaultText: 'all', help: 'Watch only these namespaces (comma-separated).' },
  { name: 'exclude-namespaces', value: '<ns,...>', defaultText: 'none', help: 'Never watch these namespaces (comma-separated).' },
  { name: 'rescan-schedule', value: '<cron>', defaultText: '0 */12 * * *', help: 'Cron expression (5 or 6 fields) for rescanning running images whose result predates the current vulnerability DB or one period.' },
  { name: 'rescan-jitter', value: '<duration>', defaultText: '10m', help: 'Spread the rescans of one scheduled pass randomly over this window (0s: no spread).' },
  { name: 'scan-concurrency', value: '<1-64>', defaultText: '2', help: 'Trivy scans running at once.' },
  { name: 'scan-timeout', value: '<duration>', defaultText: '10m', help: 'Kill a scan that runs longer than this.' },
  { name: 'scan-retry-backoff', value: '<duration>', defaultText: '10m', help: 'Retry a failed scan after this long, doubling after each failure in a row.' },
  { name: 'max-scan-attempts', value: '<1-100>', defaultText: '5', help: 'After this many failed scans in a row, only the scheduled rescan tries the image again.' },
  { name: 'trivy-path', value: '<path>', defaultText: 'trivy', help: 'Trivy executable (looked up on PATH when not a path).' },
  {
    name: 'trivy-memory-limit',
    value: '<quantity>',
    defaultText: "(the container's memory limit - 512Mi) / (--scan-concurrency + 1); none without a limit",
    help: 'Soft memory limit (GOMEMLIMIT) of each Trivy process, e.g. 768Mi; 0 for none.',
  },
  { name: 'trivy-cache-dir', value: '<dir>', defaultText: '/var/cache/trivy', help: 'Trivy cache directory shared by all scans (holds the vulnerability DB).' },
  { name: 'registry-credentials-dir', value: '<dir>', defaultText: "inside each scan's folder in TMPDIR", help: "Parent folder of each scan's private DOCKER_CONFIG (the Deployment mounts a memory-backed emptyDir there)." },
  { name: 'trivy-server', value: '<url>', defaultText: 'none (standalone)', help: `Send scans to this Trivy server (http or https); its token comes from ${TRIVY_SERVER_TOKEN_ENV} only.` },
  { name: 'trivy-server-ca', value: '<file>', defaultText: 'the system CAs', help: 'PEM CA bundle that signed the https Trivy server\'s certificate (added to the system CAs, for the operator and Trivy).' },
  { name: 'trivy-db-repository', value: '<repo,...>', defaultText: "Trivy's default", help: 'OCI repositories of the vulnerability DB.' },
  { name: 'trivy-java-db-repository', value: '<repo,...>', defaultText: "Trivy's default", help: 'OCI repositories of the Java index DB.' },
  { name: 'trivy-db-refresh', value: '<duration>', defaultText: '6h', help: 'Download the vulnerability DB again this often.' },
  { name: 'severities', value: '<list>', defaultText: SEVERITIES.slice().reverse().join(','), help: 'Severities to report (comma-separated subset).' },
  { name: 'ignore-unfixed', boolean: true, defaultText: 'false', help: 'Report only vulnerabilities that have a fix.' },
  { name: 'team-label', value: '<label-key>', defaultText: 'team', help: 'Pod (then namespace) label that names the owning team.' },
  {
    name: 'team-overrides',
    value: '<rules>',
    defaultText: 'none',
    help: 'Give images to a team whatever pod runs them, e.g. injected sidecars: container:istio-proxy=platform,repository:docker.io/istio/proxyv2=platform (a repository rule wins, then the first matching container rule).',
  },
  { name: 'report-grace-period', value: '<duration>', defaultText: '1h', help: 'Delete a report when no pod of its namespace has run the image for this long.' },
  { name: 'max-report-vulnerabilities', value: '<0-1000>', defaultText: '500', help: 'Vulnerabilities listed in one report (worst first); the rest are counted as omitted.' },
  { name: 'report-details', value: '<fixes|full>', defaultText: 'fixes', help: 'fixes: reports say what to upgrade (status.fixes); full: also list every vulnerability (status.vulnerabilities).' },
  { name: 'metrics-address', value: '[host]:port', defaultText: ':8080', help: 'Listen address of /metrics, /healthz and /readyz.' },
  { name: 'metrics-secure', boolean: true, defaultText: 'true', help: 'Serve the metrics address over HTTPS and /metrics only to users RBAC allows to get it (TokenReview + SubjectAccessReview); false: plain HTTP, open to anyone who reaches the port.' },
  { name: 'metrics-cert-dir', value: '<dir>', defaultText: 'none (self-signed)', help: 'Directory with tls.crt and tls.key (a kubernetes.io/tls Secret) for secure metrics; re-read every minute.' },
  { name: 'webhook-address', value: '[host]:port', defaultText: ':9443', help: 'Listen address of the admission webhook (HTTPS, POST /validate), served by every replica.' },
  {
    name: 'webhook-cert-dir',
    value: '<dir>',
    defaultText: '/tmp/k8s-webhook-server/serving-certs',
    help: 'Directory with the webhook\'s tls.crt and tls.key (the admission component mounts them); re-read when they change. Without them the webhook is not served until they appear.',
  },
  { name: 'leader-elect', boolean: true, defaultText: 'true in cluster, false outside', help: 'Elect a leader on a Lease; only the leader scans and writes.' },
  { name: 'leader-election-namespace', value: '<ns>', defaultText: "in cluster: the pod's namespace; outside: imagescan-system", help: 'Namespace of the leader election Lease.' },
  { name: 'leader-election-id', value: '<name>', defaultText: 'imagescan-operator', help: 'Name of the leader election Lease.' },
  { name: 'identity', value: '<id>', defaultText: '$HOSTNAME, else the host name and a random suffix', help: 'Identity of this replica in the Lease.' },
  { name: 'log-level', value: '<level>', defaultText: 'info', help: `One of ${LOG_LEVELS.join(', ')}.` },
  { name: 'help', boolean: true, defaultText: '', help: 'Print this help and exit.' },
];

/** `scan-timeout` → `IMAGESCAN_SCAN_TIMEOUT`. */
function envName(flag: string): string {
  return ENV_PREFIX + flag.toUpperCase().replaceAll('-', '_');
}

/** The --help text: every flag with its environment variable and default. */
export function helpText(): string {
  const lines = [
    'Usage: imagescan-operator [flags]',
    '',
    'Keeps every image running in the cluster scanned with Trivy and writes ImageScanReports.',
    'Every flag can also be set as an environment variable (shown below); the flag wins.',
    'Durations are written like 90s, 10m, 12h or 1h30m. Booleans: --flag, --flag=true|false, --no-flag.',
    '',
    'Flags:',
  ];
  for (const flag of FLAGS) {
    const left = flag.name === 'help' ? '-h, --help' : `--${flag.name}${flag.value ? ` ${flag.value}` : ''}`;
    lines.push(`  ${left}`);
    lines.push(`      ${flag.help}`);
    if (flag.name !== 'help') lines.push(`      env ${envName(flag.name)}; default: ${flag.defaultText}`);
  }
  lines.push('');
  lines.push('Environment only:');
  lines.push(`  ${TRIVY_SERVER_TOKEN_ENV}`);
  lines.push('      Token for --trivy-server (kept out of argv on purpose); default: none');
  lines.push(`  ${TRIVY_PASSTHROUGH_ENV.filter((name) => name === name.toUpperCase()).join(', ')} (and lower case)`);
  lines.push('      Passed on to Trivy, which otherwise runs with a minimal environment; default: none');
  for (const [cloud, names] of Object.entries(CLOUD_CREDENTIAL_ENV)) {
    lines.push(`  ${names.join(', ')}`);
    lines.push(`      ${cloud} credentials for private registries, passed on to Trivy (see the README's Private registries); default: none`);
  }
  lines.push('');
  return lines.join('\n');
}

/** True when argv asks for --help / -h (before a `--`), whatever else it contains. */
export function wantsHelp(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === '--') return false;
    if (arg === '-h' || arg === '--help' || arg === '--help=true') return true;
  }
  return false;
}

const BOOLEAN_FLAGS = new Set(FLAGS.filter((f) => f.boolean).map((f) => f.name));

/**
 * parseArgs booleans refuse `--flag=false`, so boolean flags are parsed as strings and their bare
 * forms rewritten first: `--flag` → `--flag=true`, `--flag true|false` → `--flag=<value>`,
 * `--no-flag` → `--flag=false`.
 */
function normalizeBooleanFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (arg === '-h') {
      out.push('--help=true');
      continue;
    }
    const bare = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : undefined;
    if (bare !== undefined && BOOLEAN_FLAGS.has(bare)) {
      const next = argv[i + 1];
      if (next === 'true' || next === 'false') {
        out.push(`--${bare}=${next}`);
        i++;
      } else {
        out.push(`--${bare}=true`);
      }
    } else if (bare?.startsWith('no-') && BOOLEAN_FLAGS.has(bare.slice(3)) && bare !== 'no-help') {
      out.push(`--${bare.slice(3)}=false`);
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** Quote a value for an error message: JSON escaping keeps it on one line; long values are cut. */
function quote(value: string): string {
  const cut = value.length > 120 ? `${value.slice(0, 120)}…` : value;
  return JSON.stringify(cut);
}

function parseCommandLine(argv: readonly string[]): Map<string, string> {
  const options: Record<string, { type: 'string' }> = {};
  for (const flag of FLAGS) options[flag.name] = { type: 'string' };
  let values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values } = parseArgs({ args: normalizeBooleanFlags(argv), options, strict: true, allowPositionals: false }));
  } catch (err) {
    throw commandLineError(err, argv);
  }
  const result = new Map<string, string>();
  for (const [name, value] of Object.entries(values)) {
    if (typeof value === 'string') result.set(name, value);
  }
  return result;
}

/** Turn parseArgs' multi-line messages into our one-line form. */
function commandLineError(err: unknown, argv: readonly string[]): ConfigError {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  const option = /'(-{1,2}[^' =]+)/.exec(message)?.[1];
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && option !== undefined) {
    if (option === '--trivy-server-token' || option === '--token') {
      return new ConfigError(`unknown flag ${option}: the Trivy server token is read only from ${TRIVY_SERVER_TOKEN_ENV}, so it never appears in argv`);
    }
    return new ConfigError(`unknown flag ${option} (see --help)`);
  }
  if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') {
    const positional = /'([^']*)'/.exec(message)?.[1] ?? '';
    return new ConfigError(`unexpected argument ${quote(positional)}: flags are written --name=value (see --help)`);
  }
  if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && option !== undefined) {
    return new ConfigError(`flag ${option} needs a value, written ${option}=<value> (see --help)`);
  }
  return new ConfigError(`cannot parse the command line ${quote(argv.join(' '))}: ${message.split('\n')[0] ?? ''}`);
}

/** A raw setting and where it came from, for error messages. */
interface RawValue {
  value: string;
  /** `--scan-timeout` or `IMAGESCAN_SCAN_TIMEOUT`. */
  origin: string;
}

function invalid(raw: RawValue, expected: string): ConfigError {
  return new ConfigError(`invalid ${raw.origin} ${quote(raw.value)}: ${expected}`);
}

const DURATION_PATTERN = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/;
const DURATION_EXPECTED = 'expected a duration like 90s, 10m or 12h';

/** Milliseconds of a duration written `90s`, `10m`, `12h`, `500ms` or combined `1h30m`; undefined when malformed. */
function durationMs(text: string): number | undefined {
  const match = DURATION_PATTERN.exec(text);
  if (!match || text === '') return undefined;
  const [, h = '0', m = '0', s = '0', ms = '0'] = match;
  const total = Number(h) * 3_600_000 + Number(m) * 60_000 + Number(s) * 1000 + Number(ms);
  return Number.isSafeInteger(total) ? total : undefined;
}

/**
 * Parse a duration written like `90s`, `10m`, `12h`, `500ms` or `1h30m` into milliseconds.
 * Throws RangeError for anything else, including values too long for a timer; 0 is allowed.
 */
export function parseDuration(text: string): number {
  const ms = durationMs(text.trim());
  if (ms === undefined) throw new RangeError(`invalid duration ${quote(text)}: ${DURATION_EXPECTED}`);
  if (ms > MAX_DURATION_MS) throw new RangeError(`invalid duration ${quote(text)}: at most 596h`);
  return ms;
}

function readDuration(raw: RawValue, opts: { allowZero?: boolean } = {}): number {
  const ms = durationMs(raw.value.trim());
  if (ms === undefined) throw invalid(raw, DURATION_EXPECTED);
  if (ms === 0 && !opts.allowZero) throw invalid(raw, 'must be longer than 0');
  if (ms > MAX_DURATION_MS) throw invalid(raw, 'must be at most 596h');
  return ms;
}

function readInteger(raw: RawValue, min: number, max: number): number {
  const text = raw.value.trim();
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw invalid(raw, `expected a whole number from ${min} to ${max}`);
  return n;
}

const MEMORY_UNITS: Readonly<Record<string, number>> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };

/** A memory quantity as Kubernetes writes it (768Mi, 1Gi, 500M, bytes); 0 is allowed. */
function readMemory(raw: RawValue): number {
  const match = /^(\d+)(Ki|Mi|Gi|Ti|K|M|G|T)?$/.exec(raw.value.trim());
  const bytes = match === null ? Number.NaN : Number(match[1]) * (MEMORY_UNITS[match[2] ?? ''] ?? Number.NaN);
  if (!Number.isSafeInteger(bytes)) throw invalid(raw, 'expected a memory quantity like 768Mi or 2Gi (0: no limit)');
  return bytes;
}

/** Memory the operator's own Node.js process keeps for itself when the Trivy limit is derived. */
export const OPERATOR_MEMORY_RESERVE_BYTES = 512 * 2 ** 20;

/**
 * The default GOMEMLIMIT of a Trivy child: the container's limit less the operator's reserve, shared by
 * the scans that run at once. Undefined without a container limit.
 */
export function derivedTrivyMemoryLimit(containerLimitBytes: number | undefined, concurrency: number): number | undefined {
  if (containerLimitBytes === undefined) return undefined;
  // One more than the concurrency: the deploy gate may run one scan by reference beside the cluster's.
  const share = Math.floor((containerLimitBytes - OPERATOR_MEMORY_RESERVE_BYTES) / (concurrency + 1));
  // A limit this small would make Go collect constantly; below it, no limit serves better.
  return share >= 64 * 2 ** 20 ? share : undefined;
}

function readBoolean(raw: RawValue): boolean {
  const text = raw.value.trim().toLowerCase();
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw invalid(raw, 'expected true or false');
}

const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

function isDnsSubdomain(text: string): boolean {
  return text.length <= 253 && text.split('.').every((label) => DNS_LABEL.test(label));
}

function readNamespaceList(raw: RawValue): string[] {
  const text = raw.value.trim();
  if (text === '') return [];
  const names = text.split(',').map((part) => part.trim());
  for (const name of names) {
    if (!DNS_LABEL.test(name)) {
      throw invalid(raw, `${quote(name)} is not a namespace name (lowercase letters, digits and '-', at most 63)`);
    }
  }
  return [...new Set(names)];
}

function readNamespace(raw: RawValue): string {
  const text = raw.value.trim();
  if (!DNS_LABEL.test(text)) throw invalid(raw, 'expected a namespace name (lowercase letters, digits and \'-\', at most 63)');
  return text;
}

function readObjectName(raw: RawValue): string {
  const text = raw.value.trim();
  if (!isDnsSubdomain(text)) throw invalid(raw, 'expected a Lease name (lowercase DNS subdomain)');
  return text;
}

function readCron(raw: RawValue): string {
  const text = raw.value.trim().replace(/\s+/g, ' ');
  const fields = text.split(' ').length;
  if (fields !== 5 && fields !== 6) throw invalid(raw, `expected a cron expression of 5 or 6 fields like "0 */12 * * *", got ${fields}`);
  if (!cron.validate(text)) throw invalid(raw, 'not a valid cron expression (minute hour day-of-month month day-of-week)');
  return text;
}

function readUrl(raw: RawValue): string {
  let url: URL;
  try {
    url = new URL(raw.value.trim());
  } catch {
    throw invalid(raw, 'expected an http or https URL like http://trivy-server:4954');
  }
  if (url.username !== '' || url.password !== '') {
    // The value holds a secret: name the problem without echoing it.
    throw new ConfigError(`invalid ${raw.origin}: the URL must not contain credentials; put the token in ${TRIVY_SERVER_TOKEN_ENV}`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    throw invalid(raw, 'expected an http or https URL like http://trivy-server:4954');
  }
  return url.href.replace(/\/$/, '');
}

function readSeverities(raw: RawValue): Severity[] {
  const parts = raw.value.split(',').map((part) => part.trim().toUpperCase());
  const wanted = new Set<string>();
  for (const part of parts) {
    if (!(SEVERITIES as readonly string[]).includes(part)) {
      throw invalid(raw, `expected a comma-separated subset of ${SEVERITIES.slice().reverse().join(',')}`);
    }
    wanted.add(part);
  }
  return SEVERITIES.filter((severity) => wanted.has(severity));
}

const LABEL_NAME = /^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

function readLabelKey(raw: RawValue): string {
  const text = raw.value.trim();
  const slash = text.indexOf('/');
  const prefix = slash === -1 ? undefined : text.slice(0, slash);
  const name = slash === -1 ? text : text.slice(slash + 1);
  if (!LABEL_NAME.test(name) || (prefix !== undefined && !isDnsSubdomain(prefix))) {
    throw invalid(raw, 'expected a label key like team or example.com/team');
  }
  return text;
}

function readTeamOverrides(raw: RawValue): TeamOverride[] {
  try {
    return parseTeamOverrides(raw.value);
  } catch (err) {
    if (err instanceof RangeError) throw invalid(raw, err.message);
    throw err;
  }
}

function readMetricsAddress(raw: RawValue): { host: string | undefined; port: number } {
  const text = raw.value.trim();
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const expected = 'expected [host]:port like :8080, 127.0.0.1:8080 or [::1]:8080';
  if (!match) throw invalid(raw, expected);
  const [, ipv6, name, portText = ''] = match;
  const port = Number(portText);
  if (port > 65535) throw invalid(raw, 'port must be from 0 to 65535');
  if (ipv6 !== undefined) {
    if (isIP(ipv6) !== 6) throw invalid(raw, expected);
    return { host: ipv6, port };
  }
  if (name === undefined || name === '') return { host: undefined, port };
  if (isIP(name) !== 4 && !isDnsSubdomain(name.toLowerCase())) throw invalid(raw, expected);
  return { host: name, port };
}

function readReportDetails(raw: RawValue): ReportDetails {
  const text = raw.value.trim().toLowerCase();
  const details = REPORT_DETAILS.find((d) => d === text);
  if (details === undefined) throw invalid(raw, `expected one of ${REPORT_DETAILS.join(', ')}`);
  return details;
}

function readLogLevel(raw: RawValue): LogLevel {
  const text = raw.value.trim().toLowerCase();
  const level = LOG_LEVELS.find((l) => l === text);
  if (level === undefined) throw invalid(raw, `expected one of ${LOG_LEVELS.join(', ')}`);
  return level;
}

function readRepositories(raw: RawValue): string {
  const text = raw.value.trim();
  const parts = text.split(',').map((part) => part.trim());
  if (parts.some((part) => !/^[a-z0-9][a-z0-9.\-_:/@]*$/i.test(part))) {
    throw invalid(raw, 'expected OCI repositories like mirror.gcr.io/aquasec/trivy-db:2 (comma-separated)');
  }
  return parts.join(',');
}

function readNonEmpty(raw: RawValue, what: string): string {
  const text = raw.value.trim();
  if (text === '') throw invalid(raw, `expected ${what}`);
  return text;
}

function readIdentity(raw: RawValue): string {
  const text = raw.value.trim();
  if (!/^[\x21-\x7e]{1,253}$/.test(text)) throw invalid(raw, 'expected 1 to 253 printable characters without spaces');
  return text;
}

/** Deep-freeze plain data so no part of the operator can change settings after start. */
function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * Parse flags (argv without node and script) and IMAGESCAN_* variables into a validated, deep-frozen
 * OperatorConfig. Flags win over the environment; an empty variable counts as unset. Pure: facts about
 * the process come in `runtime`. Throws ConfigError (one line naming the flag and the value).
 */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv, runtime: ConfigRuntime = {}): OperatorConfig {
  const flags = parseCommandLine(argv);
  const raw = (name: string): RawValue | undefined => {
    const fromFlag = flags.get(name);
    if (fromFlag !== undefined) return { value: fromFlag, origin: `--${name}` };
    const variable = envName(name);
    const fromEnv = env[variable];
    if (fromEnv !== undefined && fromEnv !== '') return { value: fromEnv, origin: variable };
    return undefined;
  };
  const setting = <T>(name: string, read: (r: RawValue) => T, fallback: T): T => {
    const r = raw(name);
    return r === undefined ? fallback : read(r);
  };
  const inCluster = runtime.inCluster ?? false;

  const namespaces = setting('namespaces', readNamespaceList, []);
  const excludeNamespaces = setting('exclude-namespaces', readNamespaceList, []);
  const both = namespaces.filter((ns) => excludeNamespaces.includes(ns));
  if (both.length > 0) {
    const r = raw('exclude-namespaces');
    throw new ConfigError(`invalid ${r?.origin ?? '--exclude-namespaces'} ${quote(r?.value ?? '')}: ${both.join(',')} also listed in --namespaces`);
  }

  const trivyServer = setting('trivy-server', readUrl, undefined);
  const trivyServerCa = setting('trivy-server-ca', (r) => readNonEmpty(r, 'a PEM file'), undefined);
  if (trivyServerCa !== undefined && !trivyServer?.startsWith('https:')) {
    const r = raw('trivy-server-ca');
    throw new ConfigError(`invalid ${r?.origin ?? '--trivy-server-ca'} ${quote(r?.value ?? '')}: a CA needs an https --trivy-server`);
  }
  const tokenText = env[TRIVY_SERVER_TOKEN_ENV]?.trim();
  const trivyServerToken = tokenText === undefined || tokenText === '' ? undefined : tokenText;
  if (trivyServerToken !== undefined && /[\r\n]/.test(tokenText ?? '')) {
    throw new ConfigError(`invalid ${TRIVY_SERVER_TOKEN_ENV}: the token must be one line`);
  }

  const trivyEnv: Record<string, string> = {};
  for (const name of [...TRIVY_PASSTHROUGH_ENV, ...Object.values(CLOUD_CREDENTIAL_ENV).flat()]) {
    const value = env[name];
    if (value !== undefined && value !== '') trivyEnv[name] = value;
  }

  const metricsSecure = setting('metrics-secure', readBoolean, true);
  const metricsCertDir = setting('metrics-cert-dir', (r) => readNonEmpty(r, 'a directory'), undefined);
  if (metricsCertDir !== undefined && !metricsSecure) {
    const r = raw('metrics-cert-dir');
    throw new ConfigError(`invalid ${r?.origin ?? '--metrics-cert-dir'} ${quote(metricsCertDir)}: a certificate is only used with --metrics-secure=true`);
  }

  const fallbackIdentity =
    env['HOSTNAME'] !== undefined && env['HOSTNAME'] !== ''
      ? env['HOSTNAME']
      : `${runtime.hostname ?? 'imagescan-operator'}-${runtime.randomSuffix ?? '0'}`;

  const scanConcurrency = setting('scan-concurrency', (r) => readInteger(r, 1, 64), 2);
  const trivyMemoryLimit = setting('trivy-memory-limit', readMemory, derivedTrivyMemoryLimit(runtime.memoryLimitBytes, scanConcurrency));

  const config: OperatorConfig = {
    kubeconfig: resolveKubeconfig(raw('kubeconfig'), env, inCluster, runtime.homeDir),
    namespaces,
    excludeNamespaces,
    rescanSchedule: setting('rescan-schedule', readCron, '0 */12 * * *'),
    rescanJitterMs: setting('rescan-jitter', (r) => readDuration(r, { allowZero: true }), 10 * 60_000),
    scanConcurrency,
    scanTimeoutMs: setting('scan-timeout', (r) => readDuration(r), 10 * 60_000),
    scanRetryBackoffMs: setting('scan-retry-backoff', (r) => readDuration(r), 10 * 60_000),
    maxScanAttempts: setting('max-scan-attempts', (r) => readInteger(r, 1, 100), 5),
    trivyPath: setting('trivy-path', (r) => readNonEmpty(r, 'a path or command name'), 'trivy'),
    trivyMemoryLimitBytes: trivyMemoryLimit === 0 ? undefined : trivyMemoryLimit,
    trivyCacheDir: setting('trivy-cache-dir', (r) => readNonEmpty(r, 'a directory'), '/var/cache/trivy'),
    registryCredentialsDir: setting('registry-credentials-dir', (r) => readNonEmpty(r, 'a directory'), undefined),
    trivyServer,
    trivyServerCa,
    trivyServerToken,
    trivyEnv,
    trivyDbRepository: setting('trivy-db-repository', readRepositories, undefined),
    trivyJavaDbRepository: setting('trivy-java-db-repository', readRepositories, undefined),
    trivyDbRefreshMs: setting('trivy-db-refresh', (r) => readDuration(r), 6 * 3_600_000),
    severities: setting('severities', readSeverities, [...SEVERITIES]),
    ignoreUnfixed: setting('ignore-unfixed', readBoolean, false),
    teamLabel: setting('team-label', readLabelKey, 'team'),
    teamOverrides: setting('team-overrides', readTeamOverrides, []),
    reportGracePeriodMs: setting('report-grace-period', (r) => readDuration(r), 3_600_000),
    maxReportVulnerabilities: setting('max-report-vulnerabilities', (r) => readInteger(r, 0, CRD_MAX_ITEMS.vulnerabilities), 500),
    reportDetails: setting('report-details', readReportDetails, 'fixes'),
    metrics: setting('metrics-address', readMetricsAddress, { host: undefined, port: 8080 }),
    metricsSecure,
    metricsCertDir,
    webhook: setting('webhook-address', readMetricsAddress, { host: undefined, port: 9443 }),
    webhookCertDir: setting('webhook-cert-dir', (r) => readNonEmpty(r, 'a directory'), '/tmp/k8s-webhook-server/serving-certs'),
    leaderElect: setting('leader-elect', readBoolean, inCluster),
    leaderElectionNamespace: setting(
      'leader-election-namespace',
      readNamespace,
      runtime.serviceAccountNamespace?.trim() || DEFAULT_LEADER_ELECTION_NAMESPACE,
    ),
    leaderElectionId: setting('leader-election-id', readObjectName, 'imagescan-operator'),
    identity: setting('identity', readIdentity, fallbackIdentity),
    logLevel: setting('log-level', readLogLevel, 'info'),
    inCluster,
  };
  return deepFreeze(config);
}

/**
 * --kubeconfig / IMAGESCAN_KUBECONFIG wins; otherwise the service account in cluster, and outside
 * $KUBECONFIG (a path list) then ~/.kube/config, as kubectl does.
 */
function resolveKubeconfig(raw: RawValue | undefined, env: NodeJS.ProcessEnv, inCluster: boolean, homeDir: string | undefined): KubeconfigSource {
  if (raw !== undefined) return { kind: 'file', paths: [readNonEmpty(raw, 'a kubeconfig file')] };
  if (inCluster) return { kind: 'in-cluster' };
  const listed = (env['KUBECONFIG'] ?? '').split(delimiter).filter((p) => p !== '');
  if (listed.length > 0) return { kind: 'file', paths: listed };
  return { kind: 'file', paths: [join(homeDir ?? env['HOME'] ?? '', '.kube', 'config')] };
}

const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/**
 * The memory limit of this process's cgroup (in a pod: the container's limit), read from cgroup v2's
 * memory.max or v1's memory.limit_in_bytes; nothing when unlimited or unreadable.
 */
function containerMemoryLimit(): { memoryLimitBytes?: number } {
  for (const file of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8').trim();
    } catch {
      continue;
    }
    const bytes = /^\d+$/.test(text) ? Number(text) : Number.NaN;
    // v1 writes "unlimited" as a page-rounded 2^63-1; v2 as "max".
    return Number.isSafeInteger(bytes) && bytes > 0 ? { memoryLimitBytes: bytes } : {};
  }
  return {};
}

/**
 * For main.ts: load the config from this process's argv and environment. Prints help and exits 0 on
 * --help; prints `imagescan-operator: <message>` to stderr and exits 2 on a ConfigError.
 */
export function configFromProcess(argv: readonly string[] = process.argv.slice(2)): OperatorConfig {
  if (wantsHelp(argv)) {
    process.stdout.write(helpText());
    process.exit(0);
  }
  const inCluster = process.env['KUBERNETES_SERVICE_HOST'] !== undefined && existsSync(join(SERVICE_ACCOUNT_DIR, 'token'));
  let serviceAccountNamespace: string | undefined;
  try {
    serviceAccountNamespace = inCluster ? readFileSync(join(SERVICE_ACCOUNT_DIR, 'namespace'), 'utf8') : undefined;
  } catch {
    serviceAccountNamespace = undefined;
  }
  try {
    return loadConfig(argv, process.env, {
      inCluster,
      ...containerMemoryLimit(),
      serviceAccountNamespace,
      hostname: hostname(),
      randomSuffix: randomBytes(3).toString('hex'),
      homeDir: homedir(),
    });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`imagescan-operator: ${err.message.replace(/\s*\n\s*/g, ' ')}\n`);
      process.exit(2);
    }
    throw err;
  }
}
