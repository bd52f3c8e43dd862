//! What every folder of table definitions shares (`bronze/*.toml`,
//! `silver/*.toml`): the file name is the table name, files are small TOML
//! documents, and every problem names its file, line and column.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// `[definitions]`: where the definition folders are.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefinitionSettings {
    /// The folder holding `bronze/`, `silver/`, `gold/` and `pipelines/`.
    pub dir: PathBuf,
}

impl Default for DefinitionSettings {
    fn default() -> Self {
        DefinitionSettings { dir: ".".into() }
    }
}

/// A table of a layer, written `layer.table` (`silver.tracks`) in task
/// ids, SQL and messages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    pub layer: String,
    pub name: String,
}

impl TableId {
    pub fn new(layer: impl Into<String>, name: impl Into<String>) -> TableId {
        TableId {
            layer: layer.into(),
            name: name.into(),
        }
    }

    /// `layer.table`, or `None` for anything else.
    pub fn parse(id: &str) -> Option<TableId> {
        let (layer, name) = id.split_once('.')?;
        (is_identifier(layer) && is_identifier(name)).then(|| TableId::new(layer, name))
    }
}

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.layer, self.name)
    }
}

/// The definitions of `layer` named in `names` (all when none are; with or
/// without the `<layer>.` prefix), or an error listing the known ones.
pub fn select<'d, T>(
    layer: &str,
    defs: &'d [T],
    name_of: fn(&T) -> &String,
    names: &[String],
) -> Result<Vec<&'d T>> {
    if names.is_empty() {
        return Ok(defs.iter().collect());
    }
    let prefix = format!("{layer}.");
    names
        .iter()
        .map(|name| {
            let bare = name.strip_prefix(&prefix).unwrap_or(name);
            defs.iter().find(|d| name_of(d) == bare).ok_or_else(|| {
                let known: Vec<&str> = defs.iter().map(|d| name_of(d).as_str()).collect();
                Error::config(
                    "command line",
                    format!("there is no {layer} table {name:?}"),
                    format!("use one of: {}", known.join(", ")),
                )
            })
        })
        .collect()
}

/// The largest definition file read; anything bigger is a mistake.
const MAX_BYTES: u64 = 1024 * 1024;

/// The `*.toml` files of a layer's folder, sorted by name.
pub fn toml_files(dir: &Path, layer: &str) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Error::config(
            dir.display().to_string(),
            format!("cannot read the {layer} definitions folder: {e}"),
            format!(
                "create it with one <table>.toml per {layer} table, or set [definitions] dir \
                 to the folder that holds {layer}/"
            ),
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    Ok(paths)
}

/// Read one definition: its table name (the file stem) and its contents.
/// The error is one line for a list of problems, without the file name.
pub fn read_toml<T: DeserializeOwned>(path: &Path) -> std::result::Result<(String, T), String> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    if !is_identifier(&name) {
        return Err(format!(
            "{name:?} is not a table name: use lowercase letters, digits and _, starting \
             with a letter (rename the file)"
        ));
    }
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_BYTES {
        return Err(format!(
            "{} bytes is far too large for a table definition",
            meta.len()
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let contents = toml::from_str(&text).map_err(|e| toml_problem(&text, &e))?;
    Ok((name, contents))
}

/// A TOML error on one line: where, then what (the crate's message also
/// draws the line with a caret, which a list of problems has no room for).
pub fn toml_problem(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim();
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_string(),
    }
}

/// A name every engine takes unquoted: lowercase letters, digits and `_`,
/// starting with a letter, at most 64 characters.
pub fn is_identifier(s: &str) -> bool {
    s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
pub(crate) mod tests {
    /// A folder holding the given files, for definition tests.
    pub fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            std::fs::write(dir.path().join(name), body).unwrap();
        }
        dir
    }
}
