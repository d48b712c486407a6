/**
 * Content detectors: find sensitive values inside free text (a result value, a notice, a
 * parameter) whatever column or field they sit in. Every pattern has bounded repetition so a
 * hostile value cannot make matching slow; checks a pattern cannot express (Luhn, card number
 * prefixes, SSN number ranges) run on each candidate.
 */

export const DETECTORS = [
  'email',
  'credit_card',
  'national_id',
  'phone',
  'jwt',
  'cloud_key',
  'private_key',
] as const;
export type DetectorName = (typeof DETECTORS)[number];
/** Other names accepted in the policy file for a detector. */
export const DETECTOR_ALIASES: Readonly<Record<string, DetectorName>> = {
  ssn: 'national_id',
  card: 'credit_card',
  cloud_keys: 'cloud_key',
};

export interface Finding {
  readonly detector: DetectorName;
  readonly start: number;
  readonly end: number;
}

interface Detector {
  readonly name: DetectorName;
  readonly pattern: RegExp;
  /** Extra check on a candidate; absent means every match counts. */
  readonly valid?: (match: string) => boolean;
  /** Cheap test: text without any of these characters cannot contain a match. */
  readonly needs?: RegExp;
}

/** https://en.wikipedia.org/wiki/Luhn_algorithm */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Issuer prefixes of the card networks (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay). */
function cardPrefix(digits: string): boolean {
  const two = Number(digits.slice(0, 2));
  const four = Number(digits.slice(0, 4));
  if (digits[0] === '4') return true;
  if (two >= 51 && two <= 55) return true;
  if (four >= 2221 && four <= 2720) return true;
  if (two === 34 || two === 37 || two === 35 || two === 36 || two === 38 || two === 62 || two === 65)
    return true;
  if (two === 30 || digits.startsWith('6011') || (four >= 6440 && four <= 6499)) return true;
  return false;
}

function validCard(match: string): boolean {
  const digits = match.replace(/[ -]/g, '');
  return digits.length >= 13 && digits.length <= 19 && cardPrefix(digits) && luhnValid(digits);
}

/** US Social Security numbers: area 000, 666 and 900-999, group 00 and serial 0000 are never issued. */
function validSsn(match: string): boolean {
  if (!/^\d{3}-\d{2}-\d{4}$/.test(match)) return true; // UK National Insurance number
  const area = Number(match.slice(0, 3));
  return area !== 0 && area !== 666 && area < 900 && match.slice(4, 6) !== '00' && match.slice(7) !== '0000';
}

const LIST: readonly Detector[] = [
  {
    name: 'private_key',
    // A key cut short (a truncated value) is masked to the end of the text.
    pattern:
      /-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END [A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|[\s\S]*$)/g,
    needs: /-----BEGIN/,
  },
  {
    name: 'jwt',
    pattern: /\beyJ[A-Za-z0-9_-]{5,4096}\.eyJ[A-Za-z0-9_-]{5,16384}\.[A-Za-z0-9_-]{0,4096}/g,
    needs: /eyJ/,
  },
  {
    name: 'cloud_key',
    pattern: new RegExp(
      [
        // AWS access key ids (long-term, temporary, and other IAM key types).
        String.raw`\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b`,
        // AWS secret access keys are only recognisable next to their name.
        String.raw`(?<=aws_secret_access_key["']?\s{0,4}[=:]\s{0,4}["']?)[A-Za-z0-9/+=]{40}`,
        // Google Cloud API keys and OAuth client secrets.
        String.raw`\bAIza[0-9A-Za-z_-]{35}\b`,
        String.raw`\bGOCSPX-[0-9A-Za-z_-]{28}\b`,
        // Azure storage account keys and SAS signatures in connection strings.
        String.raw`(?<=AccountKey=)[A-Za-z0-9+/]{40,100}={0,2}`,
        String.raw`(?<=[?&]sig=)[A-Za-z0-9%+/=]{20,200}`,
        // GitHub, GitLab, Slack, Stripe tokens.
        String.raw`\bgh[pousr]_[A-Za-z0-9]{36,255}\b`,
        String.raw`\bgithub_pat_[A-Za-z0-9_]{22,255}\b`,
        String.raw`\bglpat-[A-Za-z0-9_-]{20,64}\b`,
        String.raw`\bxox[abposr]-[A-Za-z0-9-]{10,255}`,
        String.raw`\b[sr]k_live_[A-Za-z0-9]{20,255}\b`,
      ].join('|'),
      'gi',
    ),
  },
  {
    name: 'email',
    pattern:
      /[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?){1,8}/g,
    needs: /@/,
    valid: (m) => /\.[A-Za-z]{2,}$/.test(m),
  },
  {
    name: 'credit_card',
    pattern: /(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])/g,
    valid: validCard,
  },
  {
    name: 'national_id',
    // US SSN (with dashes, so that any 9-digit number is not one) and UK National Insurance number.
    pattern:
      /(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])|\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b/g,
    valid: validSsn,
  },
  {
    name: 'phone',
    // International numbers written with +, and North American numbers with separators.
    pattern:
      /(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){1,5}(?:[ .-]?\d{2,4})(?!\d)|(?<![\w-])\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?![\w-])/g,
    valid: (m) => {
      const digits = m.replace(/\D/g, '');
      return digits.length >= 10 && digits.length <= 15;
    },
  },
];

const BY_NAME = new Map(LIST.map((d) => [d.name, d]));

/** Quick filter for the common case: no digit, no '@', no key marker means nothing to find. */
const MAYBE =
  /[\d@]|eyJ|-----BEGIN|AKIA|ASIA|AIza|GOCSPX|AccountKey|sig=|gh[pousr]_|github_pat|glpat|xox|_live_/i;

/**
 * Finds every match of the named detectors in `text`, as non-overlapping spans in order. Spans
 * that overlap are joined into one (named after the earlier), so no part of either stays visible.
 */
export function detect(text: string, detectors: ReadonlySet<DetectorName>): Finding[] {
  if (text.length === 0 || !MAYBE.test(text)) return [];
  const found: Finding[] = [];
  for (const name of detectors) {
    const d = BY_NAME.get(name);
    if (!d || (d.needs && !d.needs.test(text))) continue;
    d.pattern.lastIndex = 0;
    for (let m = d.pattern.exec(text); m; m = d.pattern.exec(text)) {
      if (m[0].length === 0) {
        d.pattern.lastIndex++;
        continue;
      }
      if (d.valid && !d.valid(m[0])) continue;
      found.push({ detector: d.name, start: m.index, end: m.index + m[0].length });
    }
  }
  if (found.length < 2) return found;
  found.sort((a, b) => a.start - b.start || b.end - a.end);
  const out: Finding[] = [];
  for (const f of found) {
    const last = out[out.length - 1];
    if (last && f.start < last.end) {
      if (f.end > last.end) out[out.length - 1] = { ...last, end: f.end };
      continue;
    }
    out.push(f);
  }
  return out;
}
