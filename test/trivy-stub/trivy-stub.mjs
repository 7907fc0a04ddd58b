// A stand-in for the Trivy CLI, for tests, e2e and the demo. Plain ESM JavaScript, no dependencies,
// runs on Node 20 and 24. It accepts the flags of `trivy image` / `version` / `convert` / `sbom`
// (trivy-cli.md §2, docs/trivy-sbom-rescans.md), rejects unknown ones the way Trivy does, replays a
// real report chosen by image from a mapping file, and records every invocation (argv, env var NAMES,
// registries in DOCKER_CONFIG, whether it reached the registry) as JSON lines.
// See README.md in this folder for the environment variables and the mapping format.
import { spawn } from 'node:child_process';
import { appendFileSync, chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const STUB_VERSION = env.TRIVY_STUB_VERSION || '0.74.0';

// --- flag table ---------------------------------------------------------------------------------
// kind: 'bool' | 'string' | 'list' (comma-separated, repeatable). Names as in Trivy's CLI reference.
const GLOBAL_FLAGS = {
  cacert: 'string',
  'cache-dir': 'string',
  config: 'string',
  debug: 'bool',
  'generate-default-config': 'bool',
  insecure: 'bool',
  quiet: 'bool',
  timeout: 'string',
  version: 'bool',
  help: 'bool',
};
const GLOBAL_SHORT = { c: 'config', d: 'debug', q: 'quiet', v: 'version', h: 'help' };
const IMAGE_FLAGS = {
  format: 'string',
  output: 'string',
  'output-plugin-arg': 'string',
  template: 'string',
  scanners: 'list',
  severity: 'list',
  'ignore-unfixed': 'bool',
  'ignore-status': 'list',
  'ignore-policy': 'string',
  ignorefile: 'string',
  'exit-code': 'string',
  'exit-on-eol': 'string',
  'list-all-pkgs': 'bool',
  'show-suppressed': 'bool',
  'dependency-tree': 'bool',
  'image-src': 'list',
  platform: 'string',
  input: 'string',
  'max-image-size': 'string',
  'docker-host': 'string',
  'podman-host': 'string',
  'removed-pkgs': 'bool',
  'cache-backend': 'string',
  'cache-ttl': 'string',
  'redis-ca': 'string',
  'redis-cert': 'string',
  'redis-key': 'string',
  'redis-tls': 'bool',
  'skip-db-update': 'bool',
  'skip-update': 'bool',
  'skip-java-db-update': 'bool',
  'download-db-only': 'bool',
  'download-java-db-only': 'bool',
  'db-repository': 'list',
  'java-db-repository': 'list',
  'checks-bundle-repository': 'string',
  'skip-check-update': 'bool',
  'no-progress': 'bool',
  'offline-scan': 'bool',
  'skip-version-check': 'bool',
  'disable-telemetry': 'bool',
  'pkg-types': 'list',
  'pkg-relationships': 'list',
  parallel: 'string',
  'skip-dirs': 'list',
  'skip-files': 'list',
  'file-patterns': 'list',
  'detection-priority': 'string',
  distro: 'string',
  vex: 'list',
  'sbom-sources': 'list',
  'rekor-url': 'string',
  'include-dev-deps': 'bool',
  'license-full': 'bool',
  'license-confidence-level': 'string',
  'secret-config': 'string',
  server: 'string',
  token: 'string',
  'token-header': 'string',
  'custom-headers': 'list',
  username: 'list',
  password: 'list',
  'password-stdin': 'bool',
  'registry-token': 'string',
  cacert: 'string',
};
const IMAGE_SHORT = { f: 'format', o: 'output', s: 'severity', t: 'template' };
const VERSION_FLAGS = { format: 'string' };
const VERSION_SHORT = { f: 'format' };
// `trivy convert`: the report flag group plus --scanners (pkg/commands/app.go NewConvertCommand).
const CONVERT_FLAGS = {
  format: 'string',
  output: 'string',
  'output-plugin-arg': 'string',
  template: 'string',
  scanners: 'list',
  severity: 'list',
  ignorefile: 'string',
  'ignore-policy': 'string',
  'exit-code': 'string',
  'exit-on-eol': 'string',
  'list-all-pkgs': 'bool',
  'show-suppressed': 'bool',
  'dependency-tree': 'bool',
  report: 'string',
  compliance: 'string',
  'table-mode': 'list',
};
// `trivy sbom` (docs/guide/references/configuration/cli/trivy_sbom.md): no image source, platform or
// secret scanning; DB, client/server, report and vulnerability flags.
const SBOM_FLAGS = {
  ...CONVERT_FLAGS,
  'cache-backend': 'string',
  'cache-ttl': 'string',
  'redis-ca': 'string',
  'redis-cert': 'string',
  'redis-key': 'string',
  'redis-tls': 'bool',
  'custom-headers': 'list',
  'db-repository': 'list',
  'java-db-repository': 'list',
  'skip-db-update': 'bool',
  'skip-update': 'bool',
  'skip-java-db-update': 'bool',
  'download-db-only': 'bool',
  'download-java-db-only': 'bool',
  'detection-priority': 'string',
  'disable-telemetry': 'bool',
  'skip-version-check': 'bool',
  distro: 'string',
  'file-patterns': 'list',
  'ignore-status': 'list',
  'ignore-unfixed': 'bool',
  'ignored-licenses': 'list',
  'no-progress': 'bool',
  'offline-scan': 'bool',
  'pkg-relationships': 'list',
  'pkg-types': 'list',
  username: 'list',
  password: 'list',
  'password-stdin': 'bool',
  'registry-token': 'string',
  'rekor-url': 'string',
  'sbom-sources': 'list',
  server: 'string',
  token: 'string',
  'token-header': 'string',
  vex: 'list',
  'skip-vex-repo-update': 'bool',
  'vuln-severity-source': 'list',
};
const COMMAND_FLAGS = { image: [IMAGE_FLAGS, IMAGE_SHORT], version: [VERSION_FLAGS, VERSION_SHORT], convert: [CONVERT_FLAGS, IMAGE_SHORT], sbom: [SBOM_FLAGS, IMAGE_SHORT] };

const ALLOWED = {
  format: ['table', 'json', 'template', 'sarif', 'cyclonedx', 'spdx', 'spdx-json', 'github', 'cosign-vuln'],
  scanners: ['vuln', 'misconfig', 'secret', 'license'],
  severity: ['UNKNOWN', 'LOW', 'MEDIUM', 'HIGH', 'CRITICAL'],
  'image-src': ['docker', 'containerd', 'podman', 'remote'],
};

// --- logging --------------------------------------------------------------------------------------
function log(entry) {
  if (!env.TRIVY_STUB_LOG) return;
  appendFileSync(env.TRIVY_STUB_LOG, `${JSON.stringify({ ...entry, pid: process.pid, t: Date.now() })}\n`);
}

function stamp() {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

class Exit extends Error {
  constructor(code) {
    super(`exit ${code}`);
    this.code = code;
  }
}

function fatal(chain) {
  process.stderr.write(`${stamp()}\tFATAL\tFatal error\t${chain}\n`);
  throw new Exit(1);
}

function usageError(message, command) {
  // Cobra prints the error and the usage, then Trivy's main logs the FATAL line.
  process.stderr.write(`Error: ${message}\nUsage:\n  trivy ${command ?? '[global flags] command'} [flags] ${command === 'image' ? 'IMAGE_NAME' : ''}\n\n`);
  process.stderr.write(`Use "trivy ${command ?? ''} --help" for more information.\n\n`);
  fatal(message);
}

// --- argv -----------------------------------------------------------------------------------------
function parseBool(raw, name) {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(raw)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(raw)) return false;
  return usageError(`invalid argument "${raw}" for "--${name}" flag: strconv.ParseBool: parsing "${raw}": invalid syntax`);
}

function findCommand(args) {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') return undefined;
    if (!a.startsWith('-')) return { command: a, index: i };
    const name = a.startsWith('--') ? a.slice(2).split('=')[0] : GLOBAL_SHORT[a.slice(1, 2)];
    if (!a.includes('=') && GLOBAL_FLAGS[name] === 'string') i++;
  }
  return undefined;
}

