/**
 * Shell command lines → action parts, so rules such as `commands: ["systemctl *"]` judge each
 * command a line runs, not just its first word. Written by hand because no shell parser fits
 * the need: we only split a line the way a POSIX shell would (quotes, escapes, `;` `&&` `||`
 * `|` `&`, redirections) and flag what we cannot see through. The target's shell is the final
 * interpreter, so anything whose meaning depends on run-time expansion (command substitution,
 * subshells, here-documents, compound commands, a command name built from a variable) makes the
 * line `unknown`: reviewed or denied per policy, never assumed harmless.
 * https://pubs.opengroup.org/onlinepubs/9699919799/utilities/V3_chap02.html#tag_18_03
 */
import type { ActionPart } from '../../core/action.ts';

export interface Redirection {
  /** `>`, `>>`, `>|`, `<`, `<>`, `&>`, `&>>`, `>&`, `<&`, `<<<`. */
  readonly op: string;
  readonly target: string;
}

export interface SimpleCommand {
  /** Words after quote removal. */
  readonly words: readonly string[];
  readonly redirections: readonly Redirection[];
  /** The command name contains an unquoted expansion: what runs is decided at run time. */
  readonly dynamicName: boolean;
}

export interface ParsedLine {
  readonly commands: readonly SimpleCommand[];
  /** Why the line cannot be fully classified; empty when it can. */
  readonly unknown: readonly string[];
}

const RESERVED = new Set([
  '!',
  '{',
  '}',
  '[[',
  ']]',
  'case',
  'coproc',
  'do',
  'done',
  'elif',
  'else',
  'esac',
  'fi',
  'for',
  'function',
  'if',
  'in',
  'select',
  'then',
  'time',
  'until',
  'while',
]);

/** Output targets that change nothing on the host. */
const HARMLESS_TARGETS = new Set(['/dev/null', '/dev/stdout', '/dev/stderr', '/dev/tty']);

const OPERATOR_CHARS = new Set([';', '&', '|', '\n']);
const REDIRECT_OPS = ['&>>', '<<<', '&>', '>>', '>|', '<>', '>&', '<&', '<<', '>', '<'];

export function parseCommandLine(line: string): ParsedLine {
  const commands: SimpleCommand[] = [];
  const unknown = new Set<string>();
  let words: string[] = [];
  let redirections: Redirection[] = [];
  let dynamicName = false;
  let word: string | undefined;
  /** The current word has an unquoted `$`. */
  let wordExpands = false;
  let pendingRedirect: string | undefined;

  const endWord = () => {
    if (word === undefined) return;
    if (pendingRedirect !== undefined) {
      redirections.push({ op: pendingRedirect, target: word });
      pendingRedirect = undefined;
    } else {
      if (words.length === 0) {
        if (RESERVED.has(word)) unknown.add(`"${word}" starts a compound command`);
        // Expansions, globs and brace expansion (`{rm,-rf,/}`) decide the name only at run time.
        if (wordExpands || /[*?]/.test(word) || (word.length > 1 && /[[{]/.test(word))) dynamicName = true;
      }
      words.push(word);
    }
    word = undefined;
    wordExpands = false;
  };
  const endCommand = () => {
    endWord();
    if (pendingRedirect !== undefined) {
      unknown.add(`redirection "${pendingRedirect}" has no target`);
      pendingRedirect = undefined;
    }
    if (words.length > 0 || redirections.length > 0) {
      if (dynamicName) unknown.add('the command name is computed when the line runs');
      commands.push({ words, redirections, dynamicName });
    }
    words = [];
    redirections = [];
    dynamicName = false;
  };

  // sshd refuses a command with a NUL; a shell would stop reading at it. Either way, not ours to guess.
  if (line.includes('\0')) unknown.add('a NUL byte');
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i]!;
    if (c === ' ' || c === '\t' || c === '\r') {
      endWord();
      i++;
      continue;
    }
    if (c === '#' && word === undefined) {
      // A comment runs to the end of the line; the shell ignores it, and so do we.
      while (i < n && line[i] !== '\n') i++;
      continue;
    }
    if (OPERATOR_CHARS.has(c)) {
      if (c === '&' && line[i + 1] === '>') {
        // `&>` / `&>>` redirect both streams
      } else {
        if (c === ';' && line[i + 1] === ';') unknown.add('";;" belongs to a case statement');
        if (c === '|' && line[i + 1] === '&') i++;
        else if ((c === '&' || c === '|') && line[i + 1] === c) i++;
        endCommand();
        i++;
        continue;
      }
    }
    if (c === '(' || c === ')') {
      unknown.add(c === '(' ? 'a subshell or function definition' : 'an unbalanced ")"');
      endCommand();
      i++;
      continue;
    }
    if (c === '<' || c === '>' || (c === '&' && line[i + 1] === '>')) {
      if ((c === '<' || c === '>') && line[i + 1] === '(') {
        unknown.add('process substitution');
        word = (word ?? '') + c;
        i++;
        continue;
      }
      // A word of digits right before the operator is its file descriptor (`2>`).
      const fd = word !== undefined && /^\d+$/.test(word) && !wordExpands ? word : undefined;
      if (fd === undefined) endWord();
      else word = undefined;
      const op = REDIRECT_OPS.find((o) => line.startsWith(o, i))!;
      i += op.length;
      if (op === '<<') {
        unknown.add('a here-document');
        if (line[i] === '-') i++;
      }
      if (pendingRedirect !== undefined) unknown.add(`redirection "${pendingRedirect}" has no target`);
      // `2>&1`, `>&-`: duplicating a descriptor touches no file.
      if ((op === '>&' || op === '<&') && /^(\d+|-)(?![^\s;&|<>()])/.test(line.slice(i))) {
        const m = /^(\d+|-)/.exec(line.slice(i))!;
        i += m[0].length;
        continue;
      }
      pendingRedirect = fd === undefined ? op : `${fd}${op}`;
      continue;
    }
    if (c === '\\') {
      if (i + 1 >= n) {
        word = (word ?? '') + '\\';
        i++;
      } else if (line[i + 1] === '\n') {
        i += 2; // line continuation
      } else {
        word = (word ?? '') + line[i + 1];
        i += 2;
      }
      continue;
    }
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) {
        unknown.add('an unterminated single quote');
        word = (word ?? '') + line.slice(i + 1);
        i = n;
        continue;
      }
      word = (word ?? '') + line.slice(i + 1, end);
      i = end + 1;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      let text = '';
      let closed = false;
      while (j < n) {
        const d = line[j]!;
        if (d === '"') {
          closed = true;
          break;
        }
        if (d === '\\' && j + 1 < n && '$`"\\\n'.includes(line[j + 1]!)) {
          if (line[j + 1] !== '\n') text += line[j + 1];
          j += 2;
          continue;
        }
        if (d === '`' || (d === '$' && line[j + 1] === '(')) unknown.add('command substitution');
        if (d === '$') wordExpands = true;
        text += d;
        j++;
      }
      if (!closed) unknown.add('an unterminated double quote');
      word = (word ?? '') + text;
      i = closed ? j + 1 : n;
      continue;
    }
    if (c === '`') {
      unknown.add('command substitution');
    } else if (c === '$') {
      wordExpands = true;
      const next = line[i + 1];
      if (next === '(') unknown.add('command substitution');
      else if (next === "'") unknown.add('ANSI-C quoting');
    }
    word = (word ?? '') + c;
    i++;
  }
  endCommand();
  return { commands, unknown: [...unknown] };
}

