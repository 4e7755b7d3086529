//! The bridge's own errors: the Windows helper missing, failing, hung or
//! of another version, and what the Windows side reports.

use std::fmt;
use std::time::Duration;

use crate::store::error::{Class, Fault};

/// Why the Windows helper could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Error {
    /// No Windows helper here (`windows` from Linux): no with-secrets.exe on
    /// PATH, no WSL.
    HelperMissing { reason: String },
    /// The Windows helper started (or was found) but failed.
    HelperFailed { command: String, reason: String },
    /// The Windows helper did not answer within the deadline; it was killed.
    HelperTimedOut { command: String, after: Duration },
    /// The Windows helper is another version of with-secrets.
    HelperMismatch {
        command: String,
        /// Its version and protocol (boxed: this enum stays small).
        theirs: Box<str>,
        /// Whether the helper is the older one, to update.
        update_helper: bool,
    },
    /// The store behind the Windows helper reported an error.
    Remote { message: String },
}

impl Fault for Error {
    fn class(&self) -> Class {
        match self {
            // No Windows helper to run: not on WSL, or nothing installed on
            // the Windows side. One that runs but fails, hangs or is another
            // version is a store that is there but fails.
            Self::HelperMissing { .. } => Class::Absent,
            Self::HelperTimedOut { .. } => Class::TimedOut,
            Self::HelperFailed { .. } | Self::HelperMismatch { .. } | Self::Remote { .. } => {
                Class::Failed
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HelperMissing { reason } => write!(
                f,
                "no Windows helper: {reason}\n  on WSL, put the Windows build of with-secrets \
                 (with-secrets.exe) on the Windows PATH, or set WITH_SECRETS_WINDOWS_HELPER"
            ),
            Self::HelperFailed { command, reason } => {
                write!(f, "the Windows helper ({command}) failed: {reason}")
            }
            Self::HelperTimedOut { command, after } => write!(
                f,
                "the Windows helper ({command}) did not answer within {} s, and was stopped\n  \
                 check that it runs (e.g. `with-secrets.exe doctor` in Windows), or give it \
                 longer with --timeout",
                after.as_secs_f32()
            ),
            Self::HelperMismatch {
                command,
                theirs,
                update_helper,
            } => write!(
                f,
                "the Windows helper ({command}) is with-secrets {theirs}, but this is \
                 with-secrets {}, protocol {}\n  {}",
                super::wire::VERSION,
                super::wire::PROTOCOL,
                if *update_helper {
                    "update the Windows build (with-secrets.exe) to this version"
                } else {
                    "update this (Linux) with-secrets to the Windows build's version"
                }
            ),
            Self::Remote { message } => write!(f, "the Windows side reports: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn only_a_missing_helper_means_absent() {
        assert!(
            StoreError::from(Error::HelperMissing {
                reason: "not on PATH".into(),
            })
            .means_absent()
        );
        for (err, class) in [
            (
                Error::HelperFailed {
                    command: "c".into(),
                    reason: "exit 1".into(),
                },
                Class::Failed,
            ),
            (
                Error::HelperTimedOut {
                    command: "c".into(),
                    after: Duration::ZERO,
                },
                Class::TimedOut,
            ),
            (
                Error::HelperMismatch {
                    command: "c".into(),
                    theirs: "0.0.1".into(),
                    update_helper: true,
                },
                Class::Failed,
            ),
            (
                Error::Remote {
                    message: "locked".into(),
                },
                Class::Failed,
            ),
        ] {
            let made = StoreError::from(err.clone());
            assert!(!made.means_absent(), "{err:?}");
            assert_eq!(made.class(), class, "{err:?}");
        }
    }
}
