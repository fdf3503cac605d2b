// Structured JSON logging for every Strata actor (pino), joined to traces by trace_id.
export { createLogger, type Logger, type LoggerOptions, type LogDestination } from './logger';
