/**
 * The Gate's answer to one `tools/call`, enforced the MCP way: forward it, or answer with a tool
 * result whose text says why not (a tool error, so the model reads the reason and can adjust).
 * A `wait` hold keeps the call open and, when the caller asked for progress, tells it where the
 * request can be approved until people decide.
 *
 * https://modelcontextprotocol.io/specification/2025-06-18/basic/utilities/progress
 */
import type { JSONRPCMessage, RequestId } from '@modelcontextprotocol/sdk/types.js';
import type { Logger } from 'pino';
import type { Action } from '../../core/action.ts';
import { isAirlockError } from '../../core/errors.ts';
import type { GateOutcome, GatePort } from '../../core/gate-types.ts';

export type Verdict = { readonly forward: true } | { readonly forward: false; readonly text: string };

/** What judging needs from the session's context. */
export interface JudgeContext {
  readonly gate: GatePort;
  readonly log?: Logger | undefined;
  /** How often a held call sends a progress notification. */
  readonly progressIntervalMs: number;
}

/** The session's caller, as judging sees it. */
export interface JudgedCaller {
  /** Sends to the caller, on the response stream of the request `related`. */
  toCaller(msg: JSONRPCMessage, related: RequestId): void;
  /** True once the session is gone (an approval then has nothing to forward to). */
  closed(): boolean;
}

/** A caller's request in flight. */
export interface HeldRequest {
  /** The caller's `_meta.progressToken`, if it sent one. */
  readonly progressToken: string | number | undefined;
  /**
   * Set while the request is held for approval; aborting it (the caller cancelled, or the session
   * ends) cancels the approval request.
   */
  hold?: AbortController;
}

export function failClosedText(err: unknown): string {
  if (isAirlockError(err)) return `Airlock refused the call: ${err.describe()}`;
  return 'Airlock could not judge the call, so it was not run; try again, and if it persists tell an Airlock admin';
}

/** Judges the caller's request `id` (a `tools/call`, or another method worth judging). */
export async function judgeToolCall(
  action: Action,
  id: RequestId,
  request: HeldRequest,
  ctx: JudgeContext,
  caller: JudgedCaller,
): Promise<Verdict> {
  const hold = new AbortController();
  request.hold = hold;
  const verdict = await judged(action, id, request.progressToken, hold.signal, ctx, caller);
  delete request.hold;
  return verdict;
}

async function judged(
  action: Action,
  id: RequestId,
  progressToken: string | number | undefined,
  signal: AbortSignal,
  ctx: JudgeContext,
  caller: JudgedCaller,
): Promise<Verdict> {
  const { gate, log } = ctx;
  const tool = String(action.attributes.calledAs ?? action.attributes.tool ?? action.attributes.method);
  let outcome: GateOutcome;
  try {
    outcome = await gate.decide(action);
  } catch (err) {
    return { forward: false, text: failClosedText(err) };
  }
  if (outcome.verdict === 'allow') return { forward: true };
  if (outcome.verdict === 'deny') return { forward: false, text: `denied by Airlock: ${outcome.reason}` };
  if (outcome.mode === 'retry')
    return {
      forward: false,
      text: `${outcome.message}. Call ${tool} again with exactly the same arguments once it is approved.`,
    };

  const requestId = outcome.request.id;
  const waiting = `waiting for approval: request ${requestId} — approve it at ${outcome.url}`;
  log?.info(
    { session: action.sessionId, request: requestId, connection: action.connection, tool },
    'mcp tool call held',
  );
  let progress = 0;
  const started = Date.now();
  const tell = () => {
    if (progressToken === undefined) return;
    const s = Math.round((Date.now() - started) / 1000);
    progress += 1;
    caller.toCaller(
      {
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: {
          progressToken,
          progress,
          message: progress === 1 ? waiting : `still ${waiting} (${s}s so far)`,
        },
      },
      id,
    );
  };
  tell();
  const timer = setInterval(tell, ctx.progressIntervalMs);
  try {
    const s = await gate.settled(requestId, signal);
    if (s.status !== 'approved') return { forward: false, text: `denied by Airlock: ${s.reason}` };
    if (caller.closed()) return { forward: false, text: 'the session ended before the call was approved' };
    await gate.release(requestId);
  } catch (err) {
    return { forward: false, text: failClosedText(err) };
  } finally {
    clearInterval(timer);
  }
  log?.info({ session: action.sessionId, request: requestId, tool }, 'mcp tool call approved, forwarding');
  return { forward: true };
}
