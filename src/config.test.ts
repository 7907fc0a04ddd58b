import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLOUD_CREDENTIAL_ENV, ConfigError, helpText, loadConfig, parseDuration, wantsHelp, type OperatorConfig } from './config.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Flags and defaults from the README's configuration table, the contract users read. */
function readmeFlags(): { flag: string; defaultText: string }[] {
  const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('<!-- config-table:start'), readme.indexOf('<!-- config-table:end'));
  return [...section.matchAll(/^\| `(--[a-z][a-z-]+)` \| `IMAGESCAN_[A-Z_]+` \| (.+?) \| .+ \|$/gm)].map((m) => ({
    flag: m[1] ?? '',
    defaultText: (m[2] ?? '').replace(/\\(.)/g, '$1'),
  }));
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('defaults', () => {
  it('match the design table outside a cluster', () => {
    const config = loadConfig([], { HOME: '/home/dev' }, { hostname: 'laptop', randomSuffix: 'abc123' });
    const expected: OperatorConfig = {
      kubeconfig: { kind: 'file', paths: ['/home/dev/.kube/config'] },
      namespaces: [],
      excludeNamespaces: [],
      rescanSchedule: '0 */12 * * *',
      rescanJitterMs: 10 * 60 * 1000,
      scanConcurrency: 2,
      scanTimeoutMs: 10 * 60 * 1000,
      scanRetryBackoffMs: 10 * 60 * 1000,
      maxScanAttempts: 5,
      trivyPath: 'trivy',
      trivyMemoryLimitBytes: undefined,
      trivyCacheDir: '/var/cache/trivy',
      registryCredentialsDir: undefined,
      trivyServer: undefined,
      trivyServerCa: undefined,
      trivyServerToken: undefined,
      trivyEnv: {},
      trivyDbRepository: undefined,
      trivyJavaDbRepository: undefined,
      trivyDbRefreshMs: 6 * 60 * 60 * 1000,
      severities: ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN'],
      ignoreUnfixed: false,
      teamLabel: 'team',
      teamOverrides: [],
      reportGracePeriodMs: 60 * 60 * 1000,
      maxReportVulnerabilities: 500,
      reportDetails: 'fixes',
      metrics: { host: undefined, port: 8080 },
      metricsSecure: true,
      metricsCertDir: undefined,
      webhook: { host: undefined, port: 9443 },
      webhookCertDir: '/tmp/k8s-webhook-server/serving-certs',
      leaderElect: false,
      leaderElectionNamespace: 'imagescan-system',
      leaderElectionId: 'imagescan-operator',
      identity: 'laptop-abc123',
      logLevel: 'info',
      inCluster: false,
    };
    expect(config).toStrictEqual(expected);
  });

  it('in a cluster use the service account, elect a leader in the pod namespace, and name it after the pod', () => {
    const config = loadConfig([], { HOSTNAME: 'imagescan-operator-7d9f-x2x', KUBECONFIG: '/ignored' }, {
      inCluster: true,
      serviceAccountNamespace: 'security\n',
      hostname: 'ignored',
    });
    expect(config.kubeconfig).toStrictEqual({ kind: 'in-cluster' });
    expect(config.leaderElect).toBe(true);
    expect(config.leaderElectionNamespace).toBe('security');
    expect(config.identity).toBe('imagescan-operator-7d9f-x2x');
    expect(config.inCluster).toBe(true);
  });

  it('outside a cluster take $KUBECONFIG as a path list', () => {
    const config = loadConfig([], { KUBECONFIG: '/a/one:/b/two', HOME: '/home/dev' });
    expect(config.kubeconfig).toStrictEqual({ kind: 'file', paths: ['/a/one', '/b/two'] });
    expect(loadConfig(['--kubeconfig=/k'], { KUBECONFIG: '/a/one' }, { inCluster: true }).kubeconfig).toStrictEqual({ kind: 'file', paths: ['/k'] });
  });
});

