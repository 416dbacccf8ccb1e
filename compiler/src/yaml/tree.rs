//! serde's view of a [`fast`](super::fast) document, answering as serde-saphyr does
//! for the same text. Anything it would not answer exactly is an error, after which
//! the caller reads the text again with serde-saphyr (and reports its error, if any).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::fast::{Node, Plain, Value};

/// The newtype name under which [`super::Lined`] asks for a value with its position.
pub(crate) const LINED: &str = "__dvt_lined";

/// Not an answer from this reader (the full parser decides).
#[derive(Debug)]
pub(crate) struct Unanswered;

impl fmt::Display for Unanswered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("outside the fast YAML subset")
    }
}

impl std::error::Error for Unanswered {}

impl de::Error for Unanswered {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Unanswered
    }
}

type Result<T> = std::result::Result<T, Unanswered>;

impl<'de> IntoDeserializer<'de, Unanswered> for Node<'de> {
    type Deserializer = Node<'de>;
    fn into_deserializer(self) -> Node<'de> {
        self
    }
}

impl<'de> Node<'de> {
    fn text<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Plain(_, Plain::Null) => Err(Unanswered),
            Value::Plain(s, _) => visitor.visit_borrowed_str(s),
            Value::Text(Cow::Borrowed(s)) => visitor.visit_borrowed_str(s),
            Value::Text(Cow::Owned(s)) => visitor.visit_string(s),
            Value::Seq(_) | Value::Map(_) => Err(Unanswered),
        }
    }
}

struct Seq<'de>(std::vec::IntoIter<Node<'de>>);

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = Unanswered;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        self.0.next().map(|n| seed.deserialize(n)).transpose()
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.0.len())
    }
}

struct Map<'de> {
    entries: std::vec::IntoIter<(Cow<'de, str>, Node<'de>)>,
    value: Option<Node<'de>>,
}

impl<'de> MapAccess<'de> for Map<'de> {
    type Error = Unanswered;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        self.value = Some(value);
        let key = match key {
            Cow::Borrowed(s) => seed.deserialize(de::value::BorrowedStrDeserializer::new(s)),
            Cow::Owned(s) => seed.deserialize(de::value::StringDeserializer::new(s)),
        };
        key.map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(self.value.take().ok_or(Unanswered)?)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// `Lined`'s view: the line, the column, then the value.
struct Positioned<'de> {
    node: Option<Node<'de>>,
    step: u8,
}

impl<'de> SeqAccess<'de> for Positioned<'de> {
    type Error = Unanswered;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        let node = self.node.as_ref().ok_or(Unanswered)?;
        self.step += 1;
        match self.step {
            1 => seed.deserialize(node.line.into_deserializer()).map(Some),
            2 => seed.deserialize(node.column.into_deserializer()).map(Some),
            _ => seed.deserialize(self.node.take().ok_or(Unanswered)?).map(Some),
        }
    }
}

impl<'de> de::Deserializer<'de> for Node<'de> {
    type Error = Unanswered;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Plain(_, Plain::Null) => visitor.visit_unit(),
            Value::Plain(_, Plain::Bool(b)) => visitor.visit_bool(b),
            Value::Plain(_, Plain::Unsigned(n)) => visitor.visit_u64(n),
            Value::Plain(_, Plain::Signed(n)) => visitor.visit_i64(n),
            Value::Plain(_, Plain::Float(f)) => visitor.visit_f64(f),
            Value::Plain(..) | Value::Text(_) => self.text(visitor),
            Value::Seq(items) => visitor.visit_seq(Seq(items.into_iter())),
            Value::Map(entries) => visitor.visit_map(Map { entries: entries.into_iter(), value: None }),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.text(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.text(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.text(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Plain(_, Plain::Null) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Plain(_, Plain::Bool(b)) => visitor.visit_bool(b),
            _ => Err(Unanswered),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Plain(_, Plain::Unsigned(n)) => visitor.visit_u64(n),
            Value::Plain(_, Plain::Signed(n)) => visitor.visit_i64(n),
            _ => Err(Unanswered),
        }
    }

    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Plain(_, Plain::Float(f)) => visitor.visit_f64(f),
            _ => Err(Unanswered),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Plain(_, Plain::Null) => visitor.visit_unit(),
            _ => Err(Unanswered),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Seq(items) => visitor.visit_seq(Seq(items.into_iter())),
            _ => Err(Unanswered),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value {
            Value::Map(entries) => visitor.visit_map(Map { entries: entries.into_iter(), value: None }),
            _ => Err(Unanswered),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(self, _name: &'static str, _fields: &'static [&'static str], visitor: V) -> Result<V::Value> {
        self.deserialize_map(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value> {
        if name == LINED {
            return visitor.visit_seq(Positioned { node: Some(self), step: 0 });
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }

    // Shapes dbt's files do not use: the full parser's.
    fn deserialize_char<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Unanswered)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Unanswered)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
        Err(Unanswered)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(self, _: &'static str, _: V) -> Result<V::Value> {
        Err(Unanswered)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value> {
        Err(Unanswered)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _: &'static str, _: usize, _: V) -> Result<V::Value> {
        Err(Unanswered)
    }
    fn deserialize_enum<V: Visitor<'de>>(self, _: &'static str, _: &'static [&'static str], _: V) -> Result<V::Value> {
        Err(Unanswered)
    }
}