function parseArgs(args, command, commandIndex) {
  const [commandFlags, commandShorts] = COMMAND_FLAGS[command] ?? COMMAND_FLAGS.image;
  const table = { ...GLOBAL_FLAGS, ...commandFlags };
  const shorts = { ...GLOBAL_SHORT, ...commandShorts };
  const flags = {};
  const positional = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      positional.push(...args.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      if (i !== commandIndex) positional.push(a);
      continue;
    }
    let name;
    let inline;
    if (a.startsWith('--')) {
      [name, inline] = a.slice(2).includes('=') ? [a.slice(2, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a.slice(2), undefined];
      if (!(name in table)) usageError(`unknown flag: --${name}`, command);
    } else {
      const letter = a.slice(1, 2);
      name = shorts[letter];
      if (!name) usageError(`unknown shorthand flag: '${letter}' in ${a}`, command);
      if (a.length > 2) inline = a.slice(2).replace(/^=/, '');
    }
    const kind = table[name];
    if (kind === 'bool') {
      flags[name] = inline === undefined ? true : parseBool(inline, name);
      continue;
    }
    let value = inline;
    if (value === undefined) {
      if (i + 1 >= args.length) usageError(`flag needs an argument: --${name}`, command);
      value = args[++i];
    }
    if (kind === 'list') flags[name] = [...(flags[name] ?? []), ...value.split(',').filter(Boolean)];
    else flags[name] = value;
  }
  return { flags, positional };
}

