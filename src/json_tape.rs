//! Reading values out of many JSON documents, one at a time.
//!
//! simd-json parses a document into a flat tape in one pass (no tree, no
//! map per object); a walk over [`Json`] or a dotted path ([`Json::at`])
//! reads the tape. The parser keeps its buffers from one document to the next,
//! so a column of documents costs one copy of each and no allocation once
//! the buffers have grown.

use simd_json::StaticNode;
use simd_json::tape::{Node, Tape};

/// A reusable parser: `walk` hands each document's root to a closure.
pub struct TapeParser {
    scratch: Vec<u8>,
    buffers: simd_json::Buffers,
    /// Held between documents only for its allocation.
    tape: Option<Tape<'static>>,
}

impl Default for TapeParser {
    fn default() -> Self {
        TapeParser::with_max_depth(simd_json::DEFAULT_MAX_DEPTH)
    }
}

impl TapeParser {
    /// A parser that refuses documents nested deeper than `depth`.
    pub fn with_max_depth(depth: usize) -> TapeParser {
        TapeParser {
            scratch: Vec::new(),
            buffers: simd_json::Buffers::with_max_depth(4096, depth),
            tape: Some(Tape::null().reset()),
        }
    }

    /// `look(root)` for the document `json`, walked as a tree; the parser's
    /// error when it is not JSON.
    pub fn walk<R>(
        &mut self,
        json: &str,
        look: impl FnOnce(Json<'_>) -> R,
    ) -> Result<R, simd_json::Error> {
        self.parse(json, |tape| look(Json::first(&tape.0).0))
    }

    fn parse<R>(
        &mut self,
        json: &str,
        look: impl FnOnce(&Tape<'_>) -> R,
    ) -> Result<R, simd_json::Error> {
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
        let looked = parsed.map(|()| look(&tape));
        self.tape = Some(tape.reset());
        looked
    }
}

/// A value on a document's tape, read like a tree without building one.
#[derive(Debug, Clone, Copy)]
pub enum Json<'t> {
    Static(StaticNode),
    String(&'t str),
    Object(Object<'t>),
    Array(Array<'t>),
}

/// An object's pairs on the tape, in document order (repeated keys
/// included).
#[derive(Debug, Clone, Copy)]
pub struct Object<'t> {
    len: usize,
    nodes: &'t [Node<'t>],
}

/// An array's elements on the tape.
#[derive(Debug, Clone, Copy)]
pub struct Array<'t> {
    len: usize,
    nodes: &'t [Node<'t>],
}

impl<'t> Json<'t> {
    /// The value at a dotted path (`followers.total`) under this one. Of
    /// keys an object repeats, the last one counts, as serde_json and
    /// Trino's JSON functions read them.
    pub fn at(self, path: &str) -> Option<Json<'t>> {
        path.split('.').try_fold(self, |node, key| {
            let Json::Object(object) = node else {
                return None;
            };
            object
                .iter()
                .filter(|(k, _)| *k == key)
                .last()
                .map(|(_, v)| v)
        })
    }

    /// The value as a 64-bit integer: an integer that fits, not a float.
    pub fn as_i64(self) -> Option<i64> {
        match self {
            Json::Static(StaticNode::I64(i)) => Some(i),
            Json::Static(StaticNode::U64(u)) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The value whose node starts `nodes`, and the nodes after it. A
    /// parsed tape is never empty and holds each container's nodes whole.
    fn first(nodes: &'t [Node<'t>]) -> (Json<'t>, &'t [Node<'t>]) {
        match nodes[0] {
            Node::Static(value) => (Json::Static(value), &nodes[1..]),
            Node::String(text) => (Json::String(text), &nodes[1..]),
            Node::Object { len, count } => (
                Json::Object(Object {
                    len,
                    nodes: &nodes[1..=count],
                }),
                &nodes[count + 1..],
            ),
            Node::Array { len, count } => (
                Json::Array(Array {
                    len,
                    nodes: &nodes[1..=count],
                }),
                &nodes[count + 1..],
            ),
        }
    }
}

impl<'t> Object<'t> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'t str, Json<'t>)> + Clone + use<'t> {
        let mut rest = self.nodes;
        std::iter::from_fn(move || {
            let (key, value) = rest.split_first()?;
            let Node::String(key) = *key else {
                unreachable!("a tape's object keys are strings")
            };
            let (value, after) = Json::first(value);
            rest = after;
            Some((key, value))
        })
    }
}

impl<'t> Array<'t> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = Json<'t>> + Clone + use<'t> {
        let mut rest = self.nodes;
        std::iter::from_fn(move || {
            if rest.is_empty() {
                return None;
            }
            let (value, after) = Json::first(rest);
            rest = after;
            Some(value)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_meets_every_pair_and_element_in_document_order() {
        fn shape(value: Json) -> String {
            match value {
                Json::Static(node) => node.to_string(),
                Json::String(text) => format!("'{text}'"),
                Json::Object(pairs) => {
                    let inner: Vec<String> = pairs
                        .iter()
                        .map(|(key, value)| format!("{key}={}", shape(value)))
                        .collect();
                    format!("{}{{{}}}", pairs.len(), inner.join(" "))
                }
                Json::Array(items) => {
                    let inner: Vec<String> = items.iter().map(shape).collect();
                    format!("{}[{}]", items.len(), inner.join(" "))
                }
            }
        }
        let mut parser = TapeParser::default();
        let doc = r#"{"a":[1,[],{"b":null,"b":"x\"y"}],"c":{},"d":-2.5,"a":true}"#;
        assert_eq!(
            parser.walk(doc, shape).unwrap(),
            r#"4{a=3[1 0[] 2{b=null b='x"y'}] c=0{} d=-2.5 a=true}"#
        );
        assert!(parser.walk("[1,", shape).is_err());
        let mut shallow = TapeParser::with_max_depth(2);
        assert!(shallow.walk("[[1]]", shape).is_ok());
        assert!(
            shallow.walk("[[[1]]]", shape).is_err(),
            "deeper than allowed"
        );
    }

    #[test]
    fn paths_reach_nested_values_and_buffers_serve_the_next_document() {
        let mut parser = TapeParser::default();
        let long = format!(
            r#"{{"markets": [{}], "followers": {{"total": 12}}}}"#,
            r#""SE","#.repeat(500) + r#""NO""#
        );
        assert_eq!(
            parser
                .walk(&long, |v| v.at("followers.total").and_then(Json::as_i64))
                .ok(),
            Some(Some(12))
        );
        let short = r#"{"followers": {"total": 3}}"#;
        assert_eq!(
            parser
                .walk(short, |v| v.at("followers.total").and_then(Json::as_i64))
                .ok(),
            Some(Some(3)),
            "a shorter document after a long one reads its own bytes"
        );
        assert_eq!(
            parser
                .walk(short, |v| v.at("followers.none").is_some())
                .ok(),
            Some(false)
        );
        assert!(parser.walk("{\"a\": ", |_| ()).is_err(), "truncated");
        assert!(parser.walk("", |_| ()).is_err(), "empty");
        assert_eq!(
            parser
                .walk(short, |v| v.at("followers.total").is_some())
                .ok(),
            Some(true),
            "usable after an error"
        );
    }
}
