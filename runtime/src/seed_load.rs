//! Loading seeds into a staging table: the engine's own CSV reader where it
//! reads the file exactly as DVT's does (PostgreSQL `COPY … CSV`, DuckDB
//! `read_csv`), else DVT's streaming reader through the engine's bulk path.
//! The file's SHA-256 is checked against the plan on the other core while
//! it loads; a mismatch fails the seed before anything is swapped in.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use dvt_compiler::dialect::Dialect;
use dvt_schema::plan::{Plan, PlanNode, SeedPlan, Statement};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::buckets::Bucket;
use crate::connectors::{self, Connection, RelationKind};
use crate::write::{Env, check_columns};

/// One pass over a file: its SHA-256 (hex) and whether it has an empty line
/// (`\n\n` or `\n\r\n`, possibly inside a quoted value — DVT's reader skips
/// empty lines, engines' CSV readers do not).
fn file_checks(path: &Path) -> Result<(String, bool), String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let (mut prev, mut blank) = ([0u8; 2], false);
    loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            return Ok((hex, blank));
        }
        h.update(&buf[..n]);
        if !blank {
            for &b in &buf[..n] {
                if b == b'\n' && (prev[1] == b'\n' || (prev[1] == b'\r' && prev[0] == b'\n')) {
                    blank = true;
                    break;
                }
                prev = [prev[1], b];
            }
        }
    }
}

/// Loads `node`'s seed file into `stage`; returns the row count.
pub(crate) fn load_seed(
    conn: &mut dyn Connection,
    env: &Env,
    plan: &Plan,
    node: &PlanNode,
    stage: &str,
    stmts: &[Statement],
    existing: Option<RelationKind>,
) -> Result<u64, String> {
    let seed = node.seed.as_ref().ok_or("seed without data file")?;
    let target = Target { node, stage, stmts, existing };
    if let Some(bucket) = &seed.bucket {
        return load_from_bucket(conn, env, plan, bucket, seed, &target);
    }
    let path = env.project_dir.join(&seed.file);
    // Blank lines are rare: assume none, check alongside, and reload with DVT's reader if there were.
    let (loaded, checks) = std::thread::scope(|s| {
        let checks = s.spawn(|| file_checks(&path));
        let loaded = load(conn, seed, &path, &target, false);
        (loaded, checks.join().unwrap_or_else(|_| Err("the file check panicked".into())))
    });
    let (sha, blank) = checks.map_err(|e| format!("cannot read {}: {e}", seed.file))?;
    if sha != seed.sha256 {
        return Err(format!(
            "{} changed since the plan was compiled (sha256 {} in the plan, {} now); recompile",
            seed.file,
            &seed.sha256[..12],
            &sha[..12]
        ));
    }
    let loaded = if blank && seed.format == "csv" {
        conn.execute(&format!("delete from {stage}"))?;
        load(conn, seed, &path, &target, true)
    } else {
        loaded
    };
    if let Ok(n) = &loaded {
        crate::events::rows_read(*n);
    }
    loaded
}

/// A seed file fetched from a bucket, removed when dropped (a `file` bucket's
/// own file is read in place and kept).
struct Fetched {
    path: PathBuf,
    temporary: bool,
}

impl Drop for Fetched {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The seed file at `location` in `bucket` as a local file: a `file` bucket's
/// own file, else streamed from the bucket into a temporary file (bounded memory).
fn fetch(bucket: &Bucket, location: &str, format: &str) -> Result<Fetched, String> {
    if let Some(root) = &bucket.local_root {
        let path = root.join(location);
        if !path.is_file() {
            return Err(format!("bucket `{}` ({}): no file `{location}`", bucket.name, bucket.kind));
        }
        return Ok(Fetched { path, temporary: false });
    }
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = format!("dvt-seed-{}-{}.{format}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed));
    let fetched = Fetched { path: std::env::temp_dir().join(name), temporary: true };
    let mut file = std::fs::File::create(&fetched.path).map_err(|e| format!("cannot create {}: {e}", fetched.path.display()))?;
    crate::compute::block_on(async {
        let reader = bucket.op.reader(location).await.map_err(|e| bucket.error(&format!("reading `{location}`"), &e))?;
        let mut chunks = reader.into_bytes_stream(..).await.map_err(|e| bucket.error(&format!("reading `{location}`"), &e))?;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| format!("bucket `{}` ({}): reading `{location}` failed: {e}", bucket.name, bucket.kind))?;
            file.write_all(&chunk).map_err(|e| format!("cannot write {}: {e}", fetched.path.display()))?;
        }
        Ok::<_, String>(())
    })?;
    Ok(fetched)
}

/// A seed whose file is in a bucket: fetched, its CSV types inferred now as
/// `dvtc` infers a local file's (`column_types` still win), then loaded
/// through the same bulk paths.
fn load_from_bucket(
    conn: &mut dyn Connection,
    env: &Env,
    plan: &Plan,
    bucket: &str,
    seed: &SeedPlan,
    t: &Target<'_>,
) -> Result<u64, String> {
    let b = env.buckets.get(bucket, plan.buckets.get(bucket))?;
    let fetched = fetch(&b, &seed.file, &seed.format)?;
    let shown = format!("{} (bucket `{bucket}`)", seed.file);
    let mut seed = SeedPlan { file: shown.clone(), ..seed.clone() };
    let mut blank_lines = false;
    if seed.format == "csv" {
        let kind = t.node.pushdown.as_ref().map(|p| p.dialect.clone()).unwrap_or_default();
        let dialect = Dialect::from_adapter(&kind).ok_or_else(|| format!("unknown dialect `{kind}`"))?;
        let d = seed.delimiter.bytes().next().unwrap_or(b',');
        let inferred = dvt_compiler::seeds::infer_csv(&fetched.path, &shown, d).map_err(|e| e.to_string())?;
        let (columns, type_names) = dvt_compiler::seeds::typed_columns(inferred, &seed.column_types, dialect, seed.quote_columns)
            .map_err(|m| format!("{shown}: {m}"))?;
        seed.column_types.extend(type_names);
        let create = Statement { kind: "create_staging".into(), sql: dialect.sql().create_table(t.stage, &columns) };
        conn.execute(&create.sql)?;
        check_columns(conn, t.node, &[t.stmts, std::slice::from_ref(&create)].concat(), t.existing)?;
        blank_lines = file_checks(&fetched.path).map_err(|e| format!("cannot read {shown}: {e}"))?.1;
    }
    let loaded = load(conn, &seed, &fetched.path, t, blank_lines);
    if let Ok(n) = &loaded {
        crate::events::rows_read(*n);
    }
    loaded
}

