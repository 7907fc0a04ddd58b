// The helper process that starts Trivy's children: what reaches a child, what comes back, and that
// no child outlives the helper or the operator.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { ChildSpawner, spawnerProgram } from './child-spawner.js';

const spawners: ChildSpawner[] = [];
afterEach(() => {
  for (const s of spawners.splice(0)) s.close();
});

/** Running, not a zombie waiting to be reaped by whoever adopted it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

// A child that reports its argv and environment, then exits with argv[1] after argv[2] ms (`node -e`: argv[0] is node).
const script = 'process.stdout.write(JSON.stringify({ argv: process.argv.slice(1), env: process.env })); process.stderr.write("on stderr"); setTimeout(() => process.exit(Number(process.argv[1] ?? 0)), Number(process.argv[2] ?? 0));';

describe('ChildSpawner', () => {
  it('runs a child with exactly the arguments and environment given, in its own process group', async () => {
    const spawner = new ChildSpawner();
    spawners.push(spawner);
    const child = spawner.run(process.execPath, ['-e', script, '3', '0', '--flag=$HOME; rm -rf /'], { env: { ONLY: 'this' }, stdout: 'pipe', maxChars: 100_000 });
    const pid = await child.pid;
    expect(pid).toBeGreaterThan(0);
    const run = await child.done;
    expect(run.exitCode).toBe(3);
    expect(run.stderr).toBe('on stderr');
    const seen = JSON.parse(run.stdout) as { argv: string[]; env: Record<string, string> };
    expect(seen.argv).toEqual(['3', '0', '--flag=$HOME; rm -rf /']);
    // Node adds nothing to a child's environment that it was not given.
    expect(Object.keys(seen.env).filter((k) => k !== 'ONLY')).toEqual([]);
  });

  it('runs the children at the lowest CPU priority (nice 19), while it and the operator keep their own', async () => {
    const spawner = new ChildSpawner();
    spawners.push(spawner);
    const own = getPriority();
    // After a moment, so the threads Node starts in the child have been lowered as well.
    const script = 'setTimeout(() => { const os = require("node:os"); const fs = require("node:fs"); process.stdout.write(JSON.stringify(fs.readdirSync("/proc/self/task").map((t) => os.getPriority(Number(t))))); }, 200)';
    const child = spawner.run(process.execPath, ['-e', script], { env: {}, stdout: 'pipe', maxChars: 1000 });
    await child.pid;
    expect(getPriority(spawner.helperPid())).toBe(own);
    const run = await child.done;
    const threads = JSON.parse(run.stdout) as number[];
    expect(threads.length).toBeGreaterThan(1);
    expect(new Set(threads)).toEqual(new Set([19]));
    expect(getPriority()).toBe(own);
  });

  it('keeps at most maxChars of the output, and says when a program cannot be started', async () => {
    const spawner = new ChildSpawner();
    spawners.push(spawner);
    const long = await spawner.run(process.execPath, ['-e', 'process.stderr.write("x".repeat(50000))'], { env: {}, stdout: 'ignore', maxChars: 1000 }).done;
    expect(long).toEqual({ exitCode: 0, stdout: '', stderr: 'x'.repeat(1000) });
    const missing = spawner.run('/nonexistent/trivy', [], { env: {}, stdout: 'ignore', maxChars: 1000 });
    expect(await missing.pid).toBeUndefined();
    expect((await missing.done).spawnError).toBe('ENOENT');
  });

  it('ends the runs of a helper that died as killed, kills their children, and starts a new helper for the next run', async () => {
    const spawner = new ChildSpawner();
    spawners.push(spawner);
    const sleeping = spawner.run(process.execPath, ['-e', script, '0', '60000'], { env: {}, stdout: 'ignore', maxChars: 1000 });
    const pid = (await sleeping.pid) ?? -1;
    const helper = spawner.helperPid() ?? -1;
    expect(alive(pid)).toBe(true);
    process.kill(helper, 'SIGKILL');
    expect(await sleeping.done).toMatchObject({ signal: 'SIGKILL' });
    await expect.poll(() => alive(pid)).toBe(false);
    const next = await spawner.run(process.execPath, ['-e', script, '0', '0'], { env: {}, stdout: 'ignore', maxChars: 1000 }).done;
    expect(next.exitCode).toBe(0);
    expect(spawner.helperPid()).not.toBe(helper);
  });

  it('runs at most the lane limit of children at once, starts a waiting one as one exits, and drops a cancelled one unstarted', async () => {
    const spawner = new ChildSpawner();
    spawners.push(spawner);
    const slots = { lane: 'scan', limit: 1 };
    const opts = { env: {}, stdout: 'ignore' as const, maxChars: 100, slots };
    const first = spawner.run(process.execPath, ['-e', script, '0', '1500'], opts);
    const second = spawner.run(process.execPath, ['-e', script, '0', '0'], opts);
    const third = spawner.run(process.execPath, ['-e', script, '0', '0'], opts);
    const firstPid = (await first.pid) ?? -1;
    expect(alive(firstPid)).toBe(true);
    // Another lane does not wait for this one.
    const other = spawner.run(process.execPath, ['-e', script, '0', '0'], { ...opts, slots: { lane: 'other', limit: 1 } });
    expect((await other.done).exitCode).toBe(0);
    expect(alive(firstPid)).toBe(true);
    third.cancel();
    expect(await third.done).toEqual({ signal: 'SIGKILL', stdout: '', stderr: '' });
    expect(await third.pid).toBeUndefined();
    const secondStarted = await second.pid.then(() => Date.now());
    const firstEnded = await first.done.then(() => Date.now());
    // The second waited for the first to exit: its pid came no earlier than the first's exit did.
    expect(secondStarted).toBeGreaterThanOrEqual(firstEnded - 5);
    expect((await second.done).exitCode).toBe(0);
  });

  /**
   * A one-place lane kept busy for 500 ms; `queue(name, order)` then asks for a run in it, and
   * `startOrder()` resolves to the names in the order their runs started.
   */
  async function busyLane() {
    const spawner = new ChildSpawner();
    spawners.push(spawner);
    const lane = { lane: 'scan', limit: 1 };
    const opts = { env: {}, stdout: 'ignore' as const, maxChars: 100 };
    const queue = (order?: 'next' | 'idle', ms = 0) => spawner.run(process.execPath, ['-e', script, '0', String(ms)], { ...opts, slots: order === undefined ? lane : { ...lane, order } });
    // A free place: even an idle run starts at once.
    expect((await queue('idle').done).exitCode).toBe(0);
    await queue(undefined, 500).pid;
    const started: string[] = [];
    const runs: Promise<unknown>[] = [];
    return {
      queue: (name: string, order?: 'next' | 'idle', ms = 0) => {
        const run = queue(order, ms);
        runs.push(run.pid.then(() => started.push(name)));
        return run;
      },
      startOrder: async () => (await Promise.all(runs), started),
    };
  }

  it('starts a waiting next run (the second step of work begun) ahead of the runs that waited before it', async () => {
    const lane = await busyLane();
    lane.queue('waiting');
    lane.queue('next', 'next');
    expect(await lane.startOrder()).toEqual(['next', 'waiting']);
  });

  it('starts an idle run only when no other run of its lane waits, even ones that came after it', async () => {
    const lane = await busyLane();
    lane.queue('idle', 'idle');
    lane.queue('later', undefined, 200);
    lane.queue('next', 'next');
    expect(await lane.startOrder()).toEqual(['next', 'later', 'idle']);
  });

  it('starts a promoted idle run ahead of the runs waiting with it', async () => {
    const lane = await busyLane();
    lane.queue('waiting');
    lane.queue('promoted', 'idle').promote();
    expect(await lane.startOrder()).toEqual(['promoted', 'waiting']);
  });

  it('kills every child it started when the operator goes away (its channel closes)', async () => {
    const helper = fork(spawnerProgram(), [], { env: {}, execArgv: ['--disable-warning=ExperimentalWarning'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
    const spawned = new Promise<number>((resolve) => helper.on('message', (m: { type: string; pid: number }) => m.type === 'spawned' && resolve(m.pid)));
    helper.send({ type: 'spawn', id: 1, file: process.execPath, args: ['-e', script, '0', '60000'], env: {}, stdout: 'ignore', maxChars: 10 });
    const pid = await spawned;
    expect(alive(pid)).toBe(true);
    const exited = new Promise((resolve) => helper.on('exit', resolve));
    helper.disconnect();
    await exited;
    await expect.poll(() => alive(pid)).toBe(false);
  });
});
