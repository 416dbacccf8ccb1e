//! `dvtc deps` with real git repositories (local bare ones), `local:` packages and
//! an unreachable hub; `dvtc clean`.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A bare repository holding a package `name` (in `sub/` when `subdir`), tagged v1.0.0,
/// with one more commit after the tag.
fn package_repo(root: &Path, name: &str, subdir: bool) -> (String, String) {
    let work = root.join(format!("{name}_work"));
    let pkg = if subdir { work.join("sub") } else { work.clone() };
    std::fs::create_dir_all(pkg.join("macros")).unwrap();
    std::fs::write(pkg.join("dbt_project.yml"), format!("name: {name}\nversion: '1.0'\n")).unwrap();
    std::fs::write(pkg.join("macros/m.sql"), format!("{{% macro {name}_answer() %}}42{{% endmacro %}}\n")).unwrap();
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-qm", "v1"]);
    git(&work, &["tag", "v1.0.0"]);
    let tagged = git(&work, &["rev-parse", "HEAD"]);
    std::fs::write(pkg.join("macros/m.sql"), format!("{{% macro {name}_answer() %}}43{{% endmacro %}}\n")).unwrap();
    git(&work, &["commit", "-qam", "after"]);
    let bare = root.join(format!("{name}.git"));
    git(root, &["clone", "-q", "--bare", work.to_str().unwrap(), bare.to_str().unwrap()]);
    (format!("file://{}", bare.display()), tagged)
}

#[test]
fn deps_installs_git_and_local_packages_where_the_loader_reads_them() {
    let repos = tempfile::tempdir().unwrap();
    let (pinned_url, tagged_sha) = package_repo(repos.path(), "pinned_pkg", false);
    let (sub_url, _) = package_repo(repos.path(), "sub_pkg", true);
    let dir = base_project(&[
        ("local_pkg/dbt_project.yml", "name: local_pkg\nversion: '1.0'\n"),
        ("local_pkg/macros/l.sql", "{% macro local_answer() %}7{% endmacro %}\n"),
        (
            "models/m.sql",
            "select {{ pinned_pkg.pinned_pkg_answer() }} as a, {{ sub_pkg.sub_pkg_answer() }} as b, {{ local_pkg.local_answer() }} as c\n",
        ),
    ]);
    let packages = format!(
        "packages:\n  - local: local_pkg\n  - git: \"{pinned_url}\"\n    revision: v1.0.0\n  - git: \"{sub_url}\"\n    subdirectory: sub\n"
    );
    std::fs::write(dir.path().join("packages.yml"), packages).unwrap();
    let r = dvtc(dir.path(), &["deps"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("Installed pinned_pkg") && r.stdout.contains("Installed sub_pkg"), "{}", r.stdout);
    // The unpinned git package is named in a warning; the tagged one is not.
    assert!(r.stderr.contains("sub_pkg.git") && !r.stderr.contains("pinned_pkg.git is not pinned"), "{}", r.stderr);
    let lock = std::fs::read_to_string(dir.path().join("package-lock.yml")).unwrap();
    assert!(lock.contains(&format!("revision: {tagged_sha}")) && lock.contains("name: sub_pkg") && lock.contains("sha1_hash: "), "{lock}");
    let r = dvtc(dir.path(), &["compile"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let sql = std::fs::read_to_string(dir.path().join("target/compiled/proj/models/m.sql")).unwrap();
    // The tag's version (42), the branch head of the other (43), the local package.
    assert_eq!(sql.trim(), "select 42 as a, 43 as b, 7 as c");

    // A revision that does not exist is an error naming it; the installed packages stay.
    std::fs::write(dir.path().join("packages.yml"), format!("packages:\n  - git: \"{pinned_url}\"\n    revision: v9.9.9\n")).unwrap();
    let r = dvtc(dir.path(), &["deps"]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("DVT106") && r.stderr.contains("v9.9.9"), "{}", r.stderr);
    assert!(dir.path().join("dbt_packages/pinned_pkg/dbt_project.yml").exists());

    // `clean` removes target/ and dbt_packages/ (the local package itself stays).
    let r = dvtc(dir.path(), &["clean"]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    assert!(!dir.path().join("target").exists() && !dir.path().join("dbt_packages").exists());
    assert!(dir.path().join("local_pkg/macros/l.sql").exists());
}

#[test]
fn hub_packages_say_clearly_when_the_hub_is_unreachable() {
    let dir = base_project(&[("packages.yml", "packages:\n  - package: dbt-labs/dbt_utils\n    version: [\">=1.0.0\", \"<2.0.0\"]\n")]);
    let r = dvtc_env(dir.path(), &["deps"], &[("DVT_PACKAGE_HUB_URL", "http://127.0.0.1:9")]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("DVT106") && r.stderr.contains("not reachable") && r.stderr.contains("dbt-labs/dbt_utils"), "{}", r.stderr);
}

#[test]
fn secret_env_vars_work_in_packages_yml_and_never_reach_the_lock_or_output() {
    let repos = tempfile::tempdir().unwrap();
    let (url, _) = package_repo(repos.path(), "secret_pkg", false);
    let secret = url.trim_start_matches("file://").to_string();
    let dir = base_project(&[
        ("packages.yml", "packages:\n  - git: \"file://{{ env_var('DVT_ENV_SECRET_REPO_PATH') }}\"\n    revision: v1.0.0\n"),
        ("models/m.sql", "select {{ secret_pkg.secret_pkg_answer() }} as a\n"),
    ]);
    let r = dvtc_env(dir.path(), &["deps"], &[("DVT_ENV_SECRET_REPO_PATH", &secret)]);
    assert_eq!(r.code, 0, "{} {}", r.stdout, r.stderr);
    let lock = std::fs::read_to_string(dir.path().join("package-lock.yml")).unwrap();
    assert!(lock.contains("env_var(''DVT_ENV_SECRET_REPO_PATH'')") && !lock.contains(&secret), "{lock}");
    assert!(!r.stdout.contains(&secret) && !r.stderr.contains(&secret), "{}{}", r.stdout, r.stderr);
    // A secret in model SQL is refused, by name, without its value.
    std::fs::write(dir.path().join("models/leak.sql"), "select '{{ env_var('DVT_ENV_SECRET_REPO_PATH') }}' as x\n").unwrap();
    let r = dvtc_env(dir.path(), &["compile"], &[("DVT_ENV_SECRET_REPO_PATH", &secret)]);
    assert_eq!(r.code, 2, "{} {}", r.stdout, r.stderr);
    assert!(r.stderr.contains("models/leak.sql") && r.stderr.contains("`DVT_ENV_SECRET_REPO_PATH` is a secret"), "{}", r.stderr);
    assert!(!r.stderr.contains(&secret), "{}", r.stderr);
}
