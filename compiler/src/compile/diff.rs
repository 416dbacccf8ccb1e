//! `dvtc diff old.json new.json`: what a PR changes in the plan, grouped.

use std::fmt::{self, Write};

use dvt_schema::plan::{Plan, PlanNode};

/// Differences between two plans.
#[derive(Debug, Default)]
pub struct PlanDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// (node, old, new)
    pub target_changed: Vec<(String, String, String)>,
    pub path_changed: Vec<(String, String, String)>,
    pub materialization_changed: Vec<(String, String, String)>,
    /// (node, unified diff of its SQL)
    pub sql_changed: Vec<(String, String)>,
    /// Nodes whose other plan fields changed (compute, bucket, tests, write strategy, …).
    pub other_changed: Vec<String>,
    pub version_changed: Option<(String, String)>,
    /// Reads of the new plan served by `--defer`: (node, upstream, where it is read from).
    /// Informational: they do not make plans differ.
    pub deferred: Vec<(String, String, String)>,
}

impl PlanDiff {
    /// True when nothing differs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.target_changed.is_empty()
            && self.path_changed.is_empty()
            && self.materialization_changed.is_empty()
            && self.sql_changed.is_empty()
            && self.other_changed.is_empty()
            && self.version_changed.is_none()
    }
}

/// Everything SQL about a node, in execution order, for a readable diff.
fn sql_text(n: &PlanNode) -> String {
    let mut s = String::new();
    if let Some(c) = &n.compiled_sql {
        let _ = writeln!(s, "-- compiled\n{c}");
    }
    if let Some(p) = &n.pushdown {
        for (label, list) in
            [("full_refresh", Some(&p.full_refresh)), ("incremental", p.incremental.as_ref()), ("replace", p.replace.as_ref())]
        {
            for st in list.into_iter().flatten() {
                let _ = writeln!(s, "-- {label}: {}\n{};", st.kind, st.sql);
            }
        }
    }
    if let Some(f) = &n.federation {
        for fr in &f.fragments {
            let _ = writeln!(s, "-- fragment {} on {} ({})\n{}", fr.name, fr.target, fr.dialect, fr.sql);
        }
        let _ = writeln!(s, "-- remainder ({})\n{}", f.compute_dialect, f.remainder);
        if let Some(r) = &f.remainder_incremental {
            let _ = writeln!(s, "-- remainder, incremental\n{r}");
        }
    }
    for h in n.pre_hooks.iter().chain(&n.post_hooks) {
        let _ = writeln!(s, "-- hook\n{h}");
    }
    for h in n.runtime_hooks.iter().flat_map(|r| r.pre.iter().chain(&r.post)) {
        let _ = writeln!(s, "-- hook, rendered at run time\n{h}");
    }
    s
}

fn path_name(p: &PlanNode) -> String {
    serde_json::to_value(p.path).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

/// Compares two plans.
pub fn diff(old: &Plan, new: &Plan) -> PlanDiff {
    let mut d = PlanDiff::default();
    if old.plan_version != new.plan_version {
        d.version_changed = Some((old.plan_version.clone(), new.plan_version.clone()));
    }
    for id in old.nodes.keys().filter(|k| !new.nodes.contains_key(*k)) {
        d.removed.push(id.clone());
    }
    for (id, n) in &new.nodes {
        for u in n.upstreams.iter().filter(|u| u.deferred) {
            let at = u.relation.as_ref().map_or_else(|| u.target.clone(), |r| format!("{} {}", u.target, r.rendered));
            d.deferred.push((id.clone(), u.unique_id.clone(), at));
        }
        let Some(o) = old.nodes.get(id) else {
            d.added.push(id.clone());
            continue;
        };
        let before = d.target_changed.len() + d.path_changed.len() + d.materialization_changed.len() + d.sql_changed.len();
        let rel =
            |p: &PlanNode| p.relation.as_ref().map_or_else(|| p.target.value.clone(), |r| format!("{} {}", p.target.value, r.rendered));
        if rel(o) != rel(n) {
            d.target_changed.push((id.clone(), rel(o), rel(n)));
        }
        if o.path != n.path {
            d.path_changed.push((id.clone(), path_name(o), path_name(n)));
        }
        if o.materialization.effective != n.materialization.effective || o.materialization.requested != n.materialization.requested {
            let m = |p: &PlanNode| {
                if p.materialization.requested == p.materialization.effective {
                    p.materialization.effective.clone()
                } else {
                    format!("{} (requested {})", p.materialization.effective, p.materialization.requested)
                }
            };
            d.materialization_changed.push((id.clone(), m(o), m(n)));
        }
        let (a, b) = (sql_text(o), sql_text(n));
        if a != b {
            let udiff = similar::TextDiff::from_lines(&a, &b)
                .unified_diff()
                .context_radius(2)
                .header(&format!("old/{id}"), &format!("new/{id}"))
                .to_string();
            d.sql_changed.push((id.clone(), udiff));
        }
        let after = d.target_changed.len() + d.path_changed.len() + d.materialization_changed.len() + d.sql_changed.len();
        if after == before && o != n {
            d.other_changed.push(id.clone());
        }
    }
    d
}

impl fmt::Display for PlanDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.deferred.is_empty() {
            writeln!(f, "deferred to the state ({}):", self.deferred.len())?;
            for (id, up, at) in &self.deferred {
                writeln!(f, "  {id} reads {up} from {at}")?;
            }
            writeln!(f)?;
        }
        if self.is_empty() {
            return writeln!(f, "plans are equal");
        }
        if let Some((a, b)) = &self.version_changed {
            writeln!(f, "plan_version: {a} -> {b}\n")?;
        }
        let list = |f: &mut fmt::Formatter<'_>, title: &str, items: &[String]| -> fmt::Result {
            if !items.is_empty() {
                writeln!(f, "{title} ({}):", items.len())?;
                for i in items {
                    writeln!(f, "  {i}")?;
                }
                writeln!(f)?;
            }
            Ok(())
        };
        let changes = |f: &mut fmt::Formatter<'_>, title: &str, items: &[(String, String, String)]| -> fmt::Result {
            if !items.is_empty() {
                writeln!(f, "{title} ({}):", items.len())?;
                for (id, a, b) in items {
                    writeln!(f, "  {id}: {a} -> {b}")?;
                }
                writeln!(f)?;
            }
            Ok(())
        };
        list(f, "nodes added", &self.added)?;
        list(f, "nodes removed", &self.removed)?;
        changes(f, "target changed", &self.target_changed)?;
        changes(f, "path changed", &self.path_changed)?;
        changes(f, "materialization changed", &self.materialization_changed)?;
        if !self.sql_changed.is_empty() {
            writeln!(f, "SQL changed ({}):", self.sql_changed.len())?;
            for (_, d) in &self.sql_changed {
                writeln!(f, "{d}")?;
            }
        }
        list(f, "other plan fields changed", &self.other_changed)
    }
}
