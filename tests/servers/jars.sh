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
