// `strata up --tracing [URL]`: every process sends its spans to a Zipkin server (by
// default the one `npm run tracing` starts on 127.0.0.1:9411), through the Zipkin
// exporter of libs/tracing (OTEL_EXPORTER_ZIPKIN_ENDPOINT).
import type { ChildSpec } from './supervisor';
import { UsageError } from './units';

export const ZIPKIN_URL_DEFAULT = 'http://127.0.0.1:9411';

/** The Zipkin server's base URL from --tracing's value (true: the default). */
export function tracingUrlOf(value: string | boolean | undefined): string | undefined {
  if (value === undefined || value === false) return undefined;
  const text = value === true ? ZIPKIN_URL_DEFAULT : value;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--tracing: "${text}" is not a URL; give the Zipkin server's, e.g. ${ZIPKIN_URL_DEFAULT}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--tracing: "${text}" is not an http(s) URL`);
  return text.replace(/\/+$/, '');
}

/** What each child's environment gets for --tracing (nothing without it). */
export function tracingEnv(baseUrl: string | undefined): Record<string, string> {
  if (baseUrl === undefined) return {};
  // OTLP off even if the caller's environment sets an endpoint: the spans go to Zipkin.
  return { OTEL_TRACES_EXPORTER: 'zipkin', OTEL_EXPORTER_ZIPKIN_ENDPOINT: `${baseUrl}/api/v2/spans`, OTEL_BSP_SCHEDULE_DELAY: '1000' };
}

export function withEnv(children: ChildSpec[], env: Record<string, string>): ChildSpec[] {
  if (Object.keys(env).length === 0) return children;
  return children.map((c) => ({ ...c, env: { ...c.env, ...env } }));
}

/** The line `strata up` prints about tracing: where the UI is, or that no Zipkin answers there yet. */
export async function tracingLine(baseUrl: string): Promise<string> {
  try {
    const health = await fetch(`${baseUrl}/health`, { signal: AbortSignal.timeout(2_000) });
    if (health.ok) return `tracing: every process sends its spans to Zipkin; see ${baseUrl}/zipkin/`;
  } catch {
    // reported below
  }
  return `tracing: no Zipkin answers at ${baseUrl} yet (start one with npm run tracing); the spans are sent there once it does`;
}
