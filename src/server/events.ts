/**
 * Live request updates as server-sent events (GET /api/v1/events), for the console and for any
 * tool that wants to hear about requests without polling.
 * https://html.spec.whatwg.org/multipage/server-sent-events.html
 *
 * EventSource cannot send headers, so a stream is authenticated by the console's session cookie
 * (translated to a Bearer credential by the console's hook), by `Authorization: Bearer` for
 * other clients, or by a short-lived signed ticket from POST /api/v1/events/ticket passed as
 * `?ticket=`. Reviewers hear about every request; anyone else only about their own. A ticket
 * carries its principal (name, kind, groups) under an HMAC whose key every replica shares
 * (kept in the store), so a ticket from one replica opens the stream on any other.
 *
 * Bus events carry ids only: each is re-read once from the store and fanned out, in order, to
 * every stream allowed to see it. A stream whose unsent output grows past a bound is closed
 * (its client reconnects and re-reads the list) rather than buffering without limit.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PRINCIPAL_KINDS, type Principal } from '../core/action.ts';
import type { EventBus, RequestEvent } from '../core/approvals/bus.ts';
import type { ApprovalRequest } from '../core/approvals/request.ts';
import { AirlockError } from '../core/errors.ts';
import type { Authenticator } from '../core/identity/authenticator.ts';
import type { Policy } from '../core/policy/policy.ts';
import type { Store } from '../core/store.ts';
import { isReviewer, requestJson, reviewerGroups } from './api.ts';

export interface EventsApprovals {
  get(id: number): Promise<ApprovalRequest | undefined>;
}

export interface EventsDeps {
  readonly policy: Policy;
  readonly tokens: Authenticator;
  readonly approvals: EventsApprovals;
  readonly bus: EventBus;
  /** HMAC key for tickets; random per process unless given (replicas must share one). */
  readonly ticketKey?: Buffer;
  readonly heartbeatMs?: number;
  /** Unsent bytes a stream may hold before it is closed (plus the one frame being written). */
  readonly maxBufferedBytes?: number;
  readonly maxClients?: number;
}

export const TICKET_TTL_MS = 60_000;

/** The request as the console sees it: the API shape plus what the adapter estimated. */
export function consoleRequestJson(policy: Policy, r: ApprovalRequest) {
  return requestJson(policy, r);
}

const TICKET_SECRET = 'event-stream-tickets';

/**
 * The ticket key every replica on this store uses: derived from a secret created once in the
 * store (the first replica's random value wins), never from anything a caller sends.
 */
export async function sharedTicketKey(store: Pick<Store, 'sharedSecret'>): Promise<Buffer> {
  const secret = await store.sharedSecret(TICKET_SECRET, randomBytes(32).toString('base64url'));
  return createHmac('sha256', Buffer.from(secret, 'base64url'))
    .update('airlock event stream ticket v1')
    .digest();
}

/**
 * Tickets: base64url(JSON {n: name, k: kind, g: groups, e: expiry ms, r: nonce}) "."
 * base64url(HMAC-SHA256). The principal comes from the ticket itself, so the replica that
 * checks it need not know the principal (an OIDC user signed in elsewhere).
 */
export class TicketSigner {
  constructor(private readonly key: Buffer = randomBytes(32)) {}

  issue(principal: Principal, now = Date.now()): { ticket: string; expiresAt: number } {
    const expiresAt = now + TICKET_TTL_MS;
    const body = Buffer.from(
      JSON.stringify({
        n: principal.name,
        k: principal.kind,
        g: principal.groups,
        e: expiresAt,
        r: randomBytes(9).toString('base64url'),
      }),
    ).toString('base64url');
    return { ticket: `${body}.${this.#mac(body)}`, expiresAt };
  }

  /** The principal name a ticket was issued to, or undefined when it is forged or stale. */
  verify(ticket: string, now = Date.now()): string | undefined {
    return this.verifyPrincipal(ticket, now)?.name;
  }

  /** The principal a ticket was issued to, or undefined when it is forged or stale. */
  verifyPrincipal(ticket: string, now = Date.now()): Principal | undefined {
    if (ticket.length > 4096) return undefined;
    const dot = ticket.indexOf('.');
    if (dot <= 0) return undefined;
    const body = ticket.slice(0, dot);
    const mac = Buffer.from(ticket.slice(dot + 1));
    const want = Buffer.from(this.#mac(body));
    if (mac.length !== want.length || !timingSafeEqual(mac, want)) return undefined;
    try {
      const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as {
        n?: unknown;
        k?: unknown;
        g?: unknown;
        e?: unknown;
      };
      const { n, k, g, e } = claims;
      if (typeof n !== 'string' || typeof e !== 'number' || e <= now) return undefined;
      if (typeof k !== 'string' || !(PRINCIPAL_KINDS as readonly string[]).includes(k)) return undefined;
      if (!Array.isArray(g) || !g.every((x) => typeof x === 'string')) return undefined;
      return { name: n, kind: k as Principal['kind'], groups: g as string[] };
    } catch {
      return undefined;
    }
  }

  #mac(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }
}

interface Client {
  readonly principal: Principal;
  readonly reviewer: boolean;
  readonly res: ServerResponse;
}

function bearerOf(request: FastifyRequest): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  return m?.[1];
}

