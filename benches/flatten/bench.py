"""The flattening race: soundlake against PySpark (schema inferred and
explicit), DuckDB, chDB, Polars and dlt, on the same generated landing data, in
one run.

For each scale (tracks) it generates the catalog once (`soundlake generate
catalog`), loads it into an embedded landing store once (`soundlake import`,
timed apart: it is the crawl's job, not the flattening's), then runs every
system `--runs` times from a fresh copy of its input:

  soundlake  `run spotify_catalog` of the bronze and silver tasks (landing ->
             raw history Parquet -> the flattened tables), then of the gold
             tasks (the modelled tables), as a user runs them, on the
             product's defaults (zstd Parquet);
  duckdb     benches/flatten/duckdb_flatten.py: NDJSON -> the silver tables,
             streaming each file once per table it feeds, and loading each
             file once into memory first;
  dlt        benches/flatten/dlt_flatten.py: dlt normalizing the NDJSON
             into Parquet child tables, then DuckDB naming them as silver;
  spark      benches/flatten/spark_flatten.py, local[*]: the same, with the
             schema inferred and with an explicit schema;
  chdb       benches/flatten/chdb_flatten.py: the same in ClickHouse's SQL,
             in process, streaming and loading into memory first;
  polars     benches/flatten/polars_flatten.py: the same with Polars
             expressions, scanning each file once per table it feeds
             (lazy) and reading each file once into memory first.

Beside the table, the physical limit: the time only to read the input
NDJSON, and to read it and parse every document with simd-json on every
core (examples/parse_limit.rs), which no system can beat.

Each process tree is measured from outside: wall time, CPU time (user +
system of every process in the tree) and peak resident memory (the tree's
summed RSS, sampled every 20 ms). Before timing counts, the outputs are
compared: every table's row count and a checksum over its key columns must
equal soundlake's silver, so the race is on equal work.

With `--trino`, a real Trino (tests/servers/trino-server.sh, sized for a
benchmark) runs the same gold models again over the same silver tables
(`[gold] engine = "trino"`), as "gold on Trino": its time, and the peak
memory of soundlake and Trino's JVM together. Every gold table's row count
must equal the one soundlake's own engine gave before the time counts.

Similar tracks by sound (the gold model with a nearest-neighbour step) is
timed again alone, as "similar by sound", and its recall is measured:
for a sample of tracks, the share of the neighbours it lists that are
among the exact 20 nearest by cosine, found by numpy comparing each with
every track (tests/similar_check.py defines the vectors as the model does).

The gold models without a nearest-neighbour step (the catalog's twelve
SQL models) are timed twice more over the same silver: on soundlake
("gold SQL models"), and as their own SQL run by DuckDB
(flatten/duckdb_gold.py: the two functions soundlake adds become DuckDB
macros; no data tests, no Delta commits) as "gold SQL on DuckDB". Each
model's row count must equal soundlake's (its rows plus those it
quarantined) before the time counts.

With `--compare BINARY` (and `--compare-definitions` its checkout),
another soundlake build (an older commit, say) races too, on the same
landing copy and checked the same way, as "compared" and "compared +
gold": a change's before and after, side by side in one run.

Under each table: where soundlake's time went by stage, the cores its
last bronze+silver run kept busy (a bar per tenth of a second) with any
stretch it sat idle, and the physical limit (reading and parsing the input).

usage: python benches/flatten/bench.py [--scales 10000,200000] [--runs 3] [--trino]
                                       [--compare OTHER_SOUNDLAKE
                                        --compare-definitions ITS_CHECKOUT]
"""

import argparse
import bisect
import contextlib
import json
import os
import shutil
import socket
import tempfile
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
SAMPLE_S = 0.02

