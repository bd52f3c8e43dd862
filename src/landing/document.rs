//! A document as the stores land it: its key, its compact JSON text and its
//! content hash, the SHA-256 of the document with object keys in sorted
//! order, so the same content hashes the same whatever the key order.
//!
//! A crawl prepares documents from the trees its responses parse into; an
//! import prepares them straight from each line's text ([`Prepared::parse`]),
//! in one pass that writes the text and the hashed form side by side and
//! builds no tree. Both give the same text and hash for the same document:
//! the numbers are read by the same parser and written by the same writer.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A document ready to land: made only by [`Prepared::new`] and
/// [`Prepared::parse`], so its text is JSON and its hash is the text's.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    id: String,
    text: String,
    hash: String,
}

impl Prepared {
    /// The Spotify id (or the search key).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The document as compact JSON, keys in the order they came.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The document as a tree again, for a store that keeps trees.
    pub fn to_value(&self) -> Value {
        serde_json::from_str(&self.text).expect("a prepared document's text is JSON")
    }

    pub fn new(id: String, doc: &Value) -> Prepared {
        Prepared {
            id,
            text: doc.to_string(),
            hash: content_hash(doc),
        }
    }

    /// The JSON object `text`, with the string at its top-level `key` and
    /// the string at `also` if it holds one; `None` when `text` is anything
    /// else (not JSON, not an object, no string at `key`, a key twice in
    /// one object), which a caller then reads the slow way, with its
    /// messages.
    pub fn parse(text: &str, key: &str, also: &str) -> Option<(Prepared, Option<String>)> {
        let mut written = Written::default();
        let mut parser = serde_json::Deserializer::from_str(text);
        let top = Node {
            out: &mut written,
            keep: Some((key, also)),
            wanted: false,
        }
        .deserialize(&mut parser)
        .ok()?;
        parser.end().ok()?;
        let Kept::Object { key, also } = top else {
            return None;
        };
        Some((
            Prepared {
                id: key?,
                text: String::from_utf8(written.text).ok()?,
                hash: hex::encode(Sha256::digest(&written.hashed)),
            },
            also,
        ))
    }
}

/// The strings at `key` and (if it holds one) `also` of the JSON object
/// `text`, read without preparing it: what a strict import's check pass
/// needs to judge a line. `None` when `text` is anything else (not JSON,
/// not an object, no string at `key`, a top-level key twice), which a
/// caller then reads the slow way, with its messages. Every value is read
/// by the parser `Value` reads with, so what this accepts is JSON a tree
/// accepts too.
pub fn peek(text: &str, key: &str, also: &str) -> Option<(String, Option<String>)> {
    let mut parser = serde_json::Deserializer::from_str(text);
    let peeked = (&mut parser).deserialize_any(Peek { key, also }).ok()?;
    parser.end().ok()?;
    let (key, also) = peeked;
    Some((key?, also))
}

/// Reads the top-level object for [`peek`].
struct Peek<'k> {
    key: &'k str,
    also: &'k str,
}

impl<'de> Visitor<'de> for Peek<'_> {
    type Value = (Option<String>, Option<String>);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Self::Value, A::Error> {
        let mut names: Vec<Cow<'de, str>> = Vec::new();
        let (mut key, mut also) = (None, None);
        while let Some(name) = members.next_key_seed(Key)? {
            let wanted = name == self.key || name == self.also;
            let value = members.next_value_seed(Skim { wanted })?;
            if name == self.key {
                key = value;
            } else if wanted {
                also = value;
            }
            names.push(name);
        }
        // A tree keeps the last of a key's members; leave that to the tree.
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(de::Error::custom("a key appears twice in one object"));
        }
        Ok((key, also))
    }
}

/// Reads past one value, keeping it if it is a `wanted` string.
#[derive(Clone, Copy)]
struct Skim {
    wanted: bool,
}

