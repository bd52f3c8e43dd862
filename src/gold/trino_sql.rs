//! A model's SQL, written once for soundlake's engine (DataFusion), in
//! Trino's dialect: table names point at Trino's catalog, and the
//! constructs the two engines spell differently are rewritten. What has no
//! known Trino equivalent is refused with the reason, so `soundlake
//! validate` can say so before a run.
//!
//! Functions pass through only when both engines have them with the same
//! meaning; soundlake's own (`surrogate_key`, `json_bigint`, and
//! `soundlake_text` for casts to text) come from the functions plugin under
//! `docker/trino/soundlake-functions`.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    CastKind, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Statement, TableFactor, Value,
    VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::definitions::TableId;
use crate::sql::{LAYERS, quote_identifier};

/// What a `<layer>.<table>` name becomes on Trino.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relation {
    /// A table of Trino's catalog, its name quoted and qualified.
    Table(String),
    /// A table with no data yet: an empty relation with these columns,
    /// every one NULL, as soundlake's engine reads such a table.
    Empty(BTreeSet<String>),
}

/// Functions both engines have, with the same arguments and meaning.
const SAME_ON_BOTH: &[&str] = &[
    "abs",
    "avg",
    "bool_and",
    "bool_or",
    "ceil",
    "coalesce",
    "concat",
    "count",
    "date_trunc",
    "dense_rank",
    "exp",
    "first_value",
    "floor",
    "greatest",
    "json_bigint",
    "lag",
    "last_value",
    "lead",
    "least",
    "length",
    "ln",
    "lower",
    "ltrim",
    "max",
    "min",
    "now",
    "nullif",
    "power",
    "rank",
    "replace",
    "round",
    "row_number",
    "rtrim",
    "split_part",
    "sqrt",
    "starts_with",
    "stddev",
    "sum",
    "surrogate_key",
    "trim",
    "upper",
    "variance",
];

/// `sql` (one SELECT) in Trino's dialect, each `<layer>.<table>` it names
/// replaced as `relation` says. The problem when it cannot be translated.
pub fn translate(
    sql: &str,
    relation: &mut dyn FnMut(&TableId) -> Relation,
) -> Result<String, String> {
    let mut statements = Parser::parse_sql(&GenericDialect, sql).map_err(|e| e.to_string())?;
    let [Statement::Query(_)] = statements.as_slice() else {
        return Err("a model is one SELECT statement".into());
    };
    let mut rewrite = Rewrite { relation };
    if let ControlFlow::Break(problem) = statements.visit(&mut rewrite) {
        return Err(problem);
    }
    Ok(statements[0].to_string())
}

struct Rewrite<'r> {
    relation: &'r mut dyn FnMut(&TableId) -> Relation,
}

impl VisitorMut for Rewrite<'_> {
    type Break = String;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<String> {
        let TableFactor::Table { name, alias, .. } = factor else {
            return ControlFlow::Continue(());
        };
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident().map(|i| i.value.to_lowercase()))
            .collect();
        let [layer, table] = parts.as_slice() else {
            return ControlFlow::Continue(());
        };
        if !LAYERS.contains(&layer.as_str()) {
            return ControlFlow::Continue(());
        }
        let id = TableId {
            layer: layer.clone(),
            name: table.clone(),
        };
        // An unaliased table keeps its own name as the alias, so that
        // `tracks.id` still means its column.
        let alias = alias
            .as_ref()
            .map_or_else(|| quote_identifier(table), |a| a.name.to_string());
        let text = match (self.relation)(&id) {
            Relation::Table(name) => format!("{name} AS {alias}"),
            Relation::Empty(columns) => {
                let nulls: Vec<String> = columns
                    .iter()
                    .map(|c| format!("NULL AS {}", quote_identifier(c)))
                    .collect();
                // A relation needs a column: one nobody asks for.
                let nulls = if nulls.is_empty() {
                    "NULL AS \"no_data\"".to_string()
                } else {
                    nulls.join(", ")
                };
                format!("(SELECT {nulls} WHERE false) AS {alias}")
            }
        };
        *factor = table_factor(&text);
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<String> {
        match rewritten(expr) {
            Ok(Some(text)) => {
                *expr = Parser::new(&GenericDialect)
                    .try_with_sql(&text)
                    .and_then(|mut p| p.parse_expr())
                    .unwrap_or_else(|e| panic!("a translation parses ({text}): {e}"));
                ControlFlow::Continue(())
            }
            Ok(None) => ControlFlow::Continue(()),
            Err(problem) => ControlFlow::Break(problem),
        }
    }
}

