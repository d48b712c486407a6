/**
 * The one catalogue of errors Airlock can raise. Every code is stable (users and tests match on
 * it) and every message says what happened and what to do next. Messages never include
 * credentials or tokens: callers pass only names and non-secret details.
 */

export const ERROR_CODES = {
  AIRLOCK_E_CONFIG_INVALID: 'the configuration file is invalid',
  AIRLOCK_E_CONFIG_NOT_FOUND: 'the configuration file could not be read',
  AIRLOCK_E_SECRET_UNRESOLVED: 'a secret reference could not be resolved',
  AIRLOCK_E_TOKEN_MISSING: 'no Airlock token was presented',
  AIRLOCK_E_TOKEN_INVALID: 'the Airlock token is not valid',
  AIRLOCK_E_FORBIDDEN: 'the principal may not do this',
  AIRLOCK_E_CONNECTION_UNKNOWN: 'no such connection',
  AIRLOCK_E_UPSTREAM_UNAVAILABLE: 'the target could not be reached',
  AIRLOCK_E_UPSTREAM_AUTH: 'the target refused the credential Airlock holds',
  AIRLOCK_E_PROTOCOL: 'the client sent a malformed protocol message',
  AIRLOCK_E_MESSAGE_TOO_LARGE: 'a protocol message exceeded the size limit',
  AIRLOCK_E_DENIED: 'the action was denied',
  AIRLOCK_E_APPROVAL_REQUIRED: 'the action needs approval',
  AIRLOCK_E_REQUEST_EXPIRED: 'the approval request expired',
  AIRLOCK_E_REQUEST_NOT_FOUND: 'no such approval request',
  AIRLOCK_E_REQUEST_NOT_PENDING: 'the approval request is no longer pending',
  AIRLOCK_E_SELF_APPROVAL: 'a requester cannot decide their own request',
  AIRLOCK_E_NOT_A_REVIEWER: 'the principal is not a reviewer for this request',
  AIRLOCK_E_ALREADY_APPROVED: 'the principal already approved this request',
  AIRLOCK_E_AUDIT_UNAVAILABLE: 'the audit log could not be written',
  AIRLOCK_E_STORE_UNAVAILABLE: 'the store could not be reached',
  AIRLOCK_E_CLASSIFY_FAILED: 'the command could not be classified',
  AIRLOCK_E_BAD_REQUEST: 'the request is malformed',
  AIRLOCK_E_INTERNAL: 'an internal error occurred',
  AIRLOCK_E_TOKEN_EXPIRED: 'the token has expired',
  AIRLOCK_E_TOKEN_REVOKED: 'the token was revoked',
  AIRLOCK_E_TOKEN_SCOPE: 'the token is not valid for this connection',
  AIRLOCK_E_OIDC_UNAVAILABLE: 'the identity provider could not be reached',
  AIRLOCK_E_BREAK_GLASS: 'break-glass is not allowed',
  AIRLOCK_E_HOST_KEY_MISMATCH: 'the target presented a host key other than the one pinned for it',
  AIRLOCK_E_RATE_LIMITED: 'too many failed sign-ins; try again later',
  AIRLOCK_E_LIMIT_CONNECTIONS: 'too many open connections',
  AIRLOCK_E_LIMIT_PENDING: 'too many requests waiting for approval',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AirlockError extends Error {
  readonly code: ErrorCode;
  /** What the user should do next; shown after the message. */
  readonly hint: string | undefined;
  /** HTTP status the control plane answers with. */
  readonly status: number;

  constructor(
    code: ErrorCode,
    message: string,
    options: { hint?: string; status?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AirlockError';
    this.code = code;
    this.hint = options.hint;
    this.status = options.status ?? defaultStatus(code);
  }

  /** The one-line text shown to humans: message, then what to do. */
  describe(): string {
    return this.hint ? `${this.message} — ${this.hint}` : this.message;
  }

  toJSON(): { code: ErrorCode; message: string; hint?: string } {
    return this.hint
      ? { code: this.code, message: this.message, hint: this.hint }
      : { code: this.code, message: this.message };
  }
}

function defaultStatus(code: ErrorCode): number {
  switch (code) {
    case 'AIRLOCK_E_TOKEN_MISSING':
    case 'AIRLOCK_E_TOKEN_INVALID':
    case 'AIRLOCK_E_TOKEN_EXPIRED':
    case 'AIRLOCK_E_TOKEN_REVOKED':
      return 401;
    case 'AIRLOCK_E_TOKEN_SCOPE':
    case 'AIRLOCK_E_BREAK_GLASS':
      return 403;
    case 'AIRLOCK_E_OIDC_UNAVAILABLE':
      return 503;
    case 'AIRLOCK_E_RATE_LIMITED':
    case 'AIRLOCK_E_LIMIT_CONNECTIONS':
    case 'AIRLOCK_E_LIMIT_PENDING':
      return 429;
    case 'AIRLOCK_E_FORBIDDEN':
    case 'AIRLOCK_E_SELF_APPROVAL':
    case 'AIRLOCK_E_NOT_A_REVIEWER':
    case 'AIRLOCK_E_DENIED':
      return 403;
    case 'AIRLOCK_E_CONNECTION_UNKNOWN':
    case 'AIRLOCK_E_REQUEST_NOT_FOUND':
      return 404;
    case 'AIRLOCK_E_REQUEST_NOT_PENDING':
    case 'AIRLOCK_E_ALREADY_APPROVED':
    case 'AIRLOCK_E_REQUEST_EXPIRED':
      return 409;
    case 'AIRLOCK_E_BAD_REQUEST':
    case 'AIRLOCK_E_CONFIG_INVALID':
    case 'AIRLOCK_E_PROTOCOL':
    case 'AIRLOCK_E_MESSAGE_TOO_LARGE':
      return 400;
    case 'AIRLOCK_E_AUDIT_UNAVAILABLE':
    case 'AIRLOCK_E_STORE_UNAVAILABLE':
    case 'AIRLOCK_E_UPSTREAM_UNAVAILABLE':
      return 503;
    default:
      return 500;
  }
}

export function isAirlockError(err: unknown): err is AirlockError {
  return err instanceof AirlockError;
}