impl<'de> DeserializeSeed<'de> for Skim {
    type Value = Option<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skim {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Option<String>, E> {
        Ok(None)
    }

    fn visit_str<E>(self, v: &str) -> Result<Option<String>, E> {
        Ok(self.wanted.then(|| v.to_string()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Option<String>, A::Error> {
        let skip = Skim { wanted: false };
        while items.next_element_seed(skip)?.is_some() {}
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Option<String>, A::Error> {
        let skip = Skim { wanted: false };
        while members.next_key_seed(skip)?.is_some() {
            members.next_value_seed(skip)?;
        }
        Ok(None)
    }
}

/// The content hash of `doc`.
pub fn content_hash(doc: &Value) -> String {
    let mut hasher = Sha256::new();
    feed(&mut hasher, doc);
    hex::encode(hasher.finalize())
}

fn feed(h: &mut Sha256, v: &Value) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            h.update(b"{");
            for k in keys {
                write_json(&mut Fed(h), k);
                h.update(b":");
                feed(h, &map[k]);
                h.update(b",");
            }
            h.update(b"}");
        }
        Value::Array(items) => {
            h.update(b"[");
            for item in items {
                feed(h, item);
                h.update(b",");
            }
            h.update(b"]");
        }
        scalar => write_json(&mut Fed(h), scalar),
    }
}

/// Feeds what is written to the hash, without building a string.
struct Fed<'h>(&'h mut Sha256);

impl std::io::Write for Fed<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `value`'s compact JSON text, as `Value::to_string` writes it.
fn write_json(out: &mut impl std::io::Write, value: &(impl Serialize + ?Sized)) {
    serde_json::to_writer(out, value).expect("JSON values serialize");
}

/// What one pass writes: the compact text, and the form [`feed`] hashes.
#[derive(Default)]
struct Written {
    text: Vec<u8>,
    hashed: Vec<u8>,
    /// Room to reorder an object's members in.
    scratch: Vec<u8>,
}

impl Written {
    /// A scalar's text is also its hashed form.
    fn scalar(&mut self, value: &(impl Serialize + ?Sized)) {
        let at = self.text.len();
        write_json(&mut self.text, value);
        self.hashed.extend_from_slice(&self.text[at..]);
    }
}

/// One value of the document, written as it is read.
struct Node<'w, 'k> {
    out: &'w mut Written,
    /// At the top: the members whose strings the caller wants.
    keep: Option<(&'k str, &'k str)>,
    /// Whether the caller wants this value's string, if it is one.
    wanted: bool,
}

impl<'w> Node<'w, '_> {
    fn inner(out: &'w mut Written, wanted: bool) -> Node<'w, 'static> {
        Node {
            out,
            keep: None,
            wanted,
        }
    }
}

/// What a value tells its parent.
enum Kept {
    Other,
    Text(String),
    Object {
        key: Option<String>,
        also: Option<String>,
    },
}