/// Where a seed goes and what the rendering around the load checks.
struct Target<'a> {
    node: &'a PlanNode,
    stage: &'a str,
    stmts: &'a [Statement],
    existing: Option<RelationKind>,
}

fn load(conn: &mut dyn Connection, seed: &SeedPlan, path: &Path, t: &Target<'_>, blank_lines: bool) -> Result<u64, String> {
    let Target { node, stage, stmts, existing } = *t;
    let kind = node.pushdown.as_ref().map(|p| p.dialect.clone()).unwrap_or_default();
    if seed.format != "csv" {
        let dialect = Dialect::from_adapter(&kind).ok_or_else(|| format!("unknown dialect `{kind}`"))?;
        let mut data = crate::seed_files::open(path, &seed.format, &seed.column_types)?;
        let columns: Vec<_> = data.columns.iter().map(|(n, t)| (dialect.column_name(n, seed.quote_columns), t.clone())).collect();
        let create = Statement { kind: "create_staging".into(), sql: dialect.sql().create_table(stage, &columns) };
        conn.execute(&create.sql)?;
        check_columns(conn, node, &[stmts, std::slice::from_ref(&create)].concat(), existing)?;
        let (schema, ncols) = (data.schema.clone(), data.columns.len());
        let file = seed.file.clone();
        let mut batches = std::iter::from_fn(move || data.next().map(|b| b.map_err(|e| format!("{file}: {e}"))));
        // Arrow straight into engines that take it; text rows through the bulk path otherwise.
        if let Some(loaded) = conn.load_arrow(stage, &mut batches) {
            return loaded;
        }
        let mut rows = crate::arrow_rows::TextRows::new(batches, schema, dialect);
        return conn.load(stage, ncols, &mut rows);
    }
    let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut reader = dvt_compiler::seeds::CsvReader::new(f, seed.delimiter.bytes().next().unwrap_or(b','));
    let header = reader.next_record().map_err(|(l, m)| format!("{}:{l}: {m}", seed.file))?.ok_or("empty seed")?;
    let dialect = Dialect::from_adapter(&kind).unwrap_or(Dialect::Postgres);
    // The engine's own CSV reader, where it reads the file as DVT's does: every
    // column typed, and no blank lines (DVT skips them; COPY would not).
    if header.fields.iter().all(|h| seed.column_types.contains_key(h)) && !blank_lines {
        let csv = connectors::CsvFile {
            path: path.to_path_buf(),
            display: seed.file.clone(),
            delimiter: seed.delimiter.bytes().next().unwrap_or(b','),
            columns: header.fields.iter().map(|h| (dialect.column_name(h, seed.quote_columns), seed.column_types[h].clone())).collect(),
            empty_as_null: seed.empty_as_null,
        };
        if let Some(r) = conn.load_csv(stage, &csv) {
            return r;
        }
    }
    let ncols = header.fields.len();
    let booleans: Vec<bool> = header.fields.iter().map(|h| seed.column_types.get(h).is_some_and(|t| t == "boolean")).collect();
    let types: Vec<Option<dvt_compiler::dialect::LogicalType>> =
        header.fields.iter().map(|h| seed.column_types.get(h).and_then(|t| dvt_compiler::seeds::parse_type(t))).collect();
    let names = header.fields.clone();
    let file = seed.file.clone();
    let empty_as_null = seed.empty_as_null;
    let mut rows = std::iter::from_fn(move || {
        loop {
            let rec = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => return None,
                Err((l, m)) => return Some(Err(format!("{file}:{l}: {m}"))),
            };
            if rec.fields.len() == 1 && rec.fields[0].is_empty() {
                continue;
            }
            if rec.fields.len() != ncols {
                return Some(Err(format!("{file}:{}: row has {} fields, the header has {ncols}", rec.line, rec.fields.len())));
            }
            for (i, (v, t)) in rec.fields.iter().zip(&types).enumerate() {
                if let Some(t) = t
                    && !(v.is_empty() && empty_as_null)
                    && !dvt_compiler::seeds::value_fits(t, v)
                {
                    return Some(Err(format!("{file}:{}:{}: column `{}`: `{v}` is not a valid {t:?}", rec.line, i + 1, names[i])));
                }
            }
            let row = rec
                .fields
                .into_iter()
                .zip(&booleans)
                .map(|(v, is_bool)| {
                    if v.is_empty() && empty_as_null {
                        None
                    } else if *is_bool && (kind == "mysql" || kind == "sqlite") {
                        Some(if v == "true" { "1".into() } else { "0".into() })
                    } else {
                        Some(v)
                    }
                })
                .collect();
            return Some(Ok(row));
        }
    });
    conn.load(stage, ncols, &mut rows)
}
