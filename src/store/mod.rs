//! The `Store` trait, which every keyring backend implements.
//!
//! The primary call is a batch: [`Store::get_all`] receives every entry of the
//! manifest at once, so a backend can fetch them all over one connection with
//! as few round trips as its protocol allows.
//!
//! Every store is a peer: `registry` lists them all, opens each with one
//! [`Settings`] bundle and asks each for its section of `doctor`; each
//! store's errors are its own, each with a [`Class`] given when it is made
//! (`error`); and one contract suite (tests/contract.rs, and `memory`'s
//! unit tests) runs the same cases against every store.

use std::path::Path;

use zeroize::Zeroizing;

use crate::secret::Secret;

pub(crate) use error::{Class, Common, Fault, StoreError};
pub(crate) use registry::{Report, Settings, StoreKind, native_kind, native_name, open, report};

#[cfg(unix)]
pub(crate) mod agent;
mod auto;
pub(crate) mod bridge;
#[cfg(target_os = "linux")]
pub(crate) mod cache;
mod error;
pub(crate) mod escape;
pub(crate) mod file;
pub(crate) mod keyrings_alt;
#[cfg(target_os = "linux")]
pub(crate) mod keyutils;
#[cfg(test)]
pub(crate) mod memory;
#[cfg(target_os = "macos")]
mod native;
mod registry;
#[cfg(all(unix, not(target_os = "macos")))]
pub(crate) mod secret_service;
#[cfg(target_os = "linux")]
pub(crate) mod session_keyring;
pub(crate) mod vault;
#[cfg(windows)]
mod windows;

/// What identifies a keyring item: the same pair Python's `keyring` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key<'a> {
    pub(crate) service: &'a str,
    pub(crate) username: &'a str,
}

/// A value a store found for a key.
#[derive(Debug)]
pub(crate) struct Found {
    pub(crate) secret: Secret,
    /// How many items matched the key. Above 1, `secret` is the value of the
    /// most recently modified one.
    pub(crate) matches: usize,
    /// Where it came from the session cache (see `cache`): when it was
    /// read from the store.
    pub(crate) cached: Option<std::time::SystemTime>,
}

/// A keyring backend.
pub(crate) trait Store {
    /// The name a person uses for this store, e.g. `secret-service`.
    fn name(&self) -> &'static str;

    /// Looks up every key in one batch. The result has one slot per key, in
    /// order; `None` means the store has no item for it.
    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError>;

    /// Stores `value` for `key`, replacing what was there, so that exactly one
    /// item is left. `label` names a newly created item in keyring managers.
    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError>;

    /// Removes every item for `key`; returns how many there were.
    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError>;

    /// Stores values the store was just found not to have (generated ones),
    /// in as few round trips as the store allows; `label` as for `set`.
    fn create_all(&mut self, items: &[(Key<'_>, String, &Secret)]) -> Result<(), StoreError> {
        for (key, label, value) in items {
            self.set(*key, label, value)?;
        }
        Ok(())
    }

    /// Whether this store already holds values, so that a generated one
    /// goes where later runs will read it. A store made on first write (the
    /// file store with no file yet, which would need a new passphrase) does
    /// not: nothing is generated into it. Asked after a lookup.
    fn holds_values(&self) -> bool {
        true
    }

    /// For `auto`: why the platform keyring was passed over, if it was.
    fn fallback_reason(&self) -> Option<&StoreError> {
        None
    }

    /// For `auto`: every store passed over, in the order tried, and why.
    fn passed_over(&self) -> &[(&'static str, StoreError)] {
        &[]
    }

    /// For a slow store, which the session cache stands in front of: what
    /// tells its values from any other store's (a server's address and
    /// token, a helper, a socket). `None` for a store that is never cached,
    /// or one that is not there (it has no values to keep). Must be cheap:
    /// no call to the store.
    fn cache_identity(&self) -> Option<Zeroizing<String>> {
        None
    }
}

/// The variables that open a whole store, not one value: the command never
/// gets them, only the values it was given.
pub(crate) const UNLOCK_VARIABLES: [&str; 2] =
    [file::PASSPHRASE_VARIABLE, keyrings_alt::PASSWORD_VARIABLE];

/// What a store may need from the person running with-secrets. Stores never
/// touch the terminal: they ask through this, and the caller decides how
/// (`person::Terminal`: a variable, else a prompt where there is a
/// terminal, else an error that names the variable).
pub(crate) trait Person: Sync {
    /// The passphrase or password described by `ask`.
    fn secret(&self, ask: &Ask<'_>) -> Result<Zeroizing<Vec<u8>>, StoreError>;

    /// Whether someone is at a terminal, who could answer a keyring's own
    /// dialog (and so should be given longer to).
    #[cfg_attr(
        not(all(unix, not(target_os = "macos"))),
        allow(dead_code, reason = "only the Secret Service uses it")
    )]
    fn is_present(&self) -> bool;

    /// Something the person should see now, such as what we wait for.
    #[cfg_attr(
        not(all(unix, not(target_os = "macos"))),
        allow(dead_code, reason = "only the Secret Service uses it")
    )]
    fn tell(&self, message: &str);

    /// A warning, which `-q` silences.
    fn warn(&self, message: &str);
}

/// A passphrase or password a store needs.
pub(crate) struct Ask<'a> {
    /// What it opens.
    pub(crate) path: &'a Path,
    /// The environment variable that may hold it.
    pub(crate) variable: &'static str,
    /// What to call it when asking: `Passphrase for PATH: `.
    pub(crate) prompt: String,
    /// A new one, to set: asked twice, and never empty.
    pub(crate) new: bool,
}

/// The label of an item that with-secrets creates, as keyring managers such as
/// Seahorse and KeePassXC show it.
pub(crate) fn label(name: &str, key: Key<'_>) -> String {
    format!("{name} (with-secrets: {} / {})", key.service, key.username)
}
