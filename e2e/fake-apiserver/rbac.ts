// Optional RBAC enforcement from Role/ClusterRole/RoleBinding/ClusterRoleBinding objects (e.g. the
// rendered manifests/), with a record of which permission each allowed request used, so a suite can
// prove least privilege both ways: nothing denied, nothing granted that was never needed.
import type { KubeObject, Verb } from './types.js';
import { isRecord } from './types.js';

export interface RbacAttributes {
  verb: Verb;
  apiGroup: string;
  resource: string;
  subresource: string | undefined;
  namespace: string | undefined;
  name: string | undefined;
}

interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames: string[];
  /** Paths like `/metrics`; a trailing `*` matches any rest, as the real RBAC does. */
  nonResourceURLs: string[];
}

interface Grant {
  /** `ClusterRole/name` or `Role/ns/name`. */
  role: string;
  /** `ClusterRoleBinding/name` or `RoleBinding/ns/name`. */
  binding: string;
  /** Namespace the grant is limited to; undefined = cluster-wide (ClusterRoleBinding). */
  namespace: string | undefined;
  rules: PolicyRule[];
  subjects: { kind: string; name: string; namespace?: string }[];
}

/** One permission (role rule × apiGroup × resource × verb) and how many requests it allowed. */
export interface PermissionUsage {
  role: string;
  binding: string;
  ruleIndex: number;
  apiGroup: string;
  resource: string;
  verb: string;
  resourceNames: string[];
  count: number;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function rulesOf(obj: KubeObject): PolicyRule[] {
  return (Array.isArray(obj.rules) ? obj.rules : []).filter(isRecord).map((r) => ({
    apiGroups: strings(r.apiGroups),
    resources: strings(r.resources),
    verbs: strings(r.verbs),
    resourceNames: strings(r.resourceNames),
    nonResourceURLs: strings(r.nonResourceURLs),
  }));
}

function resourceMatches(ruleResource: string, combined: string, subresource: string | undefined): boolean {
  if (ruleResource === '*' || ruleResource === combined) return true;
  return subresource !== undefined && ruleResource === `*/${subresource}`;
}

function ruleAllows(rule: PolicyRule, a: RbacAttributes): boolean {
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  if (!rule.verbs.some((v) => v === '*' || v === a.verb)) return false;
  if (!rule.apiGroups.some((g) => g === '*' || g === a.apiGroup)) return false;
  if (!rule.resources.some((r) => resourceMatches(r, combined, a.subresource))) return false;
  if (rule.resourceNames.length > 0 && (a.name === undefined || !rule.resourceNames.includes(a.name))) return false;
  return true;
}

function nonResourceRuleAllows(rule: PolicyRule, path: string, verb: string): boolean {
  if (!rule.verbs.some((v) => v === '*' || v === verb)) return false;
  return rule.nonResourceURLs.some((u) => u === path || (u.endsWith('*') && path.startsWith(u.slice(0, -1))));
}

/** The user name and groups an identity has, as the real authenticator reports service accounts. */
export function groupsOf(user: string): string[] {
  const m = /^system:serviceaccount:([^:]+):[^:]+$/.exec(user);
  const groups = ['system:authenticated'];
  if (m) groups.push('system:serviceaccounts', `system:serviceaccounts:${m[1] ?? ''}`);
  return groups;
}

function subjectMatches(subject: { kind: string; name: string; namespace?: string }, user: string, groups: string[]): boolean {
  if (subject.kind === 'User') return subject.name === user;
  if (subject.kind === 'Group') return groups.includes(subject.name);
  if (subject.kind === 'ServiceAccount') return user === `system:serviceaccount:${subject.namespace ?? ''}:${subject.name}`;
  return false;
}

/** Evaluates RBAC objects like the real authorizer (no aggregation rules). */
export class RbacAuthorizer {
  private readonly grants: Grant[] = [];
  private readonly usage = new Map<string, PermissionUsage>();

