//! Buckets (SPEC §1, `buckets.yml`) as OpenDAL operators: where federated
//! nodes spill fragments. Location settings come from the plan (no secrets);
//! credentials are rendered from `buckets.yml` here, at run time, and live
//! only in memory: messages name a bucket and a setting, never a value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use dvt_compiler::error::{DvtError, ErrorCode, Location, Result};
use dvt_schema::plan::PlanBucket;
use opendal::Operator;
use serde_json::Value as Json;

/// The bucket used when buckets.yml names none (SPEC §2.3: a folder under `.dvt/`).
pub const LOCAL_BUCKET: &str = "local";
/// Where the implicit bucket keeps its files, relative to the project.
pub const LOCAL_ROOT: &str = ".dvt/staging";

/// The settings of one bucket, secrets included (never printed).
#[derive(Clone)]
struct Entry {
    kind: String,
    settings: BTreeMap<String, String>,
}

/// Every bucket a run may use, opened on first use.
pub struct Buckets {
    project_dir: PathBuf,
    /// From buckets.yml, rendered (secrets included).
    file: BTreeMap<String, Entry>,
    open: Mutex<BTreeMap<String, Arc<Bucket>>>,
}

/// An open bucket.
pub struct Bucket {
    pub name: String,
    /// `file`, `s3`, `gcs` or `azure`.
    pub kind: String,
    pub op: Operator,
    /// A local folder DataFusion may spill to directly (`file` buckets).
    pub local_root: Option<PathBuf>,
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Settings hold credentials: names only.
        write!(f, "Buckets({:?})", self.file.keys().collect::<Vec<_>>())
    }
}

impl Buckets {
    /// No buckets.yml: only the implicit local folder (and what plans describe).
    pub fn none(project_dir: &Path) -> Self {
        Buckets { project_dir: project_dir.to_path_buf(), file: BTreeMap::new(), open: Mutex::new(BTreeMap::new()) }
    }

    /// The buckets of `profile` in `buckets.yml` (same lookup as profiles.yml),
    /// `{{ env_var(...) }}` rendered now.
    pub fn load(profiles_dir: Option<&Path>, project_dir: &Path, profile: &str) -> Result<Self> {
        let mut out = Buckets::none(project_dir);
        let dirs = dvt_compiler::profiles::search_dirs(profiles_dir, project_dir);
        let Some(path) = dirs.iter().map(|d| d.join("buckets.yml")).find(|p| p.is_file()) else { return Ok(out) };
        let text = std::fs::read_to_string(&path).map_err(|e| DvtError::io(&path, e))?;
        let doc: BTreeMap<String, Json> = dvt_compiler::yaml::parse(&text, "buckets.yml")?;
        let section = doc.get(profile).or_else(|| if doc.len() == 1 { doc.values().next() } else { None });
        for (name, o) in section.and_then(|s| s.get("buckets")).and_then(Json::as_object).into_iter().flatten() {
            let settings = crate::credentials::render_settings(o, &format!("bucket `{name}`"), "buckets.yml")?;
            let kind = settings.get("type").cloned().ok_or_else(|| {
                DvtError::new(ErrorCode::ConfigInvalid, format!("bucket `{name}` has no `type:`")).at(Location::file("buckets.yml"))
            })?;
            out.file.insert(name.clone(), Entry { kind, settings });
        }
        Ok(out)
    }

