# Sourced by the scripts in tests/servers: where the jars of a Java server
# (`kafka`, `hdfs`) are installed, keyed by its POM's content so a version
# change installs afresh.
servers="${SOUNDLAKE_SERVERS:-$HOME/.cache/soundlake/servers}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The folder of NAME's jars (its libs/ once installed).
jars_dir() {
  echo "$servers/$1-$(sha256sum "$here/$1/pom.xml" | cut -c1-12)"
}

# NAME's libs/ folder, or a message naming the installer and exit 1.
installed_libs() {
  local libs
  libs="$(jars_dir "$1")/libs"
  if [ ! -d "$libs" ]; then
    echo "$libs is missing: run bash tests/servers/install.sh (tests/run.sh does)" >&2
    exit 1
  fi
  echo "$libs"
}

# Trino: the newest release whose server tarball Maven Central serves here,
# and the Java it needs at least.
trino_version=476
trino_java=24

# The folder Trino's lib/ and its Delta Lake plugin are installed in.
trino_dir() {
  echo "$servers/trino-$trino_version"
}

# soundlake's functions for Trino (docker/trino/soundlake-functions), built
# into a folder keyed by their sources, so a change builds afresh.
functions_src="$(cd "$here/../../docker/trino/soundlake-functions" && pwd)"
functions_dir() {
  echo "$servers/soundlake-functions-$(find "$functions_src/pom.xml" "$functions_src/src" -type f \
    | sort | xargs cat | sha256sum | cut -c1-12)"
}

# The java binary Trino runs on: SOUNDLAKE_TRINO_JAVA, else the newest under
# /usr/lib/jvm, or a message and exit 1 when that is older than Trino needs.
trino_java_bin() {
  if [ -n "${SOUNDLAKE_TRINO_JAVA:-}" ]; then
    echo "$SOUNDLAKE_TRINO_JAVA"
    return
  fi
  local newest=0 java="" candidate major
  for candidate in /usr/lib/jvm/*/bin/java; do
    major="$("$candidate" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
    if [ "${major:-0}" -gt "$newest" ]; then
      newest=$major java=$candidate
    fi
  done
  if [ "$newest" -lt "$trino_java" ]; then
    echo "Trino $trino_version needs Java $trino_java or newer; /usr/lib/jvm has Java $newest at most: install one, or name it in SOUNDLAKE_TRINO_JAVA" >&2
    exit 1
  fi
  echo "$java"
}
