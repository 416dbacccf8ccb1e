//! JSON written faster than through serde where it is written most: text for
//! serde_json to write as it is, objects with keys that need no escaping, and
//! strings escaped eight bytes at a time (serde_json looks at each byte in turn,
//! and the code of every node is written two or three times).

/// JSON text written as it is, as serde_json writes its `RawValue` (whose public
/// constructors either parse the text again or allocate it alone).
pub(crate) struct RawJson<'a>(pub &'a str);

impl serde::Serialize for RawJson<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        // serde_json's token for raw JSON (`serde_json::raw::TOKEN`).
        const TOKEN: &str = "$serde_json::private::RawValue";
        let mut s = ser.serialize_struct(TOKEN, 1)?;
        s.serialize_field(TOKEN, self.0)?;
        s.end()
    }
}

/// A JSON object written compactly, byte for byte as serde_json's `to_writer` writes
/// it, with keys that need no escaping copied as they are: dbt's manifest has ~50
/// keys in each of tens of thousands of nodes, and serde_json escapes every key
/// byte by byte.
pub(crate) struct CompactObject<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> CompactObject<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        CompactObject { out, first: true }
    }

    fn key(&mut self, key: &str) {
        debug_assert!(!key.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'), "{key:?} needs escaping");
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// `"key":"value"`.
    pub(crate) fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        write_quoted(self.out, value);
    }

    /// `"key":"value"`, or `null`.
    pub(crate) fn opt_str(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(v) => self.str(key, v),
            None => self.raw(key, "null"),
        }
    }

    /// `"key":["a","b"]`.
    pub(crate) fn strs<'s>(&mut self, key: &str, values: impl IntoIterator<Item = &'s str>) {
        self.key(key);
        self.out.push(b'[');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_quoted(self.out, v);
        }
        self.out.push(b']');
    }

    /// `"key":` and an object written by the returned writer (closed by its `end`).
    pub(crate) fn object(&mut self, key: &str) -> CompactObject<'_> {
        self.key(key);
        CompactObject::new(self.out)
    }

    /// `"key":` and JSON text as it is.
    pub(crate) fn raw(&mut self, key: &str, json: &str) {
        self.key(key);
        self.out.extend_from_slice(json.as_bytes());
    }

    /// `"key":` and `value` as serde_json writes it.
    pub(crate) fn value<T: serde::Serialize + ?Sized>(&mut self, key: &str, value: &T) -> serde_json::Result<()> {
        self.key(key);
        serde_json::to_writer(&mut *self.out, value)
    }

    pub(crate) fn end(self) {
        self.out.push(b'}');
    }
}

/// Appends `s` as a JSON string literal, escaped as serde_json escapes it.
pub(crate) fn write_quoted(out: &mut Vec<u8>, s: &str) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Bytes of a word that equal `b` (no false positives below the first match).
    let has = |w: u64, b: u8| (w ^ (ONES * u64::from(b))).wrapping_sub(ONES) & !(w ^ (ONES * u64::from(b))) & HIGH;
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        if i + 8 <= bytes.len() {
            let w = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("eight bytes"));
            // Control characters (< 0x20), quotes and backslashes; none: skip the word.
            let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
            if control | has(w, b'"') | has(w, b'\\') == 0 {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
                i += 1;
                start = i;
                continue;
            }
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    fn same(s: &str) {
        let mut out = Vec::new();
        super::write_quoted(&mut out, s);
        assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap(), "{s:?}");
    }

    #[test]
    fn escapes_as_serde_json_does() {
        let every: String = (0u32..0x250).filter_map(char::from_u32).collect();
        same(&every);
        for text in
            ["", "a", "select 1", "\"", "\\", "a\nb\r\nc\td", "12345678\"", "1234567\u{1}", "caf\u{e9} \u{1f600} \u{7f}/", &"x".repeat(100)]
        {
            same(text);
        }
        // Every position of each escaped byte in and around a word.
        for b in ['"', '\\', '\n', '\u{0}', '\u{1f}', ' ', '~', '\u{7f}', '\u{e9}'] {
            for at in 0..20 {
                let mut s: String = "abcdefghijklmnopqrst".into();
                s.insert(at, b);
                same(&s);
            }
        }
    }

    #[test]
    fn compact_objects_are_written_as_serde_json_writes_them() {
        let mut out = Vec::new();
        let mut o = super::CompactObject::new(&mut out);
        o.str("name", "a \"b\"\n");
        o.opt_str("none", None);
        o.opt_str("some", Some("x"));
        o.strs("list", ["p", "q\\"]);
        o.strs("empty", []);
        o.raw("raw", "[1,2]");
        let mut inner = o.object("object");
        inner.strs("a", ["b"]);
        inner.end();
        o.value("value", &serde_json::json!({"k": [1.5, null]})).unwrap();
        o.end();
        let expected = serde_json::json!({
            "name": "a \"b\"\n", "none": null, "some": "x", "list": ["p", "q\\"], "empty": [], "raw": [1, 2], "object": {"a": ["b"]}, "value": {"k": [1.5, null]},
        });
        assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&expected).unwrap());
        let mut out = Vec::new();
        super::CompactObject::new(&mut out).end();
        assert_eq!(out, b"{}");
    }

    #[test]
    fn raw_json_is_written_as_it_is() {
        let v = serde_json::json!({"a": 1});
        let text = serde_json::to_string(&v).unwrap();
        let entries = [super::RawJson(&text), super::RawJson("[1, 2]")];
        assert_eq!(serde_json::to_string(&entries).unwrap(), r#"[{"a":1},[1, 2]]"#);
        assert_eq!(serde_json::to_string_pretty(&entries).unwrap(), "[\n  {\"a\":1},\n  [1, 2]\n]");
    }
}
