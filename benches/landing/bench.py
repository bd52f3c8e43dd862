"""Loading a MongoDB-compatible landing store: soundlake's `import` against
a plain bulk loader, on the same documents, into the same server.

Starts FerretDB (v1 on SQLite, the MongoDB wire-protocol server the test
suite uses; tests/servers/install.sh builds it), generates a catalog of
--tracks tracks once, then --runs times each, into an empty database:

  soundlake  `soundlake import <collection> <file> --strict` for the four
             files, with the landing URL on the server: unordered bulk
             inserts, then a look-up of the ids already stored, per batch
  pymongo    the same lines parsed and sent with `insert_many` (unordered,
             1,000 a call) by the official Python driver: inserts only, no
             hashes, no versions, the least a loader can ask of the server

Before a time counts, each database must hold every document (a count per
collection). The table gives each loader's wall time, its own CPU time and
the server's CPU time in the same seconds: a loader that keeps the server
busy while it idles itself writes at the server's pace.

usage: python benches/landing/bench.py [--tracks 20000] [--runs 3] [--binary B] [--work DIR]
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pymongo import MongoClient

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "flatten"))
from bench import REPO, measure, process_tree  # noqa: E402  (the flattening race's meter)

COLLECTIONS = ["artists", "albums", "tracks", "audio_features"]
LOADER = """
import json, sys
from pymongo import MongoClient
url, database, folder = sys.argv[1:4]
db = MongoClient(url)[database]
for name in {collections}:
    batch = []
    with open(f"{{folder}}/{{name}}.ndjson", "rb") as lines:
        for line in lines:
            if line.strip():
                batch.append(json.loads(line))
            if len(batch) == 1000:
                db[name].insert_many(batch, ordered=False)
                batch = []
    if batch:
        db[name].insert_many(batch, ordered=False)
""".format(collections=COLLECTIONS)


def ferretdb(work):
    """FerretDB on a free port, its data under `work`: (URL, process)."""
    binary = Path(os.environ.get("SOUNDLAKE_SERVERS", Path.home() / ".cache/soundlake/servers"))
    binary = binary / "bin" / "ferretdb-sqlite"
    if not binary.exists():
        sys.exit(f"no {binary}: run bash tests/servers/install.sh")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = Path(tempfile.mkdtemp(prefix="ferretdb-", dir=work))
    log = open(data / "log", "wb")
    proc = subprocess.Popen([binary, "-listen", f"127.0.0.1:{port}", "-dir", data],
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while "listening on" not in (data / "log").read_text(errors="replace"):
        if proc.poll() is not None or time.time() > deadline:
            sys.exit(f"FerretDB did not start; see {data / 'log'}")
        time.sleep(0.2)
    return f"mongodb://127.0.0.1:{port}", proc


def counted(url, database):
    db = MongoClient(url)[database]
    return {c: db[c].count_documents({}) for c in COLLECTIONS}


def timed(cmd, log, env, server):
    """`cmd` measured, and the server's CPU seconds while it ran."""
    before = process_tree(server.pid)[server.pid][0]
    m = measure(cmd, log, env)
    return m, process_tree(server.pid)[server.pid][0] - before


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--binary", default=str(REPO / "target" / "release" / "soundlake"))
    parser.add_argument("--work", default=str(REPO / "target" / "bench-landing"))
    args = parser.parse_args()
    if args.runs < 1 or args.tracks < 1:
        sys.exit("--tracks and --runs must be at least 1")
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = work / f"data-{args.tracks}"
    if not (data / "generated.json").exists():
        shutil.rmtree(data, ignore_errors=True)
        out = subprocess.run([args.binary, "generate", "catalog", "--tracks", str(args.tracks),
                              "--out", data, "--json"], check=True, capture_output=True).stdout
        (data / "generated.json").write_bytes(out)
    generated = {w["collection"]: w for w in json.loads((data / "generated.json").read_text())}
    want = {c: generated[c]["documents"] for c in COLLECTIONS}
    size = sum(w["bytes"] for w in generated.values()) / 1e6
    url, server = ferretdb(work)
    results = {"soundlake": [], "pymongo": []}
    try:
        for n in range(args.runs):
            database = f"soundlake{n}"
            env = dict(os.environ, SOUNDLAKE__LANDING__URL=f"{url}/{database}", SOUNDLAKE_LOG="warn")
            steps = [timed([args.binary, "import", c, data / f"{c}.ndjson", "--strict"],
                           work / "log", env, server) for c in COLLECTIONS]
            results["soundlake"].append((sum(m.wall for m, _ in steps), sum(m.cpu for m, _ in steps),
                                         sum(s for _, s in steps)))
            database = f"pymongo{n}"
            m, server_cpu = timed([sys.executable, "-c", LOADER, url, database, data],
                                  work / "log", None, server)
            results["pymongo"].append((m.wall, m.cpu, server_cpu))
            for loader in results:
                got = counted(url, f"{loader}{n}")
                if got != want:
                    sys.exit(f"{loader} stored {got}; the files hold {want}")
            print(f"run {n + 1}: done", file=sys.stderr)
    finally:
        server.terminate()
        server.wait()
    docs = sum(want.values())
    lines = [
        f"### {args.tracks:,} tracks into FerretDB",
        "",
        f"Input: {docs:,} documents in four files ({size:,.0f} MB NDJSON). Medians of {args.runs}.",
        "",
        "| loader | wall s | loader CPU s | server CPU s | MB/s | documents/s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for loader, runs in results.items():
        wall, cpu, server_cpu = (statistics.median(r[i] for r in runs) for i in range(3))
        lines.append(f"| {loader} | {wall:.2f} | {cpu:.2f} | {server_cpu:.2f} | {size / wall:.1f} "
                     f"| {docs / wall:,.0f} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
