//! `dvtc`: the DVT compiler binary.

fn main() {
    std::process::exit(dvt_compiler::cli::main_with_args(std::env::args_os().collect()));
}
