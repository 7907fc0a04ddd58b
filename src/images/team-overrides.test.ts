import { describe, expect, it } from 'vitest';
import { overriddenTeam, parseTeamOverrides } from './team-overrides.js';

describe('parseTeamOverrides', () => {
  it('reads rules in order, skips empty parts and repeats, and normalizes repositories', () => {
    expect(parseTeamOverrides(' container:linkerd-proxy=platform,,repository:gcr.io/istio-release/proxyv2=mesh,container:linkerd-proxy=platform ')).toEqual([
      { kind: 'container', match: 'linkerd-proxy', team: 'platform' },
      { kind: 'repository', match: 'gcr.io/istio-release/proxyv2', team: 'mesh' },
    ]);
    expect(parseTeamOverrides('repository:nginx=web')).toEqual([{ kind: 'repository', match: 'docker.io/library/nginx', team: 'web' }]);
    expect(parseTeamOverrides('')).toEqual([]);
  });

  it('names the bad rule', () => {
    expect(() => parseTeamOverrides('container:ok=a,container=x')).toThrow(/^"container=x": expected container:<name>=<team>/);
    expect(() => parseTeamOverrides('repository:nginx@sha256:' + 'a'.repeat(64) + '=web')).toThrow(/without a tag or digest/);
    expect(() => parseTeamOverrides('repository:nginx=web,repository:docker.io/library/nginx=shop')).toThrow(/repository:docker.io\/library\/nginx is already given to team web/);
  });
});

describe('overriddenTeam', () => {
  const rules = parseTeamOverrides('container:istio-proxy=platform,container:log-shipper=observability,repository:docker.io/istio/proxyv2=mesh');

  it('prefers the repository rule, then the first container rule listed', () => {
    expect(overriddenTeam(rules, { repository: 'docker.io/istio/proxyv2', containers: ['istio-proxy'] })).toBe('mesh');
    expect(overriddenTeam(rules, { repository: 'example.com/proxy', containers: ['log-shipper', 'istio-proxy'] })).toBe('platform');
    expect(overriddenTeam(rules, { repository: 'example.com/shipper', containers: ['log-shipper'] })).toBe('observability');
  });

  it('gives no team when no rule applies, and reads no container when there are no rules', () => {
    expect(overriddenTeam(rules, { repository: 'docker.io/library/nginx', containers: ['app'] })).toBeUndefined();
    const untouched: Iterable<string> = {
      [Symbol.iterator]: () => {
        throw new Error('containers were read');
      },
    };
    expect(overriddenTeam([], { repository: 'docker.io/library/nginx', containers: untouched })).toBeUndefined();
  });
});
