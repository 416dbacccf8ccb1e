//! User-facing errors with stable codes.
//!
//! Every error a user can cause carries a code (`DVT1xx`), a message that says
//! what to do, and a file:line:column where there is one. Codes never change
//! meaning once released; new situations get new codes.

use std::fmt;
use std::path::Path;

/// Stable error codes. The numeric value is part of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// No `dbt_project.yml` / `dvt_project.yml` in the project directory.
    ProjectNotFound = 100,
    /// A YAML file is not valid YAML or has the wrong shape.
    YamlInvalid = 101,
    /// A config value has the wrong type or an unknown value.
    ConfigInvalid = 102,
    /// `profiles.yml` or the profile it should contain is missing.
    ProfileNotFound = 103,
    /// `--target` (or the profile default) names no output.
    TargetNotFound = 104,
    /// A file could not be read.
    Io = 105,
    /// A package in `packages.yml` cannot be found locally.
    PackageNotFound = 106,
    /// Two nodes or sources share a name within a package.
    DuplicateNode = 107,
    /// A source group has no `connection:`.
    SourceConnectionMissing = 110,
    /// A source group's `connection:` names no output of the profile.
    SourceConnectionUnknown = 111,
    /// A Jinja template does not parse.
    JinjaSyntax = 120,
    /// A Jinja template fails while rendering.
    JinjaRender = 121,
    /// `exceptions.raise_compiler_error` was called.
    CompilerErrorRaised = 122,
    /// A macro was called that no package defines.
    MacroNotFound = 123,
    /// A Python model that does not parse or declares refs/configs with non-literal arguments.
    PythonModelInvalid = 124,
    /// `ref()` names no node.
    RefNotFound = 130,
    /// `ref()` names a disabled node.
    RefDisabled = 131,
    /// `source()` names no source.
    SourceNotFound = 132,
    /// The DAG has a cycle.
    Cycle = 133,
    /// A generic test names no test macro.
    TestNotFound = 134,
    /// A unit test names no model, an input that is not one of the model's, or misses one.
    UnitTestInvalid = 135,
    /// `ref()` to a model whose `access: private` keeps it to its group.
    RefNotAccessible = 136,
    /// A selector expression or `selectors.yml` entry is invalid.
    SelectorInvalid = 140,
    /// Command-line usage error.
    Usage = 141,
    /// `--vars` is not a YAML mapping.
    VarsInvalid = 142,
    /// A CSV/Parquet/JSON seed cannot be read.
    SeedInvalid = 150,
    /// An unknown or impossible materialization.
    MaterializationInvalid = 160,
    /// Ephemeral model on the federation path.
    EphemeralFederated = 161,
    /// Snapshot on the federation path.
    SnapshotFederated = 162,
    /// A federated model's remainder uses a function, operator or cast with no
    /// proven equivalent in the compute.
    RemainderSemantics = 163,
    /// An enforced model contract does not match the model (columns, types) or is incomplete.
    ContractViolation = 164,
    /// A plan file is invalid or from an incompatible version.
    PlanInvalid = 170,
}

impl ErrorCode {
    /// The code as printed, e.g. `DVT110`.
    pub fn as_str(self) -> String {
        format!("DVT{}", self as u16)
    }
}

/// A place in a user's file. Paths are relative to the project root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Location {
    /// File, relative to the project root where possible, `/`-separated.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: u32,
    /// 1-based column, 0 when unknown.
    pub column: u32,
}

impl Location {
    /// A location at a line and column of a file.
    pub fn new(file: impl Into<String>, line: u32, column: u32) -> Self {
        Location { file: file.into(), line, column }
    }

    /// A location that names only the file.
    pub fn file(file: impl Into<String>) -> Self {
        Location::new(file, 0, 0)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => write!(f, "{}", self.file),
            (l, 0) => write!(f, "{}:{}", self.file, l),
            (l, c) => write!(f, "{}:{}:{}", self.file, l, c),
        }
    }
}

/// An error a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DvtError {
    /// Stable code.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
    /// Where, if known.
    pub location: Option<Location>,
    /// How to fix it, if we know.
    pub hint: Option<String>,
}

impl DvtError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        DvtError { code, message: message.into(), location: None, hint: None }
    }

    /// Attaches a location.
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    /// Attaches a location unless one is already set.
    pub fn or_at(mut self, location: Location) -> Self {
        if self.location.is_none() {
            self.location = Some(location);
        }
        self
    }

    /// Attaches a fix hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An I/O error on a path.
    pub fn io(path: &Path, err: std::io::Error) -> Self {
        DvtError::new(ErrorCode::Io, format!("cannot read {}: {err}", path.display()))
    }
}

impl fmt::Display for DvtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]", self.code.as_str())?;
        if let Some(loc) = &self.location {
            write!(f, " {loc}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DvtError {}

/// Result alias used across the compiler.
pub type Result<T, E = DvtError> = std::result::Result<T, E>;

/// 1-based line and column of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|b| *b == b'\n').count() as u32 + 1;
    let col = before.rfind('\n').map_or(before.len(), |p| before.len() - p - 1) as u32 + 1;
    (line, col)
}
