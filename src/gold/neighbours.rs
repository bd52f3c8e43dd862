//! A model's nearest-neighbour step: its SELECT gives one row per item, a
//! key and numeric features; soundlake answers, for every item, the `k`
//! items most like it by cosine similarity over the standardized
//! features. This is "similar tracks by sound": SQL cannot say it without
//! comparing every pair of tracks.
//!
//! The search is exact. Each feature is z-scored (NULL counts as the
//! average), each item's vector scaled to unit length, and a k-d tree
//! finds the nearest by Euclidean distance, which on unit vectors orders
//! items as cosine similarity does. The score is the cosine itself.

use std::num::NonZero;
use std::sync::Arc;

use arrow_array::{Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::compute::cast;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use kiddo::{ImmutableKdTree, SquaredEuclidean};
use serde::Deserialize;

use crate::error::{Error, Result};

/// The most features a k-d tree searches well: past a dozen dimensions it
/// compares nearly every pair anyway.
pub const MAX_FEATURES: usize = 12;
/// The most neighbours a model may ask for per item.
pub const MAX_K: usize = 1000;
/// Items answered per output batch, so the output streams in slices.
const QUERIES_PER_BATCH: usize = 8192;

/// `[neighbours]` of a model's `.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Neighbours {
    /// The SELECT's integer column naming each item; every other column
    /// is a feature.
    pub key: String,
    /// Neighbours per item.
    #[serde(default = "default_k")]
    pub k: usize,
    /// What the similarity is, written in every row (`sound`), so tables
    /// of several methods union into one.
    pub method: String,
}

fn default_k() -> usize {
    20
}

impl Neighbours {
    /// The step's output columns, which the model must declare: the item,
    /// the neighbour's rank (1 is the most similar), the neighbour, the
    /// cosine similarity and the method.
    pub fn columns(&self) -> [String; 5] {
        [
            self.key.clone(),
            "rank".into(),
            format!("neighbour_{}", self.key),
            "score".into(),
            "method".into(),
        ]
    }

    /// What is wrong with the step as declared, if anything.
    pub fn problems(&self, declared: &[&str]) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=MAX_K).contains(&self.k) {
            problems.push(format!(
                "[neighbours] k = {} is out of range: ask for 1 to {MAX_K} neighbours",
                self.k
            ));
        }
        let columns = self.columns();
        if declared != columns.iter().map(String::as_str).collect::<Vec<_>>() {
            problems.push(format!(
                "a model with [neighbours] declares exactly the columns it outputs, in order: {}",
                columns.join(", ")
            ));
        }
        problems
    }

    /// The neighbours of every item of `input`, streamed in slices.
    pub async fn search(
        &self,
        mut input: SendableRecordBatchStream,
        place: &str,
    ) -> Result<SendableRecordBatchStream> {
        let schema = input.schema();
        let key = schema.index_of(&self.key).map_err(|_| Error::Input {
            place: place.into(),
            problem: format!(
                "the SELECT has no column {} ([neighbours] key); it gives {}",
                self.key,
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fix: "name the item column as [neighbours] key says".into(),
        })?;
        let features: Vec<usize> = (0..schema.fields().len()).filter(|i| *i != key).collect();
        if features.len() > MAX_FEATURES {
            return Err(Error::Input {
                place: place.into(),
                problem: format!(
                    "the SELECT gives {} features; the search takes at most {MAX_FEATURES}",
                    features.len()
                ),
                fix: "select fewer feature columns (besides the key)".into(),
            });
        }
        let mut items = Items::new(features.len());
        while let Some(batch) = input.next().await {
            let batch = batch.map_err(|e| crate::sql::sql_error(place, &e))?;
            items.append(&batch, key, &features, place)?;
        }
        let found = Arc::new(items.into_unit_vectors(place)?.index());
        let (k, method) = (self.k, self.method.clone());
        let out = output_schema(&self.columns());
        let batches_schema = out.clone();
        let slices = (0..found.len()).step_by(QUERIES_PER_BATCH);
        let stream = futures::stream::iter(slices).map(move |start| {
            let end = (start + QUERIES_PER_BATCH).min(found.len());
            found
                .batch(start..end, (k, &method), &batches_schema)
                .map_err(|e| datafusion::error::DataFusionError::ArrowError(Box::new(e), None))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(out, stream)))
    }
}

fn output_schema(columns: &[String; 5]) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(&columns[0], DataType::Int64, false),
        Field::new(&columns[1], DataType::Int32, false),
        Field::new(&columns[2], DataType::Int64, false),
        Field::new(&columns[3], DataType::Float64, false),
        Field::new(&columns[4], DataType::Utf8, false),
    ]))
}

