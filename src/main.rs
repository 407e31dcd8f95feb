//! `sigproxy`: parse the command line and hand over to the subcommand.
#![forbid(unsafe_code)]

use clap::Parser as _;

/// mimalloc rather than glibc's malloc: a proxied request makes a few dozen short-lived
/// allocations (headers, futures, buffers), and glibc's `malloc`/`free` were over a third of the
/// user-space instructions of a passthrough request (benches/RESULTS.md, "Where passthrough time
/// goes").
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sigproxy::cli::run(sigproxy::cli::Cli::parse())
}