impl<'de> DeserializeSeed<'de> for Node<'_, '_> {
    type Value = Kept;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Kept, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Node<'_, '_> {
    type Value = Kept;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Kept, E> {
        self.out.scalar(&());
        Ok(Kept::Other)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Kept, E> {
        self.out.scalar(&v);
        Ok(Kept::Other)
    }

    fn visit_i64<E>(self, v: i64) -> Result<Kept, E> {
        self.out.scalar(&v);
        Ok(Kept::Other)
    }

    fn visit_u64<E>(self, v: u64) -> Result<Kept, E> {
        self.out.scalar(&v);
        Ok(Kept::Other)
    }

    fn visit_f64<E>(self, v: f64) -> Result<Kept, E> {
        // As `Value` holds it: a number, or null if not finite.
        match serde_json::Number::from_f64(v) {
            Some(n) => self.out.scalar(&n),
            None => self.out.scalar(&()),
        }
        Ok(Kept::Other)
    }

    fn visit_str<E>(self, v: &str) -> Result<Kept, E> {
        self.out.scalar(v);
        Ok(match self.wanted {
            true => Kept::Text(v.to_string()),
            false => Kept::Other,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Kept, A::Error> {
        let out = self.out;
        out.text.push(b'[');
        out.hashed.push(b'[');
        let mut first = true;
        loop {
            let comma = out.text.len();
            if !first {
                out.text.push(b',');
            }
            if items
                .next_element_seed(Node::inner(&mut *out, false))?
                .is_none()
            {
                out.text.truncate(comma);
                break;
            }
            first = false;
            out.hashed.push(b',');
        }
        out.text.push(b']');
        out.hashed.push(b']');
        Ok(Kept::Other)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut members: A) -> Result<Kept, A::Error> {
        let (out, keep) = (self.out, self.keep);
        out.text.push(b'{');
        out.hashed.push(b'{');
        let start = out.hashed.len();
        // Each member's key and where its hashed form (`"key":value,`) lies.
        let mut spans: Vec<(Cow<'de, str>, usize, usize)> = Vec::new();
        let (mut key, mut also) = (None, None);
        while let Some(name) = members.next_key_seed(Key)? {
            if !spans.is_empty() {
                out.text.push(b',');
            }
            let at = out.hashed.len();
            out.scalar(name.as_ref());
            out.text.push(b':');
            out.hashed.push(b':');
            let wanted = keep.filter(|(k, a)| name == *k || name == *a);
            let value = members.next_value_seed(Node::inner(&mut *out, wanted.is_some()))?;
            out.hashed.push(b',');
            if let (Some((k, _)), Kept::Text(s)) = (wanted, value) {
                match name == k {
                    true => key = Some(s),
                    false => also = Some(s),
                }
            }
            spans.push((name, at, out.hashed.len()));
        }
        out.text.push(b'}');
        if !spans.is_sorted_by(|a, b| a.0 <= b.0) {
            spans.sort_by(|a, b| a.0.cmp(&b.0));
            out.scratch.clear();
            for (_, from, to) in &spans {
                out.scratch.extend_from_slice(&out.hashed[*from..*to]);
            }
            out.hashed.truncate(start);
            out.hashed.extend_from_slice(&out.scratch);
        }
        // `Value` keeps one member per key, which this pass cannot mimic.
        if spans.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(de::Error::custom("a key appears twice in one object"));
        }
        out.hashed.push(b'}');
        Ok(match keep {
            Some(_) => Kept::Object { key, also },
            None => Kept::Other,
        })
    }
}

/// An object's key, borrowed from the text when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use serde_json::json;

    #[test]
    fn content_hash_ignores_key_order_and_nothing_else() {
        let a = json!({"id": "x", "n": [1, {"b": 2, "a": null}]});
        let b = json!({"n": [1, {"a": null, "b": 2}], "id": "x"});
        assert_eq!(content_hash(&a), content_hash(&b));
        for other in [
            json!({"id": "x", "n": [1, {"b": "2", "a": null}]}),
            json!({"id": "x", "n": [{"b": 2, "a": null}, 1]}),
            json!({"id": "x", "n": [1, {"b": 2}]}),
            json!({"id": "x", "n": [1, {"b": 2, "a": null}], "extra": false}),
        ] {
            assert_ne!(content_hash(&a), content_hash(&other), "{other}");
        }
    }

    #[test]
    fn content_hashes_stay_what_stores_hold() {
        // Stores keep the hash of every document: a change to how it is
        // computed would make every document look changed. Pinned values
        // (the SHA-256 of `{"id":"x",}` and of the second document's text
        // written the same way), one with escapes, unicode and every
        // scalar kind.
        let cases = [
            (json!({"id": "x"}), "f44e65ba6326bd1f"),
            (
                json!({"name": "Sigur R\u{f3}s \"live\"\n", "n": [1, -2.5, 1e300, true, null], "z": {}}),
                "bdc01b696a315afd",
            ),
        ];
        for (doc, prefix) in cases {
            let hash = content_hash(&doc);
            assert_eq!(hash.len(), 64);
            assert!(hash.starts_with(prefix), "{doc}: {hash}");
        }
        let (parsed, _) = Prepared::parse(r#"{ "id" : "x" }"#, "id", "type").unwrap();
        assert!(parsed.hash().starts_with("f44e65ba6326bd1f"), "{parsed:?}");
    }

    /// What `Prepared::parse` must give for `text`: what the tree gives.
    fn by_tree(text: &str) -> (Prepared, Option<String>) {
        let tree: Value = serde_json::from_str(text).unwrap();
        let id = tree["id"].as_str().unwrap().to_string();
        let kind = tree["type"].as_str().map(str::to_string);
        (Prepared::new(id, &tree), kind)
    }

    #[test]
    fn parsing_the_text_prepares_what_the_tree_prepares() {
        let texts = [
            r#"{"id":"a"}"#,
            r#"{"type":"track","id":"4uLU6hMCjMI75M1A2tKUQC","name":"x"}"#,
            // Whitespace, pretty printing and keys in every order.
            "{ \"z\" : [ 1 , 2 ] ,\n  \"id\" : \"b\" , \"a\" : { \"y\": null, \"b\": {}, \"a\": [] } }",
            // Escapes: written back as serde_json writes them.
            r#"{"id":"\u00e9\"q\"\\\/\n\t\u0001","s":"\ud83c\udfb5 Sigur Rós"}"#,
            // Keys whose escaped forms sort otherwise than they do.
            r#"{"id":"c","a\"b":1,"a#":2,"a\u0000":3,"\u00e9":4,"e":5}"#,
            // Every kind of number, as the tree reads and writes them.
            r#"{"id":"d","n":[0,-0,1.0,1e2,-2.5,1e300,5e-324,0.1,1.7976931348623157e308,
                123456789012345678901234567890,18446744073709551615,-9223372036854775808,
                2.2250738585072014e-308,0.30000000000000004,1E-7]}"#,
            r#"{"id":"e","deep":[[[{"b":[{"d":1,"c":2}],"a":true}]]],"f":false}"#,
            r#"{"id":"f","type":7}"#,
        ];
        for text in texts {
            assert_eq!(
                Prepared::parse(text, "id", "type"),
                Some(by_tree(text)),
                "{text}"
            );
            assert_eq!(
                peek(text, "id", "type"),
                Some(peeked_by_tree(text)),
                "{text}"
            );
        }
    }

    /// What `peek` must give for `text`: the tree's strings.
    fn peeked_by_tree(text: &str) -> (String, Option<String>) {
        let (doc, kind) = by_tree(text);
        (doc.id().to_string(), kind)
    }

    #[test]
    fn random_documents_prepare_alike_both_ways() {
        const KEYS: [&str; 8] = ["a", "b", "name", "é", "z\"", "type", "B", "a b"];
        fn value(rng: &mut Rng, depth: u32) -> Value {
            match rng.below(if depth > 3 { 5 } else { 7 }) {
                0 => Value::Null,
                1 => Value::Bool(rng.chance(0.5)),
                2 => json!(rng.next_u64() >> rng.below(64)),
                3 => json!((rng.unit() - 0.5) * 10f64.powi(rng.range(0, 40) as i32 - 20)),
                4 => json!(format!("s{}\u{1F3B5}\n", rng.below(100))),
                5 => (0..rng.below(4)).map(|_| value(rng, depth + 1)).collect(),
                _ => {
                    let mut map = serde_json::Map::new();
                    for _ in 0..rng.below(6) {
                        map.insert(rng.pick(&KEYS).to_string(), value(rng, depth + 1));
                    }
                    Value::Object(map)
                }
            }
        }
        let mut rng = Rng::seeded(27);
        for i in 0..2000 {
            let mut doc = serde_json::Map::new();
            for _ in 0..rng.below(8) {
                let key = rng.pick(&KEYS).to_string();
                doc.insert(key, value(&mut rng, 0));
            }
            doc.insert("id".into(), json!(format!("t{i}")));
            let doc = Value::Object(doc);
            for text in [doc.to_string(), serde_json::to_string_pretty(&doc).unwrap()] {
                assert_eq!(
                    Prepared::parse(&text, "id", "type"),
                    Some(by_tree(&text)),
                    "{text}"
                );
                assert_eq!(peek(&text, "id", "type"), Some(peeked_by_tree(&text)));
            }
        }
    }

    /// Texts both one-pass readers leave to the tree: not one JSON object
    /// with a string at its key, or a top-level key twice (the tree keeps
    /// the last of its members, one pass cannot).
    fn left_to_the_tree() -> Vec<String> {
        let deep = format!(
            "{{\"id\":\"x\",\"v\":{}1{}}}",
            "[".repeat(200),
            "]".repeat(200)
        );
        [
            "",
            "not json",
            r#"{"id":"x"} trailing"#,
            r#"{"id":"x""#,
            r#"[{"id":"x"}]"#,
            r#""x""#,
            r#"{"tracks":[{"id":"x"}]}"#,
            r#"{"id":7}"#,
            r#"{"id":null}"#,
            r#"{"id":"x","id":"y"}"#,
            deep.as_str(),
        ]
        .map(str::to_string)
        .to_vec()
    }

    #[test]
    fn anything_but_one_object_with_its_key_is_left_to_the_tree() {
        let mut texts = left_to_the_tree();
        // A key twice anywhere: this pass writes every member it reads.
        texts.push(r#"{"id":"x","a":{"b":1,"b":2}}"#.into());
        for text in texts {
            assert_eq!(Prepared::parse(&text, "id", "type"), None, "{text}");
        }
    }

    #[test]
    fn peeking_accepts_only_what_the_tree_reads_the_same_way() {
        // Each text the tree refuses, or reads otherwise than one pass can
        // (the last of a key's members): `peek` leaves it to the tree.
        let mut refused = left_to_the_tree();
        refused.extend(
            [
                r#"{"i\u0064":"x","id":"y"}"#,
                r#"{"id":"x","n":1e400}"#,
                r#"{"id":"x","s":"\ud800"}"#,
                "{\"id\":\"x\",\"s\":\"tab\there\"}",
                r#"{"id":"x","a":[1,]}"#,
                r#"{"id":"x","a":{"b":1,}}"#,
                r#"{"id":"x","n":01}"#,
            ]
            .map(str::to_string),
        );
        for text in refused {
            assert_eq!(peek(&text, "id", "type"), None, "{text}");
        }
        // A key twice below the top is the tree's business, not the key's:
        // the tree reads it, and so does `peek`.
        let nested = r#"{"id":"x","type":"track","a":{"b":1,"b":2}}"#;
        assert!(serde_json::from_str::<Value>(nested).is_ok());
        assert_eq!(
            peek(nested, "id", "type"),
            Some(("x".into(), Some("track".into())))
        );
        // An escaped key is the key it spells.
        assert_eq!(
            peek(r#"{"i\u0064":"x","typ\u0065":"album"}"#, "id", "type"),
            Some(("x".into(), Some("album".into())))
        );
    }
}
