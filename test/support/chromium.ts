/**
 * Debian's headless Chromium for the console tests (playwright-core drives it; no browser is
 * downloaded): where it is, why a test skips without it, the console built before a page loads
 * it, and where screenshots go.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { consoleBuilt } from '../../src/server/console.ts';

const ROOT = join(import.meta.dirname, '..', '..');

export const CHROMIUM = process.env.AIRLOCK_CHROMIUM ?? '/usr/bin/chromium';
/** A test's `skip` where Chromium is missing. */
export const NO_CHROMIUM: string | false = existsSync(CHROMIUM) ? false : `no Chromium at ${CHROMIUM}`;
export const ARTIFACTS = join(ROOT, 'test-artifacts');

/** Builds the console when the tree has no build of it yet, and makes the screenshot folder. */
export function buildConsole(): void {
  if (!consoleBuilt()) {
    const r = spawnSync('npm', ['run', '--silent', 'build:web'], { cwd: ROOT, stdio: 'inherit' });
    assert.equal(r.status, 0, 'npm run build:web failed');
  }
  mkdirSync(ARTIFACTS, { recursive: true });
}

/**
 * Chromium without sandbox, GPU or background traffic; playwright-core gives every launch a
 * fresh temporary profile.
 */
export function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      ...extraArgs,
    ],
    timeout: 60_000,
  });
}
