"""Recompute similar tracks exactly with numpy and pandas, independently of
soundlake, from the gold and silver Delta tables, and compare with what
`soundlake recommend` answered.

- By sound: every feature of gold.fact_audio_features z-scored (population
  deviation; a feature that never varies dropped), each track's vector
  scaled to unit length, and the cosine of the asked track with every
  other track, compared in full (no index).
- By listening: sessions rebuilt from silver.events (a user's events with
  no gap over 30 minutes), tracks played in each, pairs met in two
  sessions or more, scored together / sqrt(sessions of one x of the other).

Usage: similar_check.py <lake folder> <answers.json>
answers.json: {"sound": {track_id: [[neighbour_id, score], ...]}, "listening": {...}}
Prints one line per method; exits 1 listing every difference.
"""

import json
import os
import sys

import duckdb
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "readers"))
from delta_files import read_parquet  # noqa: E402

FEATURES = ["danceability", "energy", "valence", "acousticness", "instrumentalness",
            "liveness", "speechiness", "loudness", "tempo"]


def frame(lake, table, hive=False):
    sql = f"SELECT * FROM {read_parquet(f'{lake}/{table}', hive)}"
    return duckdb.connect().sql(sql).to_arrow_table().to_pandas()


def unit_vectors(lake):
    """(track keys, their unit vectors of standardized audio features), as
    the by-sound model defines them; tracks without a direction left out."""
    features = frame(lake, "gold/fact_audio_features")
    x = features[FEATURES].astype(float)
    x["major"] = features.is_major.astype(float)
    x = x.to_numpy()
    mean, deviation = np.nanmean(x, axis=0), np.nanstd(x, axis=0)
    keep = deviation > 0
    z = np.nan_to_num((x[:, keep] - mean[keep]) / deviation[keep])
    norm = np.linalg.norm(z, axis=1)
    alive = norm > np.finfo(float).eps
    return features.track_key.to_numpy()[alive], z[alive] / norm[alive][:, None]

# The score printed is rounded to 4 places.
PRINTED = 0.5e-4 + 1e-12
TIE = 1e-9


def compare(problems, answers, method, asked, exact):
    """`exact`: neighbour id -> score for every candidate of `asked`."""
    given = answers[method][asked]
    ranked = sorted(exact.items(), key=lambda kv: -kv[1])
    expected = ranked[: len(given)]
    if len(given) != min(len(ranked), 20):
        problems.append(f"{method} {asked}: {len(given)} neighbours, {len(ranked)} exist")
    if len({n for n, _ in given}) != len(given):
        problems.append(f"{method} {asked}: a neighbour is listed twice")
    for rank, ((gid, gscore), (eid, escore)) in enumerate(zip(given, expected), 1):
        if gid == asked:
            problems.append(f"{method} {asked}: the track is its own neighbour")
        if abs(gscore - escore) > PRINTED:
            problems.append(f"{method} {asked} rank {rank}: score {gscore}, exactly {escore}")
        # Equal scores may come in either order: the neighbour given must
        # truly score what this rank scores.
        if gid != eid and abs(exact.get(gid, -9) - escore) > TIE:
            problems.append(f"{method} {asked} rank {rank}: {gid}, exactly {eid} ({escore})")


def by_sound(lake, id_of, answers, problems):
    keys, unit = unit_vectors(lake)
    ids = [id_of[k] for k in keys]
    row = {t: i for i, t in enumerate(ids)}
    for asked in answers["sound"]:
        cosine = unit @ unit[row[asked]]
        exact = {ids[j]: float(c) for j, c in enumerate(cosine) if j != row[asked]}
        compare(problems, answers, "sound", asked, exact)
    print(f"by sound: {len(answers['sound'])} tracks checked against {len(ids)} exact cosines each")


def by_listening(lake, answers, problems):
    events = frame(lake, "silver/events", hive=True).sort_values(["user_id", "event_ts", "event_id"])
    gap = events.groupby("user_id").event_ts.diff().dt.total_seconds()
    events["session"] = (gap.isna() | (gap > 1800)).astype(int).groupby(events.user_id).cumsum()
    played = events[(events.event_type == "play") & events.track_id.notna()][
        ["user_id", "session", "track_id"]].drop_duplicates()
    sessions = played.groupby("track_id").size()
    for asked in answers["listening"]:
        mine = played[played.track_id == asked][["user_id", "session"]]
        together = played.merge(mine, on=["user_id", "session"])
        together = together[together.track_id != asked].groupby("track_id").size()
        together = together[together >= 2]
        exact = {t: n / np.sqrt(sessions[asked] * sessions[t]) for t, n in together.items()}
        compare(problems, answers, "listening", asked, exact)
    print(f"by listening: {len(answers['listening'])} tracks checked over {len(sessions)} played")


def main():
    lake, answers = sys.argv[1], json.load(open(sys.argv[2]))
    tracks = frame(lake, "gold/dim_track")
    id_of = dict(zip(tracks.track_key, tracks.track_id))
    problems = []
    by_sound(lake, id_of, answers, problems)
    by_listening(lake, answers, problems)
    if problems:
        print("\n".join(problems))
        sys.exit(1)


if __name__ == "__main__":
    main()
