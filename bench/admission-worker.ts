// Runs the admission load in a worker thread: the benchmark's main thread also serves the fake API
// server, which is busiest exactly while the operator rescans, and the load's timers and latency
// clock must not wait for it. Start with runAdmissionLoadInWorker (admission-load-runner.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { seededRandom } from '../e2e/fake-apiserver/faults.js';
import { runAdmissionLoad } from './admission-load.js';
import { admissionReviews } from './admission-reviews.js';
import type { AdmissionWorkerData } from './admission-load-runner.js';

const data = workerData as AdmissionWorkerData;
const reviews = admissionReviews(data.reviews, seededRandom(data.seed), data.run);
const result = await runAdmissionLoad({
  url: data.url,
  caPem: data.caPem,
  ratePerSecond: data.ratePerSecond,
  seconds: data.seconds,
  timeoutMs: data.timeoutMs,
  next: () => reviews.next().value as { uid: string; body: string },
});
parentPort?.postMessage(result);
