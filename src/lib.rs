//! with-secrets: run a command with secrets from the OS keyring as environment
//! variables, as mapped by a checked-in `secrets.toml`.
//!
//! A run, in five steps: [`cli`] parses the command line; `config` adds the
//! environment and the manifest, once; `app` hands the result to one of the
//! `commands`; a command asks `resolve` for the variables (the manifest's
//! entries, looked up in a `store`, the environment filling in); and the
//! run form hands them to `process`, which runs the command. `term` is how
//! any of them talks to the person.
//!
//! Imports only point down, in layers: `secret`, `paths`, `machine`,
//! `signals` and `term` at the bottom; `store` (which knows nothing of the
//! manifest, the configuration or the commands); `manifest`, which parses
//! into the stores' settings; `error`, which gathers the store's and the
//! manifest's errors; then `person`, `cli`, `config`, `generate`,
//! `process`, `resolve`, `commands` and `app`. `scripts/module-graph` draws
//! the graph, and a test (tests/scripts.rs) fails on any cycle in it.

mod app;
mod cli;
mod commands;
mod config;
mod error;
mod generate;
mod machine;
mod manifest;
mod paths;
mod person;
mod process;
mod resolve;
mod secret;
#[cfg(unix)]
mod signals;
mod store;
mod term;

use std::process::ExitCode;

pub use crate::cli::Cli;
pub use crate::error::{EXIT_FAILURE, Error, message};
pub use crate::manifest::{EnvName, Error as ManifestError, Manifest};

/// Runs the parsed command line. Returns the exit code to use, or the error
/// to report ([`message`]); [`Error::exit_code`] gives that error's code.
pub fn run(cli: Cli) -> Result<ExitCode, Error> {
    app::run(cli)
}

/// Entry points for the fuzz targets (fuzz/), not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::store::bridge::wire::BridgeLine;

    /// Reads `bytes` as the WSL bridge's two ends read their pipes
    /// (fuzz/fuzz_targets/bridge_line.rs): line by line, each line as the
    /// Linux end reads the helper's answers and as the helper reads
    /// requests.
    pub fn read_bridge_lines(bytes: &[u8]) -> Vec<BridgeLine> {
        crate::store::bridge::wire::read_lines(bytes)
    }

    /// What the agent did with one request line (fuzz/fuzz_targets/agent_request.rs).
    #[cfg(unix)]
    #[derive(Debug)]
    pub struct AgentLine {
        /// The line, without its line end.
        pub line: Vec<u8>,
        /// The keys the request named, when it read as one.
        pub keys: Vec<(String, String)>,
        /// Its kind: `hello`, `get`, `set`, `delete`, or `none` for a line
        /// that is not a request.
        pub kind: &'static str,
        /// The value a `set` carried, in base64 as it came.
        pub value: Option<String>,
        /// Whether the answer and the log line are the same for any other
        /// value: neither says anything of it.
        pub value_free: bool,
        /// Whether it went on to the store.
        pub to_store: bool,
        /// The answer's line, for what the agent answered itself.
        pub answer: Option<Vec<u8>>,
        /// The log line about it, if any.
        pub log: Option<String>,
    }

    /// Reads `bytes` as a connection to `with-secrets agent` is read, and
    /// screens each request as its agent does, serving only the entry
    /// (`SERVED_SERVICE`, `SERVED_USERNAME`), read-only.
    #[cfg(unix)]
    pub fn agent_requests(bytes: &[u8]) -> Vec<AgentLine> {
        crate::commands::agent::fuzz_lines(bytes)
    }

    /// The one entry [`agent_requests`] serves.
    #[cfg(unix)]
    pub const SERVED: (&str, &str) = ("acme", "ci");

    /// The most a vault answer's body may be; the parser refuses more.
    pub const VAULT_MAX_BODY: usize = crate::store::vault::http::MAX_BODY;
    /// The most a vault answer's head may be, interim answers included.
    pub const VAULT_MAX_HEAD: usize = crate::store::vault::http::MAX_HEAD;

    /// The vault store's HTTP response parser on `bytes`: `Ok(None)` while
    /// they hold no whole answer, else its status, the bytes it takes and
    /// its body's length; an error names what is wrong. `head`: the answer
    /// to a HEAD request; `closed`: the connection ended after `bytes`.
    pub fn vault_response(
        bytes: &[u8],
        head: bool,
        closed: bool,
    ) -> Result<Option<(u16, usize, usize)>, String> {
        use crate::store::vault::http::{Parsed, parse_response};
        match parse_response(bytes, head, closed) {
            Ok(Parsed::Partial) => Ok(None),
            Ok(Parsed::Complete { response, used, .. }) => {
                Ok(Some((response.status, used, response.body.len())))
            }
            Err(failure) => Err(format!("{failure:?}")),
        }
    }
}
