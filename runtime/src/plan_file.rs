//! Reading a plan file, with a clear error for files from another version.

use std::path::Path;

use dvt_compiler::error::{DvtError, ErrorCode, Result};
use dvt_schema::plan::{PLAN_VERSION, Plan};

/// Reads and version-checks a plan.
pub fn read(path: &Path) -> Result<Plan> {
    let text = std::fs::read_to_string(path).map_err(|e| DvtError::io(path, e))?;
    let raw: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| DvtError::new(ErrorCode::PlanInvalid, format!("{} is not JSON: {e}", path.display())))?;
    let version = raw.get("plan_version").and_then(|v| v.as_str()).unwrap_or("");
    if !compatible(version) {
        return Err(DvtError::new(
            ErrorCode::PlanInvalid,
            format!("{} has plan_version `{version}`; this dvtr reads {}.x", path.display(), major(PLAN_VERSION)),
        )
        .hint("recompile the plan with a dvtc of the same major version"));
    }
    serde_json::from_value(raw).map_err(|e| DvtError::new(ErrorCode::PlanInvalid, format!("{} is not a valid plan: {e}", path.display())))
}

fn major(v: &str) -> &str {
    v.split('.').next().unwrap_or("")
}

/// Same major version (semver): readable.
pub fn compatible(version: &str) -> bool {
    !version.is_empty() && major(version) == major(PLAN_VERSION)
}
