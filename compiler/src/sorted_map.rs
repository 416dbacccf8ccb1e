//! A map kept as one sorted vector, for the small maps every node carries
//! (its config, a test's arguments).
//!
//! A `BTreeMap` allocates a whole 11-slot leaf for its first entry: ~1.2 kB for
//! `String` → JSON, so a test's two-key config took 1.2 kB, and each of the
//! 10,000s of nodes paid it again whenever its config was cloned for a render.
//! Here two keys take two slots. Same order, same lookups (binary search),
//! same serialized form as the `BTreeMap` it replaces (keys are strings); inserting is linear,
//! which is cheap at these sizes.

use std::borrow::Borrow;
use std::fmt;

/// Entries sorted by key, each key once.
#[derive(Clone, PartialEq, Eq)]
pub struct SortedMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap { entries: Vec::new() }
    }
}

impl<K: Ord + AsRef<[u8]>, V> SortedMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find<Q: Ord + AsRef<[u8]> + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        // The first bytes decide most comparisons of config keys (`alias`, `materialized`,
        // `schema`, …); comparing them inline saves a `memcmp` call per step, and a lookup
        // is made for every key a node's compilation reads. Same order as `cmp`.
        let first = key.as_ref().first();
        self.entries.binary_search_by(|(k, _)| {
            let k = k.borrow();
            match (k.as_ref().first(), first) {
                (Some(a), Some(b)) if a != b => a.cmp(b),
                _ => k.cmp(key),
            }
        })
    }

    pub fn get<Q: Ord + AsRef<[u8]> + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    pub fn get_mut<Q: Ord + AsRef<[u8]> + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    pub fn contains_key<Q: Ord + AsRef<[u8]> + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Sets `key` to `value`; an existing key keeps its place and gives back its old value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        // Keys often come in order: appending needs no search.
        if self.entries.last().is_none_or(|(last, _)| *last < key) {
            self.entries.push((key, value));
            return None;
        }
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove<Q: Ord + AsRef<[u8]> + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }

    /// The value of `key`, inserted by `make` when absent.
    pub fn entry_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (key, make()));
                i
            }
        };
        &mut self.entries[i].1
    }

    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> + ExactSizeIterator {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&K, &mut V)> + ExactSizeIterator {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> + ExactSizeIterator {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> + ExactSizeIterator {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut V> + ExactSizeIterator {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    /// A copy as a `BTreeMap` (the artifact types' maps).
    pub fn to_btree_map(&self) -> std::collections::BTreeMap<K, V>
    where
        K: Clone,
        V: Clone,
    {
        self.entries.iter().cloned().collect()
    }
}

impl<K: Ord + AsRef<[u8]>, V> FromIterator<(K, V)> for SortedMap<K, V> {
    /// As a `BTreeMap` collects: for a repeated key, the last value wins.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut entries: Vec<(K, V)> = iter.into_iter().collect();
        // Stable, so equal keys stay in arrival order and the last one is kept below.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<(K, V)> = Vec::with_capacity(entries.len());
        for (k, v) in entries {
            match out.last_mut() {
                Some(last) if last.0 == k => last.1 = v,
                _ => out.push((k, v)),
            }
        }
        SortedMap { entries: out }
    }
}

impl<K: Ord + AsRef<[u8]>, V> Extend<(K, V)> for SortedMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl<K: Ord + AsRef<[u8]>, V, const N: usize> From<[(K, V); N]> for SortedMap<K, V> {
    fn from(entries: [(K, V); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl<K, V> IntoIterator for SortedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'a, K, V> IntoIterator for &'a SortedMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::iter::Map<std::slice::Iter<'a, (K, V)>, fn(&'a (K, V)) -> (&'a K, &'a V)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<K: Ord + AsRef<[u8]> + Borrow<Q>, Q: Ord + AsRef<[u8]> + ?Sized, V> std::ops::Index<&Q> for SortedMap<K, V> {
    type Output = V;
    fn index(&self, key: &Q) -> &V {
        self.get(key).expect("no entry for this key")
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for SortedMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.entries.iter().map(|(k, v)| (k, v))).finish()
    }
}

impl<K: serde::Serialize, V: serde::Serialize> serde::Serialize for SortedMap<K, V> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_map(self.entries.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de, K: Ord + AsRef<[u8]> + serde::Deserialize<'de>, V: serde::Deserialize<'de>> serde::Deserialize<'de> for SortedMap<K, V> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visit<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K: Ord + AsRef<[u8]> + serde::Deserialize<'de>, V: serde::Deserialize<'de>> serde::de::Visitor<'de> for Visit<K, V> {
            type Value = SortedMap<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(access.size_hint().unwrap_or(0).min(4096));
                while let Some(entry) = access.next_entry()? {
                    entries.push(entry);
                }
                Ok(entries.into_iter().collect())
            }
        }
        de.deserialize_map(Visit(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// The same operations on a `BTreeMap` and a `SortedMap` leave the same entries.
    #[test]
    fn behaves_as_a_btree_map() {
        let ops: [(&str, i32); 9] = [("m", 1), ("c", 2), ("x", 3), ("c", 4), ("a", 5), ("z", 6), ("m", 7), ("b", 8), ("a", 9)];
        let (mut tree, mut sorted) = (BTreeMap::new(), SortedMap::new());
        for (k, v) in ops {
            assert_eq!(tree.insert(k.to_string(), v), sorted.insert(k.to_string(), v), "insert {k}");
        }
        assert_eq!(tree.remove("x"), sorted.remove("x"));
        assert_eq!(tree.remove("none"), sorted.remove("none"));
        *tree.entry("q".to_string()).or_insert(0) += 10;
        *sorted.entry_or_insert_with("q".to_string(), || 0) += 10;
        *tree.entry("q".to_string()).or_insert(0) += 1;
        *sorted.entry_or_insert_with("q".to_string(), || 0) += 1;
        let pairs = |m: &SortedMap<String, i32>| m.iter().map(|(k, v)| (k.clone(), *v)).collect::<Vec<_>>();
        assert_eq!(tree.clone().into_iter().collect::<Vec<_>>(), pairs(&sorted));
        assert_eq!(tree.get("c"), sorted.get("c"));
        assert!(sorted.contains_key("z") && !sorted.contains_key("x"));
        let collected: SortedMap<String, i32> = ops.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        let tree_collected: BTreeMap<String, i32> = ops.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(pairs(&collected), tree_collected.into_iter().collect::<Vec<_>>(), "the last value of a key wins");
        assert_eq!(serde_json::to_string(&sorted).unwrap(), serde_json::to_string(&tree).unwrap());
        let back: SortedMap<String, i32> = serde_json::from_str(r#"{"b": 1, "a": 2, "b": 3}"#).unwrap();
        assert_eq!(pairs(&back), [("a".to_string(), 2), ("b".to_string(), 3)]);
    }
}