describe('good values', () => {
  const cases: { args: string[]; pick: (c: OperatorConfig) => unknown; expected: unknown }[] = [
    { args: ['--namespaces=team-a, team-b,team-a'], pick: (c) => c.namespaces, expected: ['team-a', 'team-b'] },
    { args: ['--namespaces='], pick: (c) => c.namespaces, expected: [] },
    { args: ['--exclude-namespaces', 'kube-system,kube-public'], pick: (c) => c.excludeNamespaces, expected: ['kube-system', 'kube-public'] },
    { args: ['--rescan-schedule=*/10 * * * * *'], pick: (c) => c.rescanSchedule, expected: '*/10 * * * * *' },
    { args: ['--rescan-schedule', '  0  3 * * MON-FRI '], pick: (c) => c.rescanSchedule, expected: '0 3 * * MON-FRI' },
    { args: ['--rescan-jitter=0s'], pick: (c) => c.rescanJitterMs, expected: 0 },
    { args: ['--scan-concurrency=64'], pick: (c) => c.scanConcurrency, expected: 64 },
    { args: ['--scan-concurrency', '1'], pick: (c) => c.scanConcurrency, expected: 1 },
    { args: ['--scan-timeout=90s'], pick: (c) => c.scanTimeoutMs, expected: 90_000 },
    { args: ['--scan-timeout=1h30m'], pick: (c) => c.scanTimeoutMs, expected: 5_400_000 },
    { args: ['--scan-timeout=250ms'], pick: (c) => c.scanTimeoutMs, expected: 250 },
    { args: ['--report-grace-period=12h'], pick: (c) => c.reportGracePeriodMs, expected: 43_200_000 },
    { args: ['--trivy-db-refresh=30m'], pick: (c) => c.trivyDbRefreshMs, expected: 1_800_000 },
    { args: ['--trivy-server=http://trivy.trivy-system:4954/'], pick: (c) => c.trivyServer, expected: 'http://trivy.trivy-system:4954' },
    { args: ['--trivy-server=https://trivy.example.com'], pick: (c) => c.trivyServer, expected: 'https://trivy.example.com' },
    { args: ['--trivy-db-repository=registry.local:5000/mirror/trivy-db:2,ghcr.io/aquasecurity/trivy-db:2'], pick: (c) => c.trivyDbRepository, expected: 'registry.local:5000/mirror/trivy-db:2,ghcr.io/aquasecurity/trivy-db:2' },
    { args: ['--trivy-java-db-repository=mirror.gcr.io/aquasec/trivy-java-db:1'], pick: (c) => c.trivyJavaDbRepository, expected: 'mirror.gcr.io/aquasec/trivy-java-db:1' },
    { args: ['--trivy-path=/usr/local/bin/trivy', '--trivy-cache-dir=/tmp/cache'], pick: (c) => [c.trivyPath, c.trivyCacheDir], expected: ['/usr/local/bin/trivy', '/tmp/cache'] },
    { args: ['--severities=high,critical,HIGH'], pick: (c) => c.severities, expected: ['CRITICAL', 'HIGH'] },
    { args: ['--ignore-unfixed'], pick: (c) => c.ignoreUnfixed, expected: true },
    { args: ['--ignore-unfixed=false'], pick: (c) => c.ignoreUnfixed, expected: false },
    { args: ['--ignore-unfixed', 'true'], pick: (c) => c.ignoreUnfixed, expected: true },
    { args: ['--no-leader-elect'], pick: (c) => c.leaderElect, expected: false },
    { args: ['--leader-elect'], pick: (c) => c.leaderElect, expected: true },
    { args: ['--team-label=example.com/owner-team'], pick: (c) => c.teamLabel, expected: 'example.com/owner-team' },
    { args: ['--max-report-vulnerabilities=0'], pick: (c) => c.maxReportVulnerabilities, expected: 0 },
    { args: ['--report-details=full'], pick: (c) => c.reportDetails, expected: 'full' },
    { args: ['--report-details', 'FIXES'], pick: (c) => c.reportDetails, expected: 'fixes' },
    { args: ['--metrics-address=127.0.0.1:9090'], pick: (c) => c.metrics, expected: { host: '127.0.0.1', port: 9090 } },
    { args: ['--metrics-address=[::1]:0'], pick: (c) => c.metrics, expected: { host: '::1', port: 0 } },
    { args: ['--metrics-address=localhost:8081'], pick: (c) => c.metrics, expected: { host: 'localhost', port: 8081 } },
    { args: ['--metrics-secure=false'], pick: (c) => c.metricsSecure, expected: false },
    { args: ['--no-metrics-secure'], pick: (c) => c.metricsSecure, expected: false },
    { args: ['--metrics-cert-dir', '/etc/metrics-tls'], pick: (c) => c.metricsCertDir, expected: '/etc/metrics-tls' },
    { args: ['--leader-election-namespace=ops', '--leader-election-id=scanner.lock'], pick: (c) => [c.leaderElectionNamespace, c.leaderElectionId], expected: ['ops', 'scanner.lock'] },
    { args: ['--identity=replica-1'], pick: (c) => c.identity, expected: 'replica-1' },
    { args: ['--log-level=DEBUG'], pick: (c) => c.logLevel, expected: 'debug' },
    { args: ['--scan-timeout=1m', '--scan-timeout=2m'], pick: (c) => c.scanTimeoutMs, expected: 120_000 },
  ];
  it.each(cases)('$args', ({ args, pick, expected }) => {
    expect(pick(loadConfig(args, {}))).toStrictEqual(expected);
  });
});

