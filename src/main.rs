//! The `cachegate` command: parse the arguments and hand them to `cachegate::cli::run`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let code = cachegate::cli::run(cachegate::cli::Cli::parse());
    std::process::ExitCode::from(code as u8)
}
