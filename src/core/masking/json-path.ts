/**
 * The JSON paths masking rules name, in the common subset of JSONPath (RFC 9535): `$` the
 * document, `.name` or `['name']` a member, `[N]` an element, `*` or `[*]` any member or
 * element, `..name` a member at any depth below. Names may hold `*` globs. Filters and slices
 * are not accepted: a rule either names a place plainly or is refused when the policy loads.
 * https://www.rfc-editor.org/rfc/rfc9535#section-2.5
 */
import { globMatch } from '../policy/evaluate.ts';

export interface PathSegment {
  /** `..`: the segment may match at this depth or any depth below. */
  readonly descendant: boolean;
  /** A member name (glob), an element index, or `*` for anything. */
  readonly match: string | number;
}

export type JsonPath = readonly PathSegment[];

/** Where a value sits in a document: member names and element indexes from the top. */
export type ValuePath = readonly (string | number)[];

const NAME = /^[A-Za-z0-9_$*?-][A-Za-z0-9_$*?-]*/;
const MAX_LENGTH = 512;

export function parseJsonPath(text: string): JsonPath {
  if (text.length > MAX_LENGTH) throw new Error(`a JSON path is at most ${MAX_LENGTH} characters`);
  if (!text.startsWith('$'))
    throw new Error(`"${text}" is not a JSON path: start with $ (e.g. "$.customer.email")`);
  const out: PathSegment[] = [];
  let i = 1;
  while (i < text.length) {
    let descendant = false;
    if (text.startsWith('..', i)) {
      descendant = true;
      i += 2;
    } else if (text[i] === '.') i += 1;
    else if (text[i] !== '[') throw new Error(`"${text}": unexpected "${text[i]}" at ${i}`);
    if (text[i] === '[') {
      const close = text.indexOf(']', i);
      if (close < 0) throw new Error(`"${text}": "[" without "]"`);
      const inner = text.slice(i + 1, close).trim();
      i = close + 1;
      if (inner === '*') out.push({ descendant, match: '*' });
      else if (/^\d{1,9}$/.test(inner)) out.push({ descendant, match: Number(inner) });
      else if (/^'[^']*'$|^"[^"]*"$/.test(inner)) out.push({ descendant, match: inner.slice(1, -1) });
      else
        throw new Error(
          `"${text}": only [*], [N] and ['name'] are supported inside brackets (no filters or slices)`,
        );
      continue;
    }
    const m = NAME.exec(text.slice(i));
    if (!m) throw new Error(`"${text}": a member name is expected at ${i}`);
    out.push({ descendant, match: m[0] });
    i += m[0].length;
  }
  if (out.length === 0) throw new Error(`"${text}" names the whole document; name a member inside it`);
  return out;
}

function segmentMatches(s: PathSegment, key: string | number): boolean {
  if (s.match === '*') return true;
  if (typeof s.match === 'number') return key === s.match;
  return typeof key === 'string' && globMatch(s.match, key);
}

function matchFrom(path: JsonPath, si: number, value: ValuePath, vi: number): boolean {
  if (si === path.length) return vi === value.length;
  const s = path[si]!;
  if (!s.descendant)
    return vi < value.length && segmentMatches(s, value[vi]!) && matchFrom(path, si + 1, value, vi + 1);
  for (let k = vi; k < value.length; k++)
    if (segmentMatches(s, value[k]!) && matchFrom(path, si + 1, value, k + 1)) return true;
  return false;
}

/** True when `value` (the place of one value in a document) is the place `path` names. */
export function jsonPathMatches(path: JsonPath, value: ValuePath): boolean {
  return matchFrom(path, 0, value, 0);
}
