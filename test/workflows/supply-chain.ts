// Pure checks of the supply chain the repository declares: GitHub workflows, renovate.json, the
// Dockerfile and the manifests' images. Each returns the problems it finds, as sentences naming the
// file and the offending text (an empty list means none). The pinning rule, also written in
// renovate.json's description:
// - a GitHub Action is pinned to a full 40-hex commit SHA, always (its release tag's commit can be
//   read from its repository; Renovate's github-actions pinDigests rule keeps it current);
// - a container image is pinned by @sha256 digest, or written by tag where a Renovate manager finds
//   it and a docker pinDigests rule pins it in Renovate's first update;
// - no `write-all`, the top level of a workflow grants no write, a job only the writes listed for it;
// - Trivy is never 0.69.4-0.69.6 (malicious releases, CVE-2026-33634), and Renovate never offers them.
import { parse } from 'yaml';

export const MALICIOUS_TRIVY = ['0.69.4', '0.69.5', '0.69.6'];

const SHA = /^[0-9a-f]{40}$/;
const DIGEST = /@sha256:[0-9a-f]{64}$/;

interface PackageRule {
  matchDatasources?: string[];
  matchManagers?: string[];
  matchPackageNames?: string[];
  matchDepTypes?: string[];
  matchUpdateTypes?: string[];
  pinDigests?: boolean;
  allowedVersions?: string;
  groupName?: string;
  enabled?: boolean;
}
interface CustomManager {
  customType?: string;
  managerFilePatterns?: string[];
  matchStrings?: string[];
  datasourceTemplate?: string;
  autoReplaceStringTemplate?: string;
}
export interface RenovateConfig {
  enabledManagers?: string[];
  ignorePaths?: string[];
  kubernetes?: { managerFilePatterns?: string[] };
  customManagers?: CustomManager[];
  packageRules?: PackageRule[];
}

/** Renovate's `/regex/` form of a file pattern (the only form this project uses). */
function filePattern(p: string): RegExp | undefined {
  const m = /^\/(.*)\/([a-z]*)$/.exec(p);
  return m ? new RegExp(m[1] ?? '', m[2]) : undefined;
}

/** A rule that applies to every package of its scope: no name, type or dep-type filter, not disabled. */
function unconditional(r: PackageRule): boolean {
  return r.enabled !== false && !r.matchPackageNames && !r.matchUpdateTypes && !r.matchDepTypes;
}

/** What renovate.json makes Renovate pin: which images it finds where, and whether it pins them. */
export class PinningRule {
  constructor(readonly config: RenovateConfig) {}

  private managerOn(name: string): boolean {
    return this.config.enabledManagers === undefined || this.config.enabledManagers.includes(name);
  }

  /** Renovate pins docker images by digest. */
  get dockerDigests(): boolean {
    return (this.config.packageRules ?? []).some((r) => unconditional(r) && r.pinDigests === true && (r.matchDatasources?.includes('docker') ?? false) && !r.matchManagers);
  }

  /** Renovate pins (and moves) GitHub Actions by commit SHA. */
  get actionDigests(): boolean {
    return this.managerOn('github-actions') && (this.config.packageRules ?? []).some((r) => unconditional(r) && r.pinDigests === true && (r.matchManagers?.includes('github-actions') ?? false));
  }

  /** Renovate's dockerfile manager reads this file and pins what it finds. */
  coversDockerfile(file: string): boolean {
    return this.dockerDigests && this.managerOn('dockerfile') && !(this.config.ignorePaths ?? []).includes(file);
  }

  /** The kubernetes manager reads this manifest and pins its images. */
  coversManifest(file: string): boolean {
    const patterns = (this.config.kubernetes?.managerFilePatterns ?? []).map(filePattern);
    return this.dockerDigests && this.managerOn('kubernetes') && patterns.some((p) => p?.test(file) === true);
  }

  /** A custom regex manager finds `line` in `file` as a docker image, and can write its digest. */
  coversLine(file: string, line: string): boolean {
    return (
      this.dockerDigests &&
      this.managerOn('custom.regex') &&
      (this.config.customManagers ?? []).some(
        (m) =>
          m.customType === 'regex' &&
          m.datasourceTemplate === 'docker' &&
          (m.autoReplaceStringTemplate ?? '').includes('newDigest') &&
          (m.managerFilePatterns ?? []).some((p) => filePattern(p)?.test(file) === true) &&
          (m.matchStrings ?? []).some((s) => {
            const match = new RegExp(s).exec(line);
            return match?.groups?.['depName'] !== undefined && match.groups['currentValue'] !== undefined;
          }),
      )
    );
  }