describe('bad values', () => {
  // Each message must be one line that names the flag and repeats the bad value.
  const cases: { args: string[]; message: string }[] = [
    { args: ['--scan-timeout=10x'], message: 'invalid --scan-timeout "10x": expected a duration like 90s, 10m or 12h' },
    { args: ['--scan-timeout=10'], message: 'invalid --scan-timeout "10": expected a duration like 90s, 10m or 12h' },
    { args: ['--scan-timeout=0s'], message: 'invalid --scan-timeout "0s": must be longer than 0' },
    { args: ['--scan-timeout=-5m'], message: 'invalid --scan-timeout "-5m": expected a duration like 90s, 10m or 12h' },
    { args: ['--report-grace-period=1d'], message: 'invalid --report-grace-period "1d": expected a duration like 90s, 10m or 12h' },
    { args: ['--report-grace-period=1000h'], message: 'invalid --report-grace-period "1000h": must be at most 596h' },
    { args: ['--trivy-db-refresh=30m1h'], message: 'invalid --trivy-db-refresh "30m1h": expected a duration like 90s, 10m or 12h' },
    { args: ['--rescan-jitter=soon'], message: 'invalid --rescan-jitter "soon": expected a duration like 90s, 10m or 12h' },
    { args: ['--rescan-schedule=0 */12 * *'], message: 'invalid --rescan-schedule "0 */12 * *": expected a cron expression of 5 or 6 fields like "0 */12 * * *", got 4' },
    { args: ['--rescan-schedule=61 * * * *'], message: 'invalid --rescan-schedule "61 * * * *": not a valid cron expression (minute hour day-of-month month day-of-week)' },
    { args: ['--rescan-schedule=@daily'], message: 'invalid --rescan-schedule "@daily": expected a cron expression of 5 or 6 fields like "0 */12 * * *", got 1' },
    { args: ['--scan-concurrency=0'], message: 'invalid --scan-concurrency "0": expected a whole number from 1 to 64' },
    { args: ['--scan-concurrency=65'], message: 'invalid --scan-concurrency "65": expected a whole number from 1 to 64' },
    { args: ['--scan-concurrency=2.5'], message: 'invalid --scan-concurrency "2.5": expected a whole number from 1 to 64' },
    { args: ['--max-report-vulnerabilities=1001'], message: 'invalid --max-report-vulnerabilities "1001": expected a whole number from 0 to 1000' },
    { args: ['--trivy-server=ftp://trivy:4954'], message: 'invalid --trivy-server "ftp://trivy:4954": expected an http or https URL like http://trivy-server:4954' },
    { args: ['--trivy-server=trivy:4954'], message: 'invalid --trivy-server "trivy:4954": expected an http or https URL like http://trivy-server:4954' },
    { args: ['--trivy-server=not a url'], message: 'invalid --trivy-server "not a url": expected an http or https URL like http://trivy-server:4954' },
    { args: ['--namespaces=Team-A'], message: 'invalid --namespaces "Team-A": "Team-A" is not a namespace name (lowercase letters, digits and \'-\', at most 63)' },
    { args: ['--namespaces=a,,b'], message: 'invalid --namespaces "a,,b": "" is not a namespace name (lowercase letters, digits and \'-\', at most 63)' },
    { args: ['--exclude-namespaces=kube_system'], message: 'invalid --exclude-namespaces "kube_system": "kube_system" is not a namespace name (lowercase letters, digits and \'-\', at most 63)' },
    { args: ['--namespaces=a,b', '--exclude-namespaces=b,c'], message: 'invalid --exclude-namespaces "b,c": b also listed in --namespaces' },
    { args: ['--severities=HIGH,SEVERE'], message: 'invalid --severities "HIGH,SEVERE": expected a comma-separated subset of UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL' },
    { args: ['--severities='], message: 'invalid --severities "": expected a comma-separated subset of UNKNOWN,LOW,MEDIUM,HIGH,CRITICAL' },
    { args: ['--ignore-unfixed=yes'], message: 'invalid --ignore-unfixed "yes": expected true or false' },
    { args: ['--team-label=team name'], message: 'invalid --team-label "team name": expected a label key like team or example.com/team' },
    { args: ['--team-label=Example.com/team'], message: 'invalid --team-label "Example.com/team": expected a label key like team or example.com/team' },
    { args: ['--metrics-address=8080'], message: 'invalid --metrics-address "8080": expected [host]:port like :8080, 127.0.0.1:8080 or [::1]:8080' },
    { args: ['--metrics-address=:70000'], message: 'invalid --metrics-address ":70000": port must be from 0 to 65535' },
    { args: ['--metrics-address=[nope]:80'], message: 'invalid --metrics-address "[nope]:80": expected [host]:port like :8080, 127.0.0.1:8080 or [::1]:8080' },
    { args: ['--report-details=summary'], message: 'invalid --report-details "summary": expected one of fixes, full' },
    { args: ['--metrics-secure=maybe'], message: 'invalid --metrics-secure "maybe": expected true or false' },
    { args: ['--metrics-secure=false', '--metrics-cert-dir=/tls'], message: 'invalid --metrics-cert-dir "/tls": a certificate is only used with --metrics-secure=true' },
    { args: ['--log-level=verbose'], message: 'invalid --log-level "verbose": expected one of silent, fatal, error, warn, info, debug, trace' },
    { args: ['--leader-election-namespace=a,b'], message: 'invalid --leader-election-namespace "a,b": expected a namespace name (lowercase letters, digits and \'-\', at most 63)' },
    { args: ['--leader-election-id=Lock'], message: 'invalid --leader-election-id "Lock": expected a Lease name (lowercase DNS subdomain)' },
    { args: ['--identity=has space'], message: 'invalid --identity "has space": expected 1 to 253 printable characters without spaces' },
    { args: ['--trivy-path='], message: 'invalid --trivy-path "": expected a path or command name' },
    { args: ['--trivy-db-repository=a b'], message: 'invalid --trivy-db-repository "a b": expected OCI repositories like mirror.gcr.io/aquasec/trivy-db:2 (comma-separated)' },
    { args: ['--scan-timout=5m'], message: 'unknown flag --scan-timout (see --help)' },
    { args: ['--scan-timeout'], message: 'flag --scan-timeout needs a value, written --scan-timeout=<value> (see --help)' },
    { args: ['stray'], message: 'unexpected argument "stray": flags are written --name=value (see --help)' },
    { args: ['--trivy-server-token=s3cr3t'], message: 'unknown flag --trivy-server-token: the Trivy server token is read only from IMAGESCAN_TRIVY_SERVER_TOKEN, so it never appears in argv' },
  ];
  it.each(cases)('$args', ({ args, message }) => {
    const err = configError(() => loadConfig(args, {}));
    expect(err.message).toBe(message);
    expect(err.message).not.toContain('\n');
  });

  it('reads --report-details from IMAGESCAN_REPORT_DETAILS, and the flag wins', () => {
    expect(loadConfig([], { IMAGESCAN_REPORT_DETAILS: 'full' }).reportDetails).toBe('full');
    expect(loadConfig(['--report-details=fixes'], { IMAGESCAN_REPORT_DETAILS: 'full' }).reportDetails).toBe('fixes');
  });

  it('names the environment variable when the bad value came from there', () => {
    expect(configError(() => loadConfig([], { IMAGESCAN_SCAN_TIMEOUT: '10x' })).message).toBe(
      'invalid IMAGESCAN_SCAN_TIMEOUT "10x": expected a duration like 90s, 10m or 12h',
    );
  });

  it('never echoes credentials written into the Trivy server URL', () => {
    const err = configError(() => loadConfig(['--trivy-server=https://user:hunter2@trivy:4954'], {}));
    expect(err.message).toBe('invalid --trivy-server: the URL must not contain credentials; put the token in IMAGESCAN_TRIVY_SERVER_TOKEN');
    expect(err.message).not.toContain('hunter2');
  });

  it('keeps a value with a newline on one line', () => {
    const err = configError(() => loadConfig(['--log-level=info\nextra'], {}));
    expect(err.message).toBe('invalid --log-level "info\\nextra": expected one of silent, fatal, error, warn, info, debug, trace');
  });
});

