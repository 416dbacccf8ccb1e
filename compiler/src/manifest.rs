//! Builds the `dvtc parse` manifest artifact from a loaded project.

use std::collections::BTreeMap;

use dvt_schema::manifest::{
    DependsOn, MANIFEST_VERSION, Manifest, ManifestColumn, ManifestMacro, ManifestNode, ManifestSource, TestMetadata,
};

use crate::config::ConfigExt;
use crate::graph::Graph;
use crate::nodes::{Column, Project, ResourceType};

fn columns(cols: &crate::sorted_map::SortedMap<String, Column>) -> BTreeMap<String, ManifestColumn> {
    cols.iter()
        .map(|(k, c)| {
            (k.clone(), ManifestColumn { name: c.name.clone(), description: c.description.clone(), data_type: c.data_type.clone() })
        })
        .collect()
}

/// Node counts by resource type plus macros, in print order.
pub fn counts(project: &Project) -> BTreeMap<String, usize> {
    let mut c: BTreeMap<String, usize> = BTreeMap::new();
    for rt in ResourceType::ALL {
        c.insert(rt.as_str().to_string(), 0);
    }
    for n in project.nodes.values() {
        *c.entry(n.resource_type.as_str().to_string()).or_default() += 1;
    }
    c.insert("source".into(), project.sources.len());
    c.insert("macro".into(), project.macros.len());
    c.insert("doc".into(), project.docs.len());
    c
}

/// One node as the manifest lists it.
fn node_entry(n: &crate::nodes::Node) -> ManifestNode {
    ManifestNode {
        unique_id: n.unique_id.clone(),
        resource_type: n.resource_type.as_str().to_string(),
        package_name: n.package.clone(),
        name: n.name.clone(),
        fqn: n.fqn.clone(),
        original_file_path: n.file.clone(),
        config: n.config.to_btree_map(),
        tags: n.config.tags(),
        description: n.description.clone(),
        columns: columns(&n.columns),
        depends_on: DependsOn { nodes: n.depends_on.clone(), macros: n.macros.clone() },
        raw_code: n.raw.clone(),
        render_at_runtime: n.runtime_only.is_some(),
        test_metadata: n.test.as_ref().map(|t| TestMetadata {
            name: t.name.clone(),
            namespace: t.namespace.clone(),
            kwargs: t.kwargs.to_btree_map(),
        }),
        attached_node: n.test.as_ref().map(|t| t.attached_node.clone()),
        column_name: n.test.as_ref().and_then(|t| t.column_name.clone()),
    }
}

/// The manifest of `project` without its nodes, `parent_map` and `child_map`,
/// which [`Streamed`] serializes as it writes (never all copied at once).
pub fn build(project: &Project) -> Manifest {
    let counts = counts(project);
    // Written from the graph by `Streamed` (no copy of every id list).
    let (parent_map, child_map) = (BTreeMap::new(), BTreeMap::new());
    let nodes = BTreeMap::new();
    let sources = project
        .sources
        .values()
        .map(|s| {
            let src = ManifestSource {
                unique_id: s.unique_id.clone(),
                package_name: s.package.clone(),
                source_name: s.source_name.clone(),
                name: s.name.clone(),
                identifier: s.identifier.clone(),
                database: s.database.clone(),
                schema: s.schema.clone(),
                connection: s.connection.clone(),
                connection_level: if s.connection_level == dvt_schema::plan::Level::Config { "config" } else { "default" }.to_string(),
                fqn: s.fqn.clone(),
                original_file_path: s.file.clone(),
                description: s.description.clone(),
                columns: columns(&s.columns),
                tags: s.tags.clone(),
                config: s.config.to_btree_map(),
            };
            (s.unique_id.clone(), src)
        })
        .collect();
    let macros = project
        .macros
        .iter()
        .map(|m| {
            (
                m.unique_id(),
                ManifestMacro {
                    unique_id: m.unique_id(),
                    package_name: m.package.clone(),
                    name: m.name.clone(),
                    original_file_path: m.file.clone(),
                },
            )
        })
        .collect();
    let docs = project.docs.iter().map(|((p, n), v)| (format!("doc.{p}.{n}"), v.clone())).collect();
    Manifest {
        manifest_version: MANIFEST_VERSION.to_string(),
        project_name: project.name.clone(),
        nodes,
        sources,
        macros,
        docs,
        parent_map,
        child_map,
        counts,
    }
}

