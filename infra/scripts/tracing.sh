#!/usr/bin/env bash
# `npm run tracing`: a Zipkin server in the foreground (in-memory storage), its UI and
# API on http://127.0.0.1:${ZIPKIN_PORT:-9411}/zipkin/. Start a cluster that sends it
# every span with `npm run up -- --tracing` (or --tracing http://HOST:PORT).
set -euo pipefail
cd "$(dirname "$0")/../.."
jar=$(bash infra/scripts/ensure-zipkin.sh)
port="${ZIPKIN_PORT:-9411}"
echo "tracing: Zipkin on http://127.0.0.1:$port/zipkin/ (Ctrl-C stops it; spans are kept in memory)"
exec java -Xms64m -Xmx512m -jar "$jar" "--armeria.ports[0].port=$port" "--armeria.ports[0].ip=127.0.0.1" "--armeria.ports[0].protocols[0]=http" --logging.level.root=WARN