/// The relation of `SELECT * FROM <text>`.
fn table_factor(text: &str) -> TableFactor {
    let statement = Parser::parse_sql(&GenericDialect, &format!("SELECT * FROM {text}"))
        .ok()
        .and_then(|mut s| s.pop());
    let Some(Statement::Query(query)) = statement else {
        panic!("a translated relation parses: {text}");
    };
    let datafusion::sql::sqlparser::ast::SetExpr::Select(select) = *query.body else {
        panic!("a translated relation is a SELECT: {text}");
    };
    select
        .from
        .into_iter()
        .next()
        .expect("one relation")
        .relation
}

/// The Trino text of an expression both engines spell differently; `None`
/// for one they spell alike.
fn rewritten(expr: &Expr) -> Result<Option<String>, String> {
    Ok(match expr {
        Expr::Cast {
            kind,
            expr,
            data_type,
            ..
        } => {
            let target = trino_type(&data_type.to_string())?;
            Some(match (target, kind) {
                (None, _) => format!("soundlake_text({expr})"),
                (Some(t), CastKind::TryCast | CastKind::SafeCast) => {
                    format!("TRY_CAST({expr} AS {t})")
                }
                (Some(t), _) => format!("CAST({expr} AS {t})"),
            })
        }
        Expr::Extract { field, expr, .. } => Some(date_part(&field.to_string(), expr)?),
        Expr::Function(function) => {
            let name = function.name.to_string().to_lowercase();
            if name == "date_part" {
                let args = plain_args(&function.args);
                let [Some(field), Some(value)] = args.as_slice() else {
                    return Err("date_part takes a field name and a value".into());
                };
                let Expr::Value(v) = field else {
                    return Err("date_part's field must be a quoted name, like 'year'".into());
                };
                let Value::SingleQuotedString(field) = &v.value else {
                    return Err("date_part's field must be a quoted name, like 'year'".into());
                };
                Some(date_part(field, value)?)
            } else if SAME_ON_BOTH.contains(&name.as_str()) {
                None
            } else {
                return Err(format!(
                    "the function {name} has no known Trino equivalent; the models that run on \
                     Trino may use {}, and date_part, extract and CAST",
                    SAME_ON_BOTH.join(", ")
                ));
            }
        }
        Expr::Interval(interval) if interval.leading_field.is_none() => {
            let Expr::Value(v) = interval.value.as_ref() else {
                return Err(format!("the interval {expr} is not a quoted length"));
            };
            let Value::SingleQuotedString(text) = &v.value else {
                return Err(format!("the interval {expr} is not a quoted length"));
            };
            Some(interval_text(text)?)
        }
        Expr::TypedString(typed) => {
            let kind = typed.data_type.to_string().to_uppercase();
            let Value::SingleQuotedString(text) = &typed.value.value else {
                return Ok(None);
            };
            if kind.starts_with("TIMESTAMP") {
                // Trino spells a UTC instant with a space and a zone name.
                let spaced = text.replacen('T', " ", 1);
                let zoned = match spaced.strip_suffix('Z') {
                    Some(utc) => format!("{utc} UTC"),
                    None => spaced,
                };
                Some(format!("TIMESTAMP {}", crate::sql::quote_literal(&zoned)))
            } else {
                None
            }
        }
        _ => None,
    })
}

