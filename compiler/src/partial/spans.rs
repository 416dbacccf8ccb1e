//! Where each entry of a JSON artifact is, recorded while it is written, so that
//! one node's entry can later be replaced without writing the rest again.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::rc::Rc;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter};

/// Byte range `[start, end)` of `"key": value` in a file.
pub type Span = (u64, u64);

/// Entries of the top-level object, and of the top-level maps asked for.
#[derive(Debug, Default)]
pub struct Spans {
    /// Top-level key → its entry.
    pub top: Vec<(String, Span)>,
    /// Key inside the recorded map → its entry (in file order).
    pub entries: Vec<(String, Span)>,
}

impl Spans {
    pub fn top(&self, key: &str) -> Option<Span> {
        self.top.iter().find(|(k, _)| k == key).map(|(_, s)| *s)
    }
}

/// A writer that counts what passes through it, buffering it on the way:
/// serializers write many tiny pieces (quotes, indentation), which a concrete
/// `Vec` takes inline where a `dyn Write` costs two indirect calls each.
struct Counting<'w> {
    inner: &'w mut dyn Write,
    buf: Vec<u8>,
    pos: Rc<Cell<u64>>,
}

impl Counting<'_> {
    const CAPACITY: usize = 1 << 20;

    fn drain(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }
    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.buf.len() + buf.len() > Self::CAPACITY {
            self.drain()?;
        }
        self.buf.extend_from_slice(buf);
        self.pos.set(self.pos.get() + buf.len() as u64);
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.inner.flush()
    }
}

/// A formatter that delegates the layout to `inner` and notes where the
/// entries of depth 1 and 2 start and end.
struct Recording<F> {
    inner: F,
    pos: Rc<Cell<u64>>,
    /// The map at depth 2 whose entries are recorded (`nodes`).
    map: &'static str,
    depth: usize,
    in_key: bool,
    /// Keys being written at depth 1 and 2, and where their entries started.
    keys: [String; 3],
    starts: [u64; 3],
    out: Rc<RefCell<Spans>>,
}

impl<F: Formatter> Formatter for Recording<F> {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.inner.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        self.inner.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.inner.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.inner.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        self.inner.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.inner.begin_object_key(w, first)?;
        if self.depth <= 2 {
            self.in_key = true;
            self.keys[self.depth].clear();
            self.starts[self.depth] = self.pos.get();
        }
        Ok(())
    }
    fn end_object_key<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.in_key = false;
        self.inner.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.inner.end_object_value(w)?;
        let end = self.pos.get();
        let mut out = self.out.borrow_mut();
        match self.depth {
            1 => out.top.push((self.keys[1].clone(), (self.starts[1], end))),
            2 if self.keys[1] == self.map => out.entries.push((self.keys[2].clone(), (self.starts[2], end))),
            _ => {}
        }
        Ok(())
    }
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        if self.in_key {
            self.keys[self.depth].push_str(fragment);
        }
        self.inner.write_string_fragment(w, fragment)
    }
    fn write_char_escape<W: ?Sized + Write>(&mut self, w: &mut W, escape: serde_json::ser::CharEscape) -> io::Result<()> {
        if self.in_key {
            // Keys with escapes are never looked up; mark them so they match nothing.
            self.keys[self.depth].push('\u{0}');
        }
        self.inner.write_char_escape(w, escape)
    }
}

/// Serializes `value` into `w` (pretty or compact JSON, as `serde_json` writes
/// it) and returns where its entries are; `map` names the top-level map whose
/// entries are recorded.
pub fn write<T: Serialize + ?Sized>(w: &mut dyn Write, value: &T, pretty: bool, map: &'static str) -> io::Result<Spans> {
    let pos = Rc::new(Cell::new(0));
    let out = Rc::new(RefCell::new(Spans::default()));
    let counting = Counting { inner: w, buf: Vec::with_capacity(Counting::CAPACITY), pos: pos.clone() };
    let keys = [String::new(), String::new(), String::new()];
    let rec =
        |inner| Recording { inner, pos: pos.clone(), map, depth: 0, in_key: false, keys: keys.clone(), starts: [0; 3], out: out.clone() };
    if pretty {
        let mut ser = serde_json::Serializer::with_formatter(counting, rec(Formatter2::Pretty(Pretty::at(0))));
        value.serialize(&mut ser).map_err(io::Error::other)?;
        ser.into_inner().drain()?;
    } else {
        let mut ser = serde_json::Serializer::with_formatter(counting, rec(Formatter2::Compact(CompactFormatter)));
        value.serialize(&mut ser).map_err(io::Error::other)?;
        ser.into_inner().drain()?;
    }
    Ok(std::mem::take(&mut *out.borrow_mut()))
}

