//! The `sealgate` binary: everything lives in the library; see `sealgate --help`.

fn main() -> std::process::ExitCode {
    sealgate::cli::run()
}
