// Shared by the rebalance and tiering plan tests: the rows as they are once the
// planned moves are recorded (withCopy), as the copier records them.
import { withCopy, type CopyAction, type EgroupRow } from '../src/plan';

/** The rows after the moves are recorded (withCopy). */
export function applied(rows: readonly EgroupRow[], moves: readonly CopyAction[]): EgroupRow[] {
  return rows.map((r) => {
    const m = moves.find((a) => a.egroup === r.egroup);
    if (m === undefined) return r;
    const next = withCopy(r.entry, m);
    if (!next.ok) throw new Error(next.why);
    return { ...r, entry: next.entry };
  });
}
