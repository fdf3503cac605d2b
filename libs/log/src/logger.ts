// Structured logs: one JSON object per line on stderr, with the service, the node and,
// inside a span, the trace and span ids that join a log line to its trace.
import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import pino from 'pino';

export type Logger = pino.Logger;

/** Where lines go: anything with a write(line) method. */
export type LogDestination = pino.DestinationStream;

export interface LoggerOptions {
  /** The actor, e.g. "vdisk-controller"; every line carries it as `service`. */
  service: string;
  /** The Strata node id, e.g. "node-2"; every line carries it as `node` when given. */
  node?: string;
  /** fatal, error, warn, info, debug, trace or silent. Default: LOG_LEVEL, else info. */
  level?: string;
  /** For tests: where to write instead of stderr. */
  destination?: LogDestination;
}

const levelNames: readonly string[] = [...Object.keys(pino.levels.values), 'silent'];

/** The ids of the active span, if any: log lines and traces share trace_id. */
function traceFields(): { trace_id?: string; span_id?: string } {
  const span = trace.getSpan(context.active());
  if (span === undefined) return {};
  const spanContext = span.spanContext();
  // A no-op span (no SDK started) has all-zero ids; they would join every line to one fake trace.
  if (!isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}

/**
 * Creates the process's logger. Lines go to stderr (fd 2) synchronously: slower than
 * pino's asynchronous mode, but the last lines before process.exit() or a crash are
 * the ones an operator needs, and an asynchronous buffer would lose them.
 */
export function createLogger(options: LoggerOptions): Logger {
  if (options.service.trim() === '') throw new Error('createLogger: service must not be empty');
  const fromEnv = process.env.LOG_LEVEL?.trim();
  const level = options.level ?? (fromEnv === undefined || fromEnv === '' ? 'info' : fromEnv);
  if (!levelNames.includes(level)) {
    const source = options.level === undefined ? 'LOG_LEVEL' : 'level';
    throw new Error(`${source}="${level}" is not a log level; use one of ${levelNames.join(', ')}`);
  }
  return pino(
    {
      level,
      base: { service: options.service, ...(options.node === undefined ? {} : { node: options.node }), pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // "level":"warn" rather than "level":40: the lines are read by people and jq, not only by machines.
      formatters: { level: (label) => ({ level: label }) },
      mixin: traceFields,
    },
    options.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}
