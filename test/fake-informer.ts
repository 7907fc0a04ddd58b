// An informer's cache and callbacks for unit tests, fed by the test (or by a fake writer) as the watch
// would feed them: put() calls add or update, delete() calls delete. And the pods they hold.
import { toPodEntry } from '../src/kube/cluster-objects.js';
import type { PodEntry } from '../src/kube/cluster-objects.js';
import type { CachedObject, InformerHandlers } from '../src/kube/informer.js';

export class FakeInformer<T extends CachedObject> {
  private readonly handlers: InformerHandlers<T>[] = [];
  readonly objects = new Map<string, T>();
  on(handlers: InformerHandlers<T>): void {
    this.handlers.push(handlers);
  }
  get(key: string): T | undefined {
    return this.objects.get(key);
  }
  list(): IterableIterator<T> {
    return this.objects.values();
  }
  put(obj: T): void {
    const old = this.objects.get(obj.key);
    this.objects.set(obj.key, obj);
    for (const h of this.handlers) {
      if (old === undefined) h.add?.(obj);
      else h.update?.(old, obj);
    }
  }
  /** Removes the object cached under `key` (none: nothing happens). */
  delete(key: string): void {
    const old = this.objects.get(key);
    if (old === undefined) return;
    this.objects.delete(key);
    for (const h of this.handlers) h.delete?.(old);
  }
}

/** A running pod's cache entry with one container `app` running `image` at `digest`. */
export function runningPodEntry(namespace: string, name: string, image: string, digest: string): PodEntry {
  const entry = toPodEntry({
    metadata: { namespace, name, resourceVersion: '1' },
    spec: { containers: [{ name: 'app', image }] },
    status: { phase: 'Running', containerStatuses: [{ name: 'app', image, imageID: `docker.io/library/nginx@${digest}`, started: true, state: { running: {} } }] },
  });
  if (entry === undefined) throw new Error('bad pod');
  return entry;
}
