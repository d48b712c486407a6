/**
 * The process logger: pino, JSON lines on stderr (stdout belongs to command output). Any field
 * that could carry a secret is redacted by path, as a second line of defence behind Secret.
 */
import pino, { type Logger } from 'pino';

export const REDACT_PATHS = [
  'token',
  'password',
  'authorization',
  '*.token',
  '*.password',
  '*.authorization',
  '*.*.token',
  '*.*.password',
  'req.headers.authorization',
  'headers.authorization',
  'tokens',
  '*.tokens',
];

export function createLogger(defaultLevel = 'info'): Logger {
  return pino(
    {
      level: process.env.AIRLOCK_LOG_LEVEL || defaultLevel,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
