#!/usr/bin/env bash
# Runs the crash-injection test (test/e2e/crash.test.ts) for more seeds than CI does:
#   npm run crash -- --seeds N     N random seeds on one cluster (each is printed)
#   npm run crash -- --seed S      replays seed S
# Each seed is one test case (about 30 s, bounded at 240 s).
set -euo pipefail
seeds=1
seed=''
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="${2:?--seeds needs a count}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a number}"; shift 2 ;;
    *) echo "crash.sh: unknown argument $1 (use --seeds N or --seed S)" >&2; exit 2 ;;
  esac
done
case "$seeds" in ''|*[!0-9]*|0) echo "crash.sh: --seeds must be a positive whole number, not $seeds" >&2; exit 2 ;; esac
case "$seed" in *[!0-9]*) echo "crash.sh: --seed must be a whole number, not $seed" >&2; exit 2 ;; esac
cd "$(dirname "$0")/../.."
bash infra/scripts/ensure-deps.sh
npx tsc -b
export STRATA_CRASH_SEEDS="$seeds" STRATA_CRASH_SEED="$seed"
exec npx jest test/e2e/crash.test.ts --selectProjects integration --runInBand