  /** Whether Renovate may propose this Trivy version (its allowedVersions regex, `!/…/` negated). */
  offersTrivy(version: string): boolean {
    return (this.config.packageRules ?? [])
      .filter((r) => r.matchPackageNames?.includes('aquasec/trivy'))
      .every((r) => {
        const m = /^(!?)\/(.*)\/([a-z]*)$/.exec(r.allowedVersions ?? '');
        if (!m) return true;
        const hit = new RegExp(m[2] ?? '', m[3]).test(version);
        return m[1] === '!' ? !hit : hit;
      });
  }
}

export function renovateProblems(config: RenovateConfig): string[] {
  const rule = new PinningRule(config);
  const problems: string[] = [];
  if (!rule.dockerDigests) problems.push('renovate.json: no packageRule pins docker images by digest (matchDatasources ["docker"], pinDigests true)');
  if (!rule.actionDigests) problems.push('renovate.json: no packageRule pins GitHub Actions by commit SHA (matchManagers ["github-actions"], pinDigests true)');
  for (const v of MALICIOUS_TRIVY) if (rule.offersTrivy(v)) problems.push(`renovate.json: would propose Trivy ${v} (a malicious release); add allowedVersions "!/^v?0\\.69\\.[4-6]$/" for aquasec/trivy`);
  if (!rule.offersTrivy('0.74.0')) problems.push('renovate.json: its Trivy rule refuses 0.74.0 as well');
  const npm = (config.packageRules ?? []).filter((r) => r.matchManagers?.includes('npm') && r.groupName !== undefined && r.enabled !== false);
  if (npm.length === 0) problems.push('renovate.json: no grouped npm updates: the npm dependencies would not move, or one pull request per package');
  return problems;
}

type Yaml = Record<string, unknown>;
const isMap = (v: unknown): v is Yaml => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every value of a `permissions` key anywhere in the document, with where it is. */
function permissionBlocks(node: unknown, where: string, out: { where: string; value: unknown }[] = []): { where: string; value: unknown }[] {
  if (Array.isArray(node)) node.forEach((n, i) => permissionBlocks(n, `${where}[${i}]`, out));
  else if (isMap(node))
    for (const [k, v] of Object.entries(node)) {
      if (k === 'permissions') out.push({ where: `${where}.permissions`, value: v });
      permissionBlocks(v, `${where}.${k}`, out);
    }
  return out;
}

/** `KEY: value` env entries (workflow, job or step level) whose name ends in _IMAGE. */
function imageEnv(doc: Yaml): { key: string; value: string }[] {
  const envs: unknown[] = [doc['env']];
  for (const job of Object.values(isMap(doc['jobs']) ? doc['jobs'] : {})) {
    if (!isMap(job)) continue;
    envs.push(job['env']);
    for (const step of Array.isArray(job['steps']) ? job['steps'] : []) if (isMap(step)) envs.push(step['env']);
  }
  return envs.flatMap((e) => (isMap(e) ? Object.entries(e) : [])).flatMap(([key, value]) => (key.endsWith('_IMAGE') && typeof value === 'string' ? [{ key, value }] : []));
}

/**
 * Problems of one workflow. `file` is its repository path (.github/workflows/x.yml); `allowedWrites`
 * maps each job to the permissions it may write (a job not listed may write none).
 */
export function workflowProblems(file: string, text: string, rule: PinningRule, allowedWrites: Record<string, string[]> = {}): string[] {
  const problems: string[] = [];
  let doc: Yaml;
  try {
    const parsed: unknown = parse(text);
    if (!isMap(parsed)) return [`${file}: not a workflow (no mapping at the top)`];
    doc = parsed;
  } catch (err) {
    return [`${file}: not YAML: ${(err as Error).message.split('\n')[0] ?? ''}`];
  }

  for (const { where, value } of permissionBlocks(doc, '')) {
    if (value === 'write-all') problems.push(`${file}: ${where.slice(1)} is write-all`);
  }
  const top = doc['permissions'];
  if (top === undefined) problems.push(`${file}: no top-level permissions (set {} or contents: read; jobs add what they need)`);
  else if (isMap(top)) {
    for (const [scope, level] of Object.entries(top)) if (level === 'write') problems.push(`${file}: top-level permissions write ${scope} for every job`);
  } else if (top !== 'read-all' && top !== 'write-all') problems.push(`${file}: top-level permissions ${JSON.stringify(top)} is not a mapping`);

  const jobs = isMap(doc['jobs']) ? doc['jobs'] : {};
  const uses: string[] = [];
  for (const [name, job] of Object.entries(jobs)) {
    if (!isMap(job)) continue;
    const perms = job['permissions'];
    if (isMap(perms)) {
      const allowed = allowedWrites[name] ?? [];
      for (const [scope, level] of Object.entries(perms)) {
        if (level === 'write' && !allowed.includes(scope)) problems.push(`${file}: job ${name} writes ${scope}, which is not in its list (${allowed.join(', ') || 'none'})`);
      }
    }
    if (typeof job['uses'] === 'string') uses.push(job['uses']);
    for (const step of Array.isArray(job['steps']) ? job['steps'] : []) if (isMap(step) && typeof step['uses'] === 'string') uses.push(step['uses']);
    const images = [job['container'], ...Object.values(isMap(job['services']) ? job['services'] : {})].map((c) => (isMap(c) ? c['image'] : c)).filter((i): i is string => typeof i === 'string');
    for (const image of images) if (!DIGEST.test(image) && !rule.dockerDigests) problems.push(`${file}: job ${name} runs ${image} by tag, and no Renovate rule pins it`);
  }
  for (const u of uses) {
    if (u.startsWith('./')) continue;
    if (u.startsWith('docker://')) {
      if (!DIGEST.test(u)) problems.push(`${file}: ${u} is not pinned by digest`);
      continue;
    }
    const [action, ref] = u.split('@');
    if (!/^[\w.-]+\/[\w./-]+$/.test(action ?? '') || !SHA.test(ref ?? '')) problems.push(`${file}: uses ${u}: an action must be pinned to a full 40-hex commit SHA`);
  }
  for (const { key, value } of imageEnv(doc)) {
    if (DIGEST.test(value) || rule.coversLine(file, `${key}: ${value}`)) continue;
    problems.push(`${file}: ${key}: ${value} is neither pinned by digest nor found by a Renovate manager that pins it`);
  }
  return problems.concat(trivyVersionProblems(file, text));
}

