//! What a model reads: the `<layer>.<table>` names its SELECT references,
//! found by parsing it, so models join the pipeline DAG without wiring.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, ObjectName, Query, Statement, TableFactor, Visit, Visitor,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::LAYERS;
use crate::definitions::TableId;

#[derive(Default)]
struct Collect {
    ctes: BTreeSet<String>,
    named: Vec<Vec<String>>,
    /// `(alias, the relation's name parts)` for every `FROM x AS alias`.
    aliased: Vec<(String, Vec<String>)>,
    /// Every column reference: its qualifier (lowercase, dot-joined) if
    /// any, and its name.
    columns: BTreeSet<(Option<String>, String)>,
}

fn lowercase_parts(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .map(|part| {
            part.as_ident()
                .map(|i| i.value.to_lowercase())
                .unwrap_or_default()
        })
        .collect()
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
        self.named.push(lowercase_parts(relation));
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(ident) => {
                self.columns.insert((None, ident.value.clone()));
            }
            Expr::CompoundIdentifier(parts) if parts.len() > 1 => {
                let (name, qualifier) = parts.split_last().expect("two parts or more");
                let qualifier: Vec<String> =
                    qualifier.iter().map(|i| i.value.to_lowercase()).collect();
                self.columns
                    .insert((Some(qualifier.join(".")), name.value.clone()));
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            alias: Some(alias),
            ..
        } = factor
        {
            self.aliased
                .push((alias.name.value.to_lowercase(), lowercase_parts(name)));
        }
        ControlFlow::Continue(())
    }
}

/// The query of `sql`, which must be one SELECT.
fn one_select(sql: &str) -> Result<Box<Query>, String> {
    let statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| format!("not valid SQL: {e}"))?;
    match <[Statement; 1]>::try_from(statements) {
        Ok([Statement::Query(query)]) => Ok(query),
        Ok([_]) => Err("a model is one SELECT statement (WITH … SELECT allowed)".into()),
        Err(more) => Err(format!(
            "a model is one SELECT statement (WITH … SELECT allowed), not {}",
            more.len()
        )),
    }
}

/// The layer table a relation's name parts denote, if any.
fn layer_table(parts: &[String]) -> Option<TableId> {
    match parts {
        [layer, name] if LAYERS.contains(&layer.as_str()) => Some(TableId {
            layer: layer.clone(),
            name: name.clone(),
        }),
        _ => None,
    }
}

/// The columns a query may ask of the layer tables it reads.
#[derive(Debug, Clone, Default)]
pub struct Asked {
    /// Per table: the names it qualifies (by an alias, `FROM silver.albums
    /// a` … `a.name`, or by the table's name) and every unqualified name,
    /// which may be any table's.
    pub columns: BTreeMap<TableId, BTreeSet<String>>,
    /// The tables each qualifier (lowercase) can stand for. A name reused
    /// across scopes stands for every table it names somewhere.
    pub qualifiers: BTreeMap<String, BTreeSet<TableId>>,
}

/// What one SELECT asks of each table it reads.
pub fn columns_asked(sql: &str) -> Result<Asked, String> {
    let mut collect = Collect::default();
    let _ = one_select(sql)?.visit(&mut collect);
    let qualifiers = qualifiers(&collect);
    let mut asked: BTreeMap<TableId, BTreeSet<String>> = BTreeMap::new();
    for table in qualifiers.values().flatten() {
        asked.entry(table.clone()).or_default();
    }
    for (qualifier, name) in &collect.columns {
        let tables: Vec<&TableId> = match qualifier {
            None => qualifiers.values().flatten().collect(),
            Some(q) => qualifiers.get(q).into_iter().flatten().collect(),
        };
        for table in tables {
            asked.entry(table.clone()).or_default().insert(name.clone());
        }
    }
    Ok(Asked {
        columns: asked,
        qualifiers,
    })
}

/// The layer tables each name can qualify a column with.
fn qualifiers(collect: &Collect) -> BTreeMap<String, BTreeSet<TableId>> {
    let mut names: BTreeMap<String, BTreeSet<TableId>> = BTreeMap::new();
    for parts in &collect.named {
        if let Some(table) = layer_table(parts) {
            names
                .entry(table.name.clone())
                .or_default()
                .insert(table.clone());
            names.entry(table.to_string()).or_default().insert(table);
        }
    }
    for (alias, parts) in &collect.aliased {
        if let Some(table) = layer_table(parts) {
            names.entry(alias.clone()).or_default().insert(table);
        }
    }
    names
}

/// The tables one SELECT (with any `WITH` clauses) reads. The error says
/// what is wrong in one line: not one SELECT, or a table named without its
/// layer.
pub fn tables_read(sql: &str) -> Result<BTreeSet<TableId>, String> {
    let mut collect = Collect::default();
    let _ = one_select(sql)?.visit(&mut collect);
    let mut tables = BTreeSet::new();
    for parts in collect.named {
        if let Some(table) = layer_table(&parts) {
            tables.insert(table);
            continue;
        }
        match parts.as_slice() {
            [one] if collect.ctes.contains(one) => {}
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
    fn columns_asked_follow_aliases_and_table_names() {
        let sql = "WITH e AS (SELECT t.id, t.album__id FROM silver.tracks t) \
                   SELECT a.name, e.id FROM silver.albums a FULL JOIN e ON e.id = a.id \
                   WHERE a.id IN (SELECT id FROM silver.tracks__artists) \
                   UNION ALL SELECT x.idx, albums.upc FROM silver.albums \
                   CROSS JOIN silver.albums__artists x";
        let asked = columns_asked(sql).unwrap();
        let shown = |table: &str| -> Vec<String> {
            let (layer, name) = table.split_once('.').unwrap();
            let table = TableId {
                layer: layer.into(),
                name: name.into(),
            };
            asked.columns[&table].iter().cloned().collect()
        };
        assert_eq!(shown("silver.tracks"), ["album__id", "id"]);
        assert_eq!(shown("silver.albums"), ["id", "name", "upc"]);
        assert_eq!(
            shown("silver.tracks__artists"),
            ["id"],
            "an unqualified name may be any table's"
        );
        assert_eq!(shown("silver.albums__artists"), ["id", "idx"]);
        let albums: Vec<String> = asked.qualifiers["a"]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(albums, ["silver.albums"]);
        assert!(
            !asked.qualifiers.contains_key("e"),
            "a CTE is not a layer table"
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