/// The items read so far: keys and features, column by column.
struct Items {
    keys: Vec<i64>,
    /// One vector per feature; `None` where the row had NULL.
    features: Vec<Vec<Option<f64>>>,
}

impl Items {
    fn new(features: usize) -> Items {
        Items {
            keys: Vec::new(),
            features: vec![Vec::new(); features],
        }
    }

    fn append(
        &mut self,
        batch: &RecordBatch,
        key: usize,
        features: &[usize],
        place: &str,
    ) -> Result<()> {
        let as_type = |i: usize, to: &DataType| {
            cast(batch.column(i), to).map_err(|e| Error::Input {
                place: place.into(),
                problem: format!(
                    "column {} of the SELECT is {}, not a number: {e}",
                    batch.schema().field(i).name(),
                    batch.column(i).data_type()
                ),
                fix: "[neighbours] reads an integer key and numeric (or boolean) features: \
                      cast them in the SELECT"
                    .into(),
            })
        };
        let keys = as_type(key, &DataType::Int64)?;
        let keys = keys.as_any().downcast_ref::<Int64Array>().expect("cast");
        if keys.null_count() > 0 {
            return Err(Error::Input {
                place: place.into(),
                problem: format!(
                    "the key column {} holds NULL",
                    batch.schema().field(key).name()
                ),
                fix: "filter out items without a key in the SELECT".into(),
            });
        }
        self.keys.extend(keys.values().iter());
        for (values, &i) in self.features.iter_mut().zip(features) {
            let column = as_type(i, &DataType::Float64)?;
            let column = column
                .as_any()
                .downcast_ref::<Float64Array>()
                .expect("cast");
            values.extend(column.iter().map(|v| v.filter(|v| v.is_finite())));
        }
        Ok(())
    }

    /// Every item with a direction as a unit vector of its standardized
    /// features, in key order so that reruns answer alike. Features that
    /// do not vary are dropped: they tell no item from another.
    fn into_unit_vectors(self, place: &str) -> Result<UnitVectors> {
        let mut order: Vec<usize> = (0..self.keys.len()).collect();
        order.sort_unstable_by_key(|&i| self.keys[i]);
        if let Some(pair) = order
            .windows(2)
            .find(|w| self.keys[w[0]] == self.keys[w[1]])
        {
            return Err(Error::Input {
                place: place.into(),
                problem: format!("key {} appears more than once", self.keys[pair[0]]),
                fix: "give one row per item: group by the key in the SELECT".into(),
            });
        }
        let standardized: Vec<Vec<f64>> = self
            .features
            .iter()
            .filter_map(|values| z_scores(values))
            .collect();
        let dims = standardized.len();
        let (mut keys, mut coordinates) = (Vec::new(), Vec::new());
        for i in order {
            let vector: Vec<f64> = standardized.iter().map(|f| f[i]).collect();
            let norm = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
            // An item at the average of every feature has no direction:
            // cosine similarity says nothing about it.
            if norm > f64::EPSILON {
                keys.push(self.keys[i]);
                coordinates.extend(vector.iter().map(|x| x / norm));
            }
        }
        Ok(UnitVectors {
            keys,
            coordinates,
            dims,
        })
    }
}

