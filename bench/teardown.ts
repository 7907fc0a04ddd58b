// What the benchmark has started and must stop on every way out — a figure missed, a throw, Ctrl-C —
// so no operator process (and its Trivy children) outlives the run: steps run last-started first, each
// once, and a step that fails does not keep the others from running.

export type ReleaseStep = () => Promise<void>;

export class Teardown {
  private readonly steps: { what: string; run: () => unknown }[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly report: (what: string, err: unknown) => void) {}

  /** Registers a step; the returned function runs it now (once) and drops it from the teardown. */
  add(what: string, run: () => unknown): ReleaseStep {
    const step = { what, run };
    this.steps.push(step);
    return async () => {
      const i = this.steps.indexOf(step);
      if (i < 0) return;
      this.steps.splice(i, 1);
      await this.runStep(step);
    };
  }

  /** Runs every registered step, last added first. Concurrent calls share one run. */
  run(): Promise<void> {
    this.running ??= (async () => {
      for (let step = this.steps.pop(); step !== undefined; step = this.steps.pop()) await this.runStep(step);
      this.running = undefined;
    })();
    return this.running;
  }

  private async runStep(step: { what: string; run: () => unknown }): Promise<void> {
    try {
      await step.run();
    } catch (err) {
      this.report(step.what, err);
    }
  }
}
