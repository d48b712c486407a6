/**
 * The notifier the gateway starts: channels built from the policy's `notify` list, the
 * dispatcher listening on the request bus, the delivery log the console shows, and the two
 * inbound doors — Slack button callbacks and a decision endpoint for a team's own bot.
 */
import { z } from 'zod';
import type { Principal } from '../core/action.ts';
import type { ApprovalRequest } from '../core/approvals/request.ts';
import { AirlockError, isAirlockError } from '../core/errors.ts';
import { TokenRegistry } from '../core/identity/tokens.ts';
import type { Policy } from '../core/policy/policy.ts';
import { parseDuration } from '../core/policy/schema.ts';
import { type DeliveryFilter, DeliveryLog, type DeliveryRecord } from './delivery-log.ts';
import {
  type Channel,
  Dispatcher,
  type EventSource,
  type FailureAudit,
  type NotifyLogger,
} from './dispatcher.ts';
import { EmailChannel } from './email.ts';
import type { RetryPolicy } from './retry.ts';
import { type ActionReply, type Headers, handleSlackAction, SlackChannel } from './slack.ts';
import { requestPayload } from './summary.ts';
import { WebhookChannel } from './webhook.ts';

/** What the notifier needs from the approvals service. */
export interface NotifierApprovals {
  get(id: number): Promise<ApprovalRequest | undefined>;
  approve(
    id: number,
    reviewer: Principal,
    opts?: { note?: string | undefined; windowMs?: number | undefined },
  ): Promise<ApprovalRequest>;
  deny(id: number, reviewer: Principal, reason: string): Promise<ApprovalRequest>;
}

export interface NotifierOptions {
  /** Read at send time: `publicUrl` may be fixed only after the API has bound its port. */
  readonly policy: Policy;
  readonly approvals: NotifierApprovals;
  readonly bus: EventSource;
  /** `notify.failed` events go here (the AuditLog). */
  readonly audit?: FailureAudit | undefined;
  readonly log?: NotifyLogger | undefined;
  /** Principal by name, for Slack users; default: the policy's token identities. */
  readonly principal?: ((name: string) => Principal | undefined) | undefined;
  readonly fetch?: typeof fetch | undefined;
  readonly retry?: Partial<RetryPolicy> | undefined;
  readonly now?: (() => number) | undefined;
  /** Delivery records kept for the console. Default 1000. */
  readonly keepDeliveries?: number | undefined;
  readonly maxPending?: number | undefined;
}

export interface DecisionReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

export interface Notifier {
  /** Newest first. */
  deliveries(filter?: DeliveryFilter): DeliveryRecord[];
  /** Slack's interactivity callback: pass the raw body and the request headers. */
  handleSlackAction(rawBody: string, headers: Headers): Promise<ActionReply>;
  /**
   * A decision from a team's own tooling, made as `principal` (authenticated by the caller with
   * a reviewer token): `{ request, decision: approve|deny, reason?, note?, window? }`.
   */
  handleInboundDecision(principal: Principal, body: unknown): Promise<DecisionReply>;
  /** Resolves when no notification is queued or in flight. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

const decisionBody = z.discriminatedUnion('decision', [
  z.strictObject({
    request: z.number().int().positive(),
    decision: z.literal('approve'),
    note: z.string().max(2000).optional(),
    window: z
      .string()
      .regex(/^\d+(ms|s|m|h|d)$/, 'a duration such as 15m')
      .optional(),
  }),
  z.strictObject({
    request: z.number().int().positive(),
    decision: z.literal('deny'),
    reason: z.string().trim().min(1, 'say why: the reason is sent back to the caller').max(2000),
  }),
]);

export function startNotifier(opts: NotifierOptions): Notifier {
  const { policy, approvals } = opts;
  const publicUrl = () => policy.publicUrl;
  const channels: Channel[] = [];
  const slack: SlackChannel[] = [];
  for (const config of policy.notify ?? []) {
    const common = { publicUrl, ...(opts.now ? { now: opts.now } : {}) };
    if (config.type === 'webhook')
      channels.push(new WebhookChannel(config, { ...common, ...(opts.fetch ? { fetch: opts.fetch } : {}) }));
    else if (config.type === 'slack') {
      const channel = new SlackChannel(config, { ...common, ...(opts.fetch ? { fetch: opts.fetch } : {}) });
      channels.push(channel);
      slack.push(channel);
    } else channels.push(new EmailChannel(config, common));
  }
  const log = new DeliveryLog(opts.keepDeliveries ?? 1000);
  const dispatcher = new Dispatcher({
    channels,
    approvals,
    bus: opts.bus,
    log,
    audit: opts.audit,
    logger: opts.log,
    retry: opts.retry,
    now: opts.now,
    maxPending: opts.maxPending,
  });
  dispatcher.start();
  const registry = opts.principal ? undefined : new TokenRegistry(policy.tokens);
  const principal = opts.principal ?? ((name: string) => registry!.principal(name));

  return {
    deliveries: (filter) => log.list(filter),
    handleSlackAction: (rawBody, headers) =>
      handleSlackAction(
        {
          channels: slack,
          approvals,
          principal,
          ...(opts.fetch ? { fetch: opts.fetch } : {}),
          ...(opts.now ? { now: opts.now } : {}),
        },
        rawBody,
        headers,
      ),
    async handleInboundDecision(who, body) {
      const parsed = decisionBody.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const err = new AirlockError(
          'AIRLOCK_E_BAD_REQUEST',
          `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`,
          {
            hint: 'send { "request": 12, "decision": "approve" } or { "request": 12, "decision": "deny", "reason": "..." }',
          },
        );
        return { status: err.status, body: { ok: false, error: err.toJSON() } };
      }
      const d = parsed.data;
      try {
        const request =
          d.decision === 'approve'
            ? await approvals.approve(d.request, who, {
                note: d.note,
                windowMs: d.window === undefined ? undefined : parseDuration(d.window),
              })
            : await approvals.deny(d.request, who, d.reason);
        return { status: 200, body: { ok: true, request: requestPayload(policy.publicUrl, request) } };
      } catch (err) {
        if (isAirlockError(err)) return { status: err.status, body: { ok: false, error: err.toJSON() } };
        throw err;
      }
    },
    idle: () => dispatcher.idle(),
    close: () => dispatcher.close(),
  };
}
