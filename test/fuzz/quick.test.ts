/** The quick fuzz run: every target for its quick number of inputs (the long run is `npm run fuzz`). */
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { TARGETS } from './targets.ts';

describe('fuzz (quick)', () => {
  for (const t of TARGETS)
    it(t.name, async () => {
      await fc.assert(t.property() as fc.IAsyncProperty<[unknown]>, { numRuns: t.quickRuns });
    });
});
