#!/usr/bin/env bash
# Makes sure the Zipkin server's executable jar is in the cache ($XDG_CACHE_HOME or
# ~/.cache, then strata/zipkin/) and prints its path. When missing, Maven fetches it
# from Maven Central (io.zipkin:zipkin-server, classifier exec, about 130 MB, once).
# It runs on the machine's Java 17.
set -euo pipefail

version=3.5.1
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/strata/zipkin"
jar="$cache_dir/zipkin-server-$version-exec.jar"

if [ ! -s "$jar" ]; then
  command -v mvn >/dev/null 2>&1 || { echo "ensure-zipkin: Maven (mvn) is needed to fetch io.zipkin:zipkin-server:$version; install it (Debian: sudo apt-get install maven)" >&2; exit 1; }
  command -v java >/dev/null 2>&1 || { echo "ensure-zipkin: Java 17 or later is needed to run Zipkin (Debian: sudo apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
  mkdir -p "$cache_dir"
  echo "ensure-zipkin: fetching io.zipkin:zipkin-server:$version (exec jar) with Maven" >&2
  mvn -q dependency:copy "-Dartifact=io.zipkin:zipkin-server:$version:jar:exec" "-DoutputDirectory=$cache_dir" >&2
fi
echo "$jar"
