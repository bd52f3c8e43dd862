//! Artist names: the names file (`artists.txt`) and the match key the
//! crawl and the simulator compare names by.

use std::collections::HashSet;
use std::path::Path;

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::error::{Error, Result};

/// The key names are compared by: accents removed (NFD, combining marks
/// dropped), lower case, runs of whitespace as one space. "Beyoncé" and
/// "BEYONCE " share a key. Stored names stay byte-exact.
pub fn match_key(name: &str) -> String {
    let folded: String = name
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Read a names file: one name per line, trimmed; blank lines and lines
/// starting with `#` skipped; later duplicates (by [`match_key`]) dropped.
pub fn read(path: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::config(
            path.display().to_string(),
            "the names file does not exist",
            "create it with one artist name per line, or point [crawl] artists_file at it",
        ),
        _ => Error::io("cannot read the names file", path, e),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        Error::config(
            format!("{}:{line}", path.display()),
            "the file is not UTF-8 text",
            "save the names file as UTF-8",
        )
    })?;
    let names = parse(&text);
    if names.is_empty() {
        return Err(Error::config(
            path.display().to_string(),
            "the names file lists no artist names",
            "add one artist name per line (lines starting with # are comments)",
        ));
    }
    Ok(names)
}

pub fn parse(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| seen.insert(match_key(l)))
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_key_folds_case_accents_and_spaces() {
        assert_eq!(match_key("Beyoncé"), match_key("BEYONCE"));
        assert_eq!(match_key("  Sigur   Rós "), "sigur ros");
        assert_eq!(match_key("Ångström"), "angstrom");
        assert_eq!(match_key("宇多田ヒカル"), "宇多田ヒカル");
    }

    #[test]
    fn names_file_rules() {
        let names = parse("# comment\n\n  Björk \nbjork\nABBA\r\nabba\n\t\nMuse\n");
        assert_eq!(names, vec!["Björk", "ABBA", "Muse"]);
    }

    #[test]
    fn missing_empty_and_binary_names_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.txt");
        let err = read(&missing).unwrap_err().to_string();
        assert!(err.contains("none.txt"), "{err}");

        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "# only comments\n\n").unwrap();
        let err = read(&empty).unwrap_err().to_string();
        assert!(
            err.contains("empty.txt") && err.contains("no artist names"),
            "{err}"
        );

        let binary = dir.path().join("bin.txt");
        std::fs::write(&binary, b"ok\nfine\n\xff\xfe\n").unwrap();
        let err = read(&binary).unwrap_err().to_string();
        assert!(err.contains("bin.txt:3") && err.contains("UTF-8"), "{err}");
    }
}
