//! `sigproxy run`: the command line of the server. Loading, assembling and serving are
//! `crate::app`'s; this file only turns arguments into its options and exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use super::EXIT_USAGE;
use crate::app::{self, Handover};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Policy file (default: $SIGPROXY_CONFIG, else config/policy.yaml).
    #[arg(long, env = "SIGPROXY_CONFIG", default_value = "config/policy.yaml")]
    pub config: PathBuf,
    /// Binary upgrade: take the listening sockets over from the `sigproxy run` that uses the same
    /// --runtime-dir. Start this process first, then send the old one SIGQUIT: it hands its
    /// sockets over, stops accepting 5 s later and finishes its requests within
    /// shutdown_grace_seconds. Exits 1 if no sockets arrive within about 5 s.
    #[arg(long, requires = "runtime_dir")]
    pub upgrade: bool,
    /// Directory for the pid file and the upgrade socket (default: one per process under
    /// $XDG_RUNTIME_DIR or the temp dir). Old and new process of an upgrade need the same one.
    #[arg(long, env = "SIGPROXY_RUNTIME_DIR")]
    pub runtime_dir: Option<PathBuf>,
}

pub fn run(args: &RunArgs) -> ExitCode {
    let sink = app::init_logging();
    let handover = Handover {
        upgrade: args.upgrade,
        runtime_dir: args.runtime_dir.clone(),
    };
    let result = app::serve_with(&args.config, None, handover);
    sink.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}
