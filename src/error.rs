//! The one error type, and the exit code each error maps to.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;

use crate::store::StoreError;
use crate::term::printable::printable_path;

/// env(1)'s code for "with-secrets itself failed".
pub const EXIT_FAILURE: u8 = 125;
/// env(1)'s code for "found but could not be executed".
pub(crate) const EXIT_CANNOT_EXECUTE: u8 = 126;
/// env(1)'s code for "not found".
pub(crate) const EXIT_NOT_FOUND: u8 = 127;

/// Everything that can go wrong. A variant carries what a person needs to fix
/// it (paths, names, services, usernames, the store) and never a secret value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{message}")]
    Usage { message: String },

    /// `with-secrets agent` cannot listen.
    #[error("{message}")]
    Agent { message: String },

    /// Finding, reading or parsing the manifest, or choosing its profile.
    #[error(transparent)]
    Manifest(#[from] crate::manifest::Error),

    #[error(
        "{} already exists; edit it, or remove it first to start over",
        printable_path(path)
    )]
    ManifestExists { path: PathBuf },

    #[error("cannot write {}", printable_path(path))]
    WriteManifest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "{name} is not in {}\n  add it: {name} = {{ service = \"...\", username = \"...\" }}",
        printable_path(path)
    )]
    UnknownName { name: String, path: PathBuf },

    #[error(
        "{name} is not in {}'s [secrets]; it is defined in profile{} {}\n  use it with: {fix}",
        printable_path(path),
        if profiles.len() == 1 { "" } else { "s" },
        profiles.join(", ")
    )]
    NameInProfile {
        name: String,
        path: PathBuf,
        /// The profiles that define it, in the manifest's order.
        profiles: Vec<String>,
        /// The same command with the first of them.
        fix: String,
    },

    #[error("{}", missing_message(missing, store, fix, passed_over.as_ref()))]
    Missing {
        missing: Vec<MissingEntry>,
        store: &'static str,
        /// The command prefix that reaches the same manifest, e.g. `with-secrets -m x.toml`.
        fix: String,
        /// Why `auto` passed over the platform's keyring, if it did.
        passed_over: Option<StoreError>,
    },

    #[error("{}", unavailable_message(store, cause, names))]
    StoreUnavailable {
        store: &'static str,
        cause: StoreError,
        /// Required variables that had no fallback in the environment.
        names: Vec<String>,
    },

    #[error("{store}: {cause}")]
    Store {
        store: &'static str,
        cause: StoreError,
    },

    #[error(
        "{name} is not stored in {store} (service {service:?}, username {username:?})\n  store it with: {fix} set {name}"
    )]
    NotStored {
        name: String,
        service: String,
        username: String,
        store: &'static str,
        fix: String,
    },

    #[error(
        "the value of {name} contains a NUL byte, which an environment variable cannot hold\n  replace it with: {fix} set {name}"
    )]
    NulInValue { name: String, fix: String },

    #[error("{}", read_only_advice(store, fix, &[name.as_str()]))]
    ReadOnlyStore {
        store: &'static str,
        name: String,
        /// The command prefix that reaches a writable store.
        fix: String,
    },

    #[error("cannot read the value for {name} from standard input")]
    ReadValue {
        name: String,
        #[source]
        source: io::Error,
    },

    #[error("refusing to store an empty value for {name}; nothing was changed")]
    EmptyValue { name: String },

    #[error("cannot write to standard output")]
    Stdout {
        #[source]
        source: io::Error,
    },

    #[error("bridge: cannot read its requests from standard input")]
    BridgeInput {
        #[source]
        source: io::Error,
    },

    #[error("cannot find the current directory")]
    CurrentDir {
        #[source]
        source: io::Error,
    },

    #[error("{}: command not found", program.to_string_lossy())]
    CommandNotFound { program: OsString },

    #[error("{}: {}", program.to_string_lossy(), exec_reason(cause))]
    CannotExecute { program: OsString, cause: io::Error },

    #[error(
        "the value of {name} is not valid UTF-8, which a Windows environment variable cannot hold\n  replace it with: {fix} set {name}"
    )]
    ValueNotText { name: String, fix: String },

    #[error(
        "cannot print {name} as {format}: its value {reason}\n  \
         use another --format, or give it to the command directly: with-secrets -- COMMAND"
    )]
    CannotPrint {
        name: String,
        format: &'static str,
        reason: &'static str,
    },

    #[error(
        "env --format github: GITHUB_ENV is not set, so there is no file to hand the variables \
         to later steps in; it is set in each step of a GitHub Actions job\n  \
         outside GitHub Actions, use another format, e.g.: {fix} env --format dotenv"
    )]
    NoGithubEnv { fix: String },

    #[error("env --format github: cannot draw a random delimiter: {0}")]
    GithubDelimiter(String),

    #[error(
        "env --format github: cannot append to {} (the file GITHUB_ENV names)",
        crate::term::printable::printable_path(path)
    )]
    GithubEnv {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("--mask: cannot {what}")]
    Mask {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// A required entry that no store or environment variable could provide.
#[derive(Debug, Clone)]
pub struct MissingEntry {
    pub name: String,
    pub service: String,
    pub username: String,
    pub description: Option<String>,
}

impl Error {
    /// The process exit code for this error, following env(1).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::CommandNotFound { .. } => EXIT_NOT_FOUND,
            Self::CannotExecute { cause, .. } if cause.kind() == io::ErrorKind::NotFound => {
                EXIT_NOT_FOUND
            }
            Self::CannotExecute { .. } => EXIT_CANNOT_EXECUTE,
            _ => EXIT_FAILURE,
        }
    }
}

