//! Helpers: locating binaries and projects, running commands, writing projects.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (from `cargo test`'s run-time `CARGO_MANIFEST_DIR`, so that a
/// build cached from a clone elsewhere still reads this checkout).
pub fn workspace() -> PathBuf {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string());
    Path::new(&dir).parent().expect("tests/ has a parent").to_path_buf()
}

/// A built binary of the workspace (cargo builds them before running tests).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(p.exists(), "binary {} not built; run `cargo build --workspace` first", p.display());
    p
}

/// An example project directory.
pub fn example(name: &str) -> PathBuf {
    workspace().join("examples").join(name)
}

/// A test fixture directory.
pub fn fixture(name: &str) -> PathBuf {
    workspace().join("tests").join("fixtures").join(name)
}

/// Result of a command.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Runs `dvtc` with `args` in `dir`, with a clean environment for DVT variables.
pub fn dvtc(dir: &Path, args: &[&str]) -> Run {
    dvtc_env(dir, args, &[])
}

/// Like [`dvtc`] with extra environment variables.
pub fn dvtc_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(bin("dvtc"));
    cmd.current_dir(dir).args(args).env_remove("DVT_PROFILES_DIR").env_remove("DVT_REQUIRE_SOURCE_CONNECTION");
    // Keep ~/.dvt and ~/.dbt of the machine out of the tests.
    cmd.env("HOME", dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("dvtc runs").into()
}

/// Runs `dvtr` with `args` in `dir` (home set to `dir`, no `DVT_PROFILES_DIR`).
pub fn dvtr_in(dir: &Path, args: &[&str]) -> Run {
    Command::new(bin("dvtr"))
        .current_dir(dir)
        .args(args)
        .env("HOME", dir)
        .env_remove("DVT_PROFILES_DIR")
        .output()
        .expect("dvtr runs")
        .into()
}

/// Writes `files` (path, content) into a new temporary project.
pub fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, content) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    dir
}

/// A minimal valid project with two outputs (`pg`, `duck`); add files on top.
pub const BASE: [(&str, &str); 2] = [
    ("dbt_project.yml", "name: proj\nversion: '1.0'\nprofile: proj\n"),
    (
        "profiles.yml",
        "proj:\n  target: pg\n  outputs:\n    pg:\n      type: postgres\n      dbname: db\n      schema: public\n      password: \"{{ env_var('NEVER_SET_SECRET') }}\"\n    duck:\n      type: duckdb\n      path: w.duckdb\n",
    ),
];

/// [`BASE`] plus `extra`.
pub fn base_project(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let mut files: Vec<(&str, &str)> = BASE.to_vec();
    files.extend_from_slice(extra);
    project(&files)
}

/// Lines of stdout.
pub fn lines(s: &str) -> Vec<&str> {
    s.lines().filter(|l| !l.trim().is_empty()).collect()
}

/// Copies a project (without its top-level `target/`) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    copy_tree(from, to, true);
}

fn copy_tree(from: &Path, to: &Path, top: bool) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let name = e.file_name();
        if top && (name == "target" || name == "logs") {
            continue;
        }
        if p.is_dir() {
            copy_tree(&p, &to.join(&name), false);
        } else {
            std::fs::copy(&p, to.join(&name)).unwrap();
        }
    }
}

/// A copy of a project in a new temporary directory.
pub fn scratch_copy(from: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join(from.file_name().unwrap());
    copy_dir(from, &p);
    (dir, p)
}

/// A scratch copy of the runtime fixture wired to the test servers (started by
/// `make test`), with its own schema and embedded database files.
pub struct ServiceProject {
    _dir: tempfile::TempDir,
    pub project: PathBuf,
    /// DVT_TEST_PG_PORT, DVT_TEST_MARIA_PORT, DVT_TEST_SCHEMA, DVT_TEST_SQLITE, DVT_TEST_DUCKDB.
    pub env: Vec<(String, String)>,
    pub schema: String,
}

impl ServiceProject {
    pub fn new(tag: &str) -> Self {
        let pg =
            std::env::var("DVT_TEST_PG_PORT").expect("DVT_TEST_PG_PORT is not set: run `make test`, which starts PostgreSQL and MariaDB");
        let maria = std::env::var("DVT_TEST_MARIA_PORT").expect("DVT_TEST_MARIA_PORT is not set: run `make test`");
        let (dir, project) = scratch_copy(&fixture("runtime"));
        let schema = format!("{tag}_{}", std::process::id());
        let env = vec![
            ("DVT_TEST_PG_PORT".to_string(), pg),
            ("DVT_TEST_MARIA_PORT".to_string(), maria),
            ("DVT_TEST_SCHEMA".to_string(), schema.clone()),
            ("DVT_TEST_SQLITE".to_string(), dir.path().join("rt.sqlite").display().to_string()),
            ("DVT_TEST_DUCKDB".to_string(), dir.path().join("rt.duckdb").display().to_string()),
        ];
        ServiceProject { _dir: dir, project, env, schema }
    }

    /// Runs `dvtr` in the project with its environment.
    pub fn dvtr(&self, args: &[&str]) -> Run {
        self.run("dvtr", args)
    }

    /// Runs `dvtc` in the project with its environment.
    pub fn dvtc(&self, args: &[&str]) -> Run {
        self.run("dvtc", args)
    }

    /// `program` (a binary of the workspace, or any command) in the project with its environment.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.project).env("HOME", &self.project).env_remove("DVT_PROFILES_DIR");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// A connection to one of the fixture's outputs (`pg`, `maria`, `lite`, `duck`), with
    /// the settings its profile reads from this project's environment.
    pub fn connect(&self, output: &str) -> Box<dyn dvt_runtime::connectors::Connection> {
        let env = |k: &str| self.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).expect("set by new()");
        let (kind, settings): (&str, Vec<(&str, String)>) = match output {
            "pg" => ("postgres", vec![("port", env("DVT_TEST_PG_PORT")), ("dbname", "dvt".into())]),
            "maria" => ("mysql", vec![("port", env("DVT_TEST_MARIA_PORT"))]),
            "lite" => ("sqlite", vec![("path", env("DVT_TEST_SQLITE"))]),
            "duck" => ("duckdb", vec![("path", env("DVT_TEST_DUCKDB"))]),
            other => panic!("no output `{other}` in the runtime fixture"),
        };
        let settings = settings.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let creds = dvt_runtime::credentials::Credentials::new(output, kind, settings, self.project.clone());
        dvt_runtime::connectors::connect(&creds).unwrap_or_else(|e| panic!("{output}: {e}"))
    }

    fn run(&self, binary: &str, args: &[&str]) -> Run {
        self.command(&bin(binary)).args(args).output().expect("dvtr runs").into()
    }
}
