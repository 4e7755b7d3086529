//! Why a store could not do what was asked.
//!
//! Each store owns its errors: a type of its own (the Secret Service's,
//! the bridge's, vault's, keyutils'), or [`Common`], what any store may say.
//! Every such type is a [`Fault`], which must give each of its errors a
//! [`Class`]; a [`StoreError`] is made from a fault and keeps its class, so
//! the class is fixed when the error is made, by the store that knows it.
//! Whether anything may stand in for a store (`auto` passing over an absent
//! keyring, a same-named variable from the environment) is then
//! `class == Class::Absent` and nothing else.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// What a store's failure means for what may happen next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// There is no such store here at all: no daemon, no helper, a platform
    /// or machine that cannot have it. Only this lets anything stand in.
    Absent,
    /// The store is there but locked, and was not (or could not be) opened.
    Locked,
    /// The store is there and refused.
    Denied,
    /// The store is there and did not answer in time.
    #[cfg_attr(
        not(all(unix, not(target_os = "macos"))),
        allow(dead_code, reason = "the Secret Service and the bridge time out")
    )]
    TimedOut,
    /// The store is there and cannot be written.
    ReadOnly,
    /// The store is there and failed in any other way.
    Failed,
}

impl Class {
    /// Every class, by the name the bridge and the agent send.
    const NAMES: [(Self, &'static str); 6] = [
        (Self::Absent, "absent"),
        (Self::Locked, "locked"),
        (Self::Denied, "denied"),
        (Self::TimedOut, "timed-out"),
        (Self::ReadOnly, "read-only"),
        (Self::Failed, "failed"),
    ];

    /// The name it is sent by.
    pub(crate) fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(class, _)| *class == self)
            .map_or("failed", |(_, name)| name)
    }

    /// The class sent as `name`, if any.
    #[cfg_attr(
        not(unix),
        allow(dead_code, reason = "only the agent's client reads one")
    )]
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(class, _)| *class)
    }
}

/// A store's own error type. Its message says what went wrong and what to
/// do next, and never carries a secret value.
pub(crate) trait Fault: fmt::Display + fmt::Debug + Send + Sync + Any {
    /// The class of this error: required, so that no store can make an
    /// error without saying whether the store is there.
    fn class(&self) -> Class;
}

/// Why a store could not do what was asked: a store's own error, with the
/// class it was given when it was made.
#[derive(Debug, Clone)]
pub struct StoreError {
    class: Class,
    fault: Arc<dyn Fault>,
}

impl<F: Fault> From<F> for StoreError {
    fn from(fault: F) -> Self {
        Self {
            class: fault.class(),
            fault: Arc::new(fault),
        }
    }
}

impl StoreError {
    /// What this error means for what may happen next.
    pub(crate) fn class(&self) -> Class {
        self.class
    }

    /// Whether this says there is no store here at all, as opposed to one
    /// that is there but fails (locked, hung, refusing, a wrong passphrase,
    /// a damaged file). Only then may anything stand in for the store: `auto`
    /// passes over an absent platform keyring for the file store, and a run
    /// takes same-named variables from the environment (the CI case). A store
    /// that is there but fails must stay an error, or a stale value wins.
    pub(crate) fn means_absent(&self) -> bool {
        self.class() == Class::Absent
    }

    /// The store's own error, if it is of type `F`.
    #[cfg_attr(
        not(all(unix, not(target_os = "macos"))),
        allow(dead_code, reason = "the Secret Service looks into its own")
    )]
    pub(crate) fn fault<F: Fault>(&self) -> Option<&F> {
        let fault: &dyn Any = &*self.fault;
        fault.downcast_ref()
    }
}

impl PartialEq for StoreError {
    /// The same class and the same message: what a person is told.
    fn eq(&self, other: &Self) -> bool {
        self.class == other.class && self.to_string() == other.to_string()
    }
}

impl Eq for StoreError {}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fault.fmt(f)
    }
}

impl std::error::Error for StoreError {}

/// What any store may say: errors whose cause and advice are the same
/// whichever store meets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Common {
    /// The store does not exist on this platform.
    Unsupported { store: &'static str },
    /// The store cannot work on this machine, e.g. a blocked system call,
    /// or no HOME to keep its files in.
    Unavailable { store: &'static str, reason: String },
    /// The store refused access.
    #[cfg_attr(
        not(any(target_os = "macos", windows)),
        allow(dead_code, reason = "the Keychain and the Credential Manager say it")
    )]
    Denied(String),
    /// The store, or the system under it, failed; the text says how and
    /// what to do.
    Failed(String),
    /// The store cannot be written.
    ReadOnly { store: &'static str },
    /// A store file cannot be read or makes no sense.
    Unreadable { path: PathBuf, reason: String },
    /// An encrypted store file needs a password and none can be asked for.
    NeedPassword {
        path: PathBuf,
        variable: &'static str,
    },
    /// A store file that does not exist yet needs a new passphrase to be
    /// made with, and none can be asked for.
    NeedNewPassword {
        path: PathBuf,
        variable: &'static str,
    },
    /// The password does not open an encrypted store file.
    BadPassword {
        path: PathBuf,
        variable: &'static str,
    },
    /// A value this store cannot hold (the Windows Credential Manager: not
    /// UTF-8, or longer than its blob). `what` is the entry's label, which
    /// starts with the variable's name.
    Unstorable { what: String, reason: String },
    /// Generating values failed: `names` are the entries, `cause` why, and
    /// `storing` whether it was the write (else the second lookup, after
    /// waiting for another run that was generating values).
    Generated {
        names: String,
        storing: bool,
        cause: Box<StoreError>,
    },
}

