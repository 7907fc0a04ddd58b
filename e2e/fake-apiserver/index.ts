// Public API of the fake API server, for e2e suites, demo and benchmark scripts.
export { startFakeApiServer, parseSeedText, seedList } from './server.js';
export type { FakeApiServer, FakeApiServerOptions, ObjectAccess, RestartOptions } from './server.js';
export type { FaultConfig, FaultStats } from './faults.js';
export { seededRandom } from './faults.js';
export type { RequestRecord, RequestFilter } from './request-log.js';
export { WRITE_VERBS, isWrite, rbacAttributes } from './request-log.js';
export type { Seeder, SeededWorkload } from './seeder.js';
export type { ContainerSeed, PodSeed, RegistryAuth, WorkloadSeed } from './seed.js';
export { digestFor, normalizeImage, buildPod, buildNamespace, buildNode, buildDockerConfigJsonSecret, buildDockerCfgSecret, buildServiceAccount } from './seed.js';
export type { KubeObject, Verb } from './types.js';
export type { PermissionUsage } from './rbac.js';
