//! JSON text for serde_json to write as it is, and long strings (SQL) escaped
//! eight bytes at a time: serde_json looks at each byte in turn, and the code of
//! every node is written two or three times.

use std::cell::RefCell;

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

/// A string serialized as serde_json writes it (same escapes), faster for long text.
pub(crate) struct LongStr<'a>(pub &'a str);

impl serde::Serialize for LongStr<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        thread_local! {
            static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        BUF.with_borrow_mut(|buf| {
            buf.clear();
            write_quoted(buf, self.0);
            // Escaping keeps UTF-8 valid.
            let text = std::str::from_utf8(buf).map_err(serde::ser::Error::custom)?;
            RawJson(text).serialize(ser)
        })
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
        assert_eq!(serde_json::to_string(&super::LongStr(s)).unwrap(), serde_json::to_string(s).unwrap());
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
    fn raw_json_is_written_as_it_is() {
        let v = serde_json::json!({"a": 1});
        let text = serde_json::to_string(&v).unwrap();
        let entries = [super::RawJson(&text), super::RawJson("[1, 2]")];
        assert_eq!(serde_json::to_string(&entries).unwrap(), r#"[{"a":1},[1, 2]]"#);
        assert_eq!(serde_json::to_string_pretty(&entries).unwrap(), "[\n  {\"a\":1},\n  [1, 2]\n]");
    }
}
