// What the operator keeps in memory of each watched object: only the fields it reads. At 10,000 pods
// the full objects (managed fields, env, volumes, probes...) would dominate the heap.
import type { V1LocalObjectReference, V1OwnerReference, V1Pod } from '@kubernetes/client-node';
import { resolveContainerImage } from '../images/image-reference.js';
import type { ResolvedImage } from '../images/image-reference.js';
import { inspectPodImages, runsImages } from '../images/pod-images.js';
import type { InvalidContainerImage, PodImage } from '../images/pod-images.js';
import { countBySeverity } from '../metrics/vulnerability-counts.js';
import type { ImageScanReport, ReportFix, ReportVulnerability } from '../reports/image-scan-report.js';
import { REPORT_API_VERSION, REPORT_KIND } from '../reports/image-scan-report.js';
import { findingOfStatus, listFingerprintOf, slimStatus, slimStatusFacts, vulnerabilityFingerprint } from '../reports/report-builder.js';
import type { SlimStatusFacts } from '../reports/report-builder.js';
import type { CachedObject } from './informer.js';
import { ObjectPool, cachedStrings as strings } from './string-pool.js';
import type { StringPool } from './string-pool.js';


export interface PodEntry extends CachedObject {
  namespace: string;
  name: string;
  /** A V1Pod holding only names, labels, owners, node, service account and pull secrets. */
  pod: V1Pod;
  /**
   * The digests the pod runs (see inspectPodImages), worked out when the pod enters the cache; the
   * containers and their statuses are not kept.
   */
  images: PodImage[];
  /** Started containers whose image or imageID cannot be parsed. */
  invalidImages: InvalidContainerImage[];
}

export interface NodeEntry extends CachedObject {
  name: string;
  /** os/arch from the well-known labels, e.g. linux/arm64; undefined when the labels are missing. */
  platform: string | undefined;
}

export interface NamespaceEntry extends CachedObject {
  name: string;
  labels: Record<string, string>;
}

export interface ReportEntry extends CachedObject {
  namespace: string;
  name: string;
  /** The report; its status (if any) is slim, without the vulnerability list: see slimReport. */
  report: ImageScanReport;
}

type Raw = Record<string, unknown>;

function asRecord(value: unknown): Raw | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Raw) : undefined;
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function stringMap(value: unknown, pool?: StringPool): Record<string, string> {
  const record = asRecord(value);
  const out: Record<string, string> = {};
  if (record === undefined) return out;
  for (const [k, v] of Object.entries(record)) {
    if (typeof v === 'string') out[k] = pool === undefined ? v : pool.intern(v);
  }
  return out;
}

// The slimming below keeps one pooled copy of each string that repeats across pods (images, owners,
// labels, namespaces, node and container names); a pod's own name, uid and resourceVersion are unique.

/**
 * The array with no spare room, or the shared empty one. `push` grows an array to 17 slots at its first
 * element; at 10,000 pods with four or five short arrays each, that slack was ~5 MiB of the heap.
 */
function exactArray<T>(items: T[]): T[] {
  return items.length === 0 ? NONE : items.slice();
}

/** The empty list every slim object shares. Never mutated. */
const NONE: never[] = [];

function slimOwners(value: unknown): V1OwnerReference[] {
  const out: V1OwnerReference[] = [];
  for (const item of asArray(value)) {
    const record = asRecord(item);
    const kind = asString(record?.kind);
    const name = asString(record?.name);
    if (kind === undefined || name === undefined) continue;
    const owner: V1OwnerReference = {
      apiVersion: strings.intern(asString(record?.apiVersion) ?? ''),
      kind: strings.intern(kind),
      name: strings.intern(name),
      uid: strings.intern(asString(record?.uid) ?? ''),
    };
    if (record?.controller === true) owner.controller = true;
    out.push(owner);
  }
  return exactArray(out);
}

