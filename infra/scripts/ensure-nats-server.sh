#!/usr/bin/env bash
# Makes sure a nats-server of at least the minimum version Strata needs can be found
# (it must know `sync_interval: always`: fsync before every acknowledgement), and
# prints which one is used. Looked for, in order: $NATS_SERVER_BIN, the pinned
# release in the cache ($XDG_CACHE_HOME or ~/.cache, then strata/nats-server/<version>),
# `nats-server` on PATH. When none is recent enough, the pinned release is built with
# `go install` into the cache (a minute or two; Go fetches it through its module
# proxy) and reused afterwards. Strata's code resolves the binary the same way
# (libs/natsd/src/version.ts, which holds the pinned and minimum versions).
set -euo pipefail
cd "$(dirname "$0")/../.."

version_file=libs/natsd/src/version.ts
pinned=$(sed -n "s/^export const NATS_SERVER_PINNED = '\\(v[0-9.]*\\)';.*/\\1/p" "$version_file")
minimum=$(sed -n "s/^export const NATS_SERVER_MIN_VERSION = '\\([0-9.]*\\)';.*/\\1/p" "$version_file")
[ -n "$pinned" ] && [ -n "$minimum" ] || { echo "ensure-deps: cannot read the nats-server versions from $version_file" >&2; exit 1; }
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/strata/nats-server/$pinned"

# Prints the version of binary $1 (2.15.3), or nothing.
version_of() { "$1" --version 2>/dev/null | sed -n 's/.*v\([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p' | head -n1; }
# Whether version $1 is at least $2.
at_least() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }

if [ -n "${NATS_SERVER_BIN:-}" ]; then
  v=$(version_of "$NATS_SERVER_BIN")
  if [ -z "$v" ] || ! at_least "$v" "$minimum"; then
    echo "ensure-deps: NATS_SERVER_BIN=$NATS_SERVER_BIN is ${v:-not a runnable nats-server}; Strata needs nats-server $minimum or later" >&2
    exit 1
  fi
  echo "ensure-deps: nats-server v$v ($NATS_SERVER_BIN, from NATS_SERVER_BIN)"
  exit 0
fi

if [ -x "$cache_dir/nats-server" ]; then
  echo "ensure-deps: nats-server v$(version_of "$cache_dir/nats-server") ($cache_dir/nats-server)"
  exit 0
fi

if command -v nats-server >/dev/null 2>&1; then
  v=$(version_of "$(command -v nats-server)")
  if [ -n "$v" ] && at_least "$v" "$minimum"; then
    echo "ensure-deps: nats-server v$v ($(command -v nats-server), from PATH)"
    exit 0
  fi
  echo "ensure-deps: the nats-server on PATH is v${v:-?}, older than $minimum (it cannot fsync before it acknowledges); installing $pinned"
fi

if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<MSG
ensure-deps: Strata needs nats-server $minimum or later and found none.
  With Go: GOBIN=$cache_dir go install github.com/nats-io/nats-server/v2@$pinned
  Without Go: download the nats-server $pinned release for your platform from the NATS project
  and point NATS_SERVER_BIN at the binary (or put it on PATH).
MSG
  exit 1
fi

echo "ensure-deps: building nats-server $pinned with go install (once; cached in $cache_dir)"
mkdir -p "$cache_dir"
tmp="$cache_dir.tmp.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
# Built outside the checkout, so no go.mod of ours is involved.
(cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/nats-io/nats-server/v2@$pinned")
mv "$tmp/nats-server" "$cache_dir/nats-server"
rm -rf "$tmp"
echo "ensure-deps: nats-server v$(version_of "$cache_dir/nats-server") ($cache_dir/nats-server)"
