// Does an existing NATS cluster fsync every JetStream write before acknowledging it?
//
// Strata acknowledges a write once JetStream has stored it, so it only keeps its
// promise on servers that run with `sync_interval: always`. Servers that Strata starts
// itself always do (server.ts). For a cluster given through NATS_URL it asks each
// server's monitoring endpoint (`/jsz`, whose `config.sync_always` says it): the
// client protocol does not tell, and the system account that could is not ours.
// Without an answer from every server named, Strata refuses to start unless the
// operator accepts the risk (STRATA_ALLOW_LAZY_FSYNC=1), and then warns on every start.

/** What one server's monitoring endpoint said, or why it said nothing. */
export type FsyncReport = { url: string; syncAlways: boolean } | { url: string; error: string };

export type FsyncVerdict = { ok: true } | { ok: false; why: string };

/** The environment settings the check reads. */
export const FSYNC_ENV = { monitorUrls: 'STRATA_NATS_MONITOR_URL', allowLazy: 'STRATA_ALLOW_LAZY_FSYNC' } as const;

/** The verdict on the reports of the servers' monitoring endpoints (pure). */
export function fsyncVerdict(reports: readonly FsyncReport[]): FsyncVerdict {
  if (reports.length === 0) {
    return { ok: false, why: `cannot tell whether the NATS servers fsync every write: set ${FSYNC_ENV.monitorUrls} to their monitoring URLs (http://host:8222, comma-separated)` };
  }
  const failed = reports.filter((r) => 'error' in r);
  if (failed.length > 0) return { ok: false, why: `cannot read the JetStream settings of ${failed.map((r) => `${r.url} (${(r as { error: string }).error})`).join(', ')}` };
  const lazy = reports.filter((r) => 'syncAlways' in r && !r.syncAlways);
  if (lazy.length > 0) {
    return { ok: false, why: `JetStream on ${lazy.map((r) => r.url).join(', ')} does not fsync before it acknowledges (sync_interval is not "always"): a power cut would lose acknowledged writes` };
  }
  return { ok: true };
}

/** Asks one monitoring endpoint for its JetStream settings (bounded by `timeoutMs`). */
export async function readFsyncReport(url: string, timeoutMs = 3_000): Promise<FsyncReport> {
  const jsz = `${url.replace(/\/+$/, '')}/jsz`;
  try {
    const res = await fetch(jsz, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return { url, error: `HTTP ${res.status}` };
    const body = (await res.json()) as { config?: { sync_always?: boolean } };
    if (body.config === undefined) return { url, error: 'no JetStream config in /jsz (is JetStream enabled?)' };
    return { url, syncAlways: body.config.sync_always === true };
  } catch (err) {
    return { url, error: (err as Error).message };
  }
}

/**
 * Checks the cluster named by the monitoring URLs in `env` and returns null when it
 * may be used, a warning to log when the operator accepted lazy fsync, or throws
 * with a one-line reason.
 */
export async function requireFsync(env: NodeJS.ProcessEnv = process.env): Promise<string | null> {
  const urls = (env[FSYNC_ENV.monitorUrls] ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
  const verdict = fsyncVerdict(await Promise.all(urls.map((u) => readFsyncReport(u))));
  if (verdict.ok) return null;
  if (env[FSYNC_ENV.allowLazy] === '1') return `WARNING: ${verdict.why}; starting anyway because ${FSYNC_ENV.allowLazy}=1`;
  throw new Error(`${verdict.why}; refusing to start (set ${FSYNC_ENV.allowLazy}=1 to accept the risk)`);
}
