//! The manifest's own errors: finding it, reading it, parsing it, choosing
//! a profile. The crate's `Error` wraps them (`Error::Manifest`), as it does
//! each layer's, so this layer needs nothing from above it.

use std::io;
use std::path::{Path, PathBuf};

use crate::term::printable::printable_path;

/// What can go wrong with the manifest. A variant carries what a person
/// needs to fix it (the path, the line, the profile) and never a secret
/// value: a snippet is masked where it is made ([`super::diagnostic`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no {file} found in {} or any folder above it\n  create one with: with-secrets init\n  or name one with: --manifest PATH (or WITH_SECRETS_MANIFEST)",
        searched.first().map_or_else(String::new, |dir| printable_path(dir))
    )]
    ManifestNotFound {
        /// The file name looked for, `secrets.toml`.
        file: &'static str,
        searched: Vec<PathBuf>,
    },

    #[error(
        "{} belongs to another user (uid {owner}), so with-secrets does not use it: a manifest \
         found by walking up the folders could have been put there by someone else to choose \
         what your commands receive\n  if you trust it, name it: with-secrets -m {} ...",
        printable_path(path),
        shell_words::quote(&printable_path(path))
    )]
    ManifestNotOwned { path: PathBuf, owner: u32 },

    #[error("cannot read manifest {}{}", printable_path(path), read_hint(path, *named_by, source))]
    ManifestRead {
        path: PathBuf,
        /// `--manifest` or `WITH_SECRETS_MANIFEST`; `None` when found by walking up.
        named_by: Option<&'static str>,
        #[source]
        source: io::Error,
    },

    #[error("{}:{line}:{column}: {message}\n{snippet}", printable_path(path))]
    Manifest {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        snippet: String,
    },

    #[error("{}", unknown_profile_message(name, from, path, profiles))]
    UnknownProfile {
        name: String,
        /// `--profile` or `WITH_SECRETS_PROFILE`.
        from: &'static str,
        path: PathBuf,
        /// The profiles the manifest has, in its order.
        profiles: Vec<String>,
    },
}

fn unknown_profile_message(name: &str, from: &str, path: &Path, profiles: &[String]) -> String {
    let path = printable_path(path);
    let none = if from == "--profile" {
        "run without --profile"
    } else {
        "unset WITH_SECRETS_PROFILE"
    };
    if profiles.is_empty() {
        return format!(
            "no profile `{name}` (from {from}): {path} has no profiles\n  add one: \
             [profiles.{name}.secrets], or {none} to use [secrets] alone"
        );
    }
    format!(
        "no profile `{name}` (from {from}) in {path}; it has: {}\n  use one of those, add \
         [profiles.{name}.secrets], or {none} to use [secrets] alone",
        profiles.join(", ")
    )
}

/// How to make a manifest that is not there, by what named it: `init`
/// writes where `WITH_SECRETS_MANIFEST` points, and where `-m` points only
/// when given `-m` again.
fn read_hint(path: &Path, named_by: Option<&str>, source: &io::Error) -> String {
    if source.kind() != io::ErrorKind::NotFound {
        return String::new();
    }
    match named_by {
        Some("WITH_SECRETS_MANIFEST") => "\n  create it with: with-secrets init (or fix \
             WITH_SECRETS_MANIFEST, or unset it to use the nearest secrets.toml)"
            .to_owned(),
        Some(flag) => format!(
            "\n  create it with: with-secrets -m {} init (or fix the {flag} path)",
            shell_words::quote(&printable_path(path))
        ),
        None => "\n  create it with: with-secrets init".to_owned(),
    }
}
