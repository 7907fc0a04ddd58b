import { describe, expect, it } from 'vitest';
import { Teardown } from './teardown.js';

describe('Teardown', () => {
  it('stops everything, last started first, even when a step fails', async () => {
    const order: string[] = [];
    const failures: string[] = [];
    const teardown = new Teardown((what, err) => failures.push(`${what}: ${String(err)}`));
    teardown.add('fake API server', () => order.push('api'));
    teardown.add('operator', async () => {
      await new Promise((r) => setTimeout(r, 10));
      order.push('operator');
      throw new Error('already gone');
    });
    teardown.add('load', () => order.push('load'));
    await teardown.run();
    expect(order).toEqual(['load', 'operator', 'api']);
    expect(failures).toEqual(['operator: Error: already gone']);
    await teardown.run();
    expect(order).toHaveLength(3);
  });

  it('runs a released step at once and not again; concurrent runs run each step once', async () => {
    let stops = 0;
    let others = 0;
    const teardown = new Teardown(() => undefined);
    const stop = teardown.add('operator', async () => {
      await new Promise((r) => setTimeout(r, 5));
      stops += 1;
    });
    teardown.add('other', async () => {
      await new Promise((r) => setTimeout(r, 5));
      others += 1;
    });
    await stop();
    await stop();
    expect(stops).toBe(1);
    await Promise.all([teardown.run(), teardown.run()]);
    expect(stops).toBe(1);
    expect(others).toBe(1);
  });
});