/// A feature's z-scores (NULL as the average, 0), or `None` if it does
/// not vary.
fn z_scores(values: &[Option<f64>]) -> Option<Vec<f64>> {
    let present: Vec<f64> = values.iter().flatten().copied().collect();
    if present.is_empty() {
        return None;
    }
    let n = present.len() as f64;
    let mean = present.iter().sum::<f64>() / n;
    let deviation = (present.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    if deviation <= f64::EPSILON * mean.abs().max(1.0) {
        return None;
    }
    Some(
        values
            .iter()
            .map(|v| v.map_or(0.0, |x| (x - mean) / deviation))
            .collect(),
    )
}

/// Items as unit vectors, row after row.
struct UnitVectors {
    keys: Vec<i64>,
    coordinates: Vec<f64>,
    dims: usize,
}

impl UnitVectors {
    fn index(self) -> Found {
        let search: Box<dyn Search> = match self.dims {
            0 => Box::new(Nothing),
            1 => Box::new(Tree::<1>::new(&self.coordinates)),
            2 => Box::new(Tree::<2>::new(&self.coordinates)),
            3 => Box::new(Tree::<3>::new(&self.coordinates)),
            4 => Box::new(Tree::<4>::new(&self.coordinates)),
            5 => Box::new(Tree::<5>::new(&self.coordinates)),
            6 => Box::new(Tree::<6>::new(&self.coordinates)),
            7 => Box::new(Tree::<7>::new(&self.coordinates)),
            8 => Box::new(Tree::<8>::new(&self.coordinates)),
            9 => Box::new(Tree::<9>::new(&self.coordinates)),
            10 => Box::new(Tree::<10>::new(&self.coordinates)),
            11 => Box::new(Tree::<11>::new(&self.coordinates)),
            12 => Box::new(Tree::<12>::new(&self.coordinates)),
            more => unreachable!("{more} features: the count is checked against MAX_FEATURES"),
        };
        Found {
            keys: self.keys,
            search,
        }
    }
}

/// The index over every item.
struct Found {
    keys: Vec<i64>,
    search: Box<dyn Search>,
}

impl Found {
    fn len(&self) -> usize {
        self.keys.len()
    }

    /// The rows for the items in `queries`: each one's `k` neighbours,
    /// most similar first, ties in key order, each row naming `method`.
    fn batch(
        &self,
        queries: std::ops::Range<usize>,
        (k, method): (usize, &str),
        schema: &SchemaRef,
    ) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
        let answers = self.search.nearest(queries.clone(), k + 1);
        let (mut items, mut ranks, mut neighbours, mut scores) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (item, mut found) in queries.zip(answers) {
            found.retain(|(other, _)| *other != item);
            found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            for (rank, (other, score)) in found.into_iter().take(k).enumerate() {
                items.push(self.keys[item]);
                ranks.push(rank as i32 + 1);
                neighbours.push(self.keys[other]);
                scores.push(score);
            }
        }
        let methods = StringArray::from(vec![method; scores.len()]);
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(items)),
                Arc::new(Int32Array::from(ranks)),
                Arc::new(Int64Array::from(neighbours)),
                Arc::new(Float64Array::from(scores)),
                Arc::new(methods),
            ],
        )
    }
}

/// Nearest items by cosine similarity, for a run of items.
trait Search: Send + Sync {
    /// For each item of `queries`, up to `n` items (itself among them)
    /// with their cosine similarity to it.
    fn nearest(&self, queries: std::ops::Range<usize>, n: usize) -> Vec<Vec<(usize, f64)>>;
}

/// No feature varies: no item is like another.
struct Nothing;

impl Search for Nothing {
    fn nearest(&self, queries: std::ops::Range<usize>, _: usize) -> Vec<Vec<(usize, f64)>> {
        queries.map(|_| Vec::new()).collect()
    }
}

/// A k-d tree over `D`-dimensional unit vectors.
struct Tree<const D: usize> {
    points: Vec<[f64; D]>,
    tree: ImmutableKdTree<f64, D>,
}

impl<const D: usize> Tree<D> {
    fn new(coordinates: &[f64]) -> Tree<D> {
        let points: Vec<[f64; D]> = coordinates
            .chunks_exact(D)
            .map(|c| c.try_into().expect("chunks of D"))
            .collect();
        let tree = ImmutableKdTree::new_from_slice(&points).expect("finite coordinates");
        Tree { points, tree }
    }
}

