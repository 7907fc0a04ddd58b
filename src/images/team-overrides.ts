// Images that belong to another team than the workload that runs them: sidecars a mesh injects
// (istio-proxy, linkerd-proxy) are the platform team's, whichever application pod they sit in.
// Written as --team-overrides=container:istio-proxy=platform,repository:docker.io/istio/proxyv2=platform.
import { ImageReferenceError, parseImageReference } from './image-reference.js';
import { isLabelValue } from './team.js';

/** One rule: a container name or an image repository, and the team its images belong to. */
export interface TeamOverride {
  kind: 'container' | 'repository';
  /** A container name, or a normalized repository (docker.io/istio/proxyv2). */
  match: string;
  team: string;
}

/** A container name as Kubernetes allows it (a DNS-1123 label). */
const CONTAINER_NAME = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;

const SYNTAX = 'expected container:<name>=<team> or repository:<repository>=<team>, comma-separated';

/**
 * Parses the rules. Throws RangeError naming the offending rule: a malformed rule, a team that is not
 * a label value, a repository with a tag or digest, or the same container or repository given two teams.
 */
export function parseTeamOverrides(text: string): TeamOverride[] {
  const rules: TeamOverride[] = [];
  const seen = new Map<string, string>();
  for (const part of text.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    const match = /^(container|repository):([^=]+)=(.*)$/.exec(part);
    const [, kind, subject = '', team = ''] = match ?? [];
    if (kind !== 'container' && kind !== 'repository') throw new RangeError(`${JSON.stringify(part)}: ${SYNTAX}`);
    if (!isLabelValue(team)) throw new RangeError(`${JSON.stringify(part)}: team ${JSON.stringify(team)} is not a label value (letters, digits, '-', '_', '.', at most 63)`);
    const normalized = kind === 'container' ? containerName(part, subject.trim()) : repository(part, subject.trim());
    const key = `${kind}:${normalized}`;
    const earlier = seen.get(key);
    if (earlier !== undefined && earlier !== team) throw new RangeError(`${JSON.stringify(part)}: ${key} is already given to team ${earlier}`);
    if (earlier === undefined) rules.push({ kind, match: normalized, team });
    seen.set(key, team);
  }
  return rules;
}

function containerName(part: string, name: string): string {
  if (!CONTAINER_NAME.test(name)) throw new RangeError(`${JSON.stringify(part)}: ${JSON.stringify(name)} is not a container name`);
  return name;
}

function repository(part: string, text: string): string {
  let parsed;
  try {
    parsed = parseImageReference(text);
  } catch (err) {
    if (err instanceof ImageReferenceError) throw new RangeError(`${JSON.stringify(part)}: ${err.problem}`);
    throw err;
  }
  if (parsed.tag !== undefined || parsed.digest !== undefined) throw new RangeError(`${JSON.stringify(part)}: give the repository without a tag or digest`);
  return parsed.repository;
}

/**
 * The team an override gives an image, or undefined when none applies. A report is one digest in one
 * namespace, so it has one team: a repository rule wins (it names the image itself), then the first
 * container rule, in the order given, that names a container running the digest in that namespace.
 */
export function overriddenTeam(rules: readonly TeamOverride[], image: { repository: string; containers: Iterable<string> }): string | undefined {
  if (rules.length === 0) return undefined;
  const byRepository = rules.find((r) => r.kind === 'repository' && r.match === image.repository);
  if (byRepository !== undefined) return byRepository.team;
  const containers = new Set(image.containers);
  return rules.find((r) => r.kind === 'container' && containers.has(r.match))?.team;
}
