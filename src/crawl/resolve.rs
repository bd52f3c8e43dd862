//! From a name in `artists.txt` to one artist id, or a recorded reason why
//! not. Never a silent guess: every non-exact choice says what it chose.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::artist_names::match_key;

/// Below this similarity of match keys a search hit is not taken for the name.
const MIN_SIMILARITY: f64 = 0.8;
/// Among several exact matches, the top one is taken only when it is this
/// many times as popular as the next.
const DOMINANCE: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Matched,
    Unmatched,
    Ambiguous,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub status: Status,
    /// The artist object the id came from (a full artist, as search returns).
    pub artist: Option<Value>,
    pub reason: String,
}

fn name_of(a: &Value) -> &str {
    a["name"].as_str().unwrap_or_default()
}

fn popularity(a: &Value) -> Option<f64> {
    a["popularity"].as_f64()
}

/// Resolve `name` against a search response (`{"artists": paging}`).
pub fn resolve(name: &str, response: &Value) -> Resolution {
    let hits: Vec<&Value> = response["artists"]["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|a| a["id"].as_str().is_some_and(|id| !id.is_empty()))
                .collect()
        })
        .unwrap_or_default();
    let key = match_key(name);
    let exact: Vec<&Value> = hits
        .iter()
        .copied()
        .filter(|a| match_key(name_of(a)) == key)
        .collect();
    let matched = |artist: &Value, reason: String| Resolution {
        status: Status::Matched,
        artist: Some(artist.clone()),
        reason,
    };
    match exact.as_slice() {
        [one] => return matched(one, "exact name match".into()),
        [top, second, ..] => {
            return match (popularity(top), popularity(second)) {
                (Some(p1), Some(p2)) if p1 >= DOMINANCE * p2.max(1.0) => matched(
                    top,
                    format!(
                        "exact name shared by {} artists; took the most popular ({p1} vs {p2})",
                        exact.len()
                    ),
                ),
                _ => Resolution {
                    status: Status::Ambiguous,
                    artist: None,
                    reason: format!(
                        "{} artists are named exactly {name:?} ({}); none clearly the one",
                        exact.len(),
                        exact
                            .iter()
                            .map(|a| a["id"].as_str().unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                },
            };
        }
        [] => {}
    }
    let Some(best) = hits.first() else {
        return Resolution {
            status: Status::Unmatched,
            artist: None,
            reason: "search found no artist".into(),
        };
    };
    let similarity = strsim::normalized_levenshtein(&key, &match_key(name_of(best)));
    if similarity >= MIN_SIMILARITY {
        matched(
            best,
            format!(
                "no exact match; took the best search hit {:?} (similarity {similarity:.2})",
                name_of(best)
            ),
        )
    } else {
        Resolution {
            status: Status::Unmatched,
            artist: None,
            reason: format!(
                "no artist named like that; the best search hit {:?} is too different (similarity {similarity:.2})",
                name_of(best)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn found(hits: Value) -> Value {
        json!({"artists": {"items": hits, "total": 9}})
    }

    #[test]
    fn exact_match_ignores_case_and_accents() {
        let r = resolve(
            "beyonce",
            &found(json!([{"id": "x", "name": "Beyoncé Tribute"}, {"id": "b", "name": "Beyoncé"}])),
        );
        assert_eq!(r.status, Status::Matched);
        assert_eq!(r.artist.unwrap()["id"], "b");
    }

    #[test]
    fn close_misspelling_takes_the_best_hit_and_says_so() {
        let r = resolve(
            "Metalica",
            &found(json!([{"id": "m", "name": "Metallica"}])),
        );
        assert_eq!(r.status, Status::Matched);
        assert!(r.reason.contains("best search hit"), "{}", r.reason);
    }

    #[test]
    fn a_different_artist_is_not_taken() {
        let r = resolve(
            "Abba",
            &found(json!([{"id": "z", "name": "Abbatoir Blues Band"}])),
        );
        assert_eq!(r.status, Status::Unmatched);
        assert!(r.reason.contains("too different"), "{}", r.reason);
        let none = resolve("Nobody", &found(json!([])));
        assert_eq!(none.status, Status::Unmatched);
        let broken = resolve("Nobody", &json!({"unexpected": true}));
        assert_eq!(broken.status, Status::Unmatched);
    }

    #[test]
    fn namesakes_are_ambiguous_unless_one_dominates() {
        let twins = found(json!([
            {"id": "a", "name": "Nirvana", "popularity": 40},
            {"id": "b", "name": "Nirvana", "popularity": 35},
        ]));
        let r = resolve("Nirvana", &twins);
        assert_eq!(r.status, Status::Ambiguous);
        assert!(r.reason.contains("a, b"), "{}", r.reason);
        let famous = found(json!([
            {"id": "a", "name": "Nirvana", "popularity": 80},
            {"id": "b", "name": "Nirvana", "popularity": 20},
        ]));
        let r = resolve("Nirvana", &famous);
        assert_eq!(
            (r.status, r.artist.unwrap()["id"].clone()),
            (Status::Matched, json!("a"))
        );
        let no_popularity =
            found(json!([{"id": "a", "name": "Nirvana"}, {"id": "b", "name": "Nirvana"}]));
        assert_eq!(resolve("Nirvana", &no_popularity).status, Status::Ambiguous);
    }
}