/// The message for `err` as the person sees it: each cause appended to its
/// first line (`message: cause`), any advice lines kept below, and every
/// control character of the strings it quotes escaped.
pub fn message(err: &Error) -> String {
    use std::error::Error as _;
    let message = err.to_string();
    let (head, advice) = message.split_once('\n').unwrap_or((&message, ""));
    let mut out = head.to_owned();
    let mut cause = err.source();
    while let Some(source) = cause {
        out.push_str(": ");
        out.push_str(&source.to_string());
        cause = source.source();
    }
    if !advice.is_empty() {
        out.push('\n');
        out.push_str(advice);
    }
    crate::term::printable::printable_lines(&out).into_owned()
}

/// Lives with the text helpers below the stores, which use it too.
pub(crate) use crate::term::printable::first_line;

fn exec_reason(cause: &io::Error) -> String {
    match cause.kind() {
        io::ErrorKind::PermissionDenied => {
            "permission denied (is it executable? try: chmod +x)".to_owned()
        }
        io::ErrorKind::NotFound => "not found (or its interpreter is missing)".to_owned(),
        _ => cause.to_string(),
    }
}

fn missing_message(
    missing: &[MissingEntry],
    store: &str,
    fix: &str,
    passed_over: Option<&StoreError>,
) -> String {
    let width = missing.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let mut out = format!(
        "{} required secret{} missing from {store} and the environment:",
        missing.len(),
        if missing.len() == 1 { " is" } else { "s are" }
    );
    for entry in missing {
        let _ = write!(
            out,
            "\n  {:width$}  service {:?}, username {:?}",
            entry.name, entry.service, entry.username
        );
        if let Some(description) = &entry.description {
            let _ = write!(out, " ({})", crate::term::printable::printable(description));
        }
    }
    if crate::store::StoreKind::from_spelling(store).is_some_and(|kind| kind.read_only()) {
        let names: Vec<&str> = missing.iter().map(|m| m.name.as_str()).collect();
        out.push('\n');
        out.push_str(&read_only_advice(store, fix, &names));
    } else if store == "agent" {
        // The values live where the agent runs, under whatever name that
        // side's manifest gives them: no command here would be sure to work.
        out.push_str(
            "\nstore each one where the agent runs: there, `with-secrets set` the entry \
             with this service and username, in the project whose manifest names it",
        );
    } else {
        out.push_str("\nstore each one with:");
        for entry in missing {
            let _ = write!(out, "\n  {fix} set {}", entry.name);
        }
    }
    out.push_str("\nor, in CI, set the variable in the environment");
    if let Some(reason) = passed_over {
        let reason = first_line(reason);
        let _ = write!(
            out,
            "\n(the store is {store} because {} is not here: {reason}; choose one with --store)",
            crate::store::native_name()
        );
    }
    out
}

/// What stores `names` when the store is read-only (keyrings-alt): `set`
/// cannot, so copy what it has into a writable store, set the rest there,
/// and use that one. `fix` is the command prefix that reaches a writable
/// store (see `Config::set_fix`).
pub(crate) fn read_only_advice(store: &str, fix: &str, names: &[&str]) -> String {
    let mut out = format!(
        "{store} is read-only, so `set` cannot store in it; copy what it has into a writable \
         store, store the rest there, then run with that store (--store auto):\n  \
         {fix} import --from {store}"
    );
    for name in names {
        let _ = write!(out, "\n  {fix} set {name}");
    }
    out
}

fn unavailable_message(store: &str, cause: &StoreError, names: &[String]) -> String {
    format!(
        "{store}: {cause}\n{} {} no fallback in the environment: {}",
        if names.len() == 1 {
            "this variable"
        } else {
            "these variables"
        },
        if names.len() == 1 { "has" } else { "have" },
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_env() {
        let not_found = Error::CommandNotFound {
            program: "nope".into(),
        };
        assert_eq!(not_found.exit_code(), 127);
        let denied = Error::CannotExecute {
            program: "./x".into(),
            cause: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert_eq!(denied.exit_code(), 126);
        let vanished = Error::CannotExecute {
            program: "./x".into(),
            cause: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(vanished.exit_code(), 127);
        let usage = Error::Usage {
            message: "x".into(),
        };
        assert_eq!(usage.exit_code(), 125);
    }

    #[test]
    fn missing_lists_every_entry_and_its_fix() {
        let error = Error::Missing {
            missing: vec![
                MissingEntry {
                    name: "A".into(),
                    service: "s".into(),
                    username: "u".into(),
                    description: None,
                },
                MissingEntry {
                    name: "LONGER".into(),
                    service: "t".into(),
                    username: "v w".into(),
                    description: Some("db".into()),
                },
            ],
            store: "secret-service",
            fix: "with-secrets".into(),
            passed_over: None,
        };
        assert_eq!(
            error.to_string(),
            "2 required secrets are missing from secret-service and the environment:\n  \
             A       service \"s\", username \"u\"\n  \
             LONGER  service \"t\", username \"v w\" (db)\n\
             store each one with:\n  with-secrets set A\n  with-secrets set LONGER\n\
             or, in CI, set the variable in the environment"
        );
    }
}
