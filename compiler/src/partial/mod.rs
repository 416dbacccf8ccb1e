//! Incremental compile: dbt's partial parsing, done so that the result is what a
//! cold compile writes, byte for byte.
//!
//! A whole `dvtc compile` (no selection, default output) saves what it read —
//! every file of the project tree by size and modification time, the connection
//! files, the environment variables templates asked for, a digest of the binary
//! and the options — plus a snapshot of every loaded node and where each node's
//! entry is in `plan.json` and `manifest.json` (see [`store`]).
//!
//! The next compile with the same options compares the tree with it:
//! - nothing changed: the artifacts stand (the manifest gets its new timestamp);
//! - only model `.sql` files changed: each is rendered again as the loader
//!   renders it; if what the render observed (`config()`, refs, sources, macros)
//!   is what it observed before, nothing else in the project can differ, so the
//!   node is compiled alone — against its upstreams' snapshots — and its entries
//!   replace the old ones in the artifacts (the rest is copied by the kernel);
//! - anything else (a YAML, macro, project or connection file; a file added or
//!   removed; a changed `config()` or ref; another binary or other options):
//!   a whole compile, which saves a new state.
//!
//! A change whose effect can reach other nodes' output also compiles the whole
//! project: the changed model is ephemeral (inlined elsewhere), federated or read
//! by a federated node (whose fragment types trace through its SQL), has
//! warnings, or the project renders something that depends on more than its
//! files (`graph`, `selected_resources`, the time or invocation id).

pub mod inputs;
mod reuse;
mod save;
pub mod spans;
mod store;
mod volatile;

pub use reuse::{Reused, reuse};
pub use save::{Written, counts, save};
pub use volatile::note_rendered;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::compile::CompileOptions;
use crate::loader::LoadOptions;
use crate::nodes::Node;
use inputs::Entry;
pub use inputs::record_env;
use store::Saved;

const STATE: &str = ".dvt_partial";
const SNAPSHOTS: &str = ".dvt_partial_nodes";

/// A node as loaded, with what reusing it needs.
#[derive(Deserialize)]
struct Snapshot {
    node: Node,
    /// Unit tests of it.
    units: Vec<String>,
    /// Why a change to its file needs a whole compile, if it does.
    whole: Option<String>,
}

/// [`Snapshot`] as written (borrowing: 22,000 nodes are not copied to be saved).
#[derive(Serialize)]
struct SnapshotOf<'a> {
    node: &'a Node,
    units: &'a [String],
    whole: Option<String>,
}

/// Whether a compile with these options can reuse or save state: a whole
/// compile of the project into the default plan path.
pub fn eligible(opts: &CompileOptions) -> bool {
    let s = &opts.selection;
    opts.only.is_none()
        && opts.live.is_none()
        && opts.defer.is_none()
        && s.select.is_empty()
        && s.exclude.is_empty()
        && s.selector.is_none()
        && s.resource_types.is_empty()
        && s.exclude_resource_types.is_empty()
        && s.state.is_none()
}

/// What the state is keyed by: this binary, the options and the project folder.
fn key(lo: &LoadOptions, opts: &CompileOptions, project_dir: &Path) -> String {
    let exe = std::env::current_exe().map(|p| inputs::probe(&p)).ok();
    let exe = exe.map(|e| (e.len, e.mtime_ns));
    let text = format!("{}\0{exe:?}\0{}\0{lo:?}\0{opts:?}", env!("CARGO_PKG_VERSION"), project_dir.display());
    crate::hex::encode(&Sha256::digest(text.as_bytes()))
}

/// Top-level folders the compile writes rather than reads.
fn outputs(file: &crate::project::ProjectFile) -> Vec<String> {
    let mut skip = vec!["logs".to_string(), "target".to_string()];
    let configured = Path::new(&file.target_path()).components().next().map(|c| c.as_os_str().to_string_lossy().into_owned());
    skip.extend(configured.filter(|c| !skip.contains(c)));
    skip
}

/// What the loader reads, stamped while it reads: the stamp time comes first,
/// so a file that changes during the compile counts as changed next time.
pub struct Inputs {
    project_dir: PathBuf,
    stamped_at_ns: u64,
    tree: Vec<Entry>,
    connection_files: Vec<Entry>,
}

impl Inputs {
    /// `None` when the project cannot be found (the loader reports why).
    /// `stamped_at_ns`: taken before the loader starts (see [`now_ns`]); the tree
    /// may be walked while the loader reads it, since a file modified after that
    /// time counts as changed next time.
    pub fn stamp(lo: &LoadOptions, stamped_at_ns: u64) -> Option<Inputs> {
        let project_dir = std::fs::canonicalize(&lo.project_dir).ok()?;
        let file = crate::project::load_project_file(&project_dir, "").ok()?.file;
        let tree = inputs::tree(&project_dir, &outputs(&file));
        let dirs = crate::profiles::search_dirs(lo.profiles_dir.as_deref(), &project_dir);
        Some(Inputs { connection_files: inputs::connection_files(&dirs), tree, project_dir, stamped_at_ns })
    }
}

/// Now, in nanoseconds since the epoch.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn write_state(path: &Path, saved: &Saved) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, saved.encode())?;
    std::fs::rename(&tmp, path)
}
