// Leader election on a coordination.k8s.io/v1 Lease, following client-go's
// tools/leaderelection algorithm: only the leader scans and writes; a standby takes over when the
// leader has not renewed for a lease duration, measured on the standby's own clock.
import { ApiException, Observable, V1MicroTime } from '@kubernetes/client-node';
import type { ConfigurationOptions, CoordinationV1Api, V1Lease, V1LeaseSpec } from '@kubernetes/client-node';
import type { Logger } from 'pino';

/** The three Lease calls the elector makes (a CoordinationV1Api satisfies it). */
export type LeaseClient = Pick<CoordinationV1Api, 'readNamespacedLease' | 'createNamespacedLease' | 'replaceNamespacedLease'>;

export interface LeaderElectorOptions {
  client: LeaseClient;
  /** Namespace and name of the Lease. */
  namespace: string;
  name: string;
  /** This replica's holderIdentity (the pod name in cluster). */
  identity: string;
  /** How long a standby waits after the last observed change of the Lease before taking it. Default 15 s. */
  leaseDurationMs?: number;
  /** A leader that has not renewed for this long stops leading. Default 10 s; must be < leaseDurationMs. */
  renewDeadlineMs?: number;
  /** Interval between acquire and renew attempts. Default 2 s. */
  retryPeriodMs?: number;
  /** Timeout of one API request. Default half the renew deadline. */
  requestTimeoutMs?: number;
  /** On stop(), clear the holder so a standby takes over at once. Default true. */
  releaseOnStop?: boolean;
  /**
   * Opened when a term starts and closed, synchronously, the moment it ends (renew deadline, another
   * holder, stop()), before onStoppedLeading runs: the writes of the leader's clients go through it, so
   * none is sent, and none in flight survives, once the term is over.
   */
  fence?: { open(): void; close(reason: string): void };
  /** Called when this replica becomes leader. */
  onStartedLeading?: () => void;
  /**
   * Called when this replica stops leading: renew deadline passed, another holder seen, or stop().
   * On stop() the Lease is released first (the fence is closed already), then a returned promise is
   * awaited: the successor need not wait for this replica to drain its work.
   */
  onStoppedLeading?: () => void | Promise<void>;
  /** Called when the observed holder changes (also for this replica), with the new holder's identity. */
  onNewLeader?: (identity: string) => void;
  logger: Logger;
  /** Monotonic milliseconds for lease validity. Default performance.now. */
  now?: () => number;
  /** Wall-clock milliseconds written into the Lease (acquireTime, renewTime). Default Date.now. */
  wallClock?: () => number;
  /** Default Math.random (spreads acquire attempts of several standbys). */
  random?: () => number;
}

/** The Lease record as last observed, with the local time it was first seen. */
interface ObservedLease {
  lease: V1Lease;
  holder: string;
  leaseDurationMs: number;
  /** resourceVersion plus holder and renewTime: any write changes it. */
  fingerprint: string;
}

/** Same factor as client-go's JitterFactor: acquire attempts wait retryPeriod·(1 + random·1.2). */
const ACQUIRE_JITTER = 1.2;

function statusOf(err: unknown): number | undefined {
  return err instanceof ApiException ? err.code : undefined;
}

/** A Lease time read back from the API server: a string at run time although typed V1MicroTime. */
function microTime(value: unknown): V1MicroTime | undefined {
  if (value instanceof Date) return new V1MicroTime(value.getTime());
  if (typeof value === 'string') {
    const ms = Date.parse(value);
    return Number.isNaN(ms) ? undefined : new V1MicroTime(ms);
  }
  return undefined;
}

