#!/usr/bin/env -S node --max-semi-space-size=64
// The `airlock` command. Sources are TypeScript run through tsx, so a fresh clone works right
// after `npm install` with no build step and no stale output to drift from the sources.
//
// --max-semi-space-size=64: every statement on the data path allocates a few kilobytes that die
// young, and each young-generation collection pauses every session for a millisecond or more.
// With V8's default (16 MB here) a busy gateway collects about 20 times a second, and those
// pauses are most of the latency it adds at p99; 64 MB makes them a quarter as frequent (pgbench
// -S through Airlock: added p99 2.4–3.0 ms → 1.8–2.0 ms). The space is only committed while the
// allocation rate needs it. It must be given to node on its command line (V8 sizes the heap at
// start-up), so `node bin/airlock.js` without it runs with V8's default.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
