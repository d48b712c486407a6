/**
 * Who a proxied request or protocol upgrade on the HTTP listener comes from: the Airlock token in
 * `Authorization: Bearer`, checked by the gateway's authenticator. One place for the proxy, the
 * WebSocket upgrades and kubectl's exec/attach/port-forward streams, so they audit alike.
 */
import type { IncomingMessage } from 'node:http';
import type { Principal } from '../../core/action.ts';
import { AirlockError, isAirlockError } from '../../core/errors.ts';
import type { GatePort } from '../../core/gate-types.ts';
import type { Authenticator } from '../../core/identity/authenticator.ts';
import { callerToken } from './headers.ts';

export interface CallerAuthDeps {
  readonly tokens: Authenticator;
  readonly gate: Pick<GatePort, 'authFailed'>;
}

export type CallerAuth = { readonly principal: Principal } | { readonly error: AirlockError };

export async function authenticateCaller(
  deps: CallerAuthDeps,
  req: IncomingMessage,
  source: string,
  protocol: string,
  connection: string,
): Promise<CallerAuth> {
  try {
    const principal = await deps.tokens.authenticate(callerToken(req.headers.authorization), {
      source,
      protocol,
      connection,
    });
    return { principal };
  } catch (err) {
    const error = isAirlockError(err)
      ? err
      : new AirlockError('AIRLOCK_E_TOKEN_INVALID', 'the token could not be verified');
    // No credential at all is the start of the HTTP challenge (git asks for one only after a
    // 401), not a failed sign-in; a wrong one is audited.
    if (req.headers.authorization !== undefined)
      deps.gate.authFailed({ protocol, source, connection, reason: error.code });
    return { error };
  }
}
