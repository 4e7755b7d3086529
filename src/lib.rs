//! with-secrets: run a command with secrets from the OS keyring as environment
//! variables, as mapped by a checked-in `secrets.toml`.
//!
//! A run, in five steps: [`cli`] parses the command line; `config` adds the
//! environment and the manifest, once; `app` hands the result to one of the
//! `commands`; a command asks `resolve` for the variables (the manifest's
//! entries, looked up in a `store`, the environment filling in); and the
//! run form hands them to `process`, which runs the command. `term` is how
//! any of them talks to the person.

mod app;
mod cli;
mod commands;
mod config;
mod error;
mod generate;
mod machine;
mod manifest;
mod paths;
mod process;
mod resolve;
mod secret;
mod store;
mod term;

use std::process::ExitCode;

pub use crate::cli::Cli;
pub use crate::error::{EXIT_FAILURE, Error, message};
pub use crate::manifest::{EnvName, Manifest};
#[doc(hidden)]
pub use crate::store::bridge::wire::BridgeLine;

/// Not an API: for the fuzzer (fuzz/fuzz_targets/bridge_line.rs). Reads
/// `bytes` as the WSL bridge's two ends read their pipes: line by line, each
/// line as the Linux end reads the helper's answers and as the helper reads
/// requests.
#[doc(hidden)]
pub fn read_bridge_lines(bytes: &[u8]) -> Vec<BridgeLine> {
    store::bridge::wire::read_lines(bytes)
}

/// Runs the parsed command line. Returns the exit code to use, or the error
/// to report ([`message`]); [`Error::exit_code`] gives that error's code.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    app::run(cli)
}