/// [`write`] for a value whose map `map` is large: `skeleton` is the value with
/// that map empty, `entries` are the map's entries in order. They are
/// serialized 1,024 at a time on all cores and streamed in where the empty map
/// was; the bytes are [`write`]'s for the whole value.
pub fn write_with_entries<T, V>(
    w: &mut dyn Write,
    skeleton: &T,
    pretty: bool,
    map: &'static str,
    entries: &[(&str, &V)],
) -> io::Result<Spans>
where
    T: Serialize + ?Sized,
    V: Serialize + Sync + ?Sized,
{
    let mut frame = Vec::new();
    let mut spans = write(&mut frame, skeleton, pretty, map)?;
    let (_, end) = spans.top(map).ok_or_else(|| io::Error::other(format!("`{map}` is not a top-level entry")))?;
    let end = end as usize;
    if frame.get(end - 2..end) != Some(b"{}".as_slice()) {
        return Err(io::Error::other(format!("`{map}` of the skeleton is not an empty map")));
    }
    let mut out = Counting { inner: w, buf: Vec::with_capacity(Counting::CAPACITY), pos: Rc::new(Cell::new(0)) };
    out.write_all(&frame[..end - 1])?;
    // serde_json's layout of a map one level in: entries on their own lines, 4 spaces in.
    let (first, next, close) = if pretty { ("\n    ", ",\n    ", "\n  }") } else { ("", ",", "}") };
    let mut n = 0;
    for chunk in entries.chunks(1024) {
        let runs = in_runs(chunk, |buf, (k, v)| entry_into(buf, k, v, pretty, 2))?;
        for (run, (text, ends)) in chunk.chunks(RUN).zip(&runs) {
            let mut from = 0;
            for ((key, _), &to) in run.iter().zip(ends) {
                out.write_all(if n == 0 { first.as_bytes() } else { next.as_bytes() })?;
                let start = out.pos.get();
                out.write_all(&text[from..to])?;
                spans.entries.push((key.to_string(), (start, out.pos.get())));
                from = to;
                n += 1;
            }
        }
    }
    out.write_all(if entries.is_empty() { b"}" } else { close.as_bytes() })?;
    // Entries from the map's on move by what the map grew.
    let grown = out.pos.get() - end as u64;
    for (_, (s, e)) in spans.top.iter_mut().filter(|(_, (_, e))| *e >= end as u64) {
        *s += if *s >= end as u64 { grown } else { 0 };
        *e += grown;
    }
    out.write_all(&frame[end..])?;
    out.drain()?;
    Ok(spans)
}

/// Items written in parallel, [`RUN`] to a buffer: each buffer with where each
/// item ends in it (one allocation per run, not one per item and its growth).
pub(crate) fn in_runs<T: Sync>(
    items: &[T],
    write: impl Fn(&mut Vec<u8>, &T) -> io::Result<()> + Sync,
) -> io::Result<Vec<(Vec<u8>, Vec<usize>)>> {
    use rayon::prelude::*;
    items
        .par_chunks(RUN)
        .map(|run| {
            let mut buf = Vec::with_capacity(RUN * 4096);
            let mut ends = Vec::with_capacity(run.len());
            for item in run {
                write(&mut buf, item)?;
                ends.push(buf.len());
            }
            Ok((buf, ends))
        })
        .collect()
}

/// Items per buffer of [`in_runs`].
pub(crate) const RUN: usize = 32;

/// `"key": value` as [`write`] wrote it at `depth` (1: the top-level object, 2: a map in it).
pub fn entry<T: Serialize + ?Sized>(key: &str, value: &T, pretty: bool, depth: usize) -> io::Result<Vec<u8>> {
    // Sized for a typical plan node, so the buffer seldom grows and copies.
    let mut out = Vec::with_capacity(4096);
    entry_into(&mut out, key, value, pretty, depth)?;
    Ok(out)
}

fn entry_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, key: &str, value: &T, pretty: bool, depth: usize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, key).map_err(io::Error::other)?;
    if !pretty {
        out.push(b':');
        return serde_json::to_writer(out, value).map_err(io::Error::other);
    }
    out.extend_from_slice(b": ");
    crate::json_pretty::write(out, value, depth).map_err(io::Error::other)
}

