/**
 * Secrets in the lines a push adds: private keys, cloud and service tokens. Findings are shown
 * to reviewers masked (the first and last characters only) and give the push an `AddsSecret`
 * part that policy can deny.
 */

export interface SecretFinding {
  readonly file: string;
  readonly detector: string;
  /** The match with its middle masked. */
  readonly masked: string;
}

const DETECTORS: readonly [string, RegExp][] = [
  ['private_key', /-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY( BLOCK)?-----/],
  ['aws_access_key', /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/],
  ['github_token', /\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}\b/],
  ['slack_token', /\bxox[abposr]-[A-Za-z0-9-]{10,}\b/],
  ['gitlab_token', /\bglpat-[A-Za-z0-9_-]{20,}\b/],
  ['stripe_key', /\b(?:sk|rk)_live_[A-Za-z0-9]{16,}\b/],
  ['google_api_key', /\bAIza[0-9A-Za-z_-]{35}\b/],
  ['jwt', /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b/],
];

const MAX_FINDINGS = 50;

function mask(text: string): string {
  if (text.length <= 8) return '*'.repeat(text.length);
  return `${text.slice(0, 4)}${'*'.repeat(Math.min(text.length - 6, 24))}${text.slice(-2)}`;
}

/** Scans the added lines of a unified diff (`+` lines, with `+++ b/FILE` headers). */
export function findSecrets(patch: string): SecretFinding[] {
  const out: SecretFinding[] = [];
  let file = '';
  for (const line of patch.split('\n')) {
    if (line.startsWith('+++ ')) {
      file = line.startsWith('+++ b/') ? line.slice(6) : line.slice(4);
      continue;
    }
    if (!line.startsWith('+')) continue;
    for (const [detector, re] of DETECTORS) {
      const m = re.exec(line);
      if (m) {
        out.push({ file, detector, masked: mask(m[0]) });
        if (out.length >= MAX_FINDINGS) return out;
      }
    }
  }
  return out;
}

const KEY_BEGIN = /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----/;
const KEY_END = /-----END [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----/;
const KEY_MASK = '[private key masked]';

/**
 * The diff with every detected secret masked, on every line (a secret a push removes was
 * exposed too, and context lines repeat what is there). A private key is masked from its BEGIN
 * line to its END line, keeping each line's diff marker so the diff still reads as one.
 */
export function maskSecretsInDiff(patch: string): string {
  const lines = patch.split('\n');
  let inKey = false;
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (line.startsWith('diff --git') || line.startsWith('@@') || line.startsWith('commit ')) inKey = false;
    const marker = /^[+\- ]/.test(line) ? line[0]! : '';
    if (inKey) {
      if (KEY_END.test(line)) inKey = false;
      lines[i] = `${marker}${KEY_MASK}`;
      continue;
    }
    const begin = KEY_BEGIN.exec(line);
    if (begin) {
      inKey = !KEY_END.test(line.slice(begin.index + begin[0].length));
      lines[i] = `${line.slice(0, begin.index)}${KEY_MASK}`;
      continue;
    }
    for (const [name, re] of DETECTORS) {
      if (name === 'private_key') continue;
      line = line.replace(new RegExp(re.source, 'g'), (m) => mask(m));
    }
    lines[i] = line;
  }
  return lines.join('\n');
}
