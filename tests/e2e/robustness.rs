//! Truncated and garbage inputs never panic the compiler: each either loads or
//! fails with a coded error.

use std::path::Path;

use dvt_compiler::loader::{LoadOptions, load};

use crate::support::*;

fn files_of(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_of(&p, out);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("sql" | "yml" | "md")) {
            out.push(p);
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly printable, with Jinja/YAML punctuation over-represented.
            const ALPHA: &[u8] = b"{%}#-:[]'\"\n abcxyz_()|.,=0123456789\t&*!>";
            if x.is_multiple_of(10) { (x >> 8) as u8 } else { ALPHA[(x >> 16) as usize % ALPHA.len()] }
        })
        .collect()
}

#[test]
fn truncated_and_garbage_files_never_panic() {
    let src = fixture("jaffle_plain");
    let work = tempfile::tempdir().unwrap();
    let proj = work.path().join("p");
    copy_dir(&src, &proj);
    let mut files = Vec::new();
    files_of(&proj, &mut files);
    files.sort();
    let mut outcomes = (0usize, 0usize);
    for (i, file) in files.iter().enumerate() {
        let original = std::fs::read(file).unwrap();
        let mut variants: Vec<Vec<u8>> = Vec::new();
        for cut in [1, 7, original.len() / 3, original.len() / 2, original.len().saturating_sub(3)] {
            variants.push(original[..cut.min(original.len())].to_vec());
        }
        variants.push(garbage(i as u64 + 1, 200));
        let mut spliced = original.clone();
        spliced.splice(original.len() / 2..original.len() / 2, garbage(i as u64 + 99, 20));
        variants.push(spliced);
        for v in variants {
            std::fs::write(file, &v).unwrap();
            let opts = LoadOptions { project_dir: proj.clone(), ..Default::default() };
            match load(&opts) {
                Ok(_) => outcomes.0 += 1,
                Err(e) => {
                    assert!(e.code.as_str().starts_with("DVT1"), "uncoded error for {}: {e}", file.display());
                    outcomes.1 += 1;
                }
            }
        }
        std::fs::write(file, &original).unwrap();
    }
    // Both outcomes occur: the mutations are not all harmless, nor all fatal.
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
}

/// `--threads 1` and `--threads 16` build the example projects into identical
/// tables (snapshots aside: their validity timestamps are the run's clock).
#[test]
fn thread_counts_give_identical_results() {
    let build = |threads: &str| -> std::collections::BTreeMap<String, String> {
        let (_tmp, dir) = scratch_copy(&example("quickstart"));
        let r = dvtr_in(&dir, &["build", "--threads", threads]);
        assert_eq!(r.code, 0, "--threads {threads}: {}\n{}", r.stdout, r.stderr);
        let r = dvtc(&dir, &["compile", "-o", "plan.json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let plan: dvt_schema::Plan = serde_json::from_str(&std::fs::read_to_string(dir.join("plan.json")).unwrap()).unwrap();
        let mut tables = std::collections::BTreeMap::new();
        for n in plan.nodes.values().filter(|n| matches!(n.resource_type.as_str(), "model" | "seed")) {
            let Some(rel) = n.relation.as_ref().filter(|_| n.materialization.effective != "ephemeral") else { continue };
            let sql = format!("select * from {} order by 1, 2", rel.rendered);
            let r = dvtr_in(&dir, &["--target", &n.target.value, "show", "--limit", "100000", "--inline", &sql]);
            assert_eq!(r.code, 0, "{}: {}", n.name, r.stderr);
            tables.insert(n.name.clone(), r.stdout);
        }
        tables
    };
    let one = build("1");
    assert!(one.len() >= 6, "{:?}", one.keys());
    assert_eq!(one, build("16"));
}