/** Registers POST /api/v1/events/ticket and GET /api/v1/events. */
export function registerEvents(app: FastifyInstance, deps: EventsDeps): { readonly streams: () => number } {
  const { policy, tokens, approvals, bus } = deps;
  const groups = reviewerGroups(policy);
  const signer = new TicketSigner(deps.ticketKey);
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const maxBuffered = deps.maxBufferedBytes ?? 1024 * 1024;
  const maxClients = deps.maxClients ?? 1000;
  const clients = new Set<Client>();
  let seq = 0;

  const drop = (c: Client) => {
    clients.delete(c);
    if (!c.res.destroyed) c.res.destroy();
  };

  const write = (c: Client, chunk: string) => {
    if (c.res.destroyed || c.res.writableEnded) return drop(c);
    // A stalled reader: close rather than hold an unbounded backlog for it. The backlog is
    // checked before writing, so one frame larger than the bound still reaches a reader.
    if (c.res.writableLength > maxBuffered) return drop(c);
    c.res.write(chunk);
  };

  // One store read per bus event, fanned out in bus order.
  let chain: Promise<void> = Promise.resolve();
  const onEvent = (event: RequestEvent) => {
    if (clients.size === 0) return;
    chain = chain.then(async () => {
      if (clients.size === 0) return;
      let r: ApprovalRequest | undefined;
      try {
        r = await approvals.get(event.id);
      } catch (err) {
        app.log.warn({ err, id: event.id }, 'could not re-read a request for the event stream');
        return;
      }
      if (!r) return;
      const owner = r.principal.name;
      const frame = `id: ${++seq}\nevent: request\ndata: ${JSON.stringify(consoleRequestJson(policy, r))}\n\n`;
      for (const c of [...clients]) if (c.reviewer || c.principal.name === owner) write(c, frame);
    });
  };
  const unsubscribe = bus.subscribe(onEvent);

  const heartbeat = setInterval(() => {
    for (const c of [...clients]) write(c, `: heartbeat ${Date.now()}\n\n`);
  }, heartbeatMs);
  heartbeat.unref();

  // Streams never go idle, so the server would wait for them forever on close.
  app.addHook('preClose', async () => {
    clearInterval(heartbeat);
    unsubscribe();
    for (const c of [...clients]) {
      clients.delete(c);
      c.res.end();
    }
  });

  app.post('/api/v1/events/ticket', async (request) => {
    const principal = await tokens.authenticate(bearerOf(request), { source: request.ip, protocol: 'api' });
    const { ticket, expiresAt } = signer.issue(principal);
    return { ticket, expiresAt: new Date(expiresAt).toISOString() };
  });

  app.get('/api/v1/events', async (request, reply) => {
    const { ticket } = (request.query ?? {}) as { ticket?: unknown };
    let principal: Principal;
    if (typeof ticket === 'string' && ticket !== '') {
      const p = signer.verifyPrincipal(ticket);
      if (!p)
        throw new AirlockError('AIRLOCK_E_TOKEN_INVALID', 'the event stream ticket is invalid or expired', {
          hint: 'get a fresh one from POST /api/v1/events/ticket (it lasts a minute)',
        });
      principal = p;
    } else {
      principal = await tokens.authenticate(bearerOf(request), { source: request.ip, protocol: 'api' });
    }
    if (clients.size >= maxClients)
      throw new AirlockError('AIRLOCK_E_BAD_REQUEST', 'too many open event streams', {
        hint: 'retry in a minute',
        status: 503,
      });

    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'x-content-type-options': 'nosniff',
    });
    res.socket?.setNoDelay(true);
    const client: Client = { principal, reviewer: isReviewer(policy, principal, groups), res };
    clients.add(client);
    const cleanup = () => {
      clients.delete(client);
    };
    request.raw.on('close', cleanup);
    res.on('close', cleanup);
    res.on('error', cleanup);
    // `retry` sets the reconnect delay; `ready` tells the client to (re)load what it shows.
    res.write(`retry: 3000\nevent: ready\ndata: ${JSON.stringify({ principal: principal.name })}\n\n`);
  });

  return { streams: () => clients.size };
}
