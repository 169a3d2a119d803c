#!/usr/bin/env bash
# Builds the Neo4j launcher (target/launcher.jar + target/lib/) only when it is missing or older
# than pom.xml or a source file, so `make test` can call this on every run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="$here/target/launcher.jar"

stale=0
if [[ ! -f "$jar" || ! -d "$here/target/lib" ]]; then
    stale=1
elif [[ "$here/pom.xml" -nt "$jar" || "${BASH_SOURCE[0]}" -nt "$jar" ]]; then
    stale=1
elif [[ -n "$(find "$here/src" -type f -newer "$jar" -print -quit)" ]]; then
    stale=1
fi

if [[ "$stale" -eq 0 ]]; then
    exit 0
fi

command -v mvn >/dev/null || { echo "build.sh: mvn (Maven 3.8+) is required" >&2; exit 1; }
command -v java >/dev/null || { echo "build.sh: java (JDK 17+) is required" >&2; exit 1; }

echo "build.sh: building the Neo4j launcher (first build downloads ~125 MB from Maven Central)" >&2
cd "$here"
# copy-dependencies only adds files: clear lib/ so a dependency dropped from the pom is gone too.
rm -rf target/lib
mvn -q -B -DskipTests package
# Maven keeps the jar's old mtime when nothing in it changed; touch it so the check above settles.
touch "$jar"
