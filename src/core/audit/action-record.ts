/**
 * The audit record of an action the Gate decided on: who, where, what — never credentials.
 *
 * Every allowed statement of every session gets one, so its canonical JSON is written here
 * directly instead of walking a fresh object through `canonical()`: the keys are fixed, so their
 * sorted order is spelled out below, and the parts that do not change within a session (the
 * principal) are serialized once per principal object. `actionRecord.test.ts` checks the text is
 * exactly `canonical(data)` for arbitrary actions.
 */
import type { Action, Principal } from '../action.ts';
import type { Decision } from '../policy/evaluate.ts';
import { canonical } from './canonical.ts';

export interface ActionRecord {
  readonly data: Record<string, unknown>;
  /** canonical(data). */
  readonly json: string;
}

function principalData(p: Principal): Record<string, unknown> {
  return { name: p.name, kind: p.kind, groups: [...p.groups] };
}

interface CachedPrincipal {
  readonly name: string;
  readonly kind: string;
  readonly groups: readonly string[];
  readonly count: number;
  readonly text: string;
}

/** A session keeps one principal object for its life; its text is built once per object. */
const principalJson = new WeakMap<Principal, CachedPrincipal>();

function principalText(p: Principal): string {
  const hit = principalJson.get(p);
  // The fields are readonly by type; this check keeps a caller that replaces them anyway honest.
  if (
    hit &&
    hit.name === p.name &&
    hit.kind === p.kind &&
    hit.groups === p.groups &&
    hit.count === p.groups.length
  )
    return hit.text;
  const text = canonical(principalData(p));
  principalJson.set(p, { name: p.name, kind: p.kind, groups: p.groups, count: p.groups.length, text });
  return text;
}

const str = JSON.stringify;

export function actionRecord(action: Action, fingerprint: string, decision: Decision): ActionRecord {
  const data: Record<string, unknown> = {
    principal: principalData(action.principal),
    connection: action.connection,
    protocol: action.protocol,
    sessionId: action.sessionId,
    ...(action.source === undefined ? {} : { source: action.source }),
    kind: action.kind,
    summary: action.summary,
    fingerprint,
    rule: decision.rule.name,
    decision: decision.effect,
    why: decision.why,
  };
  // Sorted keys: connection, decision, fingerprint, kind, principal, protocol, rule, sessionId,
  // source, summary, why.
  const json =
    `{"connection":${str(action.connection)},"decision":${str(decision.effect)},` +
    `"fingerprint":${str(fingerprint)},"kind":${str(action.kind)},` +
    `"principal":${principalText(action.principal)},"protocol":${str(action.protocol)},` +
    `"rule":${str(decision.rule.name)},"sessionId":${str(action.sessionId)},` +
    (action.source === undefined ? '' : `"source":${str(action.source)},`) +
    `"summary":${str(action.summary)},"why":${str(decision.why)}}`;
  return { data, json };
}
