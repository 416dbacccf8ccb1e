//! SPEC §2: target, compute and bucket of every node, with the level that won,
//! and the relation each node materializes into.

use std::collections::BTreeMap;
use std::sync::Arc;

use dvt_schema::plan::{Level, RelationRef, Resolved};
use minijinja::Value;

use crate::config::ConfigExt;
use crate::dialect::Dialect;
use crate::error::{DvtError, ErrorCode, Location, Result};
use crate::jinja::{Jinja, NodeCtx, Relation};
use crate::loader::{model_value, target_value};
use crate::nodes::{Node, Project, ResourceType};
use crate::profiles::Output;

/// Flags that override config (SPEC §2, level `cli`).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub target: Option<String>,
    pub compute: Option<String>,
    pub bucket: Option<String>,
}

/// The implicit bucket when buckets.yml has none.
pub const LOCAL_BUCKET: &str = "local";
/// The implicit compute when computes.yml has none.
pub const DEFAULT_COMPUTE: &str = "datafusion";

/// Every writing node's placement by unique id: looked up for each node and
/// upstream, never iterated (ids share long prefixes, which a sorted map compares
/// again at every level).
pub type Placements = std::collections::HashMap<String, Placement, foldhash::fast::RandomState>;

/// Where a node lives and writes.
#[derive(Debug, Clone)]
pub struct Placement {
    pub target: Resolved<String>,
    /// None for ephemerals, tests and analyses.
    pub relation: Option<RelationRef>,
}

fn resolved(value: String, level: Level) -> Resolved<String> {
    Resolved { value, level }
}

/// Target of a node that writes (model, seed, snapshot).
pub fn target_of(project: &Project, node: &Node, o: &Overrides) -> Result<Resolved<String>> {
    let r = if let Some(t) = &o.target {
        resolved(t.clone(), Level::Cli)
    } else if let Some(t) = node.config.str("target") {
        resolved(t.to_string(), Level::Config)
    } else {
        resolved(project.profile.default_target.clone(), Level::Default)
    };
    if !project.profile.outputs.contains_key(&r.value) {
        return Err(DvtError::new(
            ErrorCode::TargetNotFound,
            format!(
                "{} `{}` has target `{}`, which is not an output of profile `{}`",
                node.resource_type, node.name, r.value, project.profile.name
            ),
        )
        .at(Location::file(&node.file))
        .hint(format!("use one of: {}", project.profile.outputs.keys().cloned().collect::<Vec<_>>().join(", "))));
    }
    if project.profile.outputs[&r.value].kind == crate::loader::BUCKET_OUTPUT && node.resource_type != ResourceType::Model {
        return Err(DvtError::new(
            ErrorCode::TargetNotFound,
            format!(
                "{} `{}` has target `{}`, which is a bucket: only models are written to buckets",
                node.resource_type, node.name, r.value
            ),
        )
        .at(Location::file(&node.file))
        .hint("give it a database output as `target:`"));
    }
    Ok(r)
}

/// Compute of a federated node.
pub fn compute_of(project: &Project, node: &Node, o: &Overrides) -> Result<Resolved<String>> {
    let r = if let Some(c) = &o.compute {
        resolved(c.clone(), Level::Cli)
    } else if let Some(c) = node.config.str("compute") {
        resolved(c.to_string(), Level::Config)
    } else {
        resolved(project.computes.default.clone().unwrap_or_else(|| DEFAULT_COMPUTE.into()), Level::Default)
    };
    if !project.computes.entries.contains_key(&r.value) {
        let known = project.computes.entries.keys().cloned().collect::<Vec<_>>().join(", ");
        let (message, hint) = if r.level == Level::Default {
            (
                format!(
                    "federated {} `{}` needs a compute: computes.yml names no default (`target:`) and none called `{}`",
                    node.resource_type, node.name, r.value
                ),
                format!("add `target: <compute>` to the profile's section of computes.yml (one of: {known})"),
            )
        } else {
            (
                format!("{} `{}` asks for compute `{}`, which computes.yml does not define", node.resource_type, node.name, r.value),
                format!("use one of: {known}"),
            )
        };
        return Err(DvtError::new(ErrorCode::ConfigInvalid, message).at(Location::file(&node.file)).hint(hint));
    }
    Ok(r)
}

/// Bucket of a federated node or seed.
pub fn bucket_of(project: &Project, node: &Node, o: &Overrides) -> Result<Resolved<String>> {
    let r = if let Some(b) = &o.bucket {
        resolved(b.clone(), Level::Cli)
    } else if let Some(b) = node.config.str("bucket") {
        resolved(b.to_string(), Level::Config)
    } else {
        resolved(project.buckets.default.clone().unwrap_or_else(|| LOCAL_BUCKET.into()), Level::Default)
    };
    if r.value != LOCAL_BUCKET && !project.buckets.entries.contains_key(&r.value) {
        return Err(DvtError::new(
            ErrorCode::ConfigInvalid,
            format!("{} `{}` asks for bucket `{}`, which buckets.yml does not define", node.resource_type, node.name, r.value),
        )
        .at(Location::file(&node.file))
        .hint(format!("use one of: {}", project.buckets.entries.keys().cloned().collect::<Vec<_>>().join(", "))));
    }
    Ok(r)
}

