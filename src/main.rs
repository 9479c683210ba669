//! The `hookgate` binary: everything is in the library; see `hookgate::cli`.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hookgate::cli::main()
}
