// Structured JSON logs shaped like etcd's zap logs ({"level","ts","caller","msg",...fields}), so
// operators' tooling and etcd's own test suite find the lines they wait for.
import pino, { type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination: NodeJS.WritableStream | number = 2): Logger {
  const pinoLevel = level === 'panic' ? 'fatal' : level;
  const stream =
    typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination;
  return pino(
    {
      level: pinoLevel,
      base: null,
      messageKey: 'msg',
      formatters: { level: (label) => ({ level: label }) },
      timestamp: () => `,"ts":"${new Date().toISOString()}"`,
    },
    stream,
  );
}
