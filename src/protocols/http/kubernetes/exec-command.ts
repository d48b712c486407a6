/**
 * What `kubectl exec POD -- ARGV` runs, as action parts. The argv reaches the container's runtime
 * as is (no shell), so its text is one command; but when argv starts a shell with `-c SCRIPT`,
 * the script is a command line like an SSH exec's and each command in it is a part of its own,
 * so `commands: ["rm *"]` also meets `sh -c 'cd /data && rm -rf x'`. What the shell parser cannot
 * see through makes an `unknown` part, as for SSH.
 * https://kubernetes.io/docs/reference/kubectl/generated/kubectl_exec/
 */
import type { ActionPart } from '../../../core/action.ts';
import { classifyCommand } from '../../ssh/command.ts';

const SHELLS = new Set(['sh', 'bash', 'dash', 'ash', 'zsh', 'ksh', 'mksh', 'busybox']);

/** `command=sh&command=-c&command=ls` → the command line, shell-quoted where needed. */
export function argvText(words: readonly string[]): string {
  return words.map((w) => (/^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/**
 * The script a shell in `words` runs with `-c`, `''` when it has `-c` without one, undefined
 * when `words` does not start a shell with `-c` (`sh` alone reads its commands from stdin: a
 * session, judged as the whole argv).
 */
export function shellScript(words: readonly string[]): string | undefined {
  const name = words[0]?.split('/').pop();
  if (name === undefined || !SHELLS.has(name)) return undefined;
  let i = 1;
  if (name === 'busybox') {
    if (words[1] !== 'sh' && words[1] !== 'ash') return undefined;
    i = 2;
  }
  for (; i < words.length; i++) {
    const w = words[i]!;
    if (w === '--' || !w.startsWith('-') || w.startsWith('--')) return undefined;
    // Option letters may be grouped (`-ec`, `-lc`); the script is the next word.
    if (/^-[A-Za-z]*c[A-Za-z]*$/.test(w)) return words[i + 1] ?? '';
  }
  return undefined;
}

/** Parts of the script a shell argv runs; empty when argv does not run a `-c` script. */
export function scriptParts(words: readonly string[]): ActionPart[] {
  const script = shellScript(words);
  if (script === undefined) return [];
  return classifyCommand(script);
}
