#!/usr/bin/env bash
# Checks the deployment files of infra/ (no root needed, nothing installed):
#  1. nats-server -t accepts infra/nats/nats-cluster.conf (the pinned binary);
#  2. three servers started from that file on loopback (only the addresses, ports and
#     store directories rewritten) form one cluster with JetStream, and each one's
#     /jsz says it fsyncs before every acknowledgement (sync_always);
#  3. systemd-analyze verify accepts the units of infra/systemd, in a scratch root
#     holding the files where infra/DEPLOY.md puts them (skipped, and said so,
#     without systemd-analyze).
set -euo pipefail
cd "$(dirname "$0")/../.."
# The pinned binary, as ensure-nats-server.sh finds it ("... (PATH[, from ...])").
bin=$(bash infra/scripts/ensure-nats-server.sh | sed -n 's/.*(\([^,)]*\).*/\1/p' | tail -n1)
[ -x "$bin" ] || { echo "check-deploy: no nats-server found (run infra/scripts/ensure-deps.sh)" >&2; exit 1; }
scratch=$(mktemp -d "${TMPDIR:-/tmp}/strata-check-deploy-XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$scratch"
}
trap cleanup EXIT

echo "1. nats-server -t"
STRATA_NATS_NAME=strata-1 "$bin" -t -c infra/nats/nats-cluster.conf

echo "2. three servers from the file on loopback"
# Ports base+1..base+23 on 127.0.0.1 (a test passes a free run in STRATA_CHECK_PORT_BASE).
base=${STRATA_CHECK_PORT_BASE:-$((20000 + RANDOM % 20000))}
for i in 1 2 3; do
  # Server i: client port base+i, route port base+10+i, monitoring base+20+i; strata-K's route is 127.0.0.1:base+10+K.
  sed -e "s|0.0.0.0:4222|127.0.0.1:$((base + i))|" -e "s|0.0.0.0:6222|127.0.0.1:$((base + 10 + i))|" \
    -e "s|127.0.0.1:8222|127.0.0.1:$((base + 20 + i))|" -e "s|/var/lib/strata/nats|$scratch/s$i|" \
    -e "s|strata-1:6222|127.0.0.1:$((base + 11))|" -e "s|strata-2:6222|127.0.0.1:$((base + 12))|" -e "s|strata-3:6222|127.0.0.1:$((base + 13))|" \
    infra/nats/nats-cluster.conf >"$scratch/s$i.conf"
  STRATA_NATS_NAME="strata-$i" "$bin" -c "$scratch/s$i.conf" >"$scratch/s$i.log" 2>&1 &
  pids+=($!)
done
for i in 1 2 3; do
  ok=""
  for _ in $(seq 1 100); do
    jsz=$(curl -fsS "http://127.0.0.1:$((base + 20 + i))/jsz" 2>/dev/null || true)
    if echo "$jsz" | grep -q '"sync_always": *true' && echo "$jsz" | grep -q '"cluster_size": *3' && echo "$jsz" | grep -q '"leader": *"strata-'; then ok=1; break; fi
    sleep 0.2
  done
  [ -n "$ok" ] || { echo "check-deploy: server $i: no JetStream cluster of 3 with a meta leader and sync_always after 20 s; its log:" >&2; tail -20 "$scratch/s$i.log" >&2; exit 1; }
  echo "   strata-$i: JetStream in a cluster of 3, meta leader $(echo "$jsz" | sed -n 's/.*"leader": *"\([^"]*\)".*/\1/p' | head -n1), sync_always true"
done

echo "3. systemd-analyze verify"
if ! command -v systemd-analyze >/dev/null; then
  echo "   skipped: no systemd-analyze on this machine"
  exit 0
fi
root="$scratch/root"
mkdir -p "$root/opt/strata" "$root/usr/local/bin" "$root/etc/strata" "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp -r /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp strata "$root/opt/strata/strata"
cp "$bin" "$root/usr/local/bin/nats-server"
cp infra/env/nats.env infra/env/strata.env "$root/etc/strata/"
cp infra/env/node.env "$root/etc/strata/node-n1.env"
cp infra/systemd/* "$root/etc/systemd/system/"
(cd "$root/etc/systemd/system" && ln -s strata-node@.service strata-node@n1.service && ln -s strata-config@.service strata-config@config-1.service && ln -s strata-shard@.service strata-shard@md-4.service)
systemd-analyze verify --root="$root" strata-nats.service strata-config@config-1.service strata-shard@md-4.service strata-node@n1.service
echo "   the units verify"
