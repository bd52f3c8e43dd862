//! Reading a few values out of many JSON documents, one at a time.
//!
//! simd-json parses a document into a flat tape in one pass (no tree, no
//! map per object) and a dotted path walks the tape. The parser keeps its
//! buffers from one document to the next, so a column of documents costs
//! one copy of each and no allocation once the buffers have grown.

use simd_json::tape::{Tape, Value};

/// A reusable parser: `read` hands each document's root to a closure.
pub struct TapeParser {
    scratch: Vec<u8>,
    buffers: simd_json::Buffers,
    /// Held between documents only for its allocation.
    tape: Option<Tape<'static>>,
}

impl Default for TapeParser {
    fn default() -> Self {
        TapeParser {
            scratch: Vec::new(),
            buffers: simd_json::Buffers::default(),
            tape: Some(Tape::null().reset()),
        }
    }
}

impl TapeParser {
    /// `look(root)` for the document `json`; `None` when it is not JSON.
    pub fn read<R>(&mut self, json: &str, look: impl FnOnce(Value<'_, '_>) -> R) -> Option<R> {
        // simd-json unescapes in place, so the document is copied once,
        // padded as its vector reads need, which spares its own copy.
        self.scratch.clear();
        self.scratch.extend_from_slice(json.as_bytes());
        self.scratch
            .resize(json.len() + simd_json::INPUT_PADDING, 0);
        let mut tape = self.tape.take().unwrap_or_else(|| Tape::null().reset());
        let parsed = simd_json::fill_tape_padded(
            &mut self.scratch,
            json.len(),
            &mut self.buffers,
            &mut tape,
        );
        let looked = parsed.ok().map(|()| look(tape.as_value()));
        self.tape = Some(tape.reset());
        looked
    }
}

/// The value at a dotted path (`followers.total`) under `root`. Of keys
/// an object repeats, the last one counts, as serde_json and Trino's
/// JSON functions read them.
pub fn at<'t, 'i>(root: Value<'t, 'i>, path: &str) -> Option<Value<'t, 'i>> {
    path.split('.').try_fold(root, |node, key| {
        let object = node.as_object()?;
        object
            .iter()
            .filter(|(k, _)| *k == key)
            .last()
            .map(|(_, v)| v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use simd_json::prelude::ValueAsScalar;

    #[test]
    fn paths_reach_nested_values_and_buffers_serve_the_next_document() {
        let mut parser = TapeParser::default();
        let long = format!(
            r#"{{"markets": [{}], "followers": {{"total": 12}}}}"#,
            r#""SE","#.repeat(500) + r#""NO""#
        );
        assert_eq!(
            parser.read(&long, |v| at(v, "followers.total").and_then(|n| n.as_i64())),
            Some(Some(12))
        );
        let short = r#"{"followers": {"total": 3}}"#;
        assert_eq!(
            parser.read(short, |v| at(v, "followers.total").and_then(|n| n.as_i64())),
            Some(Some(3)),
            "a shorter document after a long one reads its own bytes"
        );
        assert_eq!(
            parser.read(short, |v| at(v, "followers.none").is_some()),
            Some(false)
        );
        assert_eq!(parser.read("{\"a\": ", |_| ()), None, "truncated");
        assert_eq!(parser.read("", |_| ()), None, "empty");
        assert_eq!(
            parser.read(short, |v| at(v, "followers.total").is_some()),
            Some(true),
            "usable after an error"
        );
    }
}