/** The value pooled under `key`, else `make()` (which interns its strings) pooled under it. */
function pooled<T>(objects: ObjectPool<T>, key: string, make: () => T): T {
  return objects.get(key) ?? objects.share(key, make());
}

function slimPullSecrets(value: unknown): V1LocalObjectReference[] {
  const out: V1LocalObjectReference[] = [];
  for (const item of asArray(value)) {
    const name = asString(asRecord(item)?.name);
    if (name !== undefined && name !== '') out.push({ name: strings.intern(name) });
  }
  return exactArray(out);
}

// Pods of one workload have equal labels, owners and images, and reports of one digest equal severity
// counts: at 10,000 pods in ~3,600 workloads these were ~2 objects and ~3 arrays per pod.
const sharedLabels = new ObjectPool<Record<string, string>>();
const sharedOwners = new ObjectPool<V1OwnerReference[]>();
const sharedImages = new ObjectPool<PodImage[]>();
const sharedFacts = new ObjectPool<SlimStatusFacts>();

function imagesKey(images: readonly PodImage[]): string {
  // Every field of PodImage and ResolvedImage: equal keys must mean interchangeable objects.
  return images
    .map((i) => {
      const r = i.image;
      return `${i.containerType}:${i.container}:${i.containers.join(',')}=${r.image}|${r.repository}|${r.registry}|${r.digest}|${r.digestSource}|${String(r.localOnly)}|${r.specTag ?? ''}|${i.platform ?? ''}`;
    })
    .join(';');
}

/** One resolution per distinct (spec image, imageID), shared by every pod that runs it. */
const resolutions = new ObjectPool<ResolvedImage>();

/**
 * Empties the pools (and the string pool): they share copies among objects that arrive together (a
 * relist, a rollout); between such bursts they hold only their keys, and values that may belong to
 * objects long gone (the bench's churn took the string pool from 12,888 to 22,461 entries, among them
 * values of the pods it deleted). The cached objects keep what they share; the next burst pools
 * afresh. For an idle operator.
 */
export function clearSharedValues(): void {
  for (const pool of [sharedLabels, sharedOwners, sharedImages, sharedFacts, resolutions, strings]) pool.clear();
}

function sharedResolution(specImage: string, imageID: string | undefined): ResolvedImage | undefined {
  const key = `${specImage}\n${imageID ?? ''}`;
  const known = resolutions.get(key);
  if (known !== undefined) return known;
  const resolved = resolveContainerImage(specImage, imageID);
  if (resolved === undefined) return undefined;
  return resolutions.share(key, {
    ...resolved,
    image: strings.intern(resolved.image),
    repository: strings.intern(resolved.repository),
    registry: strings.intern(resolved.registry),
    digest: strings.intern(resolved.digest),
    ...(resolved.specTag === undefined ? {} : { specTag: strings.intern(resolved.specTag) }),
  });
}

function internedImages(images: PodImage[]): PodImage[] {
  for (const image of images) {
    image.container = strings.intern(image.container);
    image.containers = image.containers.map((container) => strings.intern(container));
  }
  return exactArray(images);
}

