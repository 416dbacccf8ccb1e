//! JSON written faster than through serde where it is written most: text for
//! serde_json to write as it is, objects with keys that need no escaping, and
//! strings escaped sixteen bytes at a time (serde_json looks at each byte in turn,
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
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(i) = next_escape(bytes, start) {
        out.extend_from_slice(&bytes[start..i]);
        let b = bytes[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether JSON escapes `b`: control characters, quotes and backslashes.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The first byte at or after `from` that [`needs_escape`]. Sixteen bytes at a
/// time: the SQL in plans and manifests is tens of megabytes, dense with quoted
/// identifiers, and a byte-by-byte look took ~7 % of a compile's CPU.
#[cfg(target_arch = "x86_64")]
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    use std::arch::x86_64::{__m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8};
    /// Bit `k` set: byte `at + k` needs escaping.
    ///
    /// # Safety
    /// `at + 16 <= bytes.len()`.
    #[inline(always)]
    unsafe fn marks(bytes: &[u8], at: usize) -> u32 {
        // SAFETY: SSE2 is part of x86_64; the caller keeps the 16 bytes (loaded unaligned) inside `bytes`.
        unsafe {
            let v = _mm_loadu_si128(bytes.as_ptr().add(at).cast::<__m128i>());
            let below_space = _mm_set1_epi8(0x1f);
            // Unsigned v <= 0x1f: max(v, 0x1f) == 0x1f.
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, below_space), below_space);
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) as u32
        }
    }
    let len = bytes.len();
    if len < 16 {
        return next_escape_bytewise(bytes, from);
    }
    let mut i = from;
    while i + 16 <= len {
        // SAFETY: i + 16 <= len.
        let m = unsafe { marks(bytes, i) };
        if m != 0 {
            return Some(i + m.trailing_zeros() as usize);
        }
        i += 16;
    }
    if i >= len {
        return None;
    }
    // The last 16 bytes, of which those before `i` were looked at already.
    let last = len - 16;
    // SAFETY: last + 16 == len.
    let m = unsafe { marks(bytes, last) } >> (i - last);
    (m != 0).then(|| i + m.trailing_zeros() as usize)
}

#[cfg(not(target_arch = "x86_64"))]
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    next_escape_bytewise(bytes, from)
}

fn next_escape_bytewise(bytes: &[u8], from: usize) -> Option<usize> {
    bytes[from..].iter().position(|&b| needs_escape(b)).map(|k| from + k)
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
        for text in [
            "",
            "a",
            "select 1",
            "\"",
            "\\",
            "a\nb\r\nc\td",
            "12345678\"",
            "1234567\u{1}",
            "caf\u{e9} \u{1f600} \u{7f}/",
            &"x".repeat(100),
            "\"s\".\"main\".\"m_1\"\n\\\\\"\"\t",
        ] {
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
    fn random_mixes_of_escaped_and_plain_bytes_are_escaped_as_serde_json_does() {
        let alphabet = ['a', 'Z', ' ', '"', '\\', '\n', '\u{0}', '\u{1f}', '\u{7f}', '\u{e9}', '\u{1f600}', '.'];
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 40) as usize;
            let text: String = (0..len).map(|k| alphabet[((seed >> (k % 16 * 4)) as usize + k) % alphabet.len()]).collect();
            same(&text);
        }
    }

    #[test]
    fn escapes_are_found_sixteen_at_a_time_as_one_at_a_time() {
        let text: Vec<u8> = (0..200u32).map(|k| [b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0xc3, b'\n'][(k * k % 23 % 8) as usize]).collect();
        for len in [0, 1, 15, 16, 17, 31, 32, 33, 100, 200] {
            for from in 0..=len {
                assert_eq!(super::next_escape(&text[..len], from), super::next_escape_bytewise(&text[..len], from), "{len} {from}");
            }
        }
        let plain = [b'x'; 40];
        assert_eq!(super::next_escape(&plain, 0), None);
        assert_eq!(super::next_escape(&plain, 40), None);
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
