#!/usr/bin/env node
// The `airlock` command. Sources are TypeScript run through tsx, so a fresh clone works right
// after `npm install` with no build step and no stale output to drift from the sources.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