/** Slims a pod (raw JSON from a list page or a watch event); undefined when it lacks a name or namespace. */
export function toPodEntry(raw: unknown): PodEntry | undefined {
  const obj = asRecord(raw);
  const metadata = asRecord(obj?.metadata);
  const name = asString(metadata?.name);
  const rawNamespace = asString(metadata?.namespace);
  if (name === undefined || rawNamespace === undefined) return undefined;
  const namespace = strings.intern(rawNamespace);
  const spec = asRecord(obj?.spec);
  const status = asRecord(obj?.status);
  const resourceVersion = asString(metadata?.resourceVersion) ?? '';
  const pod: V1Pod = {
    metadata: {
      name,
      namespace,
      uid: asString(metadata?.uid) ?? '',
      resourceVersion,
      // Looked up by the raw value first: a pod of a known workload makes and interns nothing.
      labels: pooled(sharedLabels, JSON.stringify(metadata?.labels ?? null), () => stringMap(metadata?.labels, strings)),
      ownerReferences: pooled(sharedOwners, JSON.stringify(metadata?.ownerReferences ?? null), () => slimOwners(metadata?.ownerReferences)),
    },
    // spec.containers is required by the type; what the pod runs is in PodEntry.images.
    spec: { containers: NONE, imagePullSecrets: slimPullSecrets(spec?.imagePullSecrets) },
  };
  const nodeName = asString(spec?.nodeName);
  const serviceAccountName = asString(spec?.serviceAccountName);
  if (pod.spec !== undefined) {
    if (nodeName !== undefined) pod.spec.nodeName = strings.intern(nodeName);
    if (serviceAccountName !== undefined) pod.spec.serviceAccountName = strings.intern(serviceAccountName);
  }
  // A finished pod (other than a Job's) runs nothing: no digest, so its reports are collected.
  if (!runsImages(asString(status?.phase), pod.metadata?.ownerReferences)) {
    return { key: `${namespace}/${name}`, resourceVersion, namespace, name, pod, images: NONE, invalidImages: NONE };
  }
  // inspectPodImages reads the raw containers and statuses defensively, whatever is missing.
  const inventory = inspectPodImages({ spec: spec as V1Pod['spec'], status: status as V1Pod['status'] }, sharedResolution);
  const images = pooled(sharedImages, imagesKey(inventory.images), () => internedImages(inventory.images));
  const invalidImages = exactArray(inventory.invalid);
  return { key: `${namespace}/${name}`, resourceVersion, namespace, name, pod, images, invalidImages };
}

/** Keeps a node's name and its platform from kubernetes.io/os and kubernetes.io/arch. */
export function toNodeEntry(raw: unknown): NodeEntry | undefined {
  const metadata = asRecord(asRecord(raw)?.metadata);
  const name = asString(metadata?.name);
  if (name === undefined) return undefined;
  const labels = stringMap(metadata?.labels);
  const os = labels['kubernetes.io/os'];
  const arch = labels['kubernetes.io/arch'];
  const platform = os !== undefined && arch !== undefined ? `${os}/${arch}` : undefined;
  return { key: name, resourceVersion: asString(metadata?.resourceVersion) ?? '', name, platform };
}

/** Keeps a namespace's name and labels (the team label may sit there). */
export function toNamespaceEntry(raw: unknown): NamespaceEntry | undefined {
  const metadata = asRecord(asRecord(raw)?.metadata);
  const name = asString(metadata?.name);
  if (name === undefined) return undefined;
  return { key: name, resourceVersion: asString(metadata?.resourceVersion) ?? '', name, labels: stringMap(metadata?.labels) };
}

/**
 * One copy of each distinct list (fixes or vulnerabilities) among reports being handed over (see
 * takeReportDetails). A relist holds every report of a page set until it is delivered, and every
 * report of a digest carries the same list (one per namespace that runs it). Lists are held weakly,
 * so a list goes when its last holder does.
 */
export class SharedVulnerabilityLists {
  private readonly lists = new Map<string, WeakRef<object[]>>();
  private readonly cleanup = new FinalizationRegistry<string>((key) => {
    if (this.lists.get(key)?.deref() === undefined) this.lists.delete(key);
  });

  /** The shared list whose fingerprint is `fingerprint` (`list` itself when it is the first). Never mutate the result. */
  share<T extends object>(list: T[], fingerprint: string = vulnerabilityFingerprint(list)): T[] {
    if (list.length === 0) return list;
    // A fingerprint hashes the entries' fields, so a fix list and a vulnerability list never share one.
    const existing = this.lists.get(fingerprint)?.deref() as T[] | undefined;
    if (existing !== undefined) return existing;
    this.lists.set(fingerprint, new WeakRef(list));
    this.cleanup.register(list, fingerprint);
    return list;
  }

