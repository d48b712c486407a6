/**
 * Slack channel: one message per request (chat.postMessage), edited in place (chat.update) as
 * votes and the decision arrive, wherever they were made. Optional Approve/Deny buttons; their
 * callbacks are verified with the app's signing secret and count only for Slack users mapped
 * to an Airlock principal, through the same Approvals checks as every other reviewer (so a
 * requester cannot approve their own request from Slack either).
 *
 * https://api.slack.com/methods/chat.postMessage, https://api.slack.com/methods/chat.update,
 * https://api.slack.com/interactivity/handling#payloads
 */
import type { Principal } from '../core/action.ts';
import type { ApprovalRequest } from '../core/approvals/request.ts';
import { FINAL_STATUSES } from '../core/approvals/request.ts';
import { isAirlockError } from '../core/errors.ts';
import type { SlackNotify } from '../core/policy/policy.ts';
import type { NotifyEvent } from '../core/policy/schema.ts';
import type { Channel, PlannedDelivery } from './dispatcher.ts';
import { describeError, readSome, retryableStatus } from './http.ts';
import type { AttemptResult } from './retry.ts';
import { retryAfterMs } from './retry.ts';
import { SLACK_SIGNATURE_HEADER, SLACK_TIMESTAMP_HEADER, verifySlackSignature } from './signing.ts';
import { facts, headline, requestUrl, truncate } from './summary.ts';

export const SLACK_EVENTS: readonly NotifyEvent[] = ['created', 'approval', 'decided', 'executed'];
export const APPROVE_ACTION = 'airlock_approve';
export const DENY_ACTION = 'airlock_deny';

/** Slack refuses section text over 3000 characters. */
const SECTION_MAX = 3000;
/** Messages whose ts we keep, to edit them later (oldest forgotten first). */
const MESSAGES_MAX = 10_000;
const MAX_ACTION_BODY = 64 * 1024;
/** Slack errors that another attempt may cure. */
const TRANSIENT = new Set([
  'ratelimited',
  'rate_limited',
  'internal_error',
  'fatal_error',
  'service_unavailable',
  'request_timeout',
]);

