/**
 * `npm run fuzz`: every target for a bounded time (AIRLOCK_FUZZ_SECONDS per target, default
 * 30), printing the inputs tried and any counterexample with the seed to replay it. Exits
 * non-zero when a target fails. Stops by itself.
 */
import fc from 'fast-check';
import { TARGETS } from './targets.ts';

const seconds = Number(process.env.AIRLOCK_FUZZ_SECONDS ?? 30);
const only = process.argv[2];
let failed = 0;
let total = 0;
for (const t of TARGETS) {
  if (only && !t.name.includes(only)) continue;
  const started = Date.now();
  const details = await fc.check(t.property() as fc.IAsyncProperty<[unknown]>, {
    numRuns: Number.MAX_SAFE_INTEGER,
    interruptAfterTimeLimit: seconds * 1000,
    markInterruptAsFailure: false,
  });
  const tried = details.numRuns;
  total += tried;
  const rate = Math.round(tried / Math.max(0.001, (Date.now() - started) / 1000));
  if (details.failed) {
    failed++;
    console.log(
      `FAIL ${t.name}: after ${tried} inputs (seed ${details.seed}, path ${details.counterexamplePath})`,
    );
    console.log(`  ${String(details.errorInstance).split('\n').slice(0, 5).join('\n  ')}`);
    console.log(`  counterexample: ${fc.stringify(details.counterexample).slice(0, 500)}`);
  } else console.log(`ok   ${t.name}: ${tried} inputs (${rate}/s)`);
}
console.log(`${total} inputs tried, ${failed} target${failed === 1 ? '' : 's'} failed`);
process.exit(failed > 0 ? 1 : 0);