  /** Distinct lists held (for tests). */
  size(): number {
    return this.lists.size;
  }
}

/** The lists a report's status held before it was slimmed. */
export interface ReportDetailLists {
  fixes?: ReportFix[];
  vulnerabilities?: ReportVulnerability[];
}

// The lists of a report that just entered the cache, until the one reader that needs them (the
// controller seeding scan knowledge) takes them. The cache itself keeps only slim reports.
const handedOver = new WeakMap<ReportEntry, ReportDetailLists>();

/**
 * The lists of a report delivered by the report informer, once: later calls (and calls for entries
 * that had no list) return undefined. Take them in the add/update handler.
 */
export function takeReportDetails(entry: ReportEntry): ReportDetailLists | undefined {
  const lists = handedOver.get(entry);
  handedOver.delete(entry);
  return lists;
}

/**
 * The report with a slim status: no lists, but their fingerprint, per-severity counts and finding
 * (see slimStatus); also returns the lists it held. A report already slim is returned as it is.
 */
export function slimReport(report: ImageScanReport): { report: ImageScanReport; lists: ReportDetailLists | undefined } {
  const status = report.status;
  if (status === undefined || typeof status !== 'object' || slimStatusFacts(status) !== undefined) return { report, lists: undefined };
  const lists: ReportDetailLists = {};
  if (Array.isArray(status.fixes)) lists.fixes = status.fixes;
  if (Array.isArray(status.vulnerabilities)) lists.vulnerabilities = status.vulnerabilities;
  const facts = { fingerprint: listFingerprintOf(status), severityCounts: countBySeverity(status), finding: findingOfStatus(status) };
  const slim = slimStatus(status, sharedFacts.share(JSON.stringify(facts), facts));
  return { report: { ...report, status: slim }, lists: lists.fixes === undefined && lists.vulnerabilities === undefined ? undefined : lists };
}

/**
 * Keeps a report (always raw JSON from CustomObjectsApi) slim: no managedFields, and a status without
 * its vulnerability list (up to 500 entries; at 10,000 pods the lists of ~5,500 cached reports were
 * most of the heap). The list is handed over once (takeReportVulnerabilities), shared through `lists`.
 * Undefined unless it is an ImageScanReport with a spec.
 */
export function toReportEntry(raw: unknown, lists?: SharedVulnerabilityLists): ReportEntry | undefined {
  const obj = asRecord(raw);
  const metadata = asRecord(obj?.metadata);
  const name = asString(metadata?.name);
  const namespace = asString(metadata?.namespace);
  if (name === undefined || namespace === undefined || asRecord(obj?.spec) === undefined) return undefined;
  // managedFields are large and never read; drop them from the cached copy.
  const { managedFields: _managedFields, ...slimMetadata } = metadata ?? {};
  const full = {
    ...(obj as unknown as ImageScanReport),
    apiVersion: REPORT_API_VERSION,
    kind: REPORT_KIND,
    metadata: slimMetadata,
  } as ImageScanReport;
  if (asRecord(full.status) === undefined) delete full.status;
  const { report, lists: detailLists } = slimReport(full);
  // Labels, spec and the slim status repeat across the reports of a digest and with its pods.
  strings.internAll(report.metadata?.labels);
  strings.internAll(report.spec);
  strings.internAll(report.status);
  const entry: ReportEntry = { key: `${namespace}/${name}`, resourceVersion: asString(metadata?.resourceVersion) ?? '', namespace, name, report };
  if (detailLists !== undefined) {
    const { fixes, vulnerabilities } = detailLists;
    const handed: ReportDetailLists = {};
    if (fixes !== undefined) handed.fixes = lists === undefined ? fixes : lists.share(fixes);
    if (vulnerabilities !== undefined) handed.vulnerabilities = lists === undefined ? vulnerabilities : lists.share(vulnerabilities);
    handedOver.set(entry, handed);
  }
  return entry;
}
