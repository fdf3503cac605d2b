// Test helper: a logger whose lines are kept in memory and parsed, so a test can assert
// what an actor logged (and that every line is one JSON object).
import { createLogger, type Logger, type LoggerOptions } from '../logger';

/** A parsed log line: pino's fields plus whatever the call added. */
export type LogLine = Record<string, unknown> & { level: string; time: string; service: string; msg?: string };

export interface CapturedLogs {
  logger: Logger;
  /** Every line so far, parsed. Throws if a write was not exactly one JSON object and a newline. */
  lines(): LogLine[];
  clear(): void;
}

/** A logger like createLogger's (same fields, same trace ids) that writes to memory. */
export function captureLogs(options: Partial<Omit<LoggerOptions, 'destination'>> = {}): CapturedLogs {
  const writes: string[] = [];
  const logger = createLogger({ service: 'test', level: 'trace', ...options, destination: { write: (line: string) => void writes.push(line) } });
  return {
    logger,
    lines: () =>
      writes.map((write, index) => {
        if (!write.endsWith('\n') || write.indexOf('\n') !== write.length - 1) {
          throw new Error(`log write ${index} is not exactly one line: ${JSON.stringify(write)}`);
        }
        return JSON.parse(write) as LogLine;
      }),
    clear: () => {
      writes.length = 0;
    },
  };
}
