//! `sigproxy`: parse the command line and hand over to the subcommand.
#![forbid(unsafe_code)]

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    sigproxy::cli::run(sigproxy::cli::Cli::parse())
}