/** The text rules match against: the words joined by single spaces. */
export function commandText(cmd: SimpleCommand): string {
  return cmd.words.join(' ');
}

/**
 * Legacy scp runs `scp -t PATH` (upload, the host writes) or `scp -f PATH` (download, the host
 * reads) on the far side. https://github.com/openssh/openssh-portable/blob/master/scp.c
 */
export function scpTransfer(
  cmd: SimpleCommand,
): { direction: 'upload' | 'download'; path: string } | undefined {
  const [name, ...args] = cmd.words;
  if (name !== 'scp') return undefined;
  let direction: 'upload' | 'download' | undefined;
  const paths: string[] = [];
  for (const a of args) {
    if (a === '--') continue;
    if (a.startsWith('-') && paths.length === 0) {
      if (a.includes('t')) direction = 'upload';
      if (a.includes('f')) direction = direction === 'upload' ? undefined : 'download';
      continue;
    }
    paths.push(a);
  }
  if (!direction || paths.length !== 1) return undefined;
  return { direction, path: paths[0]! };
}

/**
 * The parts of an `exec` request: one `exec` part per simple command (its text in
 * `fields.command`), a `write` part per output redirection to a file, `transfer`/`write` for
 * legacy scp, and an `unknown` part when the line holds something we cannot see through.
 */
export function classifyCommand(line: string): ActionPart[] {
  const parsed = parseCommandLine(line);
  const parts: ActionPart[] = [];
  for (const cmd of parsed.commands) {
    const text = commandText(cmd);
    const scp = parsed.commands.length === 1 ? scpTransfer(cmd) : undefined;
    if (scp) {
      parts.push({
        kind: scp.direction === 'upload' ? 'write' : 'transfer',
        text,
        why: `scp ${scp.direction} of ${scp.path}`,
        fields: { command: [text], file: [scp.path] },
      });
    } else if (cmd.words.length > 0) {
      parts.push({ kind: 'exec', text, why: 'a shell command', fields: { command: [text] } });
    }
    for (const r of cmd.redirections) {
      if (r.op.includes('<') && !r.op.includes('>')) continue;
      if (HARMLESS_TARGETS.has(r.target)) continue;
      parts.push({
        kind: 'write',
        text: `${r.op} ${r.target}`,
        why: `output redirected to ${r.target}`,
        fields: { file: [r.target] },
      });
    }
  }
  if (parsed.unknown.length > 0 || parts.length === 0)
    parts.push({
      kind: 'unknown',
      text: line,
      why:
        parsed.unknown.length > 0
          ? `the line contains ${parsed.unknown.join(', ')}`
          : 'the line runs no command Airlock can name',
    });
  return parts;
}
