//! Reading a plan file (`dvtr execute`): version-checked, and checked for the
//! references the runtime follows, so a damaged or hand-edited plan is an error,
//! never a panic.

use std::path::Path;

use crate::error::{DvtError, ErrorCode, Result};
use dvt_schema::plan::{PLAN_VERSION, Plan};

/// Reads, version-checks and validates a plan.
pub fn read(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path).map_err(|e| DvtError::io(path, e))?;
    parse(&text, &path.display().to_string())
}

/// A plan from its JSON text (`display` names it in errors).
pub fn parse(text: &str, display: &str) -> Result<Plan> {
    let raw: serde_json::Value =
        serde_json::from_str(text).map_err(|e| DvtError::new(ErrorCode::PlanInvalid, format!("{display} is not JSON: {e}")))?;
    let version = raw.get("plan_version").and_then(|v| v.as_str()).unwrap_or("");
    if !compatible(version) {
        return Err(DvtError::new(
            ErrorCode::PlanInvalid,
            format!("{display} has plan_version `{version}`; this dvtr reads {}.x", major(PLAN_VERSION)),
        )
        .hint("recompile the plan with a dvtc of the same major version"));
    }
    let plan: Plan =
        serde_json::from_value(raw).map_err(|e| DvtError::new(ErrorCode::PlanInvalid, format!("{display} is not a valid plan: {e}")))?;
    validate(&plan).map_err(|m| DvtError::new(ErrorCode::PlanInvalid, format!("{display} is not a valid plan: {m}")))?;
    Ok(plan)
}

/// Every reference the runtime follows points at something the plan defines.
pub fn validate(plan: &Plan) -> std::result::Result<(), String> {
    let place = |name: &str| plan.targets.contains_key(name) || plan.buckets.contains_key(name);
    let mut seen = std::collections::BTreeSet::new();
    for id in &plan.order {
        if !plan.nodes.contains_key(id) {
            return Err(format!("`order` names `{id}`, which is not a node of the plan"));
        }
        if !seen.insert(id) {
            return Err(format!("`order` names `{id}` twice"));
        }
    }
    for (id, n) in &plan.nodes {
        if &n.unique_id != id {
            return Err(format!("node `{id}` has unique_id `{}`", n.unique_id));
        }
        if !place(&n.target.value) {
            return Err(format!("node `{id}` runs on `{}`, which is not a target of the plan", n.target.value));
        }
        if let Some(c) = n.compute.as_ref().filter(|c| !plan.computes.contains_key(&c.value)) {
            return Err(format!("node `{id}` uses compute `{}`, which the plan does not define", c.value));
        }
        if let Some(b) = n.bucket.as_ref().filter(|b| !plan.buckets.contains_key(&b.value)) {
            return Err(format!("node `{id}` stages in bucket `{}`, which the plan does not define", b.value));
        }
        for u in &n.upstreams {
            if let Some(t) = u.target.split(',').find(|t| !t.is_empty() && !place(t)) {
                return Err(format!("node `{id}` reads `{}` on `{t}`, which is not a target of the plan", u.unique_id));
            }
        }
        for f in n.federation.iter().flat_map(|f| &f.fragments) {
            if !place(&f.target) {
                return Err(format!("node `{id}` has a fragment on `{}`, which is not a target of the plan", f.target));
            }
        }
    }
    Ok(())
}

fn major(v: &str) -> &str {
    v.split('.').next().unwrap_or("")
}

/// Same major version (semver): readable.
pub fn compatible(version: &str) -> bool {
    !version.is_empty() && major(version) == major(PLAN_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> serde_json::Value {
        serde_json::json!({
            "plan_version": PLAN_VERSION, "project_name": "p",
            "invocation": {"target": null, "compute": null, "bucket": null, "full_refresh": false, "select": [], "exclude": [], "selector": null, "var_names": []},
            "targets": {"t": {"name": "t", "type": "duckdb", "database": null, "schema": "main"}},
            "computes": {}, "buckets": {}, "sources": {}, "nodes": {}, "order": [], "warnings": []
        })
    }

    #[test]
    fn dangling_references_and_other_versions_are_errors_not_panics() {
        if let Err(e) = parse(&plan().to_string(), "p.json") {
            panic!("{}", e.message);
        }
        let mut p = plan();
        p["order"] = serde_json::json!(["model.p.gone"]);
        let e = parse(&p.to_string(), "p.json").unwrap_err();
        assert_eq!(e.code, ErrorCode::PlanInvalid);
        assert!(e.message.contains("`order` names `model.p.gone`"), "{}", e.message);
        let mut p = plan();
        p["plan_version"] = serde_json::json!("2.0.0");
        assert!(parse(&p.to_string(), "p.json").unwrap_err().message.contains("plan_version `2.0.0`"));
        assert!(parse("{", "p.json").unwrap_err().message.contains("not JSON"));
    }
}