/// A function's arguments, each its expression (`None` for `*` or a named
/// argument).
fn plain_args(args: &FunctionArguments) -> Vec<Option<&Expr>> {
    match args {
        FunctionArguments::List(list) => list
            .args
            .iter()
            .map(|a| match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Trino's name for a type DataFusion casts to; `None` for text, which
/// `soundlake_text` spells as DataFusion does.
fn trino_type(datafusion: &str) -> Result<Option<String>, String> {
    let upper = datafusion.to_uppercase();
    let upper = upper.trim();
    Ok(Some(match upper {
        "VARCHAR" | "TEXT" | "STRING" | "CHARACTER VARYING" => return Ok(None),
        "INT" | "INTEGER" | "INT4" => "INTEGER".into(),
        "BIGINT" | "INT8" => "BIGINT".into(),
        "SMALLINT" | "INT2" => "SMALLINT".into(),
        "TINYINT" => "TINYINT".into(),
        "DOUBLE" | "DOUBLE PRECISION" | "FLOAT8" => "DOUBLE".into(),
        "REAL" | "FLOAT" | "FLOAT4" => "REAL".into(),
        "BOOLEAN" | "BOOL" => "BOOLEAN".into(),
        "DATE" => "DATE".into(),
        // DataFusion keeps microseconds (and more); Trino's default is
        // milliseconds.
        "TIMESTAMP" => "TIMESTAMP(6)".into(),
        "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => "TIMESTAMP(6) WITH TIME ZONE".into(),
        decimal if decimal.starts_with("DECIMAL(") || decimal.starts_with("NUMERIC(") => {
            format!("DECIMAL{}", &decimal[decimal.find('(').expect("checked")..])
        }
        other => {
            return Err(format!(
                "CAST to {other} has no translation for Trino; cast to VARCHAR, INT, BIGINT, \
                 DOUBLE, REAL, BOOLEAN, DATE, TIMESTAMP or DECIMAL(p,s)"
            ));
        }
    }))
}

/// `date_part(field, value)` / `extract(field FROM value)` on Trino.
fn date_part(field: &str, value: &Expr) -> Result<String, String> {
    let field = field.trim_matches('\'').to_lowercase();
    Ok(match field.as_str() {
        "epoch" => format!("to_unixtime({value})"),
        // ISO: Monday 1 to Sunday 7, Trino's day_of_week.
        "isodow" => format!("day_of_week({value})"),
        // Sunday 0 to Saturday 6.
        "dow" => format!("(day_of_week({value}) % 7)"),
        "doy" => format!("day_of_year({value})"),
        "year" | "quarter" | "month" | "week" | "day" | "hour" | "minute" => {
            format!("EXTRACT({} FROM {value})", field.to_uppercase())
        }
        other => {
            return Err(format!(
                "date_part/extract of {other:?} has no translation for Trino; use epoch, year, \
                 quarter, month, week, day, doy, dow, isodow, hour or minute"
            ));
        }
    })
}

/// `INTERVAL 'N unit'` as Trino writes it: `INTERVAL 'N' UNIT`.
fn interval_text(text: &str) -> Result<String, String> {
    let refuse = || {
        format!(
            "the interval '{text}' has no translation for Trino; write one amount of one unit, \
             like '7 days' or '3 hours'"
        )
    };
    let mut words = text.split_whitespace();
    let (Some(amount), Some(unit), None) = (words.next(), words.next(), words.next()) else {
        return Err(refuse());
    };
    let amount: i64 = amount.parse().map_err(|_| refuse())?;
    let unit = unit.to_lowercase();
    let (amount, unit) = match unit.trim_end_matches('s') {
        "week" => (amount * 7, "DAY"),
        "day" => (amount, "DAY"),
        "hour" => (amount, "HOUR"),
        "minute" => (amount, "MINUTE"),
        "second" => (amount, "SECOND"),
        "month" => (amount, "MONTH"),
        "year" => (amount, "YEAR"),
        _ => return Err(refuse()),
    };
    Ok(format!("INTERVAL '{amount}' {unit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_trino(sql: &str) -> Result<String, String> {
        translate(sql, &mut |t| {
            if t.name == "absent" {
                Relation::Empty(["id".to_string(), "name".to_string()].into())
            } else {
                Relation::Table(format!("\"delta\".\"{}\".\"{}\"", t.layer, t.name))
            }
        })
    }

    #[test]
    fn tables_point_at_the_catalog_and_keep_their_names_as_aliases() {
        assert_eq!(
            on_trino("SELECT t.id, tracks.name FROM silver.tracks JOIN silver.tracks t ON true")
                .unwrap(),
            "SELECT t.id, tracks.name FROM \"delta\".\"silver\".\"tracks\" AS \"tracks\" \
             JOIN \"delta\".\"silver\".\"tracks\" AS t ON true"
        );
        // A CTE of the same name as a table is not a table.
        assert_eq!(
            on_trino("WITH tracks AS (SELECT 1 AS x) SELECT x FROM tracks").unwrap(),
            "WITH tracks AS (SELECT 1 AS x) SELECT x FROM tracks"
        );
    }

    #[test]
    fn a_table_with_no_data_is_an_empty_relation_of_nulls() {
        assert_eq!(
            on_trino("SELECT a.id FROM gold.absent a").unwrap(),
            "SELECT a.id FROM (SELECT NULL AS \"id\", NULL AS \"name\" WHERE false) AS a"
        );
    }

    #[test]
    fn the_dialect_differences_of_the_shipped_models_are_rewritten() {
        for (datafusion, trino) in [
            (
                "date_part('epoch', ts) - date_part('epoch', prev)",
                "to_unixtime(ts) - to_unixtime(prev)",
            ),
            ("date_part('year', d)", "EXTRACT(YEAR FROM d)"),
            ("extract(isodow FROM ts)", "day_of_week(ts)"),
            ("extract(dow FROM ts)", "(day_of_week(ts) % 7)"),
            ("extract(hour FROM ts)", "EXTRACT(HOUR FROM ts)"),
            ("d - INTERVAL '7 days'", "d - INTERVAL '7' DAY"),
            ("d - INTERVAL '2 weeks'", "d - INTERVAL '14' DAY"),
            ("INTERVAL '3' HOUR", "INTERVAL '3' HOUR"),
            ("CAST(min(ts) AS VARCHAR)", "soundlake_text(min(ts))"),
            ("x::text", "soundlake_text(x)"),
            ("CAST(x AS INT)", "CAST(x AS INTEGER)"),
            ("CAST(x AS TIMESTAMP)", "CAST(x AS TIMESTAMP(6))"),
            ("TRY_CAST(x AS DOUBLE)", "TRY_CAST(x AS DOUBLE)"),
            ("CAST(x AS DECIMAL(10, 2))", "CAST(x AS DECIMAL(10,2))"),
            (
                "TIMESTAMP '2026-11-20T10:00:00.000000Z'",
                "TIMESTAMP '2026-11-20 10:00:00.000000 UTC'",
            ),
            (
                "count(DISTINCT id) FILTER (WHERE kind = 'play')",
                "count(DISTINCT id) FILTER (WHERE kind = 'play')",
            ),
            (
                "surrogate_key(a, CAST(b AS VARCHAR))",
                "surrogate_key(a, soundlake_text(b))",
            ),
        ] {
            assert_eq!(
                on_trino(&format!("SELECT {datafusion} AS v FROM silver.t")).unwrap(),
                format!("SELECT {trino} AS v FROM \"delta\".\"silver\".\"t\" AS \"t\""),
                "{datafusion}"
            );
        }
    }

    #[test]
    fn what_has_no_translation_is_refused_with_the_reason() {
        for (sql, reason) in [
            (
                "SELECT arrow_cast(x, 'Int8') FROM silver.t",
                "function arrow_cast",
            ),
            ("SELECT CAST(x AS BYTEA) FROM silver.t", "CAST to BYTEA"),
            ("SELECT date_part('second', x) FROM silver.t", "\"second\""),
            (
                "SELECT x + INTERVAL '1 day 2 hours' FROM silver.t",
                "one amount of one unit",
            ),
            ("DELETE FROM silver.t", "one SELECT"),
            ("SELECT (1 FROM silver.t", "Expected"),
        ] {
            let problem = on_trino(sql).unwrap_err();
            assert!(problem.contains(reason), "{sql}: {problem}");
        }
    }
}
