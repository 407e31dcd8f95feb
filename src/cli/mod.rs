//! The `sigproxy` command line (reference §2): one binary, clap subcommands. Each subcommand lives
//! in its own module and returns the process exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod check_config;
pub mod demo;
pub mod keygen;
pub mod request_file;
pub mod run;
pub mod sign;
pub mod verify;

#[derive(Parser, Debug)]
#[command(
    name = "sigproxy",
    version,
    about = "RFC 9421 HTTP Message Signature verifying reverse proxy (Ed25519)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve: verify signatures in front of the upstream named in the policy.
    Run(run::RunArgs),
    /// Serve with an embedded echo backend and fresh demo keys; print three requests to try.
    Demo(demo::DemoArgs),
    /// Validate a policy file and print the effective policy (exit 2 on error).
    CheckConfig(check_config::CheckConfigArgs),
    /// Generate an Ed25519 key pair and print the `keys:` entry to paste into the policy.
    Keygen(keygen::KeygenArgs),
    /// Sign a request: print the headers, a curl line, or send it.
    Sign(sign::SignArgs),
    /// Verify one raw HTTP/1.1 request offline and print one JSON verdict.
    Verify(verify::VerifyArgs),
}

/// Exit codes shared by the offline tools (reference §2.1).
pub const EXIT_INVALID: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run(a) => run::run(&a),
        Command::Demo(a) => demo::run(&a),
        Command::CheckConfig(a) => check_config::run(&a),
        Command::Keygen(a) => keygen::run(&a),
        Command::Sign(a) => sign::run(&a),
        Command::Verify(a) => verify::run(&a),
    }
}

/// Reads a small text file (a key, a request), naming the file in the error.
pub fn read_file(path: &PathBuf, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))
}

/// Current Unix time in seconds.
/// Print one line on stdout. A reader that went away (`sigproxy sign … | head`) is not an
/// error worth a panic: the line is dropped.
pub fn out(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
