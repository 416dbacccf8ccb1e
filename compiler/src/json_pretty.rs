//! Pretty JSON, byte for byte as `serde_json::to_writer_pretty` writes it, from
//! any `Serialize` value, written faster: strings and keys are escaped sixteen
//! bytes at a time ([`write_quoted`]) where serde_json looks at each byte in turn
//! through its formatter, and everything goes straight into one `Vec<u8>`.
//! A plan of 5,000 models is 71 MB of it: mostly SQL and ~1.1 million keys.

use serde::ser::{self, Serialize};

use crate::json_str::write_quoted;

type Error = serde_json::Error;
type Result<T = ()> = std::result::Result<T, Error>;

/// serde_json's tokens for JSON text written as it is (`RawValue`, and `Number`
/// with `arbitrary_precision`): a struct of this name with one string field.
const RAW_TOKENS: [&str; 2] = ["$serde_json::private::RawValue", "$serde_json::private::Number"];

/// Appends `value` to `out` as pretty JSON whose first line is already `depth`
/// levels in (two spaces a level), as serde_json's `PrettyFormatter` lays it out.
pub(crate) fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T, depth: usize) -> Result {
    value.serialize(&mut PrettyJson { out, depth })
}

struct PrettyJson<'a> {
    out: &'a mut Vec<u8>,
    /// Levels in: the indentation of the lines inside the container being written.
    depth: usize,
}

impl<'a> PrettyJson<'a> {
    fn newline(&mut self) {
        const SPACES: [u8; 64] = [b' '; 64];
        self.out.push(b'\n');
        let mut n = 2 * self.depth;
        while n > 0 {
            let k = n.min(SPACES.len());
            self.out.extend_from_slice(&SPACES[..k]);
            n -= k;
        }
    }

    fn open<'s>(&'s mut self, bracket: u8) -> Compound<'s, 'a> {
        self.out.push(bracket);
        self.depth += 1;
        Compound { ser: self, first: true, close: if bracket == b'[' { b']' } else { b'}' }, wrapped: false }
    }

    /// `{` and `"variant": ` for the data of an enum variant (serde_json's external tagging).
    fn open_variant(&mut self, variant: &str) {
        self.out.push(b'{');
        self.depth += 1;
        self.newline();
        write_quoted(self.out, variant);
        self.out.extend_from_slice(b": ");
    }

    /// The `}` of [`open_variant`].
    fn close_variant(&mut self) {
        self.depth -= 1;
        self.newline();
        self.out.push(b'}');
    }

    fn integer(&mut self, v: impl itoa::Integer) {
        self.out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    }
}

/// An array or object being written.
struct Compound<'s, 'a> {
    ser: &'s mut PrettyJson<'a>,
    first: bool,
    close: u8,
    /// Inside [`PrettyJson::open_variant`]: its `}` follows the close.
    wrapped: bool,
}

impl Compound<'_, '_> {
    fn item(&mut self) {
        if !self.first {
            self.ser.out.push(b',');
        }
        self.first = false;
        self.ser.newline();
    }

    fn key(&mut self, key: &str) {
        self.item();
        write_quoted(self.ser.out, key);
        self.ser.out.extend_from_slice(b": ");
    }

    fn finish(self) -> Result {
        self.ser.depth -= 1;
        if !self.first {
            self.ser.newline();
        }
        self.ser.out.push(self.close);
        if self.wrapped {
            self.ser.close_variant();
        }
        Ok(())
    }
}