/// A relation reference on an output.
pub fn relation_ref(output: &Output, database: Option<String>, schema: Option<String>, identifier: String) -> RelationRef {
    let dialect = Dialect::from_adapter(&output.kind).unwrap_or(Dialect::Postgres);
    let database = if dialect.three_part_names() { database } else { None };
    let rendered = dialect.relation(database.as_deref(), schema.as_deref(), &identifier);
    RelationRef { target: output.name.clone(), database, schema, identifier, rendered }
}

/// Whether any package overrides a naming macro (then it must be rendered;
/// otherwise the built-in rules are applied natively, which is much faster).
pub fn naming_overridden(jinja: &Jinja) -> bool {
    const NAMING: [&str; 3] = ["generate_schema_name", "generate_alias_name", "generate_database_name"];
    jinja
        .index
        .defs
        .values()
        .any(|d| d.package != crate::jinja::BUILTIN_PACKAGE && NAMING.iter().any(|n| d.name == *n || d.name.ends_with(&format!("__{n}"))))
}

/// database/schema/identifier of a writing node, through the (overridable) naming macros.
pub fn relation_of(project: &Project, jinja: &Jinja, node: &Node, output: &Output, fast: bool) -> Result<RelationRef> {
    let custom_schema = node.config.str("schema").map(str::to_string);
    let custom_db = node.config.str("database").map(str::to_string);
    let custom_alias = node.config.str("alias").map(str::to_string);
    // Legacy snapshot configs name the schema/database directly.
    if node.resource_type == ResourceType::Snapshot
        && let Some(s) = node.config.str("target_schema")
    {
        let db = node.config.str("target_database").map(str::to_string).or(output.database.clone());
        return Ok(relation_ref(output, db, Some(s.to_string()), custom_alias.unwrap_or_else(|| node.name.clone())));
    }
    if fast {
        let schema = match custom_schema {
            None => output.schema.clone(),
            Some(c) if c.trim().is_empty() => output.schema.clone(),
            Some(c) => format!("{}_{}", output.schema, c.trim()),
        };
        let database = custom_db.map(|d| d.trim().to_string()).or(output.database.clone());
        // dbt's default alias: the name, with `_v<version>` for a versioned model.
        let identifier = custom_alias.map(|a| a.trim().to_string()).unwrap_or_else(|| match &node.version {
            Some(v) => format!("{}_v{}", node.name, v.replace('.', "_")),
            None => node.name.clone(),
        });
        return Ok(relation_ref(output, database, Some(schema), identifier));
    }
    let dialect = Dialect::from_adapter(&output.kind).unwrap_or(Dialect::Postgres);
    let target = target_value(&project.profile.name, output);
    let ctx = Arc::new(NodeCtx {
        execute: true,
        ..crate::loader::node_ctx(node, dialect, Arc::new(NoRefs), project.vars.clone(), target.clone())
    });
    let mut m: BTreeMap<&str, Value> = BTreeMap::new();
    m.insert("target", target);
    m.insert("model", model_value(node));
    let ctx_val = Value::from(m);
    let call = |name: &str, custom: Option<String>| -> Result<String> {
        let arg = custom.map_or(Value::from(()), Value::from);
        let v = jinja
            .call_macro(ctx.clone(), ctx_val.clone(), name, &[arg, model_value(node)])
            .map_err(|e| e.or_at(Location::file(&node.file)))?;
        Ok(v.to_string().trim().to_string())
    };
    let schema = call("generate_schema_name", custom_schema)?;
    let database = call("generate_database_name", custom_db)?;
    let identifier = call("generate_alias_name", custom_alias)?;
    let database = if database.is_empty() { None } else { Some(database) };
    Ok(relation_ref(output, database, Some(schema), identifier))
}

/// Naming macros never call `ref`; a resolver that says so.
struct NoRefs;

impl crate::jinja::Resolver for NoRefs {
    fn resolve_ref(&self, _from: &str, call: &crate::jinja::RefCall) -> std::result::Result<Relation, String> {
        Err(format!("ref('{}') cannot be used in a naming macro", call.name))
    }
    fn resolve_source(&self, s: &str, t: &str) -> std::result::Result<Relation, String> {
        Err(format!("source('{s}', '{t}') cannot be used in a naming macro"))
    }
    fn doc(&self, _package: Option<&str>, _name: &str, _node_package: &str) -> Option<(String, String)> {
        None
    }
}

/// Places every writing node (models, seeds, snapshots), in parallel.
pub fn place_all(project: &Project, jinja: &Jinja, o: &Overrides) -> Result<Placements> {
    use rayon::prelude::*;
    let fast = !naming_overridden(jinja);
    let writers: Vec<&Node> = project
        .nodes
        .values()
        .filter(|n| matches!(n.resource_type, ResourceType::Model | ResourceType::Seed | ResourceType::Snapshot))
        .collect();
    let placed: Vec<Result<(String, Placement)>> = writers
        .par_iter()
        .map(|n| {
            let target = target_of(project, n, o)?;
            let output = &project.profile.outputs[&target.value];
            let relation =
                if n.config.str("materialized") == Some("ephemeral") { None } else { Some(relation_of(project, jinja, n, output, fast)?) };
            Ok((n.unique_id.clone(), Placement { target, relation }))
        })
        .collect();
    placed.into_iter().collect()
}