describe('environment', () => {
  it('sets every setting the flag would, and the flag wins', () => {
    const env = {
      IMAGESCAN_SCAN_CONCURRENCY: '8',
      IMAGESCAN_SCAN_TIMEOUT: '5m',
      IMAGESCAN_NAMESPACES: 'a,b',
      IMAGESCAN_IGNORE_UNFIXED: 'true',
      IMAGESCAN_METRICS_ADDRESS: '127.0.0.1:9999',
      IMAGESCAN_LEADER_ELECT: 'true',
    };
    const fromEnv = loadConfig([], env);
    expect([fromEnv.scanConcurrency, fromEnv.scanTimeoutMs, fromEnv.namespaces, fromEnv.ignoreUnfixed, fromEnv.metrics.port, fromEnv.leaderElect]).toStrictEqual([
      8, 300_000, ['a', 'b'], true, 9999, true,
    ]);
    const flagsWin = loadConfig(['--scan-concurrency=3', '--namespaces=c', '--ignore-unfixed=false', '--no-leader-elect'], env);
    expect([flagsWin.scanConcurrency, flagsWin.scanTimeoutMs, flagsWin.namespaces, flagsWin.ignoreUnfixed, flagsWin.leaderElect]).toStrictEqual([
      3, 300_000, ['c'], false, false,
    ]);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig([], { IMAGESCAN_SCAN_TIMEOUT: '', IMAGESCAN_TRIVY_SERVER: '' }).scanTimeoutMs).toBe(600_000);
  });

  it('a good flag overrides a bad variable', () => {
    expect(loadConfig(['--scan-timeout=1m'], { IMAGESCAN_SCAN_TIMEOUT: 'nonsense' }).scanTimeoutMs).toBe(60_000);
  });

  it('reads the Trivy server token from IMAGESCAN_TRIVY_SERVER_TOKEN only', () => {
    const config = loadConfig(['--trivy-server=http://trivy:4954'], { IMAGESCAN_TRIVY_SERVER_TOKEN: 'tok-123\n' });
    expect(config.trivyServerToken).toBe('tok-123');
    expect(helpText()).not.toContain('--trivy-server-token');
  });

  it('hands the proxy, CA and cloud credential variables to Trivy and nothing else of the environment', () => {
    const cloud = {
      // IRSA, as EKS's webhook injects it
      AWS_ROLE_ARN: 'arn:aws:iam::111122223333:role/imagescan',
      AWS_WEB_IDENTITY_TOKEN_FILE: '/var/run/secrets/eks.amazonaws.com/serviceaccount/token',
      AWS_STS_REGIONAL_ENDPOINTS: 'regional',
      AWS_REGION: 'eu-west-1',
      AWS_DEFAULT_REGION: 'eu-west-1',
      // EKS Pod Identity
      AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://169.254.170.23/v1/credentials',
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: '/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token',
      // Azure Workload Identity
      AZURE_CLIENT_ID: '00000000-0000-0000-0000-00000000000a',
      AZURE_TENANT_ID: '00000000-0000-0000-0000-00000000000b',
      AZURE_FEDERATED_TOKEN_FILE: '/var/run/secrets/azure/tokens/azure-identity-token',
      AZURE_AUTHORITY_HOST: 'https://login.microsoftonline.com/',
      // GKE (Workload Identity needs none; a key or federation config file)
      GOOGLE_APPLICATION_CREDENTIALS: '/var/run/secrets/gcp/credentials.json',
      AWS_SECRET_ACCESS_KEY: 'static-secret',
    };
    const config = loadConfig([], {
      HTTPS_PROXY: 'http://proxy:3128', no_proxy: '.svc', SSL_CERT_FILE: '/etc/ca/ca.pem', ...cloud,
      PATH: '/bin', KUBERNETES_SERVICE_HOST: '10.0.0.1', IMAGESCAN_TRIVY_SERVER_TOKEN: 'tok', UNRELATED_SECRET: 'x', AWS_SOMETHING_ELSE: 'y', AZURE_USERNAME: 'u',
    });
    expect(config.trivyEnv).toEqual({ HTTPS_PROXY: 'http://proxy:3128', no_proxy: '.svc', SSL_CERT_FILE: '/etc/ca/ca.pem', ...cloud });
  });

  it('documents every cloud variable it passes in --help', () => {
    for (const name of Object.values(CLOUD_CREDENTIAL_ENV).flat()) expect(helpText()).toContain(name);
  });

  it('takes a CA for an https Trivy server, and refuses one without https', () => {
    const config = loadConfig(['--trivy-server=https://trivy.imagescan-system.svc:4954', '--trivy-server-ca=/etc/ca/ca.crt'], {});
    expect([config.trivyServer, config.trivyServerCa]).toEqual(['https://trivy.imagescan-system.svc:4954', '/etc/ca/ca.crt']);
    expect(() => loadConfig(['--trivy-server=http://trivy:4954'], { IMAGESCAN_TRIVY_SERVER_CA: '/etc/ca/ca.crt' })).toThrow(
      new ConfigError('invalid IMAGESCAN_TRIVY_SERVER_CA "/etc/ca/ca.crt": a CA needs an https --trivy-server'),
    );
    expect(() => loadConfig(['--trivy-server-ca=/etc/ca/ca.crt'], {})).toThrow(/a CA needs an https --trivy-server/);
  });
});