impl<const D: usize> Search for Tree<D> {
    fn nearest(&self, queries: std::ops::Range<usize>, n: usize) -> Vec<Vec<(usize, f64)>> {
        let Some(n) = NonZero::new(n.min(self.points.len())) else {
            return queries.map(|_| Vec::new()).collect();
        };
        let asked = &self.points[queries];
        self.tree
            .query_batch(asked)
            .nearest_n::<SquaredEuclidean<f64>>(n)
            .execute()
            .into_iter()
            .zip(asked)
            .map(|(found, from)| {
                found
                    .iter()
                    .map(|f| {
                        let other = f.item as usize;
                        let cosine = from.iter().zip(&self.points[other]).map(|(a, b)| a * b);
                        (other, cosine.sum::<f64>())
                    })
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(rows: &[(i64, Vec<Option<f64>>)]) -> Items {
        let mut items = Items::new(rows[0].1.len());
        for (key, features) in rows {
            items.keys.push(*key);
            for (column, value) in items.features.iter_mut().zip(features) {
                column.push(*value);
            }
        }
        items
    }

    fn row(key: i64, features: &[f64]) -> (i64, Vec<Option<f64>>) {
        (key, features.iter().map(|f| Some(*f)).collect())
    }

    fn answer(found: &Found, k: usize) -> RecordBatch {
        let step = Neighbours {
            key: "k".into(),
            k,
            method: "sound".into(),
        };
        let batch = found.batch(
            0..found.len(),
            (k, "sound"),
            &output_schema(&step.columns()),
        );
        batch.unwrap()
    }

    fn int64(batch: &RecordBatch, i: usize) -> Vec<i64> {
        let column = batch.column(i).as_any().downcast_ref::<Int64Array>();
        column.unwrap().values().to_vec()
    }

    /// Every item's neighbours by comparing every pair, the slow way.
    fn brute_force(vectors: &UnitVectors, k: usize) -> Vec<(i64, i64, f64)> {
        let d = vectors.dims;
        let at = |i: usize| &vectors.coordinates[i * d..(i + 1) * d];
        let mut rows = Vec::new();
        for i in 0..vectors.keys.len() {
            let mut all: Vec<(i64, f64)> = (0..vectors.keys.len())
                .filter(|j| *j != i)
                .map(|j| {
                    (
                        vectors.keys[j],
                        at(i).iter().zip(at(j)).map(|(a, b)| a * b).sum(),
                    )
                })
                .collect();
            all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            rows.extend(
                all.into_iter()
                    .take(k)
                    .map(|(j, s)| (vectors.keys[i], j, s)),
            );
        }
        rows
    }

    #[test]
    fn the_tree_finds_what_comparing_every_pair_finds() {
        let mut rng = crate::rng::Rng::seeded(7);
        let rows: Vec<(i64, Vec<Option<f64>>)> = (0..500)
            .map(|i| {
                let features = (0..9)
                    .map(|f| (!rng.chance(0.02)).then(|| rng.unit() * (f as f64 + 1.0)))
                    .collect();
                (1000 - i, features)
            })
            .collect();
        let expected = brute_force(&items(&rows).into_unit_vectors("test").unwrap(), 5);
        let batch = answer(&items(&rows).into_unit_vectors("test").unwrap().index(), 5);
        let scores = batch
            .column(3)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(batch.num_rows(), expected.len());
        let (item, neighbour) = (int64(&batch, 0), int64(&batch, 2));
        let methods = batch
            .column(4)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert!(methods.iter().all(|m| m == Some("sound")));
        for (i, want) in expected.iter().enumerate() {
            assert_eq!((item[i], neighbour[i]), (want.0, want.1), "row {i}");
            assert!((scores.value(i) - want.2).abs() < 1e-12);
        }
    }

    #[test]
    fn cosine_over_standardized_features_ranks_the_alike_first() {
        // Tempo in beats per minute dwarfs energy in 0..1 unless both are
        // standardized: then 2 (slow, calm) is most like 1, not 3.
        let rows = [
            row(1, &[60.0, 0.1]),
            row(2, &[70.0, 0.2]),
            row(3, &[65.0, 0.9]),
            row(4, &[180.0, 0.95]),
        ];
        let batch = answer(&items(&rows).into_unit_vectors("test").unwrap().index(), 1);
        assert_eq!(int64(&batch, 2), vec![2, 1, 4, 3]);
    }

    #[test]
    fn items_without_direction_and_features_that_never_vary_are_left_out() {
        // Item 3 sits at the average of both varying features; the third
        // feature is the same everywhere.
        let rows = [
            row(1, &[0.0, 0.0, 5.0]),
            row(2, &[2.0, 2.0, 5.0]),
            row(3, &[1.0, 1.0, 5.0]),
            row(4, &[2.0, 0.0, 5.0]),
            row(5, &[0.0, 2.0, 5.0]),
        ];
        let vectors = items(&rows).into_unit_vectors("test").unwrap();
        assert_eq!((vectors.keys.clone(), vectors.dims), (vec![1, 2, 4, 5], 2));
        let batch = answer(&vectors.index(), 10);
        assert_eq!(
            batch.num_rows(),
            4 * 3,
            "k is capped by the items there are"
        );
        let flat = [row(1, &[1.0]), row(2, &[1.0])];
        let nothing = answer(&items(&flat).into_unit_vectors("test").unwrap().index(), 3);
        assert_eq!(nothing.num_rows(), 0);
    }

    #[test]
    fn a_key_given_twice_is_refused_with_the_fix() {
        let twice = items(&[row(7, &[1.0]), row(7, &[2.0])]);
        let Err(error) = twice.into_unit_vectors("gold/x.sql") else {
            panic!("a duplicate key must be refused")
        };
        let text = error.to_string();
        assert!(text.contains("gold/x.sql") && text.contains("key 7") && text.contains("group by"));
    }

    #[test]
    fn the_declared_columns_must_be_the_steps_output() {
        let wrong = Neighbours {
            key: "track_key".into(),
            k: 0,
            method: "sound".into(),
        };
        let problems = wrong.problems(&["track_key", "score"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[1].contains("track_key, rank, neighbour_track_key, score, method"));
        let fine = Neighbours {
            key: "track_key".into(),
            k: 20,
            method: "sound".into(),
        };
        let declared = [
            "track_key",
            "rank",
            "neighbour_track_key",
            "score",
            "method",
        ];
        assert!(fine.problems(&declared).is_empty());
    }
}