/** Slack's mrkdwn escaping: only these three are control characters. */
export function escapeMrkdwn(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** The statement as a code block that cannot be closed early, within Slack's size limit. */
export function codeBlock(statement: string): string {
  let max = SECTION_MAX - 200;
  for (;;) {
    // A run of backticks would end the block; a zero-width space keeps it visible but inert.
    const body = escapeMrkdwn(truncate(statement, max)).replace(/`{3,}/g, (m) => m.split('').join('\u200b'));
    const block = '```\n' + body + '\n```';
    if (block.length <= SECTION_MAX || max < 100) return block.slice(0, SECTION_MAX);
    max = Math.floor(max / 2);
  }
}

function link(url: string, label: string): string {
  return `<${url.replace(/[<>|]/g, encodeURIComponent)}|${escapeMrkdwn(label).replace(/\|/g, '/')}>`;
}

export interface SlackMessage {
  readonly text: string;
  readonly blocks: readonly Record<string, unknown>[];
}

export function slackMessage(
  r: ApprovalRequest,
  publicUrl: string,
  buttons: boolean,
  now: number = Date.now(),
): SlackMessage {
  const url = requestUrl(publicUrl, r.id);
  const title = headline(r);
  const blocks: Record<string, unknown>[] = [
    { type: 'section', text: { type: 'mrkdwn', text: `*${link(url, truncate(title, 500))}*` } },
    {
      type: 'section',
      fields: facts(r, now)
        .slice(0, 10)
        .map((f) => ({ type: 'mrkdwn', text: `*${f.label}*\n${escapeMrkdwn(truncate(f.value, 1800))}` })),
    },
    { type: 'section', text: { type: 'mrkdwn', text: codeBlock(r.summary) } },
    { type: 'context', elements: [{ type: 'mrkdwn', text: link(url, `Open request ${r.id} in Airlock`) }] },
  ];
  if (buttons && r.status === 'pending')
    blocks.push({
      type: 'actions',
      block_id: `airlock_request_${r.id}`,
      elements: [
        {
          type: 'button',
          action_id: APPROVE_ACTION,
          text: { type: 'plain_text', text: 'Approve' },
          style: 'primary',
          value: String(r.id),
        },
        {
          type: 'button',
          action_id: DENY_ACTION,
          text: { type: 'plain_text', text: 'Deny' },
          style: 'danger',
          value: String(r.id),
          confirm: {
            title: { type: 'plain_text', text: `Deny request ${r.id}?` },
            text: {
              type: 'mrkdwn',
              text: 'The caller is told it was denied from Slack. To give a reason, deny it in Airlock.',
            },
            confirm: { type: 'plain_text', text: 'Deny' },
            deny: { type: 'plain_text', text: 'Cancel' },
          },
        },
      ],
    });
  // The fallback text is what notifications and screen readers show.
  return { text: `${escapeMrkdwn(truncate(title, 500))}: ${url}`, blocks };
}

export interface SlackChannelOptions {
  readonly publicUrl: () => string;
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
}

interface Posted {
  readonly channel: string;
  readonly ts: string;
}

export class SlackChannel implements Channel {
  readonly type = 'slack' as const;
  readonly defaultEvents = SLACK_EVENTS;
  readonly config: SlackNotify;
  private readonly publicUrl: () => string;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;
  /** request id → where its message is. */
  private readonly posted = new Map<number, Posted>();

  constructor(config: SlackNotify, opts: SlackChannelOptions) {
    this.config = config;
    this.publicUrl = opts.publicUrl;
    this.fetch = opts.fetch ?? globalThis.fetch;
    this.now = opts.now ?? Date.now;
  }

  /** Where the message for a request was posted, if it was. */
  messageOf(requestId: number): Posted | undefined {
    return this.posted.get(requestId);
  }

  plan(event: NotifyEvent, request: ApprovalRequest): PlannedDelivery | undefined {
    const secrets = () => [this.config.token.reveal()];
    if (event === 'created') {
      return {
        operation: 'post',
        target: this.config.channel,
        secrets,
        attempt: async (signal) => {
          const message = slackMessage(request, this.publicUrl(), this.config.buttons, this.now());
          const { result, data } = await this.call(
            'chat.postMessage',
            { channel: this.config.channel, ...message, unfurl_links: false, unfurl_media: false },
            signal,
          );
          if (result.ok) {
            const channel = typeof data.channel === 'string' ? data.channel : this.config.channel;
            if (typeof data.ts !== 'string')
              return { ok: false, retry: false, error: 'Slack answered without a message ts' };
            this.remember(request.id, { channel, ts: data.ts });
          }
          return result;
        },
      };
    }
    // Nothing to edit: the post failed, was filtered out, or happened before a restart.
    const where = this.posted.get(request.id);
    if (!where) return undefined;
    return {
      operation: 'update',
      target: this.config.channel,
      secrets,
      attempt: async (signal) => {
        const message = slackMessage(request, this.publicUrl(), this.config.buttons, this.now());
        const { result } = await this.call(
          'chat.update',
          { channel: where.channel, ts: where.ts, ...message },
          signal,
        );
        if (result.ok && FINAL_STATUSES.includes(request.status)) this.posted.delete(request.id);
        return result;
      },
    };
  }

  private remember(id: number, where: Posted): void {
    this.posted.set(id, where);
    if (this.posted.size > MESSAGES_MAX) this.posted.delete(this.posted.keys().next().value as number);
  }

  private async call(
    method: string,
    payload: Record<string, unknown>,
    signal: AbortSignal,
  ): Promise<{ result: AttemptResult; data: Record<string, unknown> }> {
    const res = await this.fetch(`${this.config.apiUrl}/${method}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json; charset=utf-8',
        authorization: `Bearer ${this.config.token.reveal()}`,
        'user-agent': 'airlock-notify',
      },
      body: JSON.stringify(payload),
      redirect: 'manual',
      signal,
    });
    const text = await readSome(res, 64 * 1024);
    const after = retryAfterMs(res.headers.get('retry-after'), this.now());
    if (res.status < 200 || res.status >= 300)
      return {
        result: {
          ok: false,
          retry: retryableStatus(res.status),
          status: res.status,
          error: `${method}: HTTP ${res.status}`,
          retryAfterMs: after,
        },
        data: {},
      };
    let data: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(text);
      data = parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
    } catch {
      return {
        result: {
          ok: false,
          retry: true,
          status: res.status,
          error: `${method}: Slack's answer was not JSON`,
        },
        data: {},
      };
    }
    if (data.ok === true) return { result: { ok: true, status: res.status }, data };
    const error = typeof data.error === 'string' ? data.error.slice(0, 100) : 'unknown_error';
    return {
      result: {
        ok: false,
        retry: TRANSIENT.has(error),
        status: res.status,
        error: `${method}: ${error}`,
        retryAfterMs: after,
      },
      data,
    };
  }
}

