/**
 * Connection states of a caller session.
 * https://www.postgresql.org/docs/current/protocol-flow.html
 */
export const SessionState = {
  /** Waiting for StartupMessage (or SSLRequest / GSSENCRequest / CancelRequest before it). */
  Startup: 'startup',
  /** AuthenticationCleartextPassword sent; waiting for the PasswordMessage carrying the token. */
  Password: 'password',
  /** Caller authenticated; logging in to the target. */
  Connecting: 'connecting',
  /** Relaying: statements are judged by the gate. */
  Ready: 'ready',
  Closed: 'closed',
} as const;
export type SessionState = (typeof SessionState)[keyof typeof SessionState];

/** Transaction status bytes of ReadyForQuery. */
export const TxStatus = {
  Idle: 0x49, // I
  InBlock: 0x54, // T
  Failed: 0x45, // E
} as const;
