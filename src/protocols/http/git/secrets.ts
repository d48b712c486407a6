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
