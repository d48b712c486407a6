/**
 * Canonical JSON: the one byte sequence a value hashes to. Object keys are sorted (by UTF-16
 * code unit, as Array#sort does), there is no whitespace, and anything JSON cannot carry
 * faithfully (NaN, Infinity, bigint, functions, symbols, cycles) is rejected rather than
 * silently coerced — a record whose content cannot be pinned down must not enter the chain.
 */

export class CanonicalJsonError extends TypeError {
  override readonly name = 'CanonicalJsonError';
}

export function canonical(value: unknown): string {
  return write(value, [], '$');
}

function write(value: unknown, stack: object[], path: string): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value))
        throw new CanonicalJsonError(`${path} is ${value}: not representable in JSON`);
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`${path} is a ${typeof value}: not representable in JSON`);
  }
  if (value === null) return 'null';
  if (stack.includes(value)) throw new CanonicalJsonError(`${path} is a circular reference`);
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return write(toJSON.call(value), stack, path);
  stack.push(value);
  let out: string;
  if (Array.isArray(value)) {
    out = '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ',';
      const item = value[i];
      // JSON.stringify turns holes and undefined into null; do the same so arrays keep their length.
      out += item === undefined ? 'null' : write(item, stack, `${path}[${i}]`);
    }
    out += ']';
  } else {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).sort();
    out = '{';
    let first = true;
    for (const key of keys) {
      const v = obj[key];
      // Absent and undefined are the same thing in JSON; dropping the key keeps both spellings equal.
      if (v === undefined) continue;
      if (!first) out += ',';
      first = false;
      out += JSON.stringify(key) + ':' + write(v, stack, `${path}.${key}`);
    }
    out += '}';
  }
  stack.pop();
  return out;
}