function timeoutOptions(ms: number): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (context) => {
          context.setSignal(AbortSignal.timeout(ms));
          return new Observable(Promise.resolve(context));
        },
        post: (response) => new Observable(Promise.resolve(response)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/**
 * Elects one leader among replicas sharing a Lease. run() contends until stop() or until leadership
 * is lost; isLeader() is the gate for scans and writes. API errors are retried every retry period.
 */
export class LeaderElector {
  private readonly client: LeaseClient;
  private readonly namespace: string;
  private readonly name: string;
  private readonly identity: string;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly requestOptions: ConfigurationOptions;
  private readonly releaseOnStop: boolean;
  private readonly callbacks: Pick<LeaderElectorOptions, 'onStartedLeading' | 'onStoppedLeading' | 'onNewLeader' | 'fence'>;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly wallClock: () => number;
  private readonly random: () => number;

  private observed: ObservedLease | undefined;
  private observedTime = 0;
  private reportedLeader: string | undefined;
  private leading = false;
  private stopRequested = false;
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private renewDeadlineTimer: NodeJS.Timeout | undefined;
  private stoppedLeading: Promise<void> = Promise.resolve();

  constructor(options: LeaderElectorOptions) {
    this.client = options.client;
    this.namespace = options.namespace;
    this.name = options.name;
    this.identity = options.identity;
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.releaseOnStop = options.releaseOnStop ?? true;
    this.callbacks = options;
    this.log = options.logger;
    this.now = options.now ?? (() => performance.now());
    this.wallClock = options.wallClock ?? Date.now;
    this.random = options.random ?? Math.random;
    if (this.identity === '') throw new RangeError('leader election identity must not be empty');
    if (this.leaseDurationMs <= this.renewDeadlineMs) throw new RangeError('leaseDurationMs must be greater than renewDeadlineMs');
    if (this.renewDeadlineMs <= this.retryPeriodMs) throw new RangeError('renewDeadlineMs must be greater than retryPeriodMs');
    this.requestOptions = timeoutOptions(options.requestTimeoutMs ?? Math.ceil(this.renewDeadlineMs / 2));
  }

  /** True while this replica holds the Lease and has renewed it within the renew deadline. */
  isLeader(): boolean {
    return this.leading;
  }

  /** The holder last observed in the Lease, or undefined when none (never seen, or released). */
  leaderIdentity(): string | undefined {
    const holder = this.observed?.holder;
    return holder === undefined || holder === '' ? undefined : holder;
  }

  /**
   * Contend for the Lease, lead while renewals succeed, and resolve when stop() was called (after the
   * release) or leadership was lost. After a loss the caller should stop its work; the simplest safe
   * reaction is to exit and let the Deployment restart the pod, but run() may also be called again;
   * it contends only after the previous onStoppedLeading has settled.
   */
  run(): Promise<void> {
    if (this.running !== undefined) return this.running;
    this.stopRequested = false;
    this.running = this.contend().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Stop contending; if leading, call onStoppedLeading, then release the Lease (unless disabled). */
  async stop(): Promise<void> {
    this.stopRequested = true;
    // At once, not when the loop wakes: the fence closes before anything else runs.
    this.stopLeading('stopped');
    this.wake?.();
    await this.running;
    await this.stoppedLeading;
  }

  private async contend(): Promise<void> {
    // After a loss, the previous onStoppedLeading must finish before a new term can start.
    await this.stoppedLeading;
    while (!this.stopRequested) {
      const acquired = await this.tryAcquireOrRenew();
      if (acquired) break;
      await this.sleep(this.retryPeriodMs * (1 + this.random() * ACQUIRE_JITTER));
    }
    if (this.stopRequested) {
      // stop() may have raced an acquire that succeeded: give the Lease back rather than sit on it.
      if (this.releaseOnStop) await this.release();
      return;
    }

    this.startLeading();
    while (this.leading && !this.stopRequested) {
      await this.sleep(this.retryPeriodMs);
      if (!this.leading || this.stopRequested) break;
      const attemptStart = this.now();
      const renewed = await this.tryAcquireOrRenew();
      if (!this.leading) break;
      if (renewed) {
        this.armRenewDeadline(attemptStart);
      } else if (this.observed !== undefined && this.observed.holder !== this.identity) {
        // Someone else holds the Lease: continuing to act as leader could make two writers.
        this.stopLeading('another holder observed');
      }
    }

    if (this.stopRequested) {
      // The fence closed in stopLeading, so nothing this replica still drains can write: the Lease can
      // go to a standby before the drain (killing scans, finishing reconciles) ends. release() writes
      // only a Lease this replica still holds.
      if (this.releaseOnStop) await this.release();
      await this.stoppedLeading;
    }
  }

  private startLeading(): void {
    this.leading = true;
    this.callbacks.fence?.open();
    this.armRenewDeadline(this.now());
    this.log.info({ lease: `${this.namespace}/${this.name}`, identity: this.identity }, 'became leader');
    this.invoke('onStartedLeading', () => this.callbacks.onStartedLeading?.());
  }

  private stopLeading(reason: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.callbacks.fence?.close(reason);
    clearTimeout(this.renewDeadlineTimer);
    this.renewDeadlineTimer = undefined;
    this.log.info({ lease: `${this.namespace}/${this.name}`, identity: this.identity, reason }, 'stopped leading');
    this.stoppedLeading = Promise.resolve()
      .then(() => this.callbacks.onStoppedLeading?.())
      .catch((err: unknown) => this.log.error({ err }, 'onStoppedLeading callback failed'));
    this.wake?.();
  }

  /** The deadline runs on its own timer so a hanging request cannot keep a stale leader acting. */
  private armRenewDeadline(lastRenew: number): void {
    clearTimeout(this.renewDeadlineTimer);
    const remaining = Math.max(0, lastRenew + this.renewDeadlineMs - this.now());
    this.renewDeadlineTimer = setTimeout(() => this.stopLeading('renew deadline passed'), remaining);
  }

  /** One step of client-go's tryAcquireOrRenew; true when this replica holds the Lease afterwards. */
  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.now();
    const wallNow = new V1MicroTime(this.wallClock());
    const leaseSeconds = Math.max(1, Math.ceil(this.leaseDurationMs / 1000));

    let current: V1Lease;
    try {
      current = await this.client.readNamespacedLease({ name: this.name, namespace: this.namespace }, this.requestOptions);
    } catch (err) {
      if (statusOf(err) !== 404) {
        this.log.warn({ code: statusOf(err), err: statusOf(err) === undefined ? err : undefined }, 'reading the leader election lease failed');
        return false;
      }
      return this.create(wallNow, leaseSeconds);
    }

    this.observe(current, now);
    const observed = this.observed;
    if (observed === undefined) return false;
    const heldByOther = observed.holder !== '' && observed.holder !== this.identity;
    if (heldByOther && this.observedTime + observed.leaseDurationMs > now) return false;

    const spec = current.spec ?? {};
    const renewing = observed.holder === this.identity;
    const next: V1LeaseSpec = {
      ...spec,
      holderIdentity: this.identity,
      leaseDurationSeconds: leaseSeconds,
      acquireTime: renewing ? (microTime(spec.acquireTime) ?? wallNow) : wallNow,
      renewTime: wallNow,
      leaseTransitions: renewing ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
    };
    try {
      const written = await this.client.replaceNamespacedLease(
        { name: this.name, namespace: this.namespace, body: { ...current, spec: next } },
        this.requestOptions,
      );
      this.observe(written, this.now());
      return true;
    } catch (err) {
      // 409: another replica wrote first (lost the race); read again next period.
      this.log.debug({ code: statusOf(err) }, 'updating the leader election lease failed');
      return false;
    }
  }

  private async create(wallNow: V1MicroTime, leaseSeconds: number): Promise<boolean> {
    const body: V1Lease = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.name, namespace: this.namespace },
      spec: {
        holderIdentity: this.identity,
        leaseDurationSeconds: leaseSeconds,
        acquireTime: wallNow,
        renewTime: wallNow,
        leaseTransitions: 0,
      },
    };
    try {
      const created = await this.client.createNamespacedLease({ namespace: this.namespace, body }, this.requestOptions);
      this.observe(created, this.now());
      return true;
    } catch (err) {
      // 409 AlreadyExists: another replica created it first.
      this.log.debug({ code: statusOf(err) }, 'creating the leader election lease failed');
      return false;
    }
  }

  /** Record the Lease; observedTime moves only when the record changed (client-go's setObservedRecord). */
  private observe(lease: V1Lease, now: number): void {
    const holder = lease.spec?.holderIdentity ?? '';
    const fingerprint = [lease.metadata?.resourceVersion ?? '', holder, String(microTime(lease.spec?.renewTime)?.getTime() ?? '')].join('|');
    if (this.observed?.fingerprint !== fingerprint) this.observedTime = now;
    this.observed = { lease, holder, leaseDurationMs: (lease.spec?.leaseDurationSeconds ?? 0) * 1000, fingerprint };
    if (holder !== '' && holder !== this.reportedLeader) {
      this.reportedLeader = holder;
      this.invoke('onNewLeader', () => this.callbacks.onNewLeader?.(holder));
    }
  }

  /** Write an empty holder with a 1 s duration so a standby does not wait a full lease (client-go's ReleaseOnCancel). */
  private async release(): Promise<void> {
    const observed = this.observed;
    if (observed === undefined || observed.holder !== this.identity) return;
    const wallNow = new V1MicroTime(this.wallClock());
    const spec = observed.lease.spec ?? {};
    try {
      const written = await this.client.replaceNamespacedLease(
        {
          name: this.name,
          namespace: this.namespace,
          body: { ...observed.lease, spec: { ...spec, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: wallNow, renewTime: wallNow } },
        },
        this.requestOptions,
      );
      this.observe(written, this.now());
      this.log.info({ lease: `${this.namespace}/${this.name}` }, 'released leadership');
    } catch (err) {
      // A conflict means someone else already wrote the Lease; the standby then waits out the lease.
      this.log.warn({ code: statusOf(err) }, 'releasing the leader election lease failed');
    }
  }

  private invoke(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err, callback: name }, 'leader election callback failed');
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wake = done;
    });
  }
}
