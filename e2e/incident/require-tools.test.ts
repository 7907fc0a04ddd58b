// The incident test's tool check: a missing binary is a failure that says how to install it.
import { describe, expect, it } from 'vitest';
import { requireTools } from './require-tools.js';

describe('requireTools', () => {
  it('rejects naming the missing tool and the apt-get command', async () => {
    const missing = requireTools([{ names: ['prometheus-not-installed-xyz'] }]);
    await expect(missing).rejects.toThrow(/prometheus-not-installed-xyz.*apt-get install prometheus prometheus-alertmanager/);
  });

  it('accepts a tool under its second name', async () => {
    // `node` is on PATH wherever the tests run (npx puts node_modules/.bin first).
    await expect(requireTools([{ names: ['no-such-binary-xyz', 'node'] }])).resolves.toBeUndefined();
  });
});
