// Starts child processes through a small helper process (trivy-spawner.ts) instead of from the
// operator's own, large process: a fork() of the operator blocked its event loop 5-12 ms per child.
// The helper is started at the first run and again after it exits; while it is gone, the runs it had
// end as killed (their process groups are killed here), which the caller treats like any crash.
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** How one child ended. */
export interface SpawnedRun {
  exitCode?: number;
  signal?: string;
  stdout: string;
  stderr: string;
  /** Set when the child could not be started (e.g. ENOENT). */
  spawnError?: string;
}

export interface SpawnOptions {
  env: Record<string, string>;
  stdout: 'ignore' | 'pipe';
  /** Characters kept of stdout and stderr each. */
  maxChars: number;
  /**
   * At most `limit` children of `lane` at once: the helper starts this one when a place is free,
   * the moment another exits (the pid then comes later). A `next` run, the second step of work already
   * begun, waits ahead of the others; an `idle` run waits behind every other, even later ones, so it
   * runs only in a place nothing else wants.
   */
  slots?: { lane: string; limit: number; order?: 'next' | 'idle' };
}

/** A child being run: its pid once started (undefined if it could not be), then how it ended. */
export interface SpawnHandle {
  pid: Promise<number | undefined>;
  done: Promise<SpawnedRun>;
  /** Drops a run still waiting for its lane (it ends as killed); a started child is the caller's to signal. */
  cancel(): void;
  /** A run still waiting for its lane waits as a `next` one from now on. */
  promote(): void;
}

interface Pending {
  pid: number | undefined;
  started: (pid: number | undefined) => void;
  finished: (run: SpawnedRun) => void;
}

type Reply = { type: 'spawned'; id: number; pid: number } | ({ type: 'exited'; id: number } & SpawnedRun);

/** The helper's program beside this module: the .ts source in tests, the bundled .mjs in the image. */
export function spawnerProgram(): string {
  const here = import.meta.url;
  return fileURLToPath(new URL(here.endsWith('.ts') ? './trivy-spawner.ts' : './trivy-spawner.mjs', here));
}

let shared: ChildSpawner | undefined;

/** The one spawner of this process: one helper serves every runner. */
export function sharedChildSpawner(): ChildSpawner {
  shared ??= new ChildSpawner();
  return shared;
}

export class ChildSpawner {
  private helper: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;

  constructor(private readonly program: string = spawnerProgram()) {}

  /** Starts `file` with exactly `args` and `env` (no shell), as the leader of its own process group. */
  run(file: string, args: string[], opts: SpawnOptions): SpawnHandle {
    const helper = this.ensureHelper();
    const id = this.nextId++;
    let started!: (pid: number | undefined) => void;
    let finished!: (run: SpawnedRun) => void;
    const pid = new Promise<number | undefined>((resolve) => (started = resolve));
    const done = new Promise<SpawnedRun>((resolve) => (finished = resolve));
    const entry: Pending = { pid: undefined, started, finished };
    this.pending.set(id, entry);
    if (this.pending.size === 1) helper.channel?.ref();
    helper.send({ type: 'spawn', id, file, args, env: opts.env, stdout: opts.stdout, maxChars: opts.maxChars, ...(opts.slots === undefined ? {} : { slots: opts.slots }) }, (err) => {
      if (err) this.settle(id, { stdout: '', stderr: '', spawnError: `the spawner process is unreachable: ${err.message}` });
    });
    const tell = (type: 'cancel' | 'promote') => {
      if (this.pending.get(id) === entry && entry.pid === undefined && helper.connected) helper.send({ type, id });
    };
    return { pid, done, cancel: () => tell('cancel'), promote: () => tell('promote') };
  }

  /** The helper's pid while it runs: its memory is part of what starting Trivy costs. */
  helperPid(): number | undefined {
    return this.helper?.pid;
  }

  /** Ends the helper (it kills any group it still runs). */
  close(): void {
    if (this.helper?.connected === true) this.helper.disconnect();
  }

  private ensureHelper(): ChildProcess {
    if (this.helper !== undefined && this.helper.connected) return this.helper;
    const helper = fork(this.program, [], {
      // Nothing of the operator's environment or Node flags (NODE_OPTIONS, --cpu-prof, --import…):
      // each child gets its own environment in every request.
      env: {},
      execArgv: ['--max-old-space-size=16', '--max-semi-space-size=1', '--disable-warning=ExperimentalWarning'],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'json',
    });
    helper.on('message', (message: Reply) => this.onReply(message));
    helper.on('exit', () => this.onHelperExit(helper));
    helper.on('error', () => this.onHelperExit(helper));
    helper.unref();
    helper.channel?.unref();
    this.helper = helper;
    return helper;
  }

  private onReply(message: Reply): void {
    const entry = this.pending.get(message.id);
    if (entry === undefined) return;
    if (message.type === 'spawned') {
      entry.pid = message.pid;
      entry.started(message.pid);
      return;
    }
    const { type: _type, id: _id, ...run } = message;
    this.settle(message.id, run);
  }

  private settle(id: number, run: SpawnedRun): void {
    const entry = this.pending.get(id);
    if (entry === undefined) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.helper?.channel?.unref();
    entry.started(entry.pid);
    entry.finished(run);
  }

  /** The helper is gone: its children are orphans now. Kill them and end their runs as killed. */
  private onHelperExit(helper: ChildProcess): void {
    if (this.helper !== helper) return;
    this.helper = undefined;
    for (const [id, entry] of [...this.pending]) {
      if (entry.pid !== undefined) {
        try {
          process.kill(-entry.pid, 'SIGKILL');
        } catch {
          // ESRCH: already gone.
        }
      }
      this.settle(id, { signal: 'SIGKILL', stdout: '', stderr: 'the process that started Trivy exited' });
    }
  }
}
