// How long the pod informer's transform (toPodEntry) takes for the bench's 10,000 pods, as they come
// from a list page: each run slims fresh copies parsed from the same JSON. A script that prints figures.
//   npx tsx bench/slim-pods.ts [pods]        # default 10,000 pods, 500 namespaces, 1,000 digests
import { seededRandom, startFakeApiServer } from '../e2e/fake-apiserver/index.js';
import { toPodEntry } from '../src/kube/cluster-objects.js';
import { planCluster } from './cluster-model.js';

const pods = Number(process.argv[2] ?? 10_000);
const plan = planCluster({ pods, namespaces: Math.max(1, Math.round(pods / 20)), digests: Math.max(1, Math.round(pods / 10)), teams: 50, nodes: 20 }, seededRandom(1));
const api = await startFakeApiServer({});
const seeded: unknown[] = [];
for (const w of plan.workloads) {
  const seed = { namespace: w.namespace, name: w.name, containers: w.containers, replicas: w.replicas, nodes: w.nodes };
  seeded.push(...(w.kind === 'Deployment' ? api.seed.deployment(seed) : api.seed.podSet('StatefulSet', seed)).pods);
}
await api.stop();
const text = JSON.stringify(seeded);

const RUNS = 12;
const times: number[] = [];
let slimmed = 0;
for (let run = 0; run < RUNS; run++) {
  const items = JSON.parse(text) as unknown[];
  const start = process.hrtime.bigint();
  for (const raw of items) if (toPodEntry(raw) !== undefined) slimmed++;
  times.push(Number(process.hrtime.bigint() - start) / 1e6);
}
times.sort((a, b) => a - b);
const median = times[RUNS / 2] ?? 0;
process.stdout.write(
  `toPodEntry over ${seeded.length} pods (${plan.workloads.length} workloads, ${slimmed / RUNS} slimmed), ${RUNS} runs: median ${median.toFixed(1)} ms ` +
    `(${((median * 1000) / seeded.length).toFixed(1)} µs per pod), fastest ${(times[0] ?? 0).toFixed(1)} ms, slowest ${(times[RUNS - 1] ?? 0).toFixed(1)} ms\n`,
);
