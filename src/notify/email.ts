/**
 * Email channel: one message per event over SMTP (nodemailer), with a plain-text and an HTML
 * part and the console link. Everything taken from the request is HTML-escaped, and header
 * values are kept to one line. The SMTP URL (with its password) is read at each attempt and
 * scrubbed from any error text.
 *
 * SMTP reply classes decide retries (RFC 5321 §4.2.1): 4yz is transient, 5yz is permanent.
 */
import { createTransport } from 'nodemailer';
import type { ApprovalRequest } from '../core/approvals/request.ts';
import type { EmailNotify } from '../core/policy/policy.ts';
import type { NotifyEvent } from '../core/policy/schema.ts';
import type { Channel, PlannedDelivery } from './dispatcher.ts';
import { describeError } from './http.ts';
import type { AttemptResult } from './retry.ts';
import { facts, headline, requestUrl, truncate } from './summary.ts';

export const EMAIL_EVENTS: readonly NotifyEvent[] = ['created', 'decided'];

/** A 20 KB statement fits; a pathological one does not make a multi-megabyte mail. */
const STATEMENT_MAX = 20_000;

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const oneLine = (s: string): string => s.replace(/[\r\n\t]+/g, ' ').trim();

export interface EmailMessage {
  readonly subject: string;
  readonly text: string;
  readonly html: string;
}

export function emailMessage(r: ApprovalRequest, publicUrl: string, now: number = Date.now()): EmailMessage {
  const url = requestUrl(publicUrl, r.id);
  const title = headline(r);
  const list = facts(r, now);
  const statement = truncate(r.summary, STATEMENT_MAX);
  const text = [
    title,
    '',
    ...list.map((f) => `${f.label}: ${f.value}`),
    '',
    'Statement:',
    statement,
    '',
    r.status === 'pending' ? `Review it at ${url}` : `Details: ${url}`,
    '',
  ].join('\n');
  const rows = list
    .map(
      (f) =>
        `<tr><th align="left" valign="top" style="padding:2px 12px 2px 0">${escapeHtml(f.label)}</th><td style="padding:2px 0">${escapeHtml(f.value)}</td></tr>`,
    )
    .join('\n');
  const html = `<!doctype html>
<html><body style="font-family:system-ui,sans-serif;font-size:14px;line-height:1.4">
<h2 style="font-size:16px">${escapeHtml(title)}</h2>
<table role="presentation">${rows}</table>
<p><strong>Statement</strong></p>
<pre style="white-space:pre-wrap;word-break:break-all;background:#f4f4f5;padding:8px;border-radius:4px">${escapeHtml(statement)}</pre>
<p><a href="${escapeHtml(url)}">${r.status === 'pending' ? 'Review' : 'Open'} request ${r.id} in Airlock</a></p>
</body></html>
`;
  return { subject: oneLine(`[Airlock] ${truncate(title, 180)}`), text, html };
}

export interface EmailChannelOptions {
  readonly publicUrl: () => string;
  readonly now?: () => number;
  /** Connection, greeting and socket timeouts. */
  readonly timeoutMs?: number;
}

export class EmailChannel implements Channel {
  readonly type = 'email' as const;
  readonly defaultEvents = EMAIL_EVENTS;
  readonly config: EmailNotify;
  private readonly publicUrl: () => string;
  private readonly now: () => number;
  private readonly timeoutMs: number;

  constructor(config: EmailNotify, opts: EmailChannelOptions) {
    this.config = config;
    this.publicUrl = opts.publicUrl;
    this.now = opts.now ?? Date.now;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  plan(_event: NotifyEvent, request: ApprovalRequest): PlannedDelivery {
    const message = emailMessage(request, this.publicUrl(), this.now());
    return {
      operation: 'send',
      target: this.config.to.join(', '),
      secrets: () => smtpSecrets(this.config.smtp.reveal()),
      attempt: (signal) => this.send(message, signal),
    };
  }

  private async send(message: EmailMessage, signal: AbortSignal): Promise<AttemptResult> {
    const options = smtpOptions(this.config.smtp.reveal(), this.timeoutMs);
    const transport = createTransport(options);
    // nodemailer takes no AbortSignal, and closing a non-pooled transport does not end the
    // connection it is using: stop waiting at once and let its own socket timeouts end it.
    let onAbort: () => void = () => {};
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => reject(signal.reason);
    });
    aborted.catch(() => {});
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal.aborted) return { ok: false, retry: true, error: 'aborted' };
      const sent = transport.sendMail({
        from: this.config.from,
        to: [...this.config.to],
        subject: message.subject,
        text: message.text,
        html: message.html,
      });
      sent.catch(() => {});
      await Promise.race([sent, aborted]);
      return { ok: true };
    } catch (err) {
      const code = (err as { responseCode?: unknown }).responseCode;
      const permanent = typeof code === 'number' && code >= 500 && code < 600;
      const auth = (err as { code?: unknown }).code === 'EAUTH';
      return {
        ok: false,
        retry: !permanent && !auth && !signal.aborted,
        ...(typeof code === 'number' ? { status: code } : {}),
        error: signal.aborted
          ? 'timed out or shut down'
          : describeError(err, smtpSecrets(this.config.smtp.reveal())),
      };
    } finally {
      signal.removeEventListener('abort', onAbort);
      transport.close();
    }
  }
}

interface SmtpOptions {
  host: string;
  port: number;
  secure: boolean;
  auth?: { user: string; pass: string };
  connectionTimeout: number;
  greetingTimeout: number;
  socketTimeout: number;
  requireTLS?: boolean;
}

/**
 * `smtp://[user:pass@]host[:port]` (STARTTLS when offered; `?starttls=required` insists) or
 * `smtps://...` (TLS from the start, port 465 by default).
 */
export function smtpOptions(url: string, timeoutMs: number): SmtpOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error('the SMTP setting is not a URL');
  }
  if (u.protocol !== 'smtp:' && u.protocol !== 'smtps:')
    throw new Error('the SMTP URL must start with smtp:// or smtps://');
  const secure = u.protocol === 'smtps:';
  const opts: SmtpOptions = {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : secure ? 465 : 587,
    secure,
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
  };
  if (u.username) opts.auth = { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) };
  if (u.searchParams.get('starttls') === 'required') opts.requireTLS = true;
  return opts;
}

function smtpSecrets(url: string): string[] {
  try {
    const u = new URL(url);
    return [url, ...(u.password ? [decodeURIComponent(u.password), u.password] : [])];
  } catch {
    return [url];
  }
}
