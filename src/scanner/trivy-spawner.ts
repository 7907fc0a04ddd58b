// The program of the small helper process that starts the Trivy children (src/scanner/child-spawner.ts).
//
// Why: libuv starts a child by fork(), which copies the page tables of the whole operator and blocks
// its event loop until the child has called exec. The operator holds 150-330 MiB, so each start cost
// its loop 5-12 ms (20% of the 50,000-pod cold start's main thread; a first scan starts two children),
// growing with the heap. This process is ~10x smaller and blocks only itself.
//
// It runs what it is told over the IPC channel, as detached process-group leaders with the given
// environment and nothing else, and reports each child's pid, then its exit with the captured output.
// A request may name a lane with a limit: it waits here until fewer than that many of the lane's
// children run, so the next scan's child starts the moment one exits, without waiting for a turn of
// the operator's busy event loop (two such turns per slot cycle kept a quarter of the scan slots idle
// in the 10,000-pod cold start). A waiting request can be cancelled.
// It kills nothing on request (the operator signals the groups itself: same user); when the channel
// closes (the operator exited, however) it kills every group it started and exits.
// Only Node's built-ins, erasable TypeScript: Node runs this file as it is in tests, the image runs
// its bundled copy (dist/trivy-spawner.mjs).
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';

/**
 * The children's CPU priority: the lowest (nice 19, which needs no privilege). Trivy is batch work that
 * uses every core it gets; within the container's CPU the deploy gate's answers and the control loop
 * come first. Set on each child's threads, not on this process: at nice +10 itself, this process was
 * slow to see a child exit and start the next on a busy machine (a quarter of the 10,000-pod cold
 * start's scan slots idle; 6.5 -> 7.6 of 8 busy once it ran at the operator's priority).
 */
const CHILD_NICE = 19;

/**
 * Lowers the priority of every thread of a child just started (Linux keeps a nice value per thread,
 * and a new thread takes its creator's): passes until no thread is left at another priority.
 */
function lowerPriority(pid: number): void {
  const done = new Set<string>();
  for (let pass = 0; pass < 3; pass++) {
    let threads: string[];
    try {
      threads = readdirSync(`/proc/${pid}/task`);
    } catch {
      threads = [String(pid)];
    }
    const fresh = threads.filter((tid) => !done.has(tid));
    if (fresh.length === 0) return;
    for (const tid of fresh) {
      done.add(tid);
      try {
        setPriority(Number(tid), CHILD_NICE);
      } catch {
        // Gone already, or a platform without nice values.
      }
    }
  }
}

interface SpawnRequest {
  type: 'spawn';
  id: number;
  file: string;
  args: string[];
  env: Record<string, string>;
  stdout: 'ignore' | 'pipe';
  /** Characters kept of stdout and of stderr each; the rest is read and dropped. */
  maxChars: number;
  /**
   * At most `limit` children of `lane` run at once; the request waits its turn, first come first
   * served, except that a `next` request (the second step of work already begun) waits ahead of the
   * others and an `idle` one behind every other, even those that come later.
   */
  slots?: { lane: string; limit: number; order?: 'next' | 'idle' };
}

/** About a request still waiting for its lane. */
interface ControlRequest {
  type: 'cancel' | 'promote';
  id: number;
}

interface Lane {
  running: number;
  waiting: SpawnRequest[];
}

const groups = new Set<number>();
const lanes = new Map<string, Lane>();

function reply(message: unknown): void {
  // The channel is gone only when the operator is: 'disconnect' below ends this process.
  if (process.connected) process.send?.(message);
}

function admit(req: SpawnRequest): void {
  if (req.slots === undefined) return start(req);
  let lane = lanes.get(req.slots.lane);
  if (lane === undefined) lanes.set(req.slots.lane, (lane = { running: 0, waiting: [] }));
  if (lane.running >= req.slots.limit) {
    // Behind every request of its own rank or before it: `next` ones, then the others, then `idle` ones.
    const rank = orderRank(req);
    const at = lane.waiting.findIndex((waiting) => orderRank(waiting) > rank);
    lane.waiting.splice(at < 0 ? lane.waiting.length : at, 0, req);
    return;
  }
  lane.running++;
  start(req, lane);
}

function orderRank(req: SpawnRequest): number {
  const order = req.slots?.order;
  return order === 'next' ? 0 : order === 'idle' ? 2 : 1;
}

/** A child of the lane has exited: the next request waiting for it starts now. */
function release(lane: Lane): void {
  lane.running--;
  const next = lane.waiting.shift();
  if (next === undefined) return;
  lane.running++;
  start(next, lane);
}

/** Removes the request `id` from its lane's waiting list; undefined when it is not waiting (started, or gone). */
function takeWaiting(id: number): SpawnRequest | undefined {
  for (const lane of lanes.values()) {
    const at = lane.waiting.findIndex((req) => req.id === id);
    if (at >= 0) return lane.waiting.splice(at, 1)[0];
  }
  return undefined;
}

/** A request still waiting for its lane waits as a `next` one from now on (work now waits for it). */
function promote(id: number): void {
  const req = takeWaiting(id);
  if (req?.slots !== undefined) admit({ ...req, slots: { ...req.slots, order: 'next' } });
}

/** A request still waiting for its lane ends as killed; one whose child runs is the operator's to signal. */
function cancel(id: number): void {
  if (takeWaiting(id) !== undefined) reply({ type: 'exited', id, stdout: '', stderr: '', signal: 'SIGKILL' });
}

function start(req: SpawnRequest, lane?: Lane): void {
  let stdout = '';
  let stderr = '';
  let replied = false;
  let place = lane;
  // The place is free once the child is reaped ('exit'), before its output has been read to the end
  // ('close', ~3 ms later on a busy machine): the next child need not wait for that.
  const freePlace = () => {
    if (place === undefined) return;
    const held = place;
    place = undefined;
    release(held);
  };
  const finish = (fields: { exitCode?: number; signal?: string; spawnError?: string }) => {
    if (replied) return;
    replied = true;
    freePlace();
    reply({ type: 'exited', id: req.id, stdout, stderr, ...fields });
  };
  let child;
  try {
    child = spawn(req.file, req.args, { env: req.env, detached: true, stdio: ['ignore', req.stdout, 'pipe'] });
  } catch (err) {
    finish({ spawnError: (err as NodeJS.ErrnoException).code ?? String(err) });
    return;
  }
  const pid = child.pid;
  if (pid !== undefined) {
    lowerPriority(pid);
    groups.add(pid);
    reply({ type: 'spawned', id: req.id, pid });
  }
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    if (stdout.length < req.maxChars) stdout += chunk.slice(0, req.maxChars - stdout.length);
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    if (stderr.length < req.maxChars) stderr += chunk.slice(0, req.maxChars - stderr.length);
  });
  child.on('error', (err: NodeJS.ErrnoException) => {
    if (pid === undefined) finish({ spawnError: err.code ?? err.message });
  });
  child.on('exit', freePlace);
  child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
    if (pid !== undefined) groups.delete(pid);
    finish({ ...(code === null ? {} : { exitCode: code }), ...(signal === null ? {} : { signal }) });
  });
}

process.on('message', (message: SpawnRequest | ControlRequest) => {
  if (message.type === 'spawn') admit(message);
  else if (message.type === 'cancel') cancel(message.id);
  else if (message.type === 'promote') promote(message.id);
});
process.on('disconnect', () => {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // ESRCH: already gone.
    }
  }
  process.exit(0);
});