/// The manifest as it is written: `manifest` (built without nodes) with the
/// project's nodes turned into JSON a chunk at a time, in parallel within a
/// chunk; the same JSON as serializing the whole [`Manifest`].
pub struct Streamed<'a> {
    pub manifest: &'a Manifest,
    pub project: &'a Project,
    pub graph: &'a Graph,
}

impl serde::Serialize for Streamed<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let m = self.manifest;
        let mut st = ser.serialize_struct("Manifest", 9)?;
        st.serialize_field("manifest_version", &m.manifest_version)?;
        st.serialize_field("project_name", &m.project_name)?;
        st.serialize_field("nodes", &StreamedNodes(self.project))?;
        st.serialize_field("sources", &m.sources)?;
        st.serialize_field("macros", &m.macros)?;
        st.serialize_field("docs", &m.docs)?;
        st.serialize_field("parent_map", &Lineage { graph: self.graph, parents: true })?;
        st.serialize_field("child_map", &Lineage { graph: self.graph, parents: false })?;
        st.serialize_field("counts", &m.counts)?;
        st.end()
    }
}

/// `parent_map` (nodes) or `child_map` (nodes and sources) by id, from the graph.
struct Lineage<'a> {
    graph: &'a Graph,
    parents: bool,
}

impl serde::Serialize for Lineage<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Lineage { graph, parents } = *self;
        // Parents of nodes, children of nodes and sources, in id order: the graph's order.
        let ids: Vec<_> = match parents {
            true => graph.nodes_then_sources().0,
            false => graph.graph.node_indices().collect(),
        };
        let mut map = ser.serialize_map(Some(ids.len()))?;
        for n in ids {
            map.serialize_entry(graph.id(n), &if parents { graph.parents_at(n) } else { graph.children_at(n) })?;
        }
        map.end()
    }
}

struct StreamedNodes<'a>(&'a Project);

impl serde::Serialize for StreamedNodes<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let nodes: Vec<&crate::nodes::Node> = self.0.nodes.values().collect();
        let mut map = ser.serialize_map(Some(nodes.len()))?;
        entries_in_parallel(&mut map, &nodes, |n| &n.unique_id, |buf, n| serde_json::to_writer(buf, &node_entry(n)))?;
        map.end()
    }
}

/// Adds one map entry per item, in order: values written by `write` in
/// parallel 1,024 items at a time (so only a chunk's JSON is held at once), a
/// run of them to a buffer (see [`crate::partial::spans::in_runs`]).
pub(crate) fn entries_in_parallel<'t, M, T>(
    map: &mut M,
    items: &[&'t T],
    key: impl Fn(&'t T) -> &'t str,
    write: impl Fn(&mut Vec<u8>, &'t T) -> serde_json::Result<()> + Sync,
) -> Result<(), M::Error>
where
    M: serde::ser::SerializeMap,
    T: Sync,
{
    use crate::partial::spans::{RUN, in_runs};
    for chunk in items.chunks(1024) {
        let runs = in_runs(chunk, |buf, item| write(buf, item).map_err(std::io::Error::other)).map_err(serde::ser::Error::custom)?;
        for (run, (text, ends)) in chunk.chunks(RUN).zip(&runs) {
            // serde_json writes UTF-8.
            let text = std::str::from_utf8(text).map_err(serde::ser::Error::custom)?;
            let mut from = 0;
            for (item, &to) in run.iter().zip(ends) {
                map.serialize_entry(key(item), &crate::json_str::RawJson(&text[from..to]))?;
                from = to;
            }
        }
    }
    Ok(())
}