  constructor(objects: KubeObject[]) {
    const roles = new Map<string, PolicyRule[]>();
    for (const o of objects) {
      if (o.kind === 'ClusterRole') roles.set(`ClusterRole/${o.metadata?.name ?? ''}`, rulesOf(o));
      if (o.kind === 'Role') roles.set(`Role/${o.metadata?.namespace ?? 'default'}/${o.metadata?.name ?? ''}`, rulesOf(o));
    }
    for (const o of objects) {
      if (o.kind !== 'ClusterRoleBinding' && o.kind !== 'RoleBinding') continue;
      const ref = isRecord(o.roleRef) ? o.roleRef : {};
      const namespace = o.kind === 'RoleBinding' ? (o.metadata?.namespace ?? 'default') : undefined;
      const role = ref.kind === 'ClusterRole' ? `ClusterRole/${String(ref.name)}` : `Role/${namespace ?? ''}/${String(ref.name)}`;
      const subjects = (Array.isArray(o.subjects) ? o.subjects : []).filter(isRecord).map((s) => {
        const subject: { kind: string; name: string; namespace?: string } = { kind: String(s.kind), name: String(s.name) };
        if (typeof s.namespace === 'string') subject.namespace = s.namespace;
        return subject;
      });
      const binding = o.kind === 'RoleBinding' ? `RoleBinding/${namespace ?? ''}/${o.metadata?.name ?? ''}` : `ClusterRoleBinding/${o.metadata?.name ?? ''}`;
      this.grants.push({ role, binding, namespace, rules: roles.get(role) ?? [], subjects });
    }
    for (const g of this.grants) {
      g.rules.forEach((rule, ruleIndex) => {
        for (const apiGroup of rule.apiGroups) {
          for (const resource of rule.resources) {
            for (const verb of rule.verbs) {
              const key = `${g.binding}|${ruleIndex}|${apiGroup}|${resource}|${verb}`;
              this.usage.set(key, { role: g.role, binding: g.binding, ruleIndex, apiGroup, resource, verb, resourceNames: rule.resourceNames, count: 0 });
            }
          }
        }
      });
    }
  }

  /**
   * Whether `user` may do this; every matching permission's use count goes up when allowed. `groups`
   * default to what the fake's authenticator gives the user (a SubjectAccessReview names its own).
   */
  allows(user: string, a: RbacAttributes, groups: string[] = groupsOf(user)): boolean {
    let allowed = false;
    for (const g of this.grants) {
      if (!g.subjects.some((s) => subjectMatches(s, user, groups))) continue;
      if (g.namespace !== undefined && g.namespace !== a.namespace) continue;
      g.rules.forEach((rule, ruleIndex) => {
        if (!ruleAllows(rule, a)) return;
        allowed = true;
        const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
        for (const apiGroup of [a.apiGroup, '*']) {
          for (const resource of [combined, '*', a.subresource ? `*/${a.subresource}` : '']) {
            for (const verb of [a.verb, '*']) {
              const u = this.usage.get(`${g.binding}|${ruleIndex}|${apiGroup}|${resource}|${verb}`);
              if (u) u.count += 1;
            }
          }
        }
      });
    }
    return allowed;
  }

  /** Whether `user` (in `groups`) may `verb` the non-resource URL `path`: only ClusterRoleBindings grant these. */
  allowsNonResource(user: string, groups: string[], path: string, verb: string): boolean {
    return this.grants.some(
      (g) => g.namespace === undefined && g.subjects.some((s) => subjectMatches(s, user, groups)) && g.rules.some((rule) => nonResourceRuleAllows(rule, path, verb)),
    );
  }

  /** Every granted permission with how often it was used since start. */
  report(): PermissionUsage[] {
    return [...this.usage.values()].map((u) => ({ ...u }));
  }
}

/** apiserver's forbidden message: `pods is forbidden: User "u" cannot list resource "pods" in API group "" at the cluster scope`. */
export function forbiddenMessage(user: string, a: RbacAttributes): string {
  const combined = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const qualified = a.apiGroup === '' ? a.resource : `${a.resource}.${a.apiGroup}`;
  const named = a.name !== undefined ? `${qualified} "${a.name}"` : qualified;
  const scope = a.namespace !== undefined ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
  return `${named} is forbidden: User "${user}" cannot ${a.verb} resource "${combined}" in API group "${a.apiGroup}" ${scope}`;
}
