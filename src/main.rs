//! `sigproxy`: parse the command line and hand over to the subcommand.
#![forbid(unsafe_code)]

use clap::Parser as _;

/// mimalloc rather than glibc's malloc: a proxied request makes a few dozen short-lived
/// allocations (headers, futures, buffers), and glibc's `malloc`/`free` were over a third of the
/// user-space instructions of a passthrough request (benches/RESULTS.md, "Where passthrough time
/// goes"). Measured again for issue 19 in one run (benches/RESULTS.md, "Memory per idle
/// connection, closed"): glibc cost 2–9 % more CPU per request (off 46.1 µs against 45.4 and
/// 42.5; signed GET 109.3 against 101.6 and 100.4) for the same memory per idle connection
/// (3.6 KiB) and 2 MiB less at start. mimalloc is built
/// with `no_thp` (Cargo.toml): otherwise it asks for transparent huge pages for its arenas and
/// starts at 25.6 MiB of RSS instead of 13.2 on a host with THP in `madvise` mode; the CPU
/// difference between the two was within the run's noise. `--features system-allocator` builds
/// the binary with glibc's malloc (for the comparison, and for heap profilers that hook malloc).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sigproxy::cli::run(sigproxy::cli::Cli::parse())
}