    /// Opens (once) the bucket `name` as the plan describes it, with its
    /// credentials from buckets.yml.
    pub fn get(&self, name: &str, described: Option<&PlanBucket>) -> std::result::Result<Arc<Bucket>, String> {
        if let Some(b) = self.open.lock().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(b);
        }
        let entry = match (self.file.get(name), described) {
            (Some(e), _) => e.clone(),
            (None, Some(p)) if p.kind != LOCAL_BUCKET => Entry { kind: p.kind.clone(), settings: p.settings.clone() },
            (None, _) if name == LOCAL_BUCKET => {
                Entry { kind: "file".into(), settings: BTreeMap::from([("root".into(), LOCAL_ROOT.into())]) }
            }
            (None, _) => return Err(format!("bucket `{name}` is not defined in buckets.yml")),
        };
        let bucket = Arc::new(self.open_entry(name, &entry)?);
        if let Ok(mut m) = self.open.lock() {
            m.insert(name.to_string(), bucket.clone());
        }
        Ok(bucket)
    }

    fn open_entry(&self, name: &str, e: &Entry) -> std::result::Result<Bucket, String> {
        install_http();
        let get = |k: &str| e.settings.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let need = |k: &str| get(k).ok_or_else(|| format!("bucket `{name}` ({}) needs `{k}:` in buckets.yml", e.kind));
        let prefix = get("prefix").unwrap_or("/");
        let failed = |err: opendal::Error| format!("bucket `{name}` ({}): {}", e.kind, err.kind());
        let (op, local_root) = match e.kind.as_str() {
            "file" | "fs" | "local" => {
                let root = get("root").or(get("path")).unwrap_or(LOCAL_ROOT);
                let root = if Path::new(root).is_absolute() { PathBuf::from(root) } else { self.project_dir.join(root) };
                let op = Operator::new(opendal::services::Fs::default().root(&root.to_string_lossy())).map_err(failed)?;
                (op, Some(root))
            }
            "s3" => {
                let mut b =
                    opendal::services::S3::default().bucket(need("bucket")?).root(prefix).region(get("region").unwrap_or("us-east-1"));
                if let Some(v) = get("endpoint") {
                    b = b.endpoint(v);
                }
                if let Some(v) = get("access_key_id") {
                    b = b.access_key_id(v);
                }
                if let Some(v) = get("secret_access_key") {
                    b = b.secret_access_key(v);
                }
                if get("access_key_id").is_none() {
                    // No keys in buckets.yml: a public bucket, read and written unsigned.
                    b = b.skip_signature();
                }
                if let Some(v) = get("session_token") {
                    b = b.session_token(v);
                }
                if get("virtual_host_style").is_some_and(|v| v == "true") {
                    b = b.enable_virtual_host_style();
                }
                // Settings come from buckets.yml only, not from ~/.aws or the environment.
                b = b.disable_config_load();
                (Operator::new(b).map_err(failed)?, None)
            }
            "gcs" => {
                let mut b = opendal::services::Gcs::default().bucket(need("bucket")?).root(prefix);
                if let Some(v) = get("endpoint") {
                    b = b.endpoint(v);
                }
                if let Some(v) = get("credential") {
                    b = b.credential(v);
                }
                if let Some(v) = get("credential_path") {
                    b = b.credential_path(v);
                }
                (Operator::new(b).map_err(failed)?, None)
            }
            "azure" | "azblob" => {
                let mut b = opendal::services::Azblob::default().container(need("container")?).root(prefix);
                if let Some(v) = get("endpoint") {
                    b = b.endpoint(v);
                }
                if let Some(v) = get("account_name") {
                    b = b.account_name(v);
                }
                if let Some(v) = get("account_key") {
                    b = b.account_key(v);
                }
                (Operator::new(b).map_err(failed)?, None)
            }
            other => return Err(format!("bucket `{name}` has type `{other}`; DVT knows file, s3, gcs and azure")),
        };
        Ok(Bucket { name: name.to_string(), kind: e.kind.clone(), op, local_root })
    }
}

/// The process-wide HTTP client of the s3/gcs/azure operators (reqwest over
/// rustls with ring, as the database connections use), installed once.
fn install_http() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Another part of the runtime may have installed ring already; either way ring is the provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        opendal_http_transport_reqwest::install_default();
    });
}

impl Bucket {
    /// Makes the bucket readable by a DataFusion session (through the same
    /// operator, so the same credentials); returns the URL its paths hang under.
    pub fn register(&self, ctx: &datafusion::prelude::SessionContext) -> std::result::Result<String, String> {
        let host: String = self.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
        let url =
            datafusion::execution::object_store::ObjectStoreUrl::parse(format!("dvt-bucket://b-{host}")).map_err(|e| e.to_string())?;
        ctx.register_object_store(url.as_ref(), Arc::new(object_store_opendal::OpendalStore::new(self.op.clone())));
        Ok(url.as_str().to_string())
    }

    /// Writes, reads back and deletes a probe object (`dvtr debug`, `dvtr sync`).
    pub fn probe(&self) -> std::result::Result<(), String> {
        let path = format!("_dvt_probe/{}", std::process::id());
        crate::compute::block_on(async {
            self.op.write(&path, b"dvt".to_vec()).await.map_err(|e| self.error("write", &e))?;
            let back = self.op.read(&path).await.map_err(|e| self.error("read", &e))?;
            self.op.delete(&path).await.map_err(|e| self.error("delete", &e))?;
            if back.to_vec() != b"dvt" { Err(format!("bucket `{}` returned other bytes than written", self.name)) } else { Ok(()) }
        })
    }

    /// An OpenDAL error as a message without settings (they may hold credentials).
    pub fn error(&self, doing: &str, e: &opendal::Error) -> String {
        // `Error`'s Display lists its context (endpoint, bucket, path), never credentials;
        // the message itself may quote a server's answer.
        format!("bucket `{}` ({}): {doing} failed: {e}", self.name, self.kind)
    }
}