// ---- interactivity: button clicks ----

export type Headers = Readonly<Record<string, string | readonly string[] | undefined>>;

export interface SlackActionContext {
  readonly channels: readonly SlackChannel[];
  readonly approvals: {
    approve(id: number, reviewer: Principal, opts?: { note?: string }): Promise<ApprovalRequest>;
    deny(id: number, reviewer: Principal, reason: string): Promise<ApprovalRequest>;
  };
  /** An Airlock principal by name (token registry, later OIDC). */
  readonly principal: (name: string) => Principal | undefined;
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
}

export interface ActionReply {
  readonly status: number;
  readonly body: {
    readonly ok: boolean;
    readonly message: string;
    readonly code?: string;
    readonly request?: number;
  };
}

function header(headers: Headers, name: string): string | undefined {
  const v = headers[name] ?? headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : (v as string | undefined);
}

interface BlockAction {
  readonly userId: string;
  readonly actionId: string;
  readonly requestId: number;
  readonly responseUrl?: string | undefined;
}

function parseAction(rawBody: string): BlockAction | undefined {
  const payloadText = new URLSearchParams(rawBody).get('payload');
  if (!payloadText) return undefined;
  let payload: unknown;
  try {
    payload = JSON.parse(payloadText);
  } catch {
    return undefined;
  }
  const p = payload as {
    type?: unknown;
    user?: { id?: unknown };
    actions?: { action_id?: unknown; value?: unknown }[];
    response_url?: unknown;
  };
  if (p?.type !== 'block_actions' || typeof p.user?.id !== 'string' || !Array.isArray(p.actions))
    return undefined;
  const action = p.actions[0];
  if (typeof action?.action_id !== 'string' || typeof action.value !== 'string') return undefined;
  if (!/^[1-9]\d{0,14}$/.test(action.value)) return undefined;
  return {
    userId: p.user.id,
    actionId: action.action_id,
    requestId: Number(action.value),
    responseUrl: typeof p.response_url === 'string' ? p.response_url : undefined,
  };
}

/**
 * Handles Slack's POST to the interactivity URL. `rawBody` must be the body exactly as received
 * (the signature covers it). 401 when no configured signing secret verifies it or it is older
 * than five minutes; otherwise 200, with the outcome also shown to the clicking user.
 */
