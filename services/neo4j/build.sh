#!/usr/bin/env bash
# Builds the Neo4j launcher (target/launcher.jar + target/lib/) only when it is missing or older
# than pom.xml, this script or a source file, so `make test` can call this on every run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="$here/target/launcher.jar"
# Written only after a complete build, so an interrupted one (jar made, lib/ half copied) is
# rebuilt next time.
stamp="$here/target/build.stamp"

stale=0
if [[ ! -f "$jar" || ! -d "$here/target/lib" || ! -f "$stamp" ]]; then
    stale=1
elif [[ "$here/pom.xml" -nt "$stamp" || "$here/build.sh" -nt "$stamp" ]]; then
    stale=1
elif [[ -n "$(find "$here/src" -type f -newer "$stamp" -print -quit)" ]]; then
    stale=1
fi

if [[ "$stale" -eq 0 ]]; then
    exit 0
fi

command -v mvn >/dev/null || { echo "build.sh: mvn (Maven 3.8+) is required" >&2; exit 1; }
command -v java >/dev/null || { echo "build.sh: java (JDK 17+) is required" >&2; exit 1; }

echo "build.sh: building the Neo4j launcher (the first build fetches Neo4j from Maven Central)" >&2
cd "$here"
# copy-dependencies only adds files: clear lib/ so a dependency dropped from the pom is gone too.
rm -rf target/lib "$stamp"
# Maven 3.8 prints stray ANSI resets even with -q -B; keep its output for failures only.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! mvn -q -B -DskipTests package >"$log" 2>&1; then
    cat "$log" >&2
    echo "build.sh: Maven build failed" >&2
    exit 1
fi
touch "$stamp"
