//! The `hookgate` binary: everything is in the library; see `hookgate::cli`.

#![forbid(unsafe_code)]

/// mimalloc rather than the system's malloc: see its entry in Cargo.toml for the numbers. The
/// same binary is the gateway and its transform workers, so both use it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hookgate::cli::main()
}