describe('memory of the Trivy children', () => {
  const GiB = 2 ** 30;
  const MiB = 2 ** 20;

  it("shares the container's limit, less the operator's 512Mi, among the scans that run at once", () => {
    expect(loadConfig([], {}, { memoryLimitBytes: 2 * GiB }).trivyMemoryLimitBytes).toBe(512 * MiB);
    expect(loadConfig(['--scan-concurrency=4'], {}, { memoryLimitBytes: 4 * GiB }).trivyMemoryLimitBytes).toBe(Math.floor((4 * GiB - 512 * MiB) / 5));
    // No container limit, or one too small to share: no GOMEMLIMIT.
    expect(loadConfig([], {}, {}).trivyMemoryLimitBytes).toBeUndefined();
    expect(loadConfig(['--scan-concurrency=16'], {}, { memoryLimitBytes: GiB }).trivyMemoryLimitBytes).toBeUndefined();
  });

  it('takes an explicit quantity, and 0 for none', () => {
    expect(loadConfig(['--trivy-memory-limit=1Gi'], {}, { memoryLimitBytes: 2 * GiB }).trivyMemoryLimitBytes).toBe(GiB);
    expect(loadConfig([], { IMAGESCAN_TRIVY_MEMORY_LIMIT: '500M' }).trivyMemoryLimitBytes).toBe(500e6);
    expect(loadConfig(['--trivy-memory-limit=0'], {}, { memoryLimitBytes: 2 * GiB }).trivyMemoryLimitBytes).toBeUndefined();
    expect(configError(() => loadConfig(['--trivy-memory-limit=1.5Gi'], {})).message).toBe('invalid --trivy-memory-limit "1.5Gi": expected a memory quantity like 768Mi or 2Gi (0: no limit)');
  });
});