impl<'s, 'a> ser::Serializer for &'s mut PrettyJson<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'s, 'a>;
    type SerializeTuple = Compound<'s, 'a>;
    type SerializeTupleStruct = Compound<'s, 'a>;
    type SerializeTupleVariant = Compound<'s, 'a>;
    type SerializeMap = Compound<'s, 'a>;
    type SerializeStruct = Compound<'s, 'a>;
    type SerializeStructVariant = Compound<'s, 'a>;

    fn serialize_bool(self, v: bool) -> Result {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result {
        self.integer(v);
        Ok(())
    }
    fn serialize_i16(self, v: i16) -> Result {
        self.integer(v);
        Ok(())
    }
    fn serialize_i32(self, v: i32) -> Result {
        self.integer(v);
        Ok(())
    }
    fn serialize_i64(self, v: i64) -> Result {
        self.integer(v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result {
        self.integer(v);
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result {
        self.integer(v);
        Ok(())
    }
    fn serialize_u16(self, v: u16) -> Result {
        self.integer(v);
        Ok(())
    }
    fn serialize_u32(self, v: u32) -> Result {
        self.integer(v);
        Ok(())
    }
    fn serialize_u64(self, v: u64) -> Result {
        self.integer(v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result {
        self.integer(v);
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result {
        // As serde_json: the shortest text that reads back the same; NaN and infinities are null.
        match v.is_finite() {
            true => self.out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes()),
            false => self.out.extend_from_slice(b"null"),
        }
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result {
        match v.is_finite() {
            true => self.out.extend_from_slice(zmij::Buffer::new().format_finite(v).as_bytes()),
            false => self.out.extend_from_slice(b"null"),
        }
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result {
        write_quoted(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result {
        write_quoted(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result {
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, _: u32, variant: &'static str, value: &T) -> Result {
        self.open_variant(variant);
        value.serialize(&mut *self)?;
        self.close_variant();
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'s, 'a>> {
        Ok(self.open(b'['))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'s, 'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'s, 'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Compound<'s, 'a>> {
        self.open_variant(variant);
        Ok(Compound { wrapped: true, ..self.open(b'[') })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'s, 'a>> {
        Ok(self.open(b'{'))
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Compound<'s, 'a>> {
        if RAW_TOKENS.contains(&name) {
            // Its one field is the text; see `SerializeStruct::serialize_field`.
            return Ok(Compound { ser: self, first: true, close: 0, wrapped: false });
        }
        Ok(self.open(b'{'))
    }
    fn serialize_struct_variant(self, _: &'static str, _: u32, variant: &'static str, _: usize) -> Result<Compound<'s, 'a>> {
        self.open_variant(variant);
        Ok(Compound { wrapped: true, ..self.open(b'{') })
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.item();
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result {
        self.finish()
    }
}

/// Tuples of every kind are arrays.
macro_rules! arrays {
    ($($trait:ident::$method:ident),*) => {
        $(impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Error;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
                ser::SerializeSeq::serialize_element(self, value)
            }
            fn end(self) -> Result {
                self.finish()
            }
        })*
    };
}

arrays!(SerializeTuple::serialize_element, SerializeTupleStruct::serialize_field, SerializeTupleVariant::serialize_field);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        self.item();
        key.serialize(MapKey { out: self.ser.out })?;
        self.ser.out.extend_from_slice(b": ");
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        if self.close == 0 {
            // Raw JSON text (see `serialize_struct`).
            return value.serialize(RawText { out: self.ser.out });
        }
        self.key(key);
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> Result {
        match self.close {
            0 => Ok(()),
            _ => self.finish(),
        }
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result {
        self.finish()
    }
}

fn key_must_be_a_string() -> Error {
    ser::Error::custom("key must be a string")
}

fn not_raw() -> Error {
    ser::Error::custom("raw JSON must be a string")
}

/// Methods of a serializer that takes only some kinds of value: the others are `$err`.
macro_rules! refuse {
    ($err:expr; $($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result {
            Err($err)
        })*
    };
}

/// The generic and compound methods of such a serializer, all refused.
macro_rules! refuse_compounds {
    ($err:expr) => {
        type SerializeSeq = ser::Impossible<(), Error>;
        type SerializeTuple = ser::Impossible<(), Error>;
        type SerializeTupleStruct = ser::Impossible<(), Error>;
        type SerializeTupleVariant = ser::Impossible<(), Error>;
        type SerializeMap = ser::Impossible<(), Error>;
        type SerializeStruct = ser::Impossible<(), Error>;
        type SerializeStructVariant = ser::Impossible<(), Error>;

        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result {
            Err($err)
        }
        fn serialize_newtype_variant<T: Serialize + ?Sized>(self, _: &'static str, _: u32, _: &'static str, _: &T) -> Result {
            Err($err)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
            Err($err)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
            Err($err)
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeTupleStruct> {
            Err($err)
        }
        fn serialize_tuple_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeTupleVariant> {
            Err($err)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
            Err($err)
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
            Err($err)
        }
        fn serialize_struct_variant(self, _: &'static str, _: u32, _: &'static str, _: usize) -> Result<Self::SerializeStructVariant> {
            Err($err)
        }
    };
}

/// Map keys as serde_json writes them: strings, and numbers, booleans and
/// characters as strings; anything else is an error.
struct MapKey<'a> {
    out: &'a mut Vec<u8>,
}

impl MapKey<'_> {
    fn quoted(self, text: &str) -> Result {
        write_quoted(self.out, text);
        Ok(())
    }
}

macro_rules! quoted_keys {
    ($($method:ident: $ty:ty),*) => {
        $(fn $method(self, v: $ty) -> Result {
            self.quoted(itoa::Buffer::new().format(v))
        })*
    };
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Error;
    refuse_compounds!(key_must_be_a_string());
    refuse!(key_must_be_a_string(); serialize_bytes(&[u8]), serialize_none(), serialize_unit(), serialize_unit_struct(&'static str));
    quoted_keys!(serialize_i8: i8, serialize_i16: i16, serialize_i32: i32, serialize_i64: i64, serialize_i128: i128,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64, serialize_u128: u128);

    fn serialize_str(self, v: &str) -> Result {
        self.quoted(v)
    }
    fn serialize_char(self, v: char) -> Result {
        self.quoted(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_bool(self, v: bool) -> Result {
        self.quoted(if v { "true" } else { "false" })
    }
    fn serialize_f32(self, v: f32) -> Result {
        match v.is_finite() {
            true => self.quoted(zmij::Buffer::new().format_finite(v)),
            false => Err(ser::Error::custom("float key must be finite (got NaN or +/-inf)")),
        }
    }
    fn serialize_f64(self, v: f64) -> Result {
        match v.is_finite() {
            true => self.quoted(zmij::Buffer::new().format_finite(v)),
            false => Err(ser::Error::custom("float key must be finite (got NaN or +/-inf)")),
        }
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.quoted(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }
}

/// The text field of serde_json's raw-JSON struct, appended as it is.
struct RawText<'a> {
    out: &'a mut Vec<u8>,
}

impl ser::Serializer for RawText<'_> {
    type Ok = ();
    type Error = Error;
    refuse_compounds!(not_raw());
    refuse!(not_raw(); serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32), serialize_i64(i64),
        serialize_u8(u8), serialize_u16(u16), serialize_u32(u32), serialize_u64(u64), serialize_f32(f32), serialize_f64(f64),
        serialize_char(char), serialize_bytes(&[u8]), serialize_none(), serialize_unit(), serialize_unit_struct(&'static str),
        serialize_unit_variant(&'static str, u32, &'static str));

    fn serialize_str(self, v: &str) -> Result {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, _: &T) -> Result {
        Err(not_raw())
    }
}

#[cfg(test)]
mod tests {
    use serde::Serialize;
    use std::collections::BTreeMap;

    fn same<T: Serialize>(value: &T) {
        let mut ours = Vec::new();
        super::write(&mut ours, value, 0).unwrap();
        let theirs = serde_json::to_vec_pretty(value).unwrap();
        assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
    }

    #[derive(Serialize)]
    enum Shape {
        Unit,
        Newtype(Vec<u8>),
        Tuple(i32, Option<String>),
        Struct { a: f64, b: Vec<Vec<u8>>, c: BTreeMap<String, ()> },
    }

    #[derive(Serialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum Tagged {
        One { x: u8 },
        Two,
    }

    #[derive(Serialize)]
    struct Everything {
        text: String,
        escaped: &'static str,
        unicode: char,
        small: i8,
        big: u128,
        negative: i64,
        floats: Vec<f64>,
        single: f32,
        none: Option<u8>,
        unit: (),
        tuple: (u8, &'static str, bool),
        shapes: Vec<Shape>,
        tagged: Vec<Tagged>,
        empty_list: Vec<u8>,
        empty_map: BTreeMap<String, u8>,
        numbered: BTreeMap<i32, bool>,
        flags: BTreeMap<bool, u8>,
        #[serde(flatten)]
        flattened: BTreeMap<String, serde_json::Value>,
        raw: Box<serde_json::value::RawValue>,
        bytes: serde_bytes_like::Bytes,
    }

    mod serde_bytes_like {
        /// Serialized with `serialize_bytes`.
        pub struct Bytes(pub Vec<u8>);
        impl serde::Serialize for Bytes {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them_pretty() {
        let value = Everything {
            text: "select *\nfrom \"t\"\twhere a = '\\'".into(),
            escaped: "\u{1}\u{1f}\u{7f}\u{e9}\u{1f600}",
            unicode: '"',
            small: -8,
            big: u128::MAX,
            negative: i64::MIN,
            floats: vec![0.0, -0.0, 1.5, 1e300, 1e-7, f64::NAN, f64::INFINITY, 3.0],
            single: 0.1,
            none: None,
            unit: (),
            tuple: (1, "two", true),
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(vec![]),
                Shape::Newtype(vec![1, 2]),
                Shape::Tuple(-1, None),
                Shape::Struct { a: 2.5, b: vec![vec![], vec![7]], c: BTreeMap::from([("k".into(), ())]) },
                Shape::Struct { a: 0.0, b: vec![], c: BTreeMap::new() },
            ],
            tagged: vec![Tagged::One { x: 1 }, Tagged::Two],
            empty_list: vec![],
            empty_map: BTreeMap::new(),
            numbered: BTreeMap::from([(-3, true), (10, false)]),
            flags: BTreeMap::from([(true, 1)]),
            flattened: BTreeMap::from([
                ("json".into(), serde_json::json!({"a": [1, 2.25, null, {"b": {}}], "c": [], "d": "e\"f"})),
                ("n".into(), serde_json::json!(-12)),
            ]),
            raw: serde_json::value::RawValue::from_string("{\"as\": [ \"is\" ]}".into()).unwrap(),
            bytes: serde_bytes_like::Bytes(vec![0, 255]),
        };
        same(&value);
        same(&serde_json::json!([]));
        same(&serde_json::json!({}));
        same(&serde_json::json!([[[]], [{}], {"x": [[1]]}]));
        same(&"just a string");
        same(&Shape::Tuple(1, Some("x".into())));
    }

    #[test]
    fn a_value_nested_in_a_document_is_indented_from_its_depth() {
        let inner = serde_json::json!({"a": [1, {"b": "c"}], "d": {}});
        let doc = serde_json::json!({"outer": {"inner": inner}});
        let whole = serde_json::to_string_pretty(&doc).unwrap();
        let mut ours = Vec::new();
        super::write(&mut ours, &inner, 2).unwrap();
        let ours = String::from_utf8(ours).unwrap();
        assert!(whole.contains(&format!("\"inner\": {ours}\n  }}")), "{whole}\n---\n{ours}");
    }

    #[test]
    fn keys_serde_json_refuses_are_refused() {
        let mut out = Vec::new();
        let by_list: BTreeMap<Vec<u8>, u8> = BTreeMap::from([(vec![1], 1)]);
        assert!(super::write(&mut out, &by_list, 0).is_err());
        assert!(serde_json::to_vec_pretty(&by_list).is_err());
    }
}