impl Fault for Common {
    fn class(&self) -> Class {
        match self {
            // A store this platform, or this machine, cannot have: the
            // kernel keyring blocked by a container's seccomp profile, no
            // HOME to put a file store in.
            Self::Unsupported { .. } | Self::Unavailable { .. } => Class::Absent,
            Self::Denied(_) => Class::Denied,
            Self::ReadOnly { .. } => Class::ReadOnly,
            // A passphrase nobody can give, or a wrong one: the store is
            // there, and stays shut.
            Self::NeedPassword { .. } | Self::NeedNewPassword { .. } | Self::BadPassword { .. } => {
                Class::Locked
            }
            Self::Failed(_)
            | Self::Unreadable { .. }
            | Self::Unstorable { .. }
            | Self::Generated { .. } => Class::Failed,
        }
    }
}

impl fmt::Display for Common {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(reason) => write!(
                f,
                "access denied: {reason}\n  allow with-secrets in your keyring's access \
                 settings, then run this again"
            ),
            Self::Failed(reason) => f.write_str(reason),
            Self::ReadOnly { store } => write!(
                f,
                "{store} is read-only: with-secrets only reads it, and changes nothing in it\n  \
                 to move off it, copy what it has into a writable store: \
                 with-secrets --store auto import --from {store}"
            ),
            Self::Unsupported { store } => write!(
                f,
                "{store} is not available on this platform\n  \
                 leave out --store (and WITH_SECRETS_STORE) to use the platform's keyring"
            ),
            Self::Unreadable { path, reason } => {
                write!(f, "cannot read {}: {reason}", path.display())
            }
            Self::NeedPassword { path, variable } => write!(
                f,
                "{} is encrypted, and there is no terminal to ask for its password\n  \
                 set {variable} to its password",
                path.display(),
            ),
            Self::NeedNewPassword { path, variable } => write!(
                f,
                "{} does not exist yet, and there is no terminal to ask for the new passphrase \
                 that will encrypt it\n  create it without a terminal: set {variable} to a new \
                 passphrase and run this again (or run this on a terminal)",
                path.display(),
            ),
            Self::BadPassword { path, variable } => write!(
                f,
                "the password does not open {}; nothing was changed\n  \
                 check {variable} (or what you typed) against the one the file was made with",
                path.display(),
            ),
            Self::Unavailable { reason, .. } => write!(f, "cannot be used here: {reason}"),
            Self::Unstorable { what, reason } => write!(
                f,
                "cannot store {what}: {reason}; nothing was changed\n  \
                 store a shorter value, or use another store (--store file)"
            ),
            Self::Generated {
                names,
                storing: true,
                cause,
            } => write!(f, "cannot store the value generated for {names}: {cause}"),
            Self::Generated { names, cause, .. } => write!(
                f,
                "cannot look again for {names} before generating their values: {cause}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_store_that_is_not_here_at_all_means_absent() {
        let path = || PathBuf::from("f");
        let absent = [
            Common::Unsupported { store: "keychain" },
            Common::Unavailable {
                store: "keyutils",
                reason: "seccomp".into(),
            },
        ];
        let failing = [
            Common::Denied("no".into()),
            Common::Failed("p".into()),
            Common::Unstorable {
                what: "N".into(),
                reason: "too long".into(),
            },
            Common::ReadOnly {
                store: "keyrings-alt",
            },
            Common::Unreadable {
                path: path(),
                reason: "damaged".into(),
            },
            Common::NeedPassword {
                path: path(),
                variable: "V",
            },
            Common::NeedNewPassword {
                path: path(),
                variable: "V",
            },
            Common::BadPassword {
                path: path(),
                variable: "V",
            },
            Common::Generated {
                names: "A".into(),
                storing: true,
                cause: Box::new(Common::Unsupported { store: "file" }.into()),
            },
        ];
        for err in absent {
            assert!(StoreError::from(err.clone()).means_absent(), "{err:?}");
        }
        for err in failing {
            assert!(!StoreError::from(err.clone()).means_absent(), "{err:?}");
        }
    }

    #[test]
    fn an_error_keeps_the_class_and_the_type_it_was_made_with() {
        let err = StoreError::from(Common::ReadOnly { store: "x" });
        assert_eq!(err.class(), Class::ReadOnly);
        assert_eq!(
            err.fault::<Common>(),
            Some(&Common::ReadOnly { store: "x" })
        );
        assert!(err.to_string().starts_with("x is read-only"), "{err}");
        let copy = err.clone();
        assert_eq!(copy, err);
    }
}