export async function handleSlackAction(
  ctx: SlackActionContext,
  rawBody: string,
  headers: Headers,
): Promise<ActionReply> {
  const now = ctx.now ?? Date.now;
  const signed = ctx.channels.filter((c) => c.config.signingSecret !== undefined);
  if (signed.length === 0)
    return { status: 404, body: { ok: false, message: 'Slack interactivity is not configured' } };
  if (Buffer.byteLength(rawBody) > MAX_ACTION_BODY)
    return { status: 413, body: { ok: false, message: 'the callback is too large' } };

  const timestamp = header(headers, SLACK_TIMESTAMP_HEADER);
  const signature = header(headers, SLACK_SIGNATURE_HEADER);
  let channel: SlackChannel | undefined;
  let stale = false;
  for (const c of signed) {
    let secret: string;
    try {
      secret = c.config.signingSecret!.reveal();
    } catch {
      // An unreadable secret verifies nothing: fail closed.
      continue;
    }
    const verdict = verifySlackSignature(secret, timestamp, rawBody, signature, undefined, now());
    if (verdict.ok) {
      channel = c;
      break;
    }
    if (verdict.why === 'stale') stale = true;
  }
  if (!channel)
    return {
      status: 401,
      body: {
        ok: false,
        code: 'AIRLOCK_E_TOKEN_INVALID',
        message: stale
          ? 'the Slack request timestamp is missing or more than 5 minutes off'
          : 'the Slack signature does not match',
      },
    };

  const action = parseAction(rawBody);
  if (!action || (action.actionId !== APPROVE_ACTION && action.actionId !== DENY_ACTION))
    return {
      status: 400,
      body: { ok: false, code: 'AIRLOCK_E_BAD_REQUEST', message: 'not an Airlock button action' },
    };

  const reply = async (body: ActionReply['body']): Promise<ActionReply> => {
    if (action.responseUrl) void tellUser(ctx, channel, action.responseUrl, body.message);
    return { status: 200, body: { ...body, request: action.requestId } };
  };

  if (!channel.config.buttons)
    return reply({
      ok: false,
      code: 'AIRLOCK_E_FORBIDDEN',
      message: 'Approve/Deny buttons are turned off for this channel; decide in Airlock',
    });
  const name = channel.config.users.get(action.userId);
  const principal = name === undefined ? undefined : ctx.principal(name);
  if (!principal)
    return reply({
      ok: false,
      code: 'AIRLOCK_E_FORBIDDEN',
      message: `your Slack user (${action.userId}) is not mapped to an Airlock reviewer; decide in Airlock or ask an admin to map it`,
    });
  try {
    if (action.actionId === APPROVE_ACTION) {
      const r = await ctx.approvals.approve(action.requestId, principal, { note: 'approved in Slack' });
      return reply({
        ok: true,
        message:
          r.status === 'pending'
            ? `${principal.name} approved request ${r.id}; it needs ${r.review.approvals - r.approvals.length} more`
            : `${principal.name} approved request ${r.id}`,
      });
    }
    const r = await ctx.approvals.deny(action.requestId, principal, `denied in Slack by ${principal.name}`);
    return reply({ ok: true, message: `${principal.name} denied request ${r.id}` });
  } catch (err) {
    if (isAirlockError(err)) return reply({ ok: false, code: err.code, message: err.message });
    return reply({
      ok: false,
      code: 'AIRLOCK_E_INTERNAL',
      message: `the decision could not be recorded: ${describeError(err)}`,
    });
  }
}

/**
 * An ephemeral note to the user who clicked, via the callback's response_url. Only Slack's own
 * hooks host (or the configured API host, for a stand-in) is trusted with the POST.
 */
async function tellUser(
  ctx: SlackActionContext,
  channel: SlackChannel,
  responseUrl: string,
  text: string,
): Promise<void> {
  try {
    const target = new URL(responseUrl);
    const api = new URL(channel.config.apiUrl);
    const trusted =
      (target.protocol === 'https:' && target.host === 'hooks.slack.com') || target.origin === api.origin;
    if (!trusted) return;
    const res = await (ctx.fetch ?? globalThis.fetch)(target, {
      method: 'POST',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      body: JSON.stringify({ response_type: 'ephemeral', replace_original: false, text: escapeMrkdwn(text) }),
      redirect: 'manual',
      signal: AbortSignal.timeout(5000),
    });
    await res.body?.cancel().catch(() => {});
  } catch {
    // The decision stands either way; the message update shows the outcome to everyone.
  }
}
