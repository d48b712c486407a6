// `npm install` in a clone builds the console when the build tools are installed (they are
// devDependencies); an install without them (e.g. --omit=dev) leaves the shipped build alone.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
try {
  require.resolve('vite/package.json');
} catch {
  console.log('[airlock] vite is not installed: skipping the console build (npm run build:web)');
  process.exit(0);
}
const r = spawnSync('npm', ['run', '--silent', 'build:web'], { stdio: 'inherit', shell: process.platform === 'win32' });
process.exit(r.status ?? 1);
