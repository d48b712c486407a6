/**
 * What every connection type shares: the default effect for unmatched actions, the reviewers
 * for that default, a description, and the context a type's resolver gets to turn its parsed
 * block into the resolved connection (secrets by reference, paths relative to the file).
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import { AirlockError } from '../../errors.ts';
import { EFFECTS, type Effect, type ReviewSpec, reviewSchema } from '../review.ts';
import { Secret } from '../secret.ts';

export const connectionCommon = {
  /** What actions no rule matches get. */
  default: z.enum(EFFECTS).default('review'),
  /** Reviewers for actions that fall to a `review` default. */
  review: reviewSchema.optional(),
  description: z.string().optional(),
};

export interface ConnectionBase {
  readonly name: string;
  readonly description?: string | undefined;
  readonly default: Effect;
  readonly review?: ReviewSpec | undefined;
}

/** Raised by a resolver for a secret or file that cannot be used; load.ts adds file:line:col. */
export class ConnectionFieldError extends Error {
  constructor(
    readonly field: readonly (string | number)[],
    message: string,
  ) {
    super(message);
  }
}

export interface ResolveContext {
  readonly name: string;
  readonly baseDir: string;
  /** A secret reference, resolved at each use (so rotating a file needs no restart). */
  secret(text: string): Secret;
  /** A secret reference that must resolve now; a missing one is reported with its position. */
  checkedSecret(field: readonly (string | number)[], text: string): Secret;
  /** A path relative to the policy file's folder. */
  path(text: string): string;
}

export function resolveContext(name: string, baseDir: string): ResolveContext {
  return {
    name,
    baseDir,
    secret: (text) => Secret.parse(text, baseDir),
    checkedSecret(field, text) {
      const s = Secret.parse(text, baseDir);
      try {
        s.reveal();
      } catch (err) {
        throw new ConnectionFieldError(field, err instanceof AirlockError ? err.describe() : String(err));
      }
      return s;
    },
    path: (text) => resolve(baseDir, text),
  };
}

export function baseOf(
  name: string,
  c: { default: Effect; review?: ReviewSpec | undefined; description?: string | undefined },
): ConnectionBase {
  return { name, description: c.description, default: c.default, review: c.review };
}