# The silver tables every system writes, with the columns their checksum
# covers (cast to text, so engines' integer widths do not matter).
KEYS = {
    "artists": ["id", "followers", "popularity"],
    "artists__genres": ["artist_id", "idx", "value"],
    "artists__images": ["artist_id", "idx", "url"],
    "albums": ["id", "release_date", "total_tracks", "upc"],
    "albums__artists": ["album_id", "idx", "id"],
    "albums__copyrights": ["album_id", "idx", "text"],
    "albums__images": ["album_id", "idx", "url"],
    "albums__tracks__items": ["album_id", "idx", "id", "duration_ms"],
    "albums__tracks__items__artists": ["album_id", "tracks__items_idx", "idx", "id"],
    "tracks": ["id", "album__id", "album__release_date", "duration_ms", "isrc"],
    "tracks__artists": ["track_id", "idx", "id"],
    "tracks__album__artists": ["track_id", "idx", "id"],
    "tracks__album__images": ["track_id", "idx", "url"],
    "audio_features": ["id", "tempo", "key"],
}
SYSTEMS = [
    "soundlake",
    "duckdb-stream",
    "duckdb-memory",
    "chdb-stream",
    "chdb-memory",
    "polars-lazy",
    "polars-memory",
    "dlt-normalize",
    "spark-explicit",
    "spark-inferred",
]


class Measured:
    def __init__(self, wall, cpu, peak, out, samples=()):
        self.wall, self.cpu, self.peak, self.out = wall, cpu, peak, out
        # (seconds since the start, CPU seconds of the process tree so far)
        self.samples = list(samples)


BARS = " ▁▂▃▄▅▆▇█"
IDLE_CORES = 0.1  # busy below this, a slice counts as idle
IDLE_S = 0.3  # idle stretches at least this long are listed


def trace_lines(label, m, cores=os.cpu_count()):
    """The cores `m`'s process tree kept busy over its run, a bar per slice
    (a tenth of a second, or a hundredth of the run if longer; a full bar is
    every core), and the stretches where it sat idle: a pipeline waiting on
    something instead of working, which a total of CPU time hides."""
    if len(m.samples) < 2:
        return []
    step = max(0.1, m.wall / 100)
    times = [t for t, _ in m.samples]

    def cpu_at(t):
        return m.samples[max(0, bisect.bisect_right(times, t) - 1)][1]

    levels = [(cpu_at((k + 1) * step) - cpu_at(k * step)) / step for k in range(int(m.wall / step) + 1)]
    bars = "".join(BARS[min(len(BARS) - 1, round((len(BARS) - 1) * b / cores))] for b in levels)
    idle, start = [], None
    for k, b in enumerate([*levels, cores]):
        if b < IDLE_CORES and start is None:
            start = k
        elif b >= IDLE_CORES and start is not None:
            if (k - start) * step >= IDLE_S:
                idle.append(f"{start * step:.1f}–{k * step:.1f} s")
            start = None
    said = f"idle at {', '.join(idle)}" if idle else f"never idle for {IDLE_S} s or more"
    return [
        "",
        f"{label}: cores busy, a bar per {step:.2f} s (a full bar: {cores} cores); {said}:",
        "",
        f"    |{bars}|",
    ]


def process_tree(root):
    """pid -> (cpu seconds, rss bytes) of `root` and its descendants."""
    parent, stats = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parent[pid] = int(fields[1])
        stats[pid] = ((int(fields[11]) + int(fields[12])) / TICK, int(fields[21]) * PAGE)
    tree = {root}
    grew = True
    while grew:
        found = {p for p, pp in parent.items() if pp in tree} - tree
        grew = bool(found)
        tree |= found
    return {p: stats[p] for p in tree if p in stats}


def measure(cmd, log, env=None, server=None):
    """Run `cmd`; wall, CPU and peak memory of its whole process tree, and of
    the `server` process it works through (its CPU while `cmd` ran)."""
    with open(log, "ab") as out:
        server_cpu = process_tree(server)[server][0] if server else 0.0
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=out, env=env, cwd=REPO)
        peak, cpu_by_pid, samples, done = 0, {}, [], threading.Event()

        def sample():
            nonlocal peak
            while not done.is_set():
                tree = process_tree(proc.pid)
                if server:
                    tree.update(process_tree(server))
                peak = max(peak, sum(rss for _, rss in tree.values()))
                for pid, (cpu, _) in tree.items():
                    cpu_by_pid[pid] = max(cpu_by_pid.get(pid, 0.0), cpu)
                samples.append((time.perf_counter() - start, sum(cpu_by_pid.values())))
                done.wait(SAMPLE_S)

        sampler = threading.Thread(target=sample)
        sampler.start()
        stdout = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        said = stdout.decode(errors="replace").strip()[-2000:]
        sys.exit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}); see {log}\n{said}")
    # wait4 counts the child and the descendants it reaped; a JVM that
    # outlives its Python driver is only seen by the sampler.
    if server:
        cpu_by_pid[server] -= server_cpu
        cpu = sum(cpu_by_pid.values())
    else:
        cpu = max(usage.ru_utime + usage.ru_stime, sum(cpu_by_pid.values()))
    return Measured(wall, cpu, peak, stdout.decode(), samples)


