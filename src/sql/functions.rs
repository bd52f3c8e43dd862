//! Functions soundlake adds to SQL, for models and queries alike.
//!
//! - `surrogate_key(text, ...)`: a BIGINT key from natural key parts, the
//!   same on every run and machine: XXH3-64 of the parts' UTF-8 bytes, each
//!   followed by the unit separator 0x1F (a NULL part as 0x00 alone), read
//!   as a signed integer so every engine holds it.
//! - `json_bigint(json, 'a.b')`: the integer at a dotted path of a JSON
//!   text (bronze keeps documents as text), NULL where the document lacks
//!   it, holds something else there, or is not JSON.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, Int64Builder, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, cast::as_string_array};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use crate::json_tape::{Json, TapeParser};

pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(SurrogateKey::new()));
    ctx.register_udf(ScalarUDF::from(JsonBigint::new()));
}

/// The key of one row's parts, as `surrogate_key` computes it.
pub fn surrogate_key(parts: &[Option<&str>]) -> i64 {
    let mut bytes = Vec::with_capacity(64);
    for part in parts {
        match part {
            Some(text) => {
                bytes.extend_from_slice(text.as_bytes());
                bytes.push(0x1f);
            }
            None => bytes.push(0x00),
        }
    }
    xxhash_rust::xxh3::xxh3_64(&bytes) as i64
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct SurrogateKey {
    signature: Signature,
}

impl SurrogateKey {
    fn new() -> SurrogateKey {
        SurrogateKey {
            signature: Signature::variadic(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SurrogateKey {
    fn name(&self) -> &str {
        "surrogate_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let columns: Vec<&StringArray> = arrays
            .iter()
            .map(|a| as_string_array(a))
            .collect::<Result<_>>()?;
        let mut out = Int64Builder::with_capacity(args.number_rows);
        let mut parts = Vec::with_capacity(columns.len());
        for row in 0..args.number_rows {
            parts.clear();
            parts.extend(
                columns
                    .iter()
                    .map(|c| (!c.is_null(row)).then(|| c.value(row))),
            );
            out.append_value(surrogate_key(&parts));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonBigint {
    signature: Signature,
}

impl JsonBigint {
    fn new() -> JsonBigint {
        JsonBigint {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Utf8],
                Volatility::Immutable,
            ),
        }
    }
}

/// The integer at `path` in `json`. The document is read as a simd-json
/// tape: a track's document is mostly market lists the path never enters,
/// and parsing them twice with serde (once to validate, once into a map of
/// keys) was most of `fact_track_popularity`'s time.
fn bigint_at(parser: &mut TapeParser, json: &str, path: &str) -> Option<i64> {
    parser
        .walk(json, |root| root.at(path).and_then(Json::as_i64))
        .ok()
        .flatten()
}

impl ScalarUDFImpl for JsonBigint {
    fn name(&self) -> &str {
        "json_bigint"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let docs = as_string_array(&arrays[0])?;
        let paths = as_string_array(&arrays[1])?;
        let mut out = Int64Builder::with_capacity(args.number_rows);
        let mut parser = TapeParser::default();
        for row in 0..args.number_rows {
            let value = (!docs.is_null(row) && !paths.is_null(row))
                .then(|| bigint_at(&mut parser, docs.value(row), paths.value(row)))
                .flatten();
            out.append_option(value);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surrogate_keys_are_fixed_values_that_separate_their_parts() {
        // Fixed: a key must not change between releases, or every
        // reference to it in engines and dashboards breaks.
        assert_eq!(
            surrogate_key(&[Some("4Z8W4fKeB5YxbusRsdQVPb")]),
            6_406_336_228_339_052_549
        );
        assert_ne!(
            surrogate_key(&[Some("ab"), Some("c")]),
            surrogate_key(&[Some("a"), Some("bc")])
        );
        assert_ne!(surrogate_key(&[None]), surrogate_key(&[Some("")]));
    }

    #[test]
    fn json_bigint_reads_dotted_paths_and_is_null_otherwise() {
        let mut parser = TapeParser::default();
        let mut bigint_at = |doc: &str, path: &str| bigint_at(&mut parser, doc, path);
        let doc = r#"{"followers": {"total": 12}, "popularity": 7, "name": "x"}"#;
        assert_eq!(bigint_at(doc, "followers.total"), Some(12));
        assert_eq!(bigint_at(doc, "popularity"), Some(7));
        assert_eq!(bigint_at(doc, "name"), None);
        assert_eq!(bigint_at(doc, "missing.path"), None);
        assert_eq!(bigint_at("not json", "popularity"), None);
        let escaped = r#"{"pop\u0075larity": 9, "followers": {"total": 12.5}, "n": [1]}"#;
        assert_eq!(
            bigint_at(escaped, "popularity"),
            Some(9),
            "escaped keys match"
        );
        assert_eq!(
            bigint_at(escaped, "followers.total"),
            None,
            "not an integer"
        );
        assert_eq!(bigint_at(escaped, "n.total"), None, "not an object");
        // The edges Trino's plugin is held to as well (tests/it/trino.rs).
        for (doc, want) in [
            (r#"{"n": 1, "n": 2}"#, Some(2)),
            (r#"{"n": 1.0}"#, None),
            (r#"{"n": 1e3}"#, None),
            (r#"{"n": -9223372036854775808}"#, Some(i64::MIN)),
            (r#"{"n": 9223372036854775808}"#, None),
            (r#"{"n": "12"}"#, None),
            (r#"{"n": null}"#, None),
            (r#"{"n": 1} trailing"#, None),
            (r#"  {"n": 5}  "#, Some(5)),
            (r#"[{"n": 1}]"#, None),
            ("", None),
        ] {
            assert_eq!(bigint_at(doc, "n"), want, "{doc}");
        }
    }
}