describe('the result', () => {
  it('is deep-frozen', () => {
    const config = loadConfig(['--namespaces=a'], {});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.metrics)).toBe(true);
    expect(Object.isFrozen(config.kubeconfig)).toBe(true);
    expect(() => {
      (config as { scanConcurrency: number }).scanConcurrency = 9;
    }).toThrow(TypeError);
    expect(() => (config.namespaces as string[]).push('b')).toThrow(TypeError);
    expect(() => (config.severities as string[]).pop()).toThrow(TypeError);
  });
});

describe('--help', () => {
  const help = helpText();
  const flags = readmeFlags();

  it('reads the whole README table', () => {
    expect(flags.length).toBeGreaterThanOrEqual(24);
  });

  it.each(readmeFlags())('lists $flag of the README with its variable and default', ({ flag, defaultText }) => {
    const block = help.slice(help.indexOf(`  ${flag} `) === -1 ? help.indexOf(`  ${flag}\n`) : help.indexOf(`  ${flag} `));
    expect(block.length).toBeLessThan(help.length);
    const variable = `IMAGESCAN_${flag.slice(2).toUpperCase().replaceAll('-', '_')}`;
    const entry = block.split('\n').slice(0, 3).join('\n');
    expect(entry).toContain(`env ${variable}; default: `);
    // The design writes some defaults in backticks and adds remarks in parentheses.
    const core = defaultText.replaceAll('`', '').replace(/ \(.*\)$/, '');
    expect(entry).toContain(`default: ${core}`);
  });

  it.each(readmeFlags())('accepts $flag on the command line', ({ flag }) => {
    try {
      loadConfig([`${flag}=@@`], {});
    } catch (err) {
      expect((err as Error).message).toMatch(new RegExp(`^invalid ${flag} `));
    }
  });

  it('lists the extra flags too', () => {
    for (const flag of ['--rescan-jitter', '--trivy-db-refresh', '--trivy-java-db-repository', '--max-report-vulnerabilities', '--leader-election-namespace', '--leader-election-id', '--identity', '--help']) {
      expect(help).toContain(flag);
    }
    expect(help).toContain('IMAGESCAN_TRIVY_SERVER_TOKEN');
  });

  it('is recognised before anything else is validated', () => {
    expect(wantsHelp(['--scan-timeout=bad', '--help'])).toBe(true);
    expect(wantsHelp(['-h'])).toBe(true);
    expect(wantsHelp(['--', '--help'])).toBe(false);
    expect(wantsHelp(['--scan-timeout=1m'])).toBe(false);
  });
});

