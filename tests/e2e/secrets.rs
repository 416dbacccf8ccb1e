//! Secrets never leave the profile: a project whose passwords are distinctive
//! strings goes through every command (successful runs, a failing connection,
//! a failing node, `debug`, `retry`), and neither the output nor any file under
//! `target/` contains them.

use std::path::Path;

use crate::support::*;

const PG_SECRET: &str = "pg-Secret-7f3a9c";
const BAD_SECRET: &str = "maria-Secret-41be02";

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { files_under(&p, out) } else { out.push(p) }
    }
}

#[test]
fn no_command_prints_or_writes_a_secret() {
    let mut db = ServiceProject::new("secret");
    db.env.push(("DVT_TEST_PG_PASSWORD".into(), PG_SECRET.into()));
    db.env.push(("DVT_ENV_SECRET_BAD".into(), BAD_SECRET.into()));
    let maria_port = db.env.iter().find(|(k, _)| k == "DVT_TEST_MARIA_PORT").map(|(_, v)| v.clone()).unwrap();
    // Two outputs that cannot connect: a wrong user on MariaDB, a closed PostgreSQL port.
    let profiles = std::fs::read_to_string(db.project.join("profiles.yml")).unwrap();
    let profiles = profiles.replacen(
        "  outputs:\n",
        &format!(
            "  outputs:\n    badmaria:\n      type: mysql\n      host: 127.0.0.1\n      port: {maria_port}\n      user: nobody_here\n      password: \"{{{{ env_var('DVT_ENV_SECRET_BAD') }}}}\"\n      schema: s\n    badpg:\n      type: postgres\n      host: 127.0.0.1\n      port: 9\n      user: u\n      password: \"{{{{ env_var('DVT_ENV_SECRET_BAD') }}}}\"\n      dbname: d\n      schema: s\n"
        ),
        1,
    );
    std::fs::write(db.project.join("profiles.yml"), profiles).unwrap();
    std::fs::write(db.project.join("models/on_bad.sql"), "{{ config(target='badmaria') }}\nselect 1 as x\n").unwrap();
    let mut outputs = Vec::new();
    for args in [
        vec!["seed"],
        vec!["build", "--exclude", "on_bad"],
        vec!["run", "-s", "on_bad"],
        vec!["retry"],
        vec!["test"],
        vec!["compile"],
        vec!["list"],
        vec!["show", "--inline", "select 1 as one"],
        vec!["--target", "badpg", "show", "--inline", "select 1"],
        vec!["debug"],
        vec!["source", "freshness"],
    ] {
        let r = db.dvtr(&args);
        outputs.push((args.join(" "), r.code, format!("{}{}", r.stdout, r.stderr)));
    }
    // The failing parts did fail (so their error paths were exercised).
    let code = |cmd: &str| outputs.iter().find(|(c, _, _)| c == cmd).map(|(_, code, _)| *code).unwrap();
    assert_eq!(code("build --exclude on_bad"), 0, "{outputs:?}");
    assert_ne!(code("run -s on_bad"), 0);
    assert_ne!(code("--target badpg show --inline select 1"), 0);
    assert_eq!(code("debug"), 1);
    for (cmd, _, out) in &outputs {
        for secret in [PG_SECRET, BAD_SECRET] {
            assert!(!out.contains(secret), "`dvtr {cmd}` printed a secret:\n{out}");
        }
    }
    // `dvtc compile` twice: the second reuses the state the first saved (environment values as digests).
    for _ in 0..2 {
        let r = db.dvtc(&["compile"]);
        assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
        for secret in [PG_SECRET, BAD_SECRET] {
            assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret), "`dvtc compile` printed a secret");
        }
    }
    let mut files = Vec::new();
    files_under(&db.project.join("target"), &mut files);
    assert!(files.iter().any(|f| f.ends_with("run_results.json")) && files.iter().any(|f| f.ends_with("plan.json")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with(".dvt_partial")), "the incremental state is among the files checked: {files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for secret in [PG_SECRET, BAD_SECRET] {
            assert!(!text.contains(secret), "{} holds a secret", f.display());
        }
    }
}
