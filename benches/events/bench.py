"""The events race: soundlake's listening-events ingestion, from files and
from Kafka, against DuckDB, on the same generated events, in one run.

It builds a small catalog lake once (the generator draws its tracks from
silver.tracks), then generates --events events over --days days into the
landing folder (NDJSON files) and, through a real Apache Kafka broker
(tests/servers/kafka-broker.sh), the same events onto a topic; generating
is not raced. Then --runs
times each, from a fresh copy of the catalog lake:

  soundlake-files  `bronze events` (each line once, by event hour) then
                   `silver events` (typed, one row per event, by event date)
  soundlake-kafka  the same with bronze.events reading the topic (a fresh
                   consumer group per run)
  duckdb           benches/events/duckdb_events.py: the files -> one row per
                   event_id -> Parquet partitioned by event_date

Measured from outside as in the flattening race (wall, CPU of the process
tree, peak summed RSS; soundlake's bronze and silver steps apart, and the
larger as the run's peak); before timings count, every system's output must
hold the same events (count and a checksum of event_id, read by DuckDB).
Under the table, the cores each soundlake step kept busy through its last
run, and any stretch it sat idle. With Kafka, one bronze run from the topic
goes first, untimed: a fresh broker sets up its group offsets topic when
the first group joins, seconds no later group pays.

With --compare, another soundlake build (an older commit, say) races from
the same files as "compared-files": a change's before and after in one run.

With --marts, the incremental marts (gold.mart_user_activity and
gold.mart_device_geo) over soundlake-files' silver.events: their full
refresh over every day, then, after one more day of events went through
bronze and silver (not timed), the run that rebuilds that day alone; each
from a fresh copy, --runs times. Before the second time counts, the marts
must equal a full refresh of the same lake.

usage: python benches/events/bench.py [--events 1000000] [--days 7] [--runs 3] [--tracks 5000]
                                      [--systems soundlake-files,soundlake-kafka,duckdb]
                                      [--compare OTHER_SOUNDLAKE] [--marts]
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "flatten"))
from bench import REPO, measure, trace_lines  # noqa: E402  (the flattening race's meter)

TOPIC = "listening-events"
SYSTEMS = ["soundlake-files", "soundlake-kafka", "duckdb"]
MARTS = ["mart_user_activity", "mart_device_geo"]


def env_for(root, defs, brokers=None, group=None):
    env = dict(os.environ)
    env.update(
        SOUNDLAKE__LANDING__URL=f"embedded://{root}/landing",
        SOUNDLAKE__LAKE__URL=f"file://{root}/lake",
        SOUNDLAKE__DEFINITIONS__DIR=str(defs),
        SOUNDLAKE_LOG="warn",
    )
    if brokers:
        # A short session: a new group forms without waiting long.
        env.update(
            SOUNDLAKE__KAFKA__BROKERS=brokers,
            SOUNDLAKE__KAFKA__GROUP=group,
            SOUNDLAKE__KAFKA__CLIENT__SESSION_TIMEOUT_MS="2000",
        )
    return env


def definitions(work):
    """The shipped definitions, and a copy whose bronze.events reads Kafka."""
    kafka = work / "defs-kafka"
    shutil.rmtree(kafka, ignore_errors=True)
    for folder in ["bronze", "silver", "gold", "pipelines"]:
        shutil.copytree(REPO / folder, kafka / folder)
    bronze = kafka / "bronze" / "events.toml"
    text = bronze.read_text().replace(
        'source = { files = "landing/events" }', f'source = {{ kafka = "{TOPIC}" }}'
    )
    bronze.write_text(text)
    return REPO, kafka


def run(binary, args, env):
    subprocess.run([binary, *args], check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)


def catalog(binary, work, defs, tracks):
    """A lake whose silver.tracks holds a generated catalog."""
    root = work / "catalog"
    if (root / "done").exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    data = work / "catalog-data"
    env = env_for(root, defs)
    run(binary, ["generate", "catalog", "--tracks", str(tracks), "--out", str(data)], env)
    for c in ["artists", "albums", "tracks", "audio_features"]:
        run(binary, ["import", c, str(data / f"{c}.ndjson"), "--strict"], env)
    run(binary, ["bronze", "tracks"], env)
    run(binary, ["silver", "tracks"], env)
    (root / "done").touch()
    return root


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker(work):
    """A real Kafka broker (KRaft) on a free port, its data under `work`."""
    port, controller = free_port(), free_port()
    data = work / "kafka"
    shutil.rmtree(data, ignore_errors=True)
    proc = subprocess.Popen(
        ["bash", str(REPO / "tests" / "servers" / "kafka-broker.sh"), str(port), str(controller), str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    for line in proc.stdout:
        if "Kafka Server started" in line:
            break
    else:
        sys.exit("the Kafka broker did not start: run bash tests/servers/install.sh")
    # Keep reading its log, so it never blocks on a full pipe.
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, f"127.0.0.1:{port}"


def fresh_copy(source, root):
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(source, root)
    return root


def megabytes(n):
    """Bytes as whole MiB, for the tables."""
    return f"{n / 2**20:,.0f}"


def checksum(folder):
    con = duckdb.connect()
    rows, total = con.execute(
        "SELECT count(*), coalesce(sum(hash(event_id))::HUGEINT, 0) "
        f"FROM read_parquet('{folder}/**/*.parquet')"
    ).fetchone()
    return rows, int(total)


def marts_table(binary, work, lake, defs, args):
    """Time the incremental marts' full refresh over every day of `lake`,
    then their run after one more day of events; the table's lines."""
    select = ["run", "listening_events", "--select", ",".join(f"gold.{m}" for m in MARTS)]
    full, incremental = [], []
    for n in range(args.runs):
        root = fresh_copy(lake, work / "marts" / "full")
        full.append(measure([binary, *select, "--full-refresh"], root / "log", env_for(root, defs)))
    # One more day, late in the week, through bronze and silver.
    day = work / "marts" / "one-more-day"
    fresh_copy(root, day)
    env = env_for(day, defs)
    per_day = max(1, args.events // args.days)
    run(binary, ["generate", "events", "--users", "5000", "--events", str(per_day), "--days", "1",
                 "--end", "2026-11-16", "--seed", "2"], env)
    run(binary, ["bronze", "events"], env)
    run(binary, ["silver", "events"], env)
    def dump(root):
        """Every mart's rows, as sorted CSV lines."""
        return [
            sorted(subprocess.run([binary, "query", "--format", "csv", f"SELECT * FROM gold.{m}"],
                                  check=True, capture_output=True, cwd=REPO,
                                  env=env_for(root, defs)).stdout.splitlines())
            for m in MARTS
        ]

    for n in range(args.runs):
        root = fresh_copy(day, work / "marts" / "incremental")
        incremental.append(measure([binary, *select, "--json"], root / "log", env_for(root, defs)))
    attempts = subprocess.run([binary, "runs", "--limit", str(len(MARTS)), "--json"], check=True,
                              capture_output=True, cwd=REPO, env=env_for(root, defs)).stdout
    rebuilt = max(len(a["report"]["days"]) for a in json.loads(attempts))
    reference = fresh_copy(day, work / "marts" / "reference")
    run(binary, [*select, "--full-refresh"], env_for(reference, defs))
    if dump(root) != dump(reference):
        sys.exit("the marts rebuilt for one day differ from a full refresh of the same lake")
    median = statistics.median
    f, i = median([m.wall for m in full]), median([m.wall for m in incremental])
    return [
        "",
        f"Incremental marts ({', '.join(MARTS)}), medians of {args.runs}:",
        "",
        "| run | days rebuilt | wall s | CPU s | peak MB |",
        "|---|---:|---:|---:|---:|",
        f"| full refresh | {args.days + 1} | {f:.2f} | {median([m.cpu for m in full]):.2f} "
        f"| {megabytes(median([m.peak for m in full]))} |",
        f"| one new day | {rebuilt} | {i:.2f} | {median([m.cpu for m in incremental]):.2f} "
        f"| {megabytes(median([m.peak for m in incremental]))} |",
        "",
        f"One new day costs {i / f:.2f}× the full refresh.",
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--tracks", type=int, default=5000, help="catalog the events play")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per system (median quoted)")
    parser.add_argument("--binary", default=str(REPO / "target" / "release" / "soundlake"))
    parser.add_argument("--work", default=str(REPO / "target" / "bench-events"))
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="which systems race")
    parser.add_argument("--compare", help="another soundlake binary to race from the files beside --binary")
    parser.add_argument("--marts", action="store_true", help="time the incremental marts too")
    args = parser.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    if unknown := set(systems) - set(SYSTEMS):
        sys.exit(f"unknown systems {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    if args.compare:
        systems.insert(1, "compared-files")
    if args.runs < 1 or args.events < 1 or args.days < 1:
        sys.exit("--events, --days and --runs must be at least 1")
    if args.marts and "soundlake-files" not in systems:
        sys.exit("--marts builds the marts over soundlake-files' lake: add soundlake-files to --systems")
    binary, work = args.binary, Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    files_defs, kafka_defs = definitions(work)
    base = catalog(binary, work, files_defs, args.tracks)

    # The same events to the landing folder and to the topic (same seed).
    gen = ["generate", "events", "--users", "5000", "--events", str(args.events),
           "--days", str(args.days), "--end", "2026-11-15", "--seed", "1", "--json"]
    with_events = fresh_copy(base, work / "with-events")
    out = subprocess.run([binary, *gen], check=True, capture_output=True, cwd=REPO,
                         env=env_for(with_events, files_defs)).stdout
    generated = json.loads(out)
    landing = with_events / "lake" / "landing" / "events"
    size = sum(f.stat().st_size for f in landing.iterdir()) / 1e6
    kafka, brokers = broker(work) if "soundlake-kafka" in systems else (None, None)
    try:
        if kafka:
            run(binary, [*gen, "--to", f"kafka://{brokers}/{TOPIC}"], env_for(with_events, files_defs))
            # The broker creates its group offsets topic for the first group
            # it sees, seconds of work no later group pays: a run not timed.
            warm = fresh_copy(base, work / "run" / "warm-up")
            run(binary, ["bronze", "events"], env_for(warm, kafka_defs, brokers, "bench-warm-up"))
        results, want = {s: [] for s in systems}, None
        for n in range(args.runs):
            for system in systems:
                root = work / "run" / system
                if system == "duckdb":
                    shutil.rmtree(root, ignore_errors=True)
                    root.mkdir(parents=True)
                    out = root / "out"
                    script = [sys.executable, HERE / "duckdb_events.py", landing, out]
                    results[system].append(measure(script, root / "log"))
                else:
                    from_files = system != "soundlake-kafka"
                    fresh_copy(with_events if from_files else base, root)
                    defs = files_defs if from_files else kafka_defs
                    env = env_for(root, defs, brokers, f"bench-{n}")
                    program = args.compare if system == "compared-files" else binary
                    bronze = measure([program, "bronze", "events"], root / "log", env)
                    silver = measure([program, "silver", "events"], root / "log", env)
                    results[system].append((bronze, silver))
                    out = root / "lake" / "silver" / "events"
                got = checksum(out)
                want = want or got
                if got != want:
                    sys.exit(f"{system} holds {got} events (count, checksum); the first system {want}")
                print(f"run {n + 1}: {system} done", file=sys.stderr)
    finally:
        if kafka:
            kafka.kill()

    events = want[0]
    lines = [
        f"### {args.events:,} events over {args.days} days",
        "",
        f"Input: {generated['events'] + generated['duplicates']:,} lines ({size:,.0f} MB NDJSON, "
        f"{generated['duplicates']:,} duplicate deliveries) in {len(generated['files'])} files"
        + (f", and the same as {generated['events'] + generated['duplicates']:,} messages on a "
           "3-partition Kafka topic" if kafka else "")
        + f"; output: {events:,} events.",
        "",
        f"| system | bronze s | silver s | wall s | CPU s | bronze MB | silver MB | peak MB "
        f"| wall ÷ {systems[0]} | events/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    median = statistics.median
    walls = {}
    for system, runs in results.items():
        if system == "duckdb":
            bronze = silver = bronze_mb = silver_mb = "—"
            wall = median([m.wall for m in runs])
            cpu = median([m.cpu for m in runs])
            peak = median([m.peak for m in runs])
        else:
            bronze = f"{median([b.wall for b, _ in runs]):.2f}"
            silver = f"{median([s.wall for _, s in runs]):.2f}"
            # Apart as well as together: the run's peak is the larger of the
            # two, so a gain in the smaller one would not show in it.
            bronze_mb = megabytes(median([b.peak for b, _ in runs]))
            silver_mb = megabytes(median([s.peak for _, s in runs]))
            wall = median([b.wall + s.wall for b, s in runs])
            cpu = median([b.cpu + s.cpu for b, s in runs])
            peak = median([max(b.peak, s.peak) for b, s in runs])
        walls[system] = wall
        lines.append(
            f"| {system} | {bronze} | {silver} | {wall:.2f} | {cpu:.2f} | {bronze_mb} | {silver_mb} "
            f"| {megabytes(peak)} | {wall / walls[systems[0]]:.2f}× | {events / wall:,.0f} |"
        )
    for system, runs in results.items():
        if system != "duckdb":
            bronze, silver = runs[-1]
            lines += trace_lines(f"{system}, bronze in its last run", bronze)
            lines += trace_lines(f"{system}, silver in its last run", silver)
    if args.marts:
        lines += marts_table(binary, work, work / "run" / "soundlake-files", files_defs, args)
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
