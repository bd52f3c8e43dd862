//! What a model reads: the `<layer>.<table>` names its SELECT references,
//! found by parsing it, so models join the pipeline DAG without wiring.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{ObjectName, Query, Statement, Visit, Visitor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::LAYERS;

/// A table a query reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableRef {
    pub layer: String,
    pub name: String,
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.layer, self.name)
    }
}

#[derive(Default)]
struct Collect {
    ctes: BTreeSet<String>,
    named: Vec<Vec<String>>,
}

impl Visitor for Collect {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_lowercase());
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        self.named.push(
            relation
                .0
                .iter()
                .map(|part| {
                    part.as_ident()
                        .map(|i| i.value.to_lowercase())
                        .unwrap_or_default()
                })
                .collect(),
        );
        ControlFlow::Continue(())
    }
}

/// The tables one SELECT (with any `WITH` clauses) reads. The error says
/// what is wrong in one line: not one SELECT, or a table named without its
/// layer.
pub fn tables_read(sql: &str) -> Result<BTreeSet<TableRef>, String> {
    let statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| format!("not valid SQL: {e}"))?;
    let query = match statements.as_slice() {
        [Statement::Query(query)] => query,
        [_] => return Err("a model is one SELECT statement (WITH … SELECT allowed)".into()),
        more => {
            return Err(format!(
                "a model is one SELECT statement (WITH … SELECT allowed), not {}",
                more.len()
            ));
        }
    };
    let mut collect = Collect::default();
    let _ = query.visit(&mut collect);
    let mut tables = BTreeSet::new();
    for parts in collect.named {
        match parts.as_slice() {
            [one] if collect.ctes.contains(one) => {}
            [layer, name] if LAYERS.contains(&layer.as_str()) => {
                tables.insert(TableRef {
                    layer: layer.clone(),
                    name: name.clone(),
                });
            }
            other => {
                return Err(format!(
                    "table {:?} is not <layer>.<table>: name tables with their layer \
                     ({}), for example silver.tracks",
                    other.join("."),
                    LAYERS.join(", ")
                ));
            }
        }
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sql: &str) -> Vec<String> {
        tables_read(sql)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn finds_tables_in_joins_subqueries_and_ctes_but_not_cte_names() {
        let sql = "WITH a AS (SELECT id FROM silver.artists), \
                   b AS (SELECT * FROM a JOIN silver.artists__genres g ON g.artist_id = a.id) \
                   SELECT * FROM b WHERE id IN (SELECT artist_id FROM gold.dim_artist) \
                   UNION ALL SELECT * FROM Silver.Tracks__Artists";
        assert_eq!(
            names(sql),
            [
                "gold.dim_artist",
                "silver.artists",
                "silver.artists__genres",
                "silver.tracks__artists"
            ]
        );
    }

    #[test]
    fn rejects_what_is_not_one_select_over_layer_tables() {
        assert!(
            tables_read("SELECT * FROM tracks")
                .unwrap_err()
                .contains("\"tracks\"")
        );
        assert!(tables_read("SELECT * FROM s3.x.y").is_err());
        assert!(
            tables_read("DROP TABLE gold.x")
                .unwrap_err()
                .contains("one SELECT")
        );
        assert!(
            tables_read("SELECT 1; SELECT 2")
                .unwrap_err()
                .ends_with("not 2")
        );
        assert!(
            tables_read("SELEC oops")
                .unwrap_err()
                .contains("not valid SQL")
        );
    }
}
