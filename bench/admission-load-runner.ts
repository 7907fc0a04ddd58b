// Starts the admission load (admission-worker.ts) in a worker thread and resolves with its result.
import { Worker } from 'node:worker_threads';
import type { AdmissionLoadResult } from './admission-load.js';
import type { ReviewInputs } from './admission-reviews.js';

export interface AdmissionWorkerData {
  url: string;
  caPem: string;
  ratePerSecond: number;
  seconds: number;
  timeoutMs: number;
  reviews: ReviewInputs;
  seed: number;
  run: number;
}

export interface AdmissionLoadRun {
  result: Promise<AdmissionLoadResult>;
  /** Stops the worker (on an early exit of the benchmark). */
  stop(): Promise<void>;
}

export function runAdmissionLoadInWorker(data: AdmissionWorkerData): AdmissionLoadRun {
  const worker = new Worker(new URL('./admission-worker.ts', import.meta.url), { workerData: data });
  const result = new Promise<AdmissionLoadResult>((resolve, reject) => {
    worker.once('message', (message: AdmissionLoadResult) => resolve(message));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the admission load worker exited (${code}) without a result`)));
  });
  // A run stopped early is not waited for; its rejection is not an error of the benchmark.
  void result.catch(() => undefined);
  return {
    result,
    stop: async () => {
      await worker.terminate();
    },
  };
}
