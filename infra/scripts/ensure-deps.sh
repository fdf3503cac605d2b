#!/usr/bin/env bash
# Installs what Strata needs to build, run and test, when it is missing: the npm
# packages (npm ci), a current nats-server (the pinned release, built with
# `go install` into a cache directory), and, from Debian's packages, the NBD clients
# (qemu-utils, libnbd-bin, fio, nbdkit), openssl, and the QEMU guest of the HA tests. With
# --test (npm test) also what only the tests need: Debian's chromium (the UI
# screenshots) and the Zipkin server's jar (fetched with Maven). Safe to run again: it
# only installs what is absent. Used by the README's commands and by CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
for_tests=false
case "${1:-}" in
  --test) for_tests=true ;;
  '') ;;
  *) echo "usage: ensure-deps.sh [--test]" >&2; exit 2 ;;
esac

bash infra/scripts/ensure-nats-server.sh

need_apt=()
# The NBD clients the end-to-end tests and benchmarks drive the gateway with.
command -v qemu-io >/dev/null 2>&1 || need_apt+=(qemu-utils)
command -v nbdinfo >/dev/null 2>&1 && command -v nbdcopy >/dev/null 2>&1 || need_apt+=(libnbd-bin)
command -v fio >/dev/null 2>&1 || need_apt+=(fio)
command -v nbdkit >/dev/null 2>&1 || need_apt+=(nbdkit)
# The certificates of `strata up`'s TLS (libs/natsd/src/credentials.ts).
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# Headless Chromium for the tests that take screenshots of a UI.
if $for_tests; then [ -x /usr/bin/chromium ] || need_apt+=(chromium); fi

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-deps: installing ${need_apt[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "ensure-deps: missing ${need_apt[*]}; install them (Debian: sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

# The QEMU guest of the HA tests' qemu VMs (and qemu-system-x86 itself): built once
# from Debian's kernel and busybox packages into ~/.cache/strata/guest.
bash infra/scripts/build-guest.sh >/dev/null

# The tracing test's Zipkin server (its jar in ~/.cache/strata/zipkin).
if $for_tests; then bash infra/scripts/ensure-zipkin.sh >/dev/null; fi

# npm ci when node_modules is missing or older than the lock file. The lock file
# lists every platform's optional packages (@swc/core-*, resolver bindings), so
# `npm ci` accepts it as it is and never rewrites it.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ensure-deps: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
