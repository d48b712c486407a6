/**
 * Webhook channel: `POST <url>` with `{ event, delivery, request }` as JSON, signed per attempt
 * (see signing.ts). `delivery` is the same on every retry of one notification, so a receiver
 * that saw it already can acknowledge and ignore it. Redirects are not followed: the signed
 * body goes only where the policy says.
 */
import { randomUUID } from 'node:crypto';
import type { ApprovalRequest } from '../core/approvals/request.ts';
import type { WebhookNotify } from '../core/policy/policy.ts';
import type { NotifyEvent } from '../core/policy/schema.ts';
import type { Channel, PlannedDelivery } from './dispatcher.ts';
import { discard, displayUrl, readSome, retryableStatus } from './http.ts';
import { retryAfterMs } from './retry.ts';
import { signWebhook } from './signing.ts';
import { requestPayload } from './summary.ts';

export const WEBHOOK_EVENTS: readonly NotifyEvent[] = ['created', 'approval', 'decided', 'executed'];

export interface WebhookOptions {
  readonly publicUrl: () => string;
  readonly fetch?: typeof fetch;
  readonly now?: () => number;
}

export class WebhookChannel implements Channel {
  readonly type = 'webhook' as const;
  readonly defaultEvents = WEBHOOK_EVENTS;
  readonly config: WebhookNotify;
  private readonly publicUrl: () => string;
  private readonly fetch: typeof fetch;
  private readonly now: () => number;

  constructor(config: WebhookNotify, opts: WebhookOptions) {
    this.config = config;
    this.publicUrl = opts.publicUrl;
    this.fetch = opts.fetch ?? globalThis.fetch;
    this.now = opts.now ?? Date.now;
  }

  plan(event: NotifyEvent, request: ApprovalRequest): PlannedDelivery {
    const delivery = randomUUID();
    const body = JSON.stringify({ event, delivery, request: requestPayload(this.publicUrl(), request) });
    return {
      operation: 'post',
      target: displayUrl(this.config.url),
      secrets: () => [this.config.secret.reveal()],
      attempt: async (signal) => {
        const { timestamp, signature } = signWebhook(this.config.secret.reveal(), body, this.now());
        const res = await this.fetch(this.config.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json; charset=utf-8',
            'user-agent': 'airlock-notify',
            'x-airlock-event': event,
            'x-airlock-delivery': delivery,
            'x-airlock-timestamp': timestamp,
            'x-airlock-signature': signature,
          },
          body,
          redirect: 'manual',
          signal,
        });
        if (res.status >= 200 && res.status < 300) {
          await discard(res);
          return { ok: true, status: res.status };
        }
        const text = (await readSome(res, 200)).replace(/\s+/g, ' ').trim();
        return {
          ok: false,
          retry: retryableStatus(res.status),
          status: res.status,
          error: `HTTP ${res.status}${text ? `: ${text}` : ''}`,
          retryAfterMs: retryAfterMs(res.headers.get('retry-after'), this.now()),
        };
      },
    };
  }
}