/** Problems of the Dockerfile: every base image (FROM, COPY --from, the syntax directive) pinned or covered. */
export function dockerfileProblems(file: string, text: string, rule: PinningRule): string[] {
  const problems: string[] = [];
  const stages = new Set<string>();
  const refs: string[] = [];
  const syntax = /^#\s*syntax=(\S+)/m.exec(text)?.[1];
  if (syntax !== undefined) refs.push(syntax);
  for (const line of text.split('\n')) {
    const from = /^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) {
      refs.push(from[1] ?? '');
      if (from[2] !== undefined) stages.add(from[2].toLowerCase());
    }
    const copy = /^COPY\b.*--from=(\S+)/i.exec(line)?.[1];
    if (copy !== undefined && !stages.has(copy.toLowerCase()) && !/^\d+$/.test(copy)) refs.push(copy);
  }
  if (refs.length === 0) problems.push(`${file}: no FROM line`);
  for (const ref of refs) {
    if (ref === 'scratch' || stages.has(ref.toLowerCase())) continue;
    if (ref.includes('$')) problems.push(`${file}: FROM ${ref} names its image through an ARG, which Renovate cannot pin: write the image out`);
    else if (!DIGEST.test(ref) && !rule.coversDockerfile(file)) problems.push(`${file}: ${ref} is neither pinned by digest nor covered by a Renovate docker pinDigests rule`);
  }
  return problems.concat(trivyVersionProblems(file, text));
}

/** Problems of a Kubernetes manifest's images (`ownImages` are built by this repository, set by kustomize). */
export function manifestImageProblems(file: string, text: string, rule: PinningRule, ownImages: string[]): string[] {
  const problems: string[] = [];
  for (const m of text.matchAll(/^\s*(?:-\s+)?image:\s*["']?([^\s"'#]+)/gm)) {
    const image = m[1] ?? '';
    if (ownImages.includes(image.replace(/[:@].*$/, '')) || DIGEST.test(image) || rule.coversManifest(file)) continue;
    problems.push(`${file}: image ${image} is neither pinned by digest nor covered by Renovate's kubernetes manager`);
  }
  return problems.concat(trivyVersionProblems(file, text));
}

/** Every Trivy version a text pins (image tags, release downloads, *TRIVY_VERSION settings) that is a malicious one. */
export function trivyVersionProblems(file: string, text: string): string[] {
  const patterns = [
    /aquasec\/trivy:v?(\d+\.\d+\.\d+)/g,
    /aquasecurity\/trivy(?:-action)?@v?(\d+\.\d+\.\d+)/g,
    /trivy\/releases\/download\/v?(\d+\.\d+\.\d+)/g,
    /TRIVY_VERSION["']?\s*[:=]\s*["']?v?(\d+\.\d+\.\d+)/gi,
    /trivy-version["']?\s*:\s*["']?v?(\d+\.\d+\.\d+)/gi,
  ];
  return patterns
    .flatMap((p) => [...text.matchAll(p)].map((m) => m[1] ?? ''))
    .filter((v) => MALICIOUS_TRIVY.includes(v))
    .map((v) => `${file}: Trivy ${v} is one of the malicious releases 0.69.4-0.69.6 (CVE-2026-33634)`);
}