function validate(flags, command = 'image') {
  if (command === 'sbom') {
    for (const v of flags.scanners ?? []) {
      if (!['vuln', 'license'].includes(v)) fatal(`flag error: invalid flag: unknown scanner: ${v}`);
    }
  }
  for (const [name, allowed] of Object.entries(ALLOWED)) {
    const values = flags[name] === undefined ? [] : [].concat(flags[name]);
    for (const v of values) {
      if (!allowed.includes(v)) {
        const what = name === 'image-src' ? 'image source' : name === 'severity' ? 'severity' : name === 'scanners' ? 'scanner' : 'format';
        fatal(`flag error: invalid flag: unknown ${what}: ${v}`);
      }
    }
  }
  if (flags.timeout !== undefined && !/^(?:0|(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+)$/.test(flags.timeout)) {
    usageError(`invalid argument "${flags.timeout}" for "--timeout" flag: time: invalid duration "${flags.timeout}"`);
  }
  const backend = flags['cache-backend'];
  if (backend !== undefined && !['fs', 'memory'].includes(backend) && !/^rediss?:\/\//.test(backend)) {
    fatal(`flag error: cache flag error: unsupported cache backend: ${backend}`);
  }
  if (flags.platform !== undefined && !/^[a-z0-9]+\/[a-z0-9]+(?:\/[a-z0-9]+)?$/.test(flags.platform)) {
    fatal(`flag error: image flag error: invalid platform: ${flags.platform}`);
  }
  if (flags['download-db-only'] && (flags['skip-db-update'] || flags['skip-update'])) {
    fatal('flag error: db flag error: --skip-db-update and --download-db-only options can not be specified both');
  }
  if (flags['download-db-only'] && flags['download-java-db-only']) {
    fatal('flag error: db flag error: --download-db-only and --download-java-db-only options can not be specified both');
  }
}

// --- cache / DB -----------------------------------------------------------------------------------
function cacheDir(flags) {
  return flags['cache-dir'] || env.TRIVY_CACHE_DIR || path.join(env.XDG_CACHE_HOME || path.join(env.HOME || '/tmp', '.cache'), 'trivy');
}

function readMetadata(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function writeDb(dir, sub, mapping) {
  const db = mapping.db ?? {};
  const now = new Date();
  const configured = db.updatedAt ?? env.TRIVY_STUB_DB_UPDATED_AT;
  // 'now': every download is a new DB version (tests and the bench's compressed day of DB updates).
  const updatedAt = configured === 'now' ? now.toISOString() : configured ?? new Date(Math.floor(now.getTime() / 3_600_000) * 3_600_000).toISOString();
  mkdirSync(path.join(dir, sub), { recursive: true });
  writeFileSync(path.join(dir, sub, sub === 'db' ? 'trivy.db' : 'trivy-java.db'), 'stub database\n');
  writeFileSync(
    path.join(dir, sub, 'metadata.json'),
    JSON.stringify({ Version: sub === 'db' ? 2 : 1, NextUpdate: new Date(now.getTime() + 6 * 3_600_000).toISOString(), UpdatedAt: updatedAt, DownloadedAt: now.toISOString() }),
  );
}

// --- mapping --------------------------------------------------------------------------------------
function loadMapping() {
  const file = env.TRIVY_STUB_MAP || path.join(here, 'images.json');
  const raw = JSON.parse(readFileSync(file, 'utf8'));
  return { file, dir: path.dirname(file), entries: raw };
}

function splitTarget(target) {
  const at = target.indexOf('@');
  const repoPart = at >= 0 ? target.slice(0, at) : target;
  const digest = at >= 0 ? target.slice(at + 1) : undefined;
  // Strip a tag (a colon after the last slash).
  const slash = repoPart.lastIndexOf('/');
  const colon = repoPart.lastIndexOf(':');
  const repository = colon > slash ? repoPart.slice(0, colon) : repoPart;
  return { repository, digest };
}

function registryOf(repository) {
  const first = repository.split('/')[0];
  return repository.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost') ? first : 'docker.io';
}

function resolveEntry(mapping, target) {
  const { repository, digest } = splitTarget(target);
  const keys = [digest, target, digest ? `${repository}@${digest}` : undefined, repository, 'default'].filter(Boolean);
  for (const key of keys) {
    const found = mapping.entries[key];
    if (found !== undefined) return { key, entry: typeof found === 'string' ? { fixture: found } : found, repository, digest };
  }
  return { key: undefined, entry: undefined, repository, digest };
}

// --- credentials ----------------------------------------------------------------------------------
function normaliseRegistryKey(key) {
  const host = key.replace(/^https?:\/\//, '').split('/')[0];
  return ['index.docker.io', 'registry-1.docker.io', 'docker.io'].includes(host) ? 'docker.io' : host;
}

function dockerConfig() {
  const dir = env.DOCKER_CONFIG;
  if (!dir) return undefined;
  const file = path.join(dir, 'config.json');
  if (!existsSync(file)) return { auths: {}, registries: [], mode: undefined, dirMode: undefined };
  const parsed = JSON.parse(readFileSync(file, 'utf8'));
  const auths = parsed.auths ?? {};
  return {
    auths,
    registries: Object.keys(auths),
    otherKeys: Object.keys(parsed).filter((k) => k !== 'auths'),
    mode: (statSync(file).mode & 0o777).toString(8),
    dirMode: (statSync(dir).mode & 0o777).toString(8),
  };
}

function credentialsMatch(config, registry, required) {
  if (!config) return false;
  for (const [key, value] of Object.entries(config.auths)) {
    if (normaliseRegistryKey(key) !== normaliseRegistryKey(registry)) continue;
    let user = value.username;
    let pass = value.password;
    if (value.auth) {
      const decoded = Buffer.from(value.auth, 'base64').toString('utf8');
      const sep = decoded.indexOf(':');
      user = decoded.slice(0, sep);
      pass = decoded.slice(sep + 1);
    }
    if (user === required.username && pass === required.password) return true;
  }
  return false;
}

// --- report output --------------------------------------------------------------------------------
function openOutput(flags) {
  return flags.output ? openSync(flags.output, 'w') : 1;
}

function closeOutput(fd) {
  if (fd !== 1) closeSync(fd);
}

function writeFixture(file, flags) {
  const severities = flags.severity;
  const filterSeverity = severities && ALLOWED.severity.some((s) => !severities.includes(s));
  // Trivy lists packages unless --list-all-pkgs=false (the default is true since v0.52).
  const dropPackages = flags['list-all-pkgs'] === false && readFileSync(file, 'utf8').includes('"Packages"');
  if (!filterSeverity && !flags['ignore-unfixed'] && !dropPackages) {
    if (flags.output) {
      // copyFileSync keeps the fixture's read-only mode; Trivy's output is a normal private file.
      copyFileSync(file, flags.output);
      chmodSync(flags.output, 0o600);
    }
    else process.stdout.write(readFileSync(file));
    return;
  }
  writeReport(filterReport(JSON.parse(readFileSync(file, 'utf8')), flags), flags);
}

/** Applies --severity, --ignore-unfixed and --list-all-pkgs=false to a report, as Trivy does. */
function filterReport(doc, flags) {
  const severities = flags.severity;
  const filterSeverity = severities && ALLOWED.severity.some((s) => !severities.includes(s));
  for (const result of doc.Results ?? []) {
    if (flags['list-all-pkgs'] === false) delete result.Packages;
    if (!result.Vulnerabilities) continue;
    result.Vulnerabilities = result.Vulnerabilities.filter(
      (v) => (!filterSeverity || severities.includes(v.Severity)) && (!flags['ignore-unfixed'] || Boolean(v.FixedVersion)),
    );
    if (result.Vulnerabilities.length === 0) delete result.Vulnerabilities;
  }
  return doc;
}

function writeReport(doc, flags) {
  const fd = openOutput(flags);
  writeSync(fd, `${JSON.stringify(doc, null, 2)}\n`);
  closeOutput(fd);
}

const HUGE_SEVERITIES = ['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'UNKNOWN'];

/** Writes a syntactically real report of about `mb` MB, in chunks, and returns what it contains. */
function writeHuge(flags, target, mb) {
  const fd = openOutput(flags);
  const limit = mb * 1024 * 1024;
  const counts = { CRITICAL: 0, HIGH: 0, MEDIUM: 0, LOW: 0, UNKNOWN: 0, fixable: 0, total: 0 };
  const filler = 'A heap-based buffer overflow in the parser allows remote attackers to cause a denial of service. '.repeat(20);
  let bytes = 0;
  let chunk = '';
  const emit = (text) => {
    chunk += text;
    if (chunk.length >= 1 << 20) {
      bytes += writeSync(fd, chunk);
      chunk = '';
    }
  };
  emit(`{\n  "SchemaVersion": 2,\n  "Trivy": {"Version": "${STUB_VERSION}"},\n  "ArtifactName": ${JSON.stringify(target)},\n  "ArtifactType": "container_image",\n`);
  emit('  "Metadata": {"OS": {"Family": "debian", "Name": "12.1"}},\n  "Results": [{"Target": "huge (debian 12.1)", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": [\n');
  for (let i = 0; bytes + chunk.length < limit; i++) {
    const severity = HUGE_SEVERITIES[i % 5];
    const fixed = i % 3 === 0;
    counts[severity]++;
    counts.total++;
    if (fixed) counts.fixable++;
    const v = {
      VulnerabilityID: `CVE-2099-${100000 + i}`,
      PkgName: `libhuge${i % 97}`,
      InstalledVersion: `1.${i % 13}.0-1`,
      ...(fixed ? { FixedVersion: `1.${i % 13}.1-1` } : {}),
      Status: fixed ? 'fixed' : 'affected',
      Severity: severity,
      Title: `Synthetic vulnerability number ${i}`,
      Description: filler,
      PrimaryURL: `https://avd.aquasec.com/nvd/cve-2099-${100000 + i}`,
      CVSS: { nvd: { V3Vector: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H', V3Score: 9.8 } },
      References: Array.from({ length: 8 }, (_, k) => `https://example.com/advisories/${i}/${k}`),
    };
    emit(`${i === 0 ? '' : ',\n'}${JSON.stringify(v)}`);
  }
  emit('\n]}]\n}\n');
  bytes += writeSync(fd, chunk);
  closeOutput(fd);
  return { ...counts, bytes };
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- commands -------------------------------------------------------------------------------------
async function runVersion(flags) {
  const dir = cacheDir(flags);
  const db = readMetadata(path.join(dir, 'db', 'metadata.json'));
  const javaDb = readMetadata(path.join(dir, 'java-db', 'metadata.json'));
  if (flags.format === 'json') {
    const out = { Version: STUB_VERSION };
    if (db) out.VulnerabilityDB = db;
    if (javaDb) out.JavaDB = javaDb;
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } else {
    process.stdout.write(`Version: ${STUB_VERSION}\n${db ? `Vulnerability DB:\n  Version: ${db.Version}\n  UpdatedAt: ${db.UpdatedAt}\n` : ''}`);
  }
}

async function runDownload(flags, mapping) {
  const db = mapping.entries.db ?? {};
  const sleepMs = Number(db.sleepMs ?? env.TRIVY_STUB_DB_SLEEP_MS ?? 0);
  if (sleepMs > 0) await sleep(sleepMs);
  if (db.mode === 'fail') {
    fatal(
      db.fatal ??
        'init error: DB error: failed to download vulnerability DB: OCI artifact error: failed to download vulnerability DB: failed to download artifact from any source',
    );
  }
  writeDb(cacheDir(flags), flags['download-db-only'] ? 'db' : 'java-db', mapping.entries);
}

async function runImage(flags, positional, mapping, record) {
  if (flags['download-db-only'] || flags['download-java-db-only']) return runDownload(flags, mapping);
  if (positional.length !== 1 && !flags.input) usageError(`'trivy image' requires exactly 1 argument (received ${positional.length})`, 'image');
  const target = positional[0];
  // Every image scan by reference asks the registry (the stub has no Docker daemon to ask first).
  if (!flags.input) record.registryPull = true;
  const server = Boolean(flags.server);
  const dir = cacheDir(flags);
  const hasDb = existsSync(path.join(dir, 'db', 'metadata.json'));
  if (!server && !hasDb) {
    if (flags['skip-db-update'] || flags['skip-update']) fatal('run error: init error: DB error: database error: --skip-db-update cannot be specified on the first run');
    // Real Trivy would download the DB here; record it so tests can catch unwanted downloads.
    writeDb(dir, 'db', mapping.entries);
    record.dbDownloaded = true;
  }

  const { key, entry, repository, digest } = resolveEntry(mapping, target);
  record.target = target;
  record.mappingKey = key;
  if (!entry) fatal(`run error: image scan error: scan error: unable to initialize a scanner: unable to initialize an image scanner: 1 error occurred:\n\t* remote error: GET https://${registryOf(repository)}/v2/${repository.split('/').slice(1).join('/')}/manifests/${digest ?? 'latest'}: MANIFEST_UNKNOWN: manifest unknown; unknown tag=${digest ?? 'latest'}\n`);

  const sleepMs = Number(entry.sleepMs ?? env.TRIVY_STUB_SLEEP_MS ?? 0);
  if (sleepMs > 0) await sleep(sleepMs);

  if (entry.requireAuth && !credentialsMatch(record.dockerConfig, registryOf(repository), entry.requireAuth)) {
    const registry = registryOf(repository);
    fatal(
      `run error: image scan error: scan error: unable to initialize a scanner: unable to initialize an image scanner: 1 error occurred:\n\t* remote error: GET https://${registry}/oauth2/token?scope=repository%3A${encodeURIComponent(repository.split('/').slice(1).join('/'))}%3Apull&service=${registry}: UNAUTHORIZED: authentication required; [map[Action:pull Class: Name:${repository.split('/').slice(1).join('/')} Type:repository]]\n`,
    );
  }

  const mode = entry.mode ?? env.TRIVY_STUB_MODE ?? 'ok';
  record.mode = mode;
  switch (mode) {
    case 'ok': {
      const fixture = path.resolve(mapping.dir, entry.fixture ?? fatal('stub mapping error: entry has no fixture'));
      record.fixture = fixture;
      if (!server && flags['skip-java-db-update'] && !existsSync(path.join(dir, 'java-db', 'metadata.json'))) {
        const doc = JSON.parse(readFileSync(fixture, 'utf8'));
        if ((doc.Results ?? []).some((r) => r.Type === 'jar')) {
          fatal('run error: image scan error: scan error: scan failed: failed analysis: post analysis error: post analysis error: Unable to initialize the Java DB: Java DB update failed: --skip-java-db-update cannot be specified on the first run');
        }
      }
      writeFixture(fixture, flags);
      return;
    }
    case 'fail':
      return fatal(entry.fatal ?? env.TRIVY_STUB_FATAL ?? 'run error: image scan error: scan error: stub told to fail');
    case 'garbage': {
      const fd = openOutput(flags);
      writeSync(fd, 'this is not {"SchemaVersion": 2');
      closeOutput(fd);
      return;
    }
    case 'empty': {
      const fd = openOutput(flags);
      closeOutput(fd);
      return;
    }
    case 'nofile':
      return;
    case 'huge': {
      const huge = writeHuge(flags, target, Number(entry.hugeMb ?? env.TRIVY_STUB_HUGE_MB ?? 100));
      record.huge = huge;
      return;
    }
    case 'hang': {
      // A grandchild in our process group, as Trivy's own helpers would be: tests check it dies with us.
      const child = spawn('sleep', ['3600'], { stdio: ['ignore', 'inherit', 'inherit'] });
      log({ event: 'grandchild', grandchildPid: child.pid });
      if (entry.ignoreSigterm || env.TRIVY_STUB_IGNORE_SIGTERM === '1') process.on('SIGTERM', () => log({ event: 'sigterm-ignored' }));
      await new Promise(() => setInterval(() => {}, 60_000));
      return;
    }
    default:
      fatal(`stub mapping error: unknown mode ${mode}`);
  }
}

// --- convert and sbom ------------------------------------------------------------------------------
// What the stub models: `convert --format cyclonedx` writes a CycloneDX JSON with the report's root
// artifact, OS and packages (simplified components), and `sbom` reads it back without any registry
// access, naming OS results after the SBOM file as Trivy does. What it does not model: detection.
// Trivy matches the SBOM's packages against its DB again; the stub cannot, so `convert` also keeps
// the report's Results (vulnerabilities included) under the private key `x-trivy-stub`, which `sbom`
// replays through --severity / --ignore-unfixed, with the Trivy version the report claimed. A rescan
// with the stub therefore finds what the first scan found, never a new CVE of a newer DB, and what a
// stricter filter at the first scan dropped is not there to find again.
const STUB_KEY = 'x-trivy-stub';

function readJsonFile(file, what) {
  let text;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return fatal(`${what === 'sbom' ? 'run error: sbom scan error: scan error: scan failed: failed analysis: failed to open sbom file error' : 'file open error'}: open ${file}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    return what === 'sbom'
      ? fatal('run error: sbom scan error: scan error: scan failed: failed analysis: SBOM decode error: unknown scanning is not yet supported')
      : fatal(`json decode error: ${err.message}`);
  }
}

/** The stub understands only an --ignore-policy that drops every finding (what the operator passes). */
function ignoresEverything(policyFile) {
  const text = readFileSync(policyFile, 'utf8');
  if (/^\s*package\s+trivy\b/m.test(text) && /^\s*default\s+ignore\s*:?=\s*true\s*$/m.test(text)) return true;
  return fatal(`stub limitation: only a policy of "default ignore = true" is understood, not ${policyFile}`);
}

function cdxProperty(name, value) {
  return value === undefined || value === '' ? [] : [{ name: `aquasecurity:trivy:${name}`, value: String(value) }];
}

async function runConvert(flags, positional) {
  if (positional.length !== 1) usageError(`'trivy convert' requires exactly 1 argument (received ${positional.length})`, 'convert');
  const report = readJsonFile(positional[0], 'report');
  if (!report.ArtifactName && !report.ArtifactType) fatal('AWS and Kubernetes scanning reports are not yet supported');
  if (flags.format !== 'cyclonedx') fatal(`stub limitation: convert writes only --format cyclonedx, not ${flags.format ?? 'table'}`);
  const dropFindings = flags['ignore-policy'] !== undefined && ignoresEverything(flags['ignore-policy']);
  const os = report.Metadata?.OS;
  const components = [];
  const vulnerabilities = [];
  if (os?.Family && os.Family !== 'none') components.push({ 'bom-ref': 'os', type: 'operating-system', name: os.Family, version: os.Name });
  for (const result of report.Results ?? []) {
    for (const pkg of result.Packages ?? []) {
      components.push({
        'bom-ref': pkg.Identifier?.UID ?? pkg.ID ?? `${pkg.Name}@${pkg.Version}`,
        type: 'library',
        name: pkg.Name,
        version: pkg.Version,
        ...(pkg.Identifier?.PURL ? { purl: pkg.Identifier.PURL } : {}),
        properties: [...cdxProperty('PkgID', pkg.ID), ...cdxProperty('PkgType', result.Type), ...cdxProperty('FilePath', pkg.FilePath), ...cdxProperty('SrcName', pkg.SrcName), ...cdxProperty('SrcVersion', pkg.SrcVersion)],
      });
    }
    if (!dropFindings) for (const v of result.Vulnerabilities ?? []) vulnerabilities.push({ id: v.VulnerabilityID, affects: [{ ref: v.PkgIdentifier?.UID ?? v.PkgID ?? v.PkgName }] });
  }
  const bom = {
    $schema: 'http://cyclonedx.org/schema/bom-1.6.schema.json',
    bomFormat: 'CycloneDX',
    specVersion: '1.6',
    version: 1,
    metadata: {
      timestamp: new Date().toISOString(),
      tools: { components: [{ type: 'application', group: 'aquasecurity', name: 'trivy', version: STUB_VERSION }] },
      component: {
        'bom-ref': 'root',
        type: report.ArtifactType === 'container_image' ? 'container' : 'application',
        name: report.ArtifactName,
        properties: [...cdxProperty('SchemaVersion', report.SchemaVersion), ...cdxProperty('ImageID', report.Metadata?.ImageID), ...(report.Metadata?.RepoDigests ?? []).flatMap((d) => cdxProperty('RepoDigest', d))],
      },
    },
    components,
    ...(vulnerabilities.length > 0 ? { vulnerabilities } : {}),
    // The Trivy block too: a replayed report claims the version that recorded it, so must its rescan.
    [STUB_KEY]: { ...(report.Trivy ? { trivy: report.Trivy } : {}), results: (report.Results ?? []).map(({ Packages: _packages, ...rest }) => rest) },
  };
  const fd = openOutput(flags);
  writeSync(fd, `${JSON.stringify(bom, null, 2)}\n`);
  closeOutput(fd);
}

async function runSbom(flags, positional, mapping, record) {
  if (flags['download-db-only'] || flags['download-java-db-only']) return runDownload(flags, mapping);
  if (positional.length !== 1) usageError(`'trivy sbom' requires exactly 1 argument (received ${positional.length})`, 'sbom');
  const file = path.normalize(positional[0]);
  record.target = file;
  if (!flags.server && !existsSync(path.join(cacheDir(flags), 'db', 'metadata.json'))) {
    if (flags['skip-db-update'] || flags['skip-update']) fatal('run error: init error: DB error: database error: --skip-db-update cannot be specified on the first run');
    writeDb(cacheDir(flags), 'db', mapping.entries);
    record.dbDownloaded = true;
  }
  const sleepMs = Number(env.TRIVY_STUB_SBOM_SLEEP_MS ?? 0);
  if (sleepMs > 0) await sleep(sleepMs);
  const bom = readJsonFile(file, 'sbom');
  if (bom?.bomFormat !== 'CycloneDX' || !Array.isArray(bom[STUB_KEY]?.results)) {
    fatal('run error: sbom scan error: scan error: scan failed: failed analysis: SBOM decode error: unknown scanning is not yet supported');
  }
  const osComponent = (bom.components ?? []).find((c) => c.type === 'operating-system');
  const os = osComponent ? { Family: osComponent.name, Name: osComponent.version } : undefined;
  const results = bom[STUB_KEY].results.map((result) => (result.Class === 'os-pkgs' && os ? { ...result, Target: `${file} (${os.Family} ${os.Name})` } : result));
  const report = {
    SchemaVersion: 2,
    ...(bom[STUB_KEY].trivy ? { Trivy: bom[STUB_KEY].trivy } : {}),
    CreatedAt: new Date().toISOString(),
    ArtifactName: file,
    ArtifactType: 'cyclonedx',
    Metadata: { ...(os ? { OS: os } : {}) },
    ...(results.length > 0 ? { Results: results } : {}),
  };
  writeReport(filterReport(report, flags), flags);
}

async function main() {
  const args = process.argv.slice(2);
  const trivyEnv = Object.keys(env).filter((k) => (k.startsWith('TRIVY_') && !k.startsWith('TRIVY_STUB_')) || k === 'DOCKER_CONFIG');
  const config = dockerConfig();
  const record = { dockerConfig: config };
  log({
    event: 'start',
    argv: args,
    env: trivyEnv.sort(),
    envNames: Object.keys(env).filter((k) => !k.startsWith('TRIVY_STUB_')).sort(),
    // Not a secret, and its value is what matters: the Go runtime's soft memory limit.
    ...(env.GOMEMLIMIT === undefined ? {} : { gomemlimit: env.GOMEMLIMIT }),
    registries: config?.registries,
    dockerConfigKeys: config?.otherKeys,
    dockerConfigMode: config?.mode,
    dockerConfigDirMode: config?.dirMode,
  });
  let exitCode = 0;
  try {
    const found = findCommand(args);
    const command = found?.command === 'i' ? 'image' : found?.command === 'conv' ? 'convert' : found?.command;
    const { flags, positional } = parseArgs(args, command in COMMAND_FLAGS ? command : 'image', found?.index ?? -1);
    if (flags.version && !command) {
      await runVersion({ ...flags, format: 'table' });
    } else if (command === 'version') {
      await runVersion(flags);
    } else if (command === 'image') {
      validate(flags);
      await runImage(flags, positional, loadMapping(), record);
    } else if (command === 'convert') {
      validate(flags, 'convert');
      await runConvert(flags, positional);
    } else if (command === 'sbom') {
      validate(flags, 'sbom');
      await runSbom(flags, positional, loadMapping(), record);
    } else if (command === undefined) {
      usageError('a command is required');
    } else {
      usageError(`unknown command "${command}" for "trivy"`);
    }
  } catch (err) {
    if (!(err instanceof Exit)) {
      process.stderr.write(`${stamp()}\tFATAL\tFatal error\tstub internal error: ${err?.stack ?? err}\n`);
      exitCode = 1;
    } else {
      exitCode = err.code;
    }
  }
  const { dockerConfig: _omit, ...rest } = record;
  log({ event: 'end', exitCode, ...rest });
  process.exitCode = exitCode;
}

await main();
