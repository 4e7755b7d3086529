//! One file per subcommand, each with a `run` that takes its own arguments
//! and the [`Config`](crate::config::Config); `run` is the run form itself.

#[cfg(unix)]
pub(crate) mod agent;
pub(crate) mod bridge;
pub(crate) mod check;
mod common;
pub(crate) mod completions;
pub(crate) mod delete;
pub(crate) mod doctor;
pub(crate) mod env;
pub(crate) mod get;
pub(crate) mod import;
pub(crate) mod init;
pub(crate) mod man;
pub(crate) mod run;
pub(crate) mod schema;
pub(crate) mod set;
pub(crate) mod unlock;
