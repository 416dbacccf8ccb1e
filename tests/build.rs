// The e2e tests link the runtime and so DuckDB: same rpath as `dvtr`.
include!("../runtime/build.rs");
