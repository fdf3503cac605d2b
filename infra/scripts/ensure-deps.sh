#!/usr/bin/env bash
# Installs what Strata needs to build, run and test, when it is missing: the npm
# packages (npm ci) and, from Debian's packages, nats-server and the NBD clients
# (qemu-utils, libnbd-bin, fio, nbdkit). Safe to run again: it
# only installs what is absent. Used by the README's commands and by CI.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
command -v nats-server >/dev/null 2>&1 || [ -n "${NATS_SERVER_BIN:-}" ] || need_apt+=(nats-server)
# The NBD clients the end-to-end tests and benchmarks drive the gateway with.
command -v qemu-io >/dev/null 2>&1 || need_apt+=(qemu-utils)
command -v nbdinfo >/dev/null 2>&1 && command -v nbdcopy >/dev/null 2>&1 || need_apt+=(libnbd-bin)
command -v fio >/dev/null 2>&1 || need_apt+=(fio)
command -v nbdkit >/dev/null 2>&1 || need_apt+=(nbdkit)

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

# npm ci when node_modules is missing or older than the lock file. npm 11 writes
# lock files that leave out other platforms' optional packages (@swc/core-*,
# resolver bindings) and then its own `npm ci` refuses them as "out of sync" (npm/cli
# issues 4828 and 8805). In that case `npm install` installs the same pinned
# versions from the lock and resolves only those optional entries.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "ensure-deps: npm ci"
  if ! npm ci --no-audit --no-fund --loglevel=error 2>ensure-deps.err; then
    if grep -q "EUSAGE" ensure-deps.err; then
      echo "ensure-deps: npm ci refused the lock file (npm's optional-platform bug); running npm install instead"
      npm install --no-audit --no-fund --loglevel=error
    else
      cat ensure-deps.err >&2
      rm -f ensure-deps.err
      exit 1
    fi
  fi
  rm -f ensure-deps.err
fi
