/**
 * Verified JWT claims → a principal, by the issuer's mapping rules: the name from one claim,
 * groups from a groups claim and from rules over other claims (a CI workload's `repository`,
 * `ref`, `environment`), the kind from the first rule that names one.
 */
import type { Principal } from '../action.ts';
import { AirlockError } from '../errors.ts';
import { globMatch } from '../policy/evaluate.ts';
import type { ClaimMatch, OidcIssuer } from '../policy/policy.ts';

/** Claim values as strings: arrays element by element, numbers and booleans as text. */
export function claimValues(claims: Readonly<Record<string, unknown>>, key: string): string[] {
  const v = claims[key];
  const one = (x: unknown): string | undefined =>
    typeof x === 'string' ? x : typeof x === 'number' || typeof x === 'boolean' ? String(x) : undefined;
  if (Array.isArray(v)) return v.map(one).filter((x): x is string => x !== undefined);
  const s = one(v);
  return s === undefined ? [] : [s];
}

/** Every listed claim has a value matching one of its globs. */
export function claimsMatch(claims: Readonly<Record<string, unknown>>, match: ClaimMatch): boolean {
  return Object.entries(match).every(([key, globs]) =>
    claimValues(claims, key).some((v) => globs.some((g) => globMatch(g, v))),
  );
}

const GROUP = /^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$/;

export function principalFromClaims(
  issuer: OidcIssuer,
  claims: Readonly<Record<string, unknown>>,
): Principal {
  if (!claimsMatch(claims, issuer.require))
    throw new AirlockError(
      'AIRLOCK_E_TOKEN_INVALID',
      `the token from ${issuer.issuer} is not one Airlock accepts`,
      {
        hint: `its claims do not match what the policy requires of this issuer (${Object.keys(issuer.require).join(', ')})`,
      },
    );
  const subject = claimValues(claims, issuer.nameClaim)[0];
  if (subject === undefined || subject === '')
    throw new AirlockError(
      'AIRLOCK_E_TOKEN_INVALID',
      `the token from ${issuer.issuer} has no "${issuer.nameClaim}" claim`,
      {
        hint: 'the policy names the principal from this claim (name_claim); ask for a token that carries it',
      },
    );
  const groups = new Set<string>();
  if (issuer.groupsClaim !== undefined) {
    const raw = claims[issuer.groupsClaim];
    const values = typeof raw === 'string' ? raw.split(/[\s,]+/) : claimValues(claims, issuer.groupsClaim);
    // Group names feed rule matching and reviewer checks; odd strings are dropped, not trusted.
    for (const g of values) if (GROUP.test(g)) groups.add(g);
  }
  let kind = undefined as Principal['kind'] | undefined;
  for (const rule of issuer.claimRules) {
    if (!claimsMatch(claims, rule.when)) continue;
    for (const g of rule.groups) groups.add(g);
    kind ??= rule.kind;
  }
  return { name: issuer.namePrefix + subject, kind: kind ?? issuer.kind, groups: [...groups] };
}
