//! The saved state of the last whole compile, in `target/.dvt_partial`: what it
//! read, where each node's entries are in the artifacts it wrote, and the
//! offset of each node's snapshot in `target/.dvt_partial_nodes`.
//!
//! A small binary format (little-endian integers, length-prefixed strings):
//! the index of 22,000 nodes decodes in about a millisecond, where JSON would
//! take ten times that.

use std::path::Path;

use super::inputs::{Entry, Kind};
use super::spans::Span;
use crate::artifact_write::Shared;

const MAGIC: &[u8] = b"DVT-PARTIAL-6\n";

/// Size and modification time of an artifact as this compile left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    pub len: u64,
    pub mtime_ns: u64,
}

impl Stamp {
    pub fn of(path: &Path) -> Option<Stamp> {
        let e = super::inputs::probe(path);
        (e.kind == Kind::File).then_some(Stamp { len: e.len, mtime_ns: e.mtime_ns })
    }
}

/// One node: its file (models), its snapshot, and its entries in the artifacts.
#[derive(Debug, Clone, Default)]
pub struct NodeRec {
    pub uid: String,
    /// The project-relative file it is loaded from (empty for generated nodes).
    pub file: String,
    /// Offset and length of its snapshot in the snapshot file.
    pub blob: (u64, u64),
    pub plan: Span,
    pub manifest: Span,
}

#[derive(Debug, Clone, Default)]
pub struct Saved {
    /// Digest of the binary, the command's options and the project folder.
    pub key: String,
    pub env: Vec<(String, String)>,
    /// When the tree was stamped (ns since the epoch).
    pub stamped_at_ns: u64,
    pub tree: Vec<Entry>,
    pub connection_files: Vec<Entry>,
    /// The folders of `target/compiled/` as the compile left them.
    pub compiled_folders: Vec<Entry>,
    pub plan: Stamp,
    pub manifest: Stamp,
    /// `semantic_manifest.json`, which a reusing compile leaves as it is.
    pub semantic_manifest: Stamp,
    pub nodes_file: Stamp,
    /// What the kept previous copies of `plan.json` and `manifest.json` hold (see [`Shared`]).
    pub plan_shared: Option<Shared>,
    pub manifest_shared: Option<Shared>,
    /// The project's sources, in the snapshot file.
    pub sources: Span,
    /// `metadata` in `manifest.json` (its timestamps are renewed by every compile).
    pub metadata: Span,
    /// What a compile prints: the loader's warnings, the plan's (`[code] message`), the summary.
    pub load_warnings: Vec<String>,
    pub plan_warnings: Vec<(String, String, String)>,
    pub summary: String,
    /// Nodes, pushdown, federation: the counts of the summary event.
    pub counts: [u64; 3],
    /// Sorted by unique id.
    pub nodes: Vec<NodeRec>,
}

struct Out(Vec<u8>);

impl Out {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
    }
    fn entries(&mut self, es: &[Entry]) {
        self.u64(es.len() as u64);
        for e in es {
            self.str(&e.path);
            self.0.push(e.kind as u8);
            self.u64(e.len);
            self.u64(e.mtime_ns);
        }
    }
    fn stamp(&mut self, s: Stamp) {
        self.u64(s.len);
        self.u64(s.mtime_ns);
    }
    fn span(&mut self, s: Span) {
        self.u64(s.0);
        self.u64(s.1);
    }
    fn shared(&mut self, s: &Option<Shared>) {
        let Some(s) = s else { return self.u64(u64::MAX) };
        self.u64(s.len);
        self.span(s.stamp);
        self.u64(s.dirty.len() as u64);
        for d in &s.dirty {
            self.span(*d);
        }
    }
}

struct In<'a>(&'a [u8]);

impl In<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn len(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok().filter(|n| *n <= self.0.len())
    }
    fn str(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
    fn entries(&mut self) -> Option<Vec<Entry>> {
        let n = self.len()?;
        (0..n)
            .map(|_| {
                let path = self.str()?;
                let kind = Kind::from_u8(*self.take(1)?.first()?)?;
                Some(Entry { path, kind, len: self.u64()?, mtime_ns: self.u64()? })
            })
            .collect()
    }
    fn stamp(&mut self) -> Option<Stamp> {
        Some(Stamp { len: self.u64()?, mtime_ns: self.u64()? })
    }
    fn span(&mut self) -> Option<Span> {
        Some((self.u64()?, self.u64()?))
    }
    fn shared(&mut self) -> Option<Option<Shared>> {
        let len = self.u64()?;
        if len == u64::MAX {
            return Some(None);
        }
        let stamp = self.span()?;
        let n = self.len()?;
        let dirty = (0..n).map(|_| self.span()).collect::<Option<_>>()?;
        Some(Some(Shared { len, dirty, stamp }))
    }
}

