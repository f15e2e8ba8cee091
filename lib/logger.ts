// The one structured logger. Children bind {migration, phase, node}. Redaction keeps key material
// out of logs even if a config object is logged whole.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(name: string, destination?: string): Logger {
  const opts = {
    name,
    level: process.env.FERRY_LOG_LEVEL ?? 'info',
    redact: ['privateKey', '*.privateKey', 'key', '*.key', 'password', '*.password'],
  };
  return destination
    ? pino(opts, pino.destination({ dest: destination, mkdir: true, sync: false }))
    : pino(opts);
}