/// serde_json's pretty layout (two spaces a level) for a value that starts `depth`
/// levels in: an entry is written in place, with no second pass to indent it.
struct Pretty {
    depth: usize,
    has_value: bool,
}

impl Pretty {
    fn at(depth: usize) -> Self {
        Pretty { depth, has_value: false }
    }

    fn open<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.newline(w)?;
        }
        w.write_all(bracket)
    }

    fn item<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        w.write_all(if first { b"" } else { b"," })?;
        self.newline(w)
    }

    fn newline<W: ?Sized + Write>(&self, w: &mut W) -> io::Result<()> {
        const SPACES: &[u8] = &[b' '; 64];
        w.write_all(b"\n")?;
        let mut n = 2 * self.depth;
        while n > 0 {
            let k = n.min(SPACES.len());
            w.write_all(&SPACES[..k])?;
            n -= k;
        }
        Ok(())
    }
}

impl Formatter for Pretty {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.item(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, _: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// Pretty or compact, chosen at run time.
enum Formatter2 {
    Pretty(Pretty),
    Compact(CompactFormatter),
}

macro_rules! either {
    ($self:ident, $f:ident => $e:expr) => {
        match $self {
            Formatter2::Pretty($f) => $e,
            Formatter2::Compact($f) => $e,
        }
    };
}

impl Formatter for Formatter2 {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, f => f.begin_array(w))
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, f => f.end_array(w))
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        either!(self, f => f.begin_array_value(w, first))
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, f => f.end_array_value(w))
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, f => f.begin_object(w))
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, f => f.end_object(w))
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        either!(self, f => f.begin_object_key(w, first))
    }
    fn end_object_key<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, f => f.end_object_key(w))
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, f => f.begin_object_value(w))
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        either!(self, f => f.end_object_value(w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> serde_json::Value {
        serde_json::json!({
            "metadata": {"generated_at": "2026-12-04T00:00:00.000000Z"},
            "nodes": {
                "model.p.a": {"sql": "select 1\nfrom \"x\"", "tags": ["a", "b"], "n": {"deep": [1, {"k": null}]}},
                "model.p.b": {"sql": "select 2", "tags": [], "n": {}},
            },
            "order": ["model.p.a", "model.p.b"],
        })
    }

    #[test]
    fn entries_are_found_and_rewritten_byte_for_byte() {
        for pretty in [true, false] {
            let mut buf = Vec::new();
            let spans = write(&mut buf, &doc(), pretty, "nodes").unwrap();
            let expected = if pretty { serde_json::to_vec_pretty(&doc()).unwrap() } else { serde_json::to_vec(&doc()).unwrap() };
            assert_eq!(buf, expected, "the layout is serde_json's");
            assert_eq!(spans.entries.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["model.p.a", "model.p.b"]);
            let keys: Vec<&str> = spans.top.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, ["metadata", "nodes", "order"]);
            for (key, (start, end)) in &spans.entries {
                let again = entry(key, &doc()["nodes"][key], pretty, 2).unwrap();
                assert_eq!(String::from_utf8_lossy(&buf[*start as usize..*end as usize]), String::from_utf8_lossy(&again));
            }
            let skeleton = serde_json::json!({"metadata": doc()["metadata"], "nodes": {}, "order": doc()["order"]});
            let nodes = doc()["nodes"].as_object().unwrap().clone();
            let entries: Vec<(&str, &serde_json::Value)> = nodes.iter().map(|(k, v)| (k.as_str(), v)).collect();
            for entries in [&entries[..], &[]] {
                let mut streamed = Vec::new();
                let got = write_with_entries(&mut streamed, &skeleton, pretty, "nodes", entries).unwrap();
                let mut whole = skeleton.clone();
                whole["nodes"] = serde_json::Value::Object(entries.iter().map(|(k, v)| (k.to_string(), (*v).clone())).collect());
                let mut expected = Vec::new();
                let want = write(&mut expected, &whole, pretty, "nodes").unwrap();
                assert_eq!(
                    String::from_utf8_lossy(&streamed),
                    String::from_utf8_lossy(&expected),
                    "streamed entries are serde_json's layout"
                );
                assert_eq!(got.top, want.top);
                assert_eq!(got.entries, want.entries);
            }
            let (start, end) = spans.top("metadata").unwrap();
            let again = entry("metadata", &doc()["metadata"], pretty, 1).unwrap();
            assert_eq!(&buf[start as usize..end as usize], again.as_slice());
        }
    }
}
