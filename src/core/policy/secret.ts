/**
 * Secret references (`${env:NAME}`, `${file:./path}`) in the policy file. A Secret resolves its
 * value only when asked and never prints it: toString, JSON and util.inspect all show the
 * reference, so a secret cannot leak into a log line or an error by accident.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { inspect } from 'node:util';
import { AirlockError } from '../errors.ts';

const REFERENCE = /^\$\{(env|file):([^}]+)\}$/;

export class Secret {
  readonly reference: string;
  readonly #read: () => string;

  private constructor(reference: string, read: () => string) {
    this.reference = reference;
    this.#read = read;
  }

  /** `${env:X}` or `${file:path}` (relative to baseDir), or a literal (tests, demo). */
  static parse(text: string, baseDir: string): Secret {
    const m = REFERENCE.exec(text.trim());
    if (!m) return Secret.literal(text);
    const [, scheme, target] = m as unknown as [string, 'env' | 'file', string];
    if (scheme === 'env') {
      return new Secret(`env:${target}`, () => {
        const v = process.env[target];
        if (v === undefined || v === '')
          throw new AirlockError('AIRLOCK_E_SECRET_UNRESOLVED', `environment variable ${target} is not set`, {
            hint: `export ${target} before starting Airlock`,
          });
        return v;
      });
    }
    const path = resolve(baseDir, target);
    return new Secret(`file:${target}`, () => {
      try {
        return readFileSync(path, 'utf8').replace(/\r?\n$/, '');
      } catch (cause) {
        throw new AirlockError('AIRLOCK_E_SECRET_UNRESOLVED', `secret file ${path} could not be read`, {
          hint: 'check that the file exists and is readable by the Airlock process',
          cause,
        });
      }
    });
  }

  static literal(value: string): Secret {
    return new Secret('inline', () => value);
  }

  /** The secret value. Call at the point of use; do not keep it around longer than needed. */
  reveal(): string {
    return this.#read();
  }

  toString(): string {
    return `[secret ${this.reference}]`;
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}