@contextlib.contextmanager
def trino_server(work):
    """A real Trino over the local file system: (its URL, its pid)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = Path(tempfile.mkdtemp(prefix="trino-", dir=work))
    (folder / "etc" / "catalog").mkdir(parents=True)
    (folder / "etc" / "catalog" / "delta.properties").write_text(
        "connector.name=delta_lake\nhive.metastore=file\n"
        "delta.register-table-procedure.enabled=true\n"
        f"fs.native-local.enabled=true\nlocal.location=/\n"
        f"hive.metastore.catalog.dir=local://{folder}/metastore\n"
    )
    log = folder / "log"
    env = dict(os.environ, SOUNDLAKE_TRINO_SIZE="bench")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", REPO / "tests/servers/trino-server.sh", str(port), folder],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
    try:
        deadline = time.time() + 300
        while "SERVER STARTED" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.time() > deadline:
                sys.exit(f"Trino did not start; see {log}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def combine(steps):
    return Measured(
        sum(s.wall for s in steps), sum(s.cpu for s in steps), max(s.peak for s in steps), ""
    )


def soundlake_env(root, definitions=REPO):
    env = dict(os.environ)
    env.update(
        SOUNDLAKE__LANDING__URL=f"embedded://{root}/landing/store",
        SOUNDLAKE__LAKE__URL=f"file://{root}/lake",
        SOUNDLAKE__DEFINITIONS__DIR=str(definitions),
        SOUNDLAKE_LOG="warn",
    )
    return env


def prepare(binary, work, tracks):
    """Generated NDJSON and a landing store loaded from it, made once per scale."""
    data, landing = work / f"data-{tracks}", work / f"landing-{tracks}"
    if not (data / "generated.json").exists():
        shutil.rmtree(data, ignore_errors=True)
        out = subprocess.run(
            [binary, "generate", "catalog", "--tracks", str(tracks), "--out", data, "--json"],
            check=True, capture_output=True, cwd=REPO,
        ).stdout
        (data / "generated.json").write_bytes(out)
    generated = json.loads((data / "generated.json").read_text())
    if not (landing / "imported.json").exists():
        shutil.rmtree(landing, ignore_errors=True)
        landing.mkdir(parents=True)
        env = soundlake_env(landing)
        wall = sum(
            measure([binary, "import", w["collection"], w["file"], "--strict"], landing / "log", env).wall
            for w in generated
        )
        (landing / "imported.json").write_text(json.dumps({"wall": wall}))
    return data, landing, generated, json.loads((landing / "imported.json").read_text())


def run_soundlake(binary, landing, root, definitions=REPO):
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(landing / "landing", root / "landing")
    env, log = soundlake_env(root, definitions), root / "log"
    run = [binary, "run", "spotify_catalog", "--select"]
    flatten = measure(run + ["bronze.*,silver.*", "--json"], log, env)
    gold = measure(run + ["gold.*"], log, env)
    return flatten, combine([flatten, gold]), gold, root / "lake" / "silver"


def gold_rows(binary, root):
    """Gold table -> rows, as `soundlake query` counts them."""
    env = soundlake_env(root)
    query = lambda sql: json.loads(subprocess.run(
        [binary, "query", "--format", "json", sql], env=env, cwd=REPO, check=True,
        capture_output=True,
    ).stdout)
    names = [r["table_name"] for r in query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'gold'"
    )]
    counts = " UNION ALL ".join(
        f"SELECT '{n}' AS t, count(*) AS n FROM gold.{n}" for n in names
    )
    return {r["t"]: r["n"] for r in query(counts)}


SIMILAR = "similar_tracks_by_sound"
RECALL_SAMPLE = 200


def run_similar(binary, root):
    """The nearest-neighbour model alone, again over the gold at `root`."""
    cmd = [binary, "run", "spotify_catalog", "--select", f"gold.{SIMILAR}"]
    return measure(cmd, root / "log", soundlake_env(root))


def similar_recall(root):
    """(recall, tracks sampled) of gold.similar_tracks_by_sound against exact
    search: a listed neighbour counts if it scores at least the 20th best."""
    sys.path.insert(0, str(REPO / "tests"))
    from similar_check import frame, unit_vectors

    lake = root / "lake"
    keys, unit = unit_vectors(lake)
    listed = frame(lake, f"gold/{SIMILAR}")
    listed = listed.groupby("track_key").neighbour_track_key.apply(list)
    row = {k: i for i, k in enumerate(keys)}
    sample = np.random.default_rng(7).choice(len(keys), min(RECALL_SAMPLE, len(keys)), replace=False)
    hits = total = 0
    for i in sample:
        cosine = unit @ unit[i]
        cosine[i] = -np.inf
        bar = np.partition(cosine, -20)[-20] - 1e-9
        given = listed.get(keys[i], [])
        hits += sum(cosine[row[n]] >= bar for n in given)
        total += min(20, len(keys) - 1)
    return hits / total, len(sample)


def run_gold_sql(binary, root):
    """The gold models but the nearest-neighbour one, on soundlake and as
    their SQL on DuckDB, over the same silver: both measurements."""
    rows = gold_rows(binary, root)
    models = sorted(
        n for n in rows
        if not n.endswith("_quarantine") and n != SIMILAR
    )
    select = ",".join(f"gold.{m}" for m in models)
    ours = measure([binary, "run", "spotify_catalog", "--select", select], root / "log",
                   soundlake_env(root))
    out = root / "duckdb-gold"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, HERE / "duckdb_gold.py", root / "lake", REPO / "gold", out, *models]
    theirs = measure(cmd, root / "log")
    got = json.loads(theirs.out)["models"]
    want = {m: rows[m] + rows.get(f"{m}_quarantine", 0) for m in models}
    if got != want:
        sys.exit(f"DuckDB's gold rows {got} differ from soundlake's {want}")
    return ours, theirs


def run_gold_on_trino(binary, root, trino):
    """The gold models again, on Trino, over the silver tables at `root`;
    every table's rows checked against what soundlake's engine wrote."""
    url, pid = trino
    want = gold_rows(binary, root)
    env = dict(soundlake_env(root), SOUNDLAKE__GOLD__ENGINE="trino", SOUNDLAKE__TRINO__URL=url)
    cmd = [binary, "run", "spotify_catalog", "--select", "gold.*"]
    measured = measure(cmd, root / "log", env, server=pid)
    got = gold_rows(binary, root)
    if got != want:
        wrong = [f"  {t}: {got.get(t)} rows (soundlake's engine: {n})" for t, n in want.items() if got.get(t) != n]
        sys.exit("gold on Trino did not produce soundlake's tables:\n" + "\n".join(wrong))
    return measured


def run_baseline(system, baselines, data, root):
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    out = root / "out"
    engine, variant = system.split("-")
    cmd = [sys.executable, baselines / f"{engine}_flatten.py", data, out, variant]
    return measure(cmd, root / "log"), out


def checksums(folder):
    """table -> (rows, checksum of the key columns), read by DuckDB."""
    con = duckdb.connect()
    result = {}
    for table, keys in KEYS.items():
        files = [p for p in (folder / table, Path(f"{folder / table}.parquet")) if p.exists()]
        if not files:
            result[table] = (0, 0)
            continue
        source = f"{files[0]}/*.parquet" if files[0].is_dir() else files[0]
        text = ", ".join(f"CAST({k} AS VARCHAR)" for k in keys)
        rows, total = con.execute(
            f"SELECT count(*), coalesce(sum(hash({text})::HUGEINT), 0) "
            f"FROM read_parquet('{source}')"
        ).fetchone()
        result[table] = (rows, int(total))
    return result


def check_equal(system, got, want):
    wrong = [
        f"  {t}: {got[t][0]} rows, checksum {got[t][1]} (soundlake: {want[t][0]}, {want[t][1]})"
        for t in KEYS
        if got[t] != want[t]
    ]
    if wrong:
        sys.exit(f"{system} did not produce soundlake's tables:\n" + "\n".join(wrong))


def parse_limit_binary(binary):
    """examples/parse_limit.rs, built beside `binary` (cargo builds examples
    with the tests, and benches/run.sh builds it)."""
    found = Path(binary).resolve().parent / "examples" / "parse_limit"
    if not found.exists():
        sys.exit(f"{found} is missing: cargo build --release --example parse_limit")
    return found


def physical_limit(binary, generated, runs):
    """Medians of reading the input NDJSON, and of reading and parsing every
    document with simd-json on every core."""
    measured = []
    for _ in range(runs):
        out = subprocess.run(
            [parse_limit_binary(binary)] + [w["file"] for w in generated],
            check=True, capture_output=True,
        ).stdout
        measured.append(json.loads(out))
    documents = sum(w["documents"] for w in generated)
    if measured[0]["documents"] != documents:
        sys.exit(f"parse_limit parsed {measured[0]['documents']} documents of {documents}")
    median = lambda key: statistics.median(m[key] for m in measured)
    return median("read_s"), median("parse_s"), measured[0]["threads"]


STAGES = {
    "landing_read": "landing read",
    "parse": "parse",
    "flatten": "flatten",
    "encode": "encode",
    "write": "write",
    "commit": "commit",
}


def stage_lines(runs):
    """Where soundlake's bronze+silver time went, from the stages its
    `run --json` reports (medians over the runs)."""
    reported = [json.loads(m.out).get("stages") for m in runs]
    if not all(reported):
        return []
    median = lambda name: statistics.median(r[name] for r in reported)  # noqa: E731
    cpu = statistics.median(m.cpu for m in runs)
    parts = ", ".join(
        f"{label} {median(name):.2f} s ({median(name) / cpu:.0%})" for name, label in STAGES.items()
    )
    return [
        "",
        f"Where soundlake's bronze+silver time goes (`run --json` \"stages\": seconds inside each "
        f"stage summed over threads, medians; against its {cpu:.2f} s of CPU): {parts}.",
    ]


def table(tracks, generated, imported, results, rows, spark_startup, limit, recall):
    docs = {w["collection"]: w for w in generated}
    size = sum(w["bytes"] for w in generated) / 1e6
    lines = [
        f"### {tracks:,} tracks",
        "",
        f"Input: {docs['artists']['documents']:,} artists, {docs['albums']['documents']:,} albums, "
        f"{docs['tracks']['documents']:,} tracks, {docs['audio_features']['documents']:,} audio "
        f"features ({size:,.0f} MB NDJSON); output: 14 tables, {rows:,} rows. "
        f"Landing import (not raced): {imported['wall']:.1f} s, {size / imported['wall']:.0f} MB/s.",
        "",
        "| system | wall s | CPU s | peak MB | wall ÷ soundlake | peak ÷ soundlake | output rows/s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = results["soundlake"]
    base_wall, base_peak = statistics.median([m.wall for m in base]), statistics.median([m.peak for m in base])
    for name, runs in results.items():
        wall, cpu, peak = (statistics.median([getattr(m, f) for m in runs]) for f in ("wall", "cpu", "peak"))
        # The gold rows build other tables: their rows/s would mislead.
        speed = "—" if "gold" in name or "similar" in name else f"{rows / wall:,.0f}"
        lines.append(
            f"| {name} | {wall:.2f} | {cpu:.2f} | {peak / 2**20:,.0f} | {wall / base_wall:.1f}× "
            f"| {peak / base_peak:.1f}× | {speed} |"
        )
    if memory := os.environ.get("SOUNDLAKE__GOLD__MEMORY_MIB"):
        lines += ["", f"Gold ran with `[gold] memory_mib = {memory}` (SOUNDLAKE__GOLD__MEMORY_MIB)."]
    if spark_startup:
        lines += ["", f"Spark session start-up, included above: {statistics.median(spark_startup):.1f} s (median)."]
    lines += stage_lines(base)
    lines += trace_lines("soundlake's bronze+silver, its last run", base[-1])
    read_s, parse_s, threads = limit
    lines += [
        "",
        f"Physical limit (`examples/parse_limit.rs`, median): reading the {size:,.0f} MB of "
        f"NDJSON takes {read_s:.2f} s; reading it and parsing every document into simd-json's tape "
        f"on {threads} threads, {parse_s:.2f} s. soundlake's bronze+silver takes "
        f"{base_wall / parse_s:.1f}× that.",
        "",
        f"Similar tracks by sound (in \"gold alone\", and alone as \"similar by sound\"): "
        f"recall {recall[0]:.3f} against exact search over every track, on {recall[1]} "
        f"tracks sampled.",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="10000,200000", help="tracks per scale, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per system and scale (median quoted)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="which systems race")
    parser.add_argument("--binary", default=str(REPO / "target" / "release" / "soundlake"))
    parser.add_argument("--work", default=str(REPO / "target" / "bench"), help="data and outputs")
    parser.add_argument("--trino", action="store_true", help="run the gold models on a real Trino too")
    parser.add_argument("--compare", help="another soundlake binary to race beside --binary")
    parser.add_argument(
        "--compare-definitions", default=str(REPO),
        help="the definitions folder of the --compare build (its checkout)",
    )
    parser.add_argument(
        "--baselines", default=str(HERE),
        help="folder of the baselines' <engine>_flatten.py, to race a variant of one",
    )
    args = parser.parse_args()
    binary, work = args.binary, Path(args.work).resolve()
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown or "soundlake" not in systems:
        sys.exit(f"--systems takes soundlake plus any of {', '.join(SYSTEMS[1:])}; got {args.systems}")
    if args.runs < 1:
        sys.exit("--runs must be at least 1")
    parse_limit_binary(binary)  # before the race, not after it
    report = []
    with contextlib.ExitStack() as stack:
        trino = stack.enter_context(trino_server(work)) if args.trino else None
        for tracks in (int(s) for s in args.scales.split(",")):
            report.append(race(args, binary, work, systems, tracks, trino))
            print(report[-1] + "\n", flush=True)


def race(args, binary, work, systems, tracks, trino):
    """One scale's table."""
    data, landing, generated, imported = prepare(binary, work, tracks)
    results = {"soundlake": [], "soundlake + gold": [], "gold alone": [], "similar by sound": [],
               "gold SQL models": [], "gold SQL on DuckDB": []}
    if trino:
        results["gold on Trino"] = []
    if args.compare:
        results.update({"compared": [], "compared + gold": []})
    results.update({s: [] for s in systems if s != "soundlake"})
    spark_startup, want = [], None
    for run in range(args.runs):
        for system in systems:
            root = work / f"run-{tracks}" / system
            if system == "soundlake":
                flatten, whole, gold, out = run_soundlake(binary, landing, root)
                results["soundlake"].append(flatten)
                results["soundlake + gold"].append(whole)
                results["gold alone"].append(gold)
                results["similar by sound"].append(run_similar(binary, root))
                ours, theirs = run_gold_sql(binary, root)
                results["gold SQL models"].append(ours)
                results["gold SQL on DuckDB"].append(theirs)
                recall = similar_recall(root)
                if trino:
                    results["gold on Trino"].append(run_gold_on_trino(binary, root, trino))
                got = checksums(out)
                want = want or got
            else:
                measured, out = run_baseline(system, Path(args.baselines), data, root)
                results[system].append(measured)
                if system.startswith("spark"):
                    spark_startup.append(json.loads(measured.out)["startup_s"])
                got = checksums(out)
            check_equal(system, got, want)
            print(f"{tracks} tracks, run {run + 1}: {system} {results[system][-1].wall:.2f} s", file=sys.stderr)
        if args.compare:
            root = work / f"run-{tracks}" / "compared"
            flatten, whole, _, out = run_soundlake(
                args.compare, landing, root, Path(args.compare_definitions)
            )
            results["compared"].append(flatten)
            results["compared + gold"].append(whole)
            check_equal("the compared build", checksums(out), want)
            print(f"{tracks} tracks, run {run + 1}: compared {flatten.wall:.2f} s", file=sys.stderr)
    rows = sum(n for n, _ in want.values())
    # The outputs were checked; at 2M they are tens of GB a run would leave behind.
    shutil.rmtree(work / f"run-{tracks}", ignore_errors=True)
    limit = physical_limit(binary, generated, args.runs)
    return table(tracks, generated, imported, results, rows, spark_startup, limit, recall)


if __name__ == "__main__":
    main()