describe('parseDuration', () => {
  it('reads the units the flags accept', () => {
    expect([parseDuration('90s'), parseDuration('10m'), parseDuration('12h'), parseDuration('1h30m15s'), parseDuration('0s')]).toStrictEqual([
      90_000, 600_000, 43_200_000, 5_415_000, 0,
    ]);
  });
  it('throws a RangeError naming the text otherwise', () => {
    expect(() => parseDuration('12')).toThrow(RangeError);
    expect(() => parseDuration('ten minutes')).toThrow('invalid duration "ten minutes"');
  });
});

/** Runs configFromProcess in a child process, the way main.ts calls it. */
function runOperatorConfig(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = "import { configFromProcess } from './src/config.ts'; configFromProcess(process.argv.slice(1)); process.stdout.write('loaded\\n');";
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script, '--', ...args],
      { cwd: repoRoot, env: { PATH: process.env['PATH'], ...env } },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    );
  });
}

describe('configFromProcess', () => {
  it('exits 2 with exactly one line on stderr for a bad flag', async () => {
    const { code, stdout, stderr } = await runOperatorConfig(['--scan-timeout=10x']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe('imagescan-operator: invalid --scan-timeout "10x": expected a duration like 90s, 10m or 12h\n');
  });

  it('exits 2 for a bad environment variable too', async () => {
    const { code, stderr } = await runOperatorConfig([], { IMAGESCAN_RESCAN_SCHEDULE: 'every day' });
    expect(code).toBe(2);
    expect(stderr.split('\n')).toStrictEqual(['imagescan-operator: invalid IMAGESCAN_RESCAN_SCHEDULE "every day": expected a cron expression of 5 or 6 fields like "0 */12 * * *", got 2', '']);
  });

  it('prints the help and exits 0 on --help, even next to a bad flag', async () => {
    const { code, stdout, stderr } = await runOperatorConfig(['--scan-timeout=10x', '--help']);
    expect(code).toBe(0);
    expect(stdout).toBe(helpText());
    expect(stderr).toBe('');
  });

  it('returns the config for good flags', async () => {
    const { code, stdout } = await runOperatorConfig(['--scan-timeout=5m', '--no-leader-elect']);
    expect(code).toBe(0);
    expect(stdout).toBe('loaded\n');
  });
});

describe('--team-overrides', () => {
  it('reads container and repository rules, normalizing repositories as pods write them', () => {
    const config = loadConfig(['--team-overrides=container:istio-proxy=platform, container:linkerd-proxy=platform,repository:istio/proxyv2=mesh-team'], {});
    expect(config.teamOverrides).toStrictEqual([
      { kind: 'container', match: 'istio-proxy', team: 'platform' },
      { kind: 'container', match: 'linkerd-proxy', team: 'platform' },
      { kind: 'repository', match: 'docker.io/istio/proxyv2', team: 'mesh-team' },
    ]);
    expect(loadConfig([], { IMAGESCAN_TEAM_OVERRIDES: 'repository:ghcr.io/linkerd/proxy=platform' }).teamOverrides).toStrictEqual([
      { kind: 'repository', match: 'ghcr.io/linkerd/proxy', team: 'platform' },
    ]);
  });

  it.each([
    ['istio-proxy=platform', 'expected container:<name>=<team> or repository:<repository>=<team>'],
    ['pod:istio-proxy=platform', 'expected container:<name>=<team>'],
    ['container:istio-proxy=', 'team "" is not a label value'],
    ['container:istio-proxy=Platform Team', 'team "Platform Team" is not a label value'],
    ['container:Istio_Proxy=platform', '"Istio_Proxy" is not a container name'],
    ['repository:docker.io/istio/proxyv2:1.22=platform', 'without a tag or digest'],
    ['repository:Not A Repo=platform', 'repository:Not A Repo=platform'],
    ['container:istio-proxy=platform,container:istio-proxy=payments', 'container:istio-proxy is already given to team platform'],
  ])('refuses %j with one line naming the flag', (value, expected) => {
    const err = configError(() => loadConfig([`--team-overrides=${value}`], {}));
    expect(err.message).toContain(`invalid --team-overrides ${JSON.stringify(value)}: `);
    expect(err.message).toContain(expected);
    expect(err.message).not.toContain('\n');
  });

  it('stops the process with exit code 2 and that line', async () => {
    const { code, stdout, stderr } = await runOperatorConfig(['--team-overrides=sidecar=platform']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toMatch(/^imagescan-operator: invalid --team-overrides "sidecar=platform": "sidecar=platform": expected container:<name>=<team> or repository:<repository>=<team>, comma-separated\n$/);
  });
});