impl Saved {
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Out(Vec::with_capacity(64 + self.nodes.len() * 96 + self.tree.len() * 64));
        o.0.extend_from_slice(MAGIC);
        o.str(&self.key);
        o.u64(self.env.len() as u64);
        for (k, v) in &self.env {
            o.str(k);
            o.str(v);
        }
        o.u64(self.stamped_at_ns);
        o.entries(&self.tree);
        o.entries(&self.connection_files);
        o.entries(&self.compiled_folders);
        o.stamp(self.plan);
        o.stamp(self.manifest);
        o.stamp(self.semantic_manifest);
        o.stamp(self.nodes_file);
        o.shared(&self.plan_shared);
        o.shared(&self.manifest_shared);
        o.span(self.sources);
        o.span(self.metadata);
        o.u64(self.load_warnings.len() as u64);
        for w in &self.load_warnings {
            o.str(w);
        }
        o.u64(self.plan_warnings.len() as u64);
        for (node, code, message) in &self.plan_warnings {
            o.str(node);
            o.str(code);
            o.str(message);
        }
        o.str(&self.summary);
        for c in self.counts {
            o.u64(c);
        }
        o.u64(self.nodes.len() as u64);
        for n in &self.nodes {
            o.str(&n.uid);
            o.str(&n.file);
            o.span(n.blob);
            o.span(n.plan);
            o.span(n.manifest);
        }
        o.0
    }

    /// `None` when the bytes are not a state this build wrote.
    pub fn decode(bytes: &[u8]) -> Option<Saved> {
        let mut i = In(bytes.strip_prefix(MAGIC)?);
        let key = i.str()?;
        let n = i.len()?;
        let env = (0..n).map(|_| Some((i.str()?, i.str()?))).collect::<Option<_>>()?;
        let stamped_at_ns = i.u64()?;
        let tree = i.entries()?;
        let connection_files = i.entries()?;
        let compiled_folders = i.entries()?;
        let (plan, manifest, semantic_manifest, nodes_file) = (i.stamp()?, i.stamp()?, i.stamp()?, i.stamp()?);
        let (plan_shared, manifest_shared) = (i.shared()?, i.shared()?);
        let sources = i.span()?;
        let metadata = i.span()?;
        let n = i.len()?;
        let load_warnings = (0..n).map(|_| i.str()).collect::<Option<_>>()?;
        let n = i.len()?;
        let plan_warnings = (0..n).map(|_| Some((i.str()?, i.str()?, i.str()?))).collect::<Option<_>>()?;
        let summary = i.str()?;
        let counts = [i.u64()?, i.u64()?, i.u64()?];
        let n = i.len()?;
        let nodes = (0..n)
            .map(|_| Some(NodeRec { uid: i.str()?, file: i.str()?, blob: i.span()?, plan: i.span()?, manifest: i.span()? }))
            .collect::<Option<_>>()?;
        i.0.is_empty().then_some(Saved {
            key,
            env,
            stamped_at_ns,
            tree,
            connection_files,
            compiled_folders,
            plan,
            manifest,
            semantic_manifest,
            nodes_file,
            plan_shared,
            manifest_shared,
            sources,
            metadata,
            load_warnings,
            plan_warnings,
            summary,
            counts,
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_reads_back_as_written_and_damage_is_refused() {
        let saved = Saved {
            key: "k".into(),
            env: vec![("HOME".into(), "ab".into())],
            stamped_at_ns: 7,
            tree: vec![Entry { path: "models/a.sql".into(), kind: Kind::File, len: 3, mtime_ns: 9 }],
            connection_files: vec![Entry { path: "/x/profiles.yml".into(), kind: Kind::Absent, len: 0, mtime_ns: 0 }],
            compiled_folders: vec![Entry { path: "p/models".into(), kind: Kind::Dir, len: 0, mtime_ns: 3 }],
            plan: Stamp { len: 1, mtime_ns: 2 },
            manifest: Stamp { len: 3, mtime_ns: 4 },
            semantic_manifest: Stamp { len: 8, mtime_ns: 9 },
            nodes_file: Stamp { len: 5, mtime_ns: 6 },
            plan_shared: None,
            manifest_shared: Some(Shared { len: 90, dirty: vec![(1, 30)], stamp: (100, 7) }),
            sources: (0, 2),
            metadata: (1, 20),
            load_warnings: vec!["w".into()],
            plan_warnings: vec![("model.p.a".into(), "DVTW201".into(), "coerced".into())],
            summary: "1 node".into(),
            counts: [1, 1, 0],
            nodes: vec![NodeRec { uid: "model.p.a".into(), file: "models/a.sql".into(), blob: (0, 10), plan: (5, 9), manifest: (7, 8) }],
        };
        let bytes = saved.encode();
        let back = Saved::decode(&bytes).expect("decodes");
        assert_eq!(back.encode(), bytes);
        assert_eq!(back.nodes[0].plan, (5, 9));
        assert!(Saved::decode(&bytes[..bytes.len() - 1]).is_none(), "a truncated state is refused");
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Saved::decode(&longer).is_none());
        assert!(Saved::decode(b"DVT-PARTIAL-1\n").is_none(), "another version's state is refused");
    }
}
