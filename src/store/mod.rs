//! The `Store` trait, which every keyring backend implements, and how one is picked.
//!
//! The primary call is a batch: [`Store::get_all`] receives every entry of the
//! manifest at once, so a backend can fetch them all over one connection with
//! as few round trips as its protocol allows.

use std::path::Path;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::secret::Secret;

pub(crate) use error::{Class, Common, Fault, StoreError};
pub(crate) use kind::{StoreKind, native_name};

pub(crate) mod bridge;
mod error;
pub(crate) mod escape;
pub(crate) mod file;
pub(crate) mod keyrings_alt;
#[cfg(target_os = "linux")]
pub(crate) mod keyutils;
mod kind;
#[cfg(test)]
pub(crate) mod memory;
#[cfg(target_os = "macos")]
mod native;
#[cfg(all(unix, not(target_os = "macos")))]
pub(crate) mod secret_service;
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

/// Opens a store. This must be cheap and must not block: a backend that
/// talks to a daemon only starts talking to it when first used.
pub(crate) fn open(
    kind: StoreKind,
    timeout: Duration,
    person: &'static dyn Person,
    vault: &vault::Settings,
) -> Result<Box<dyn Store>, StoreError> {
    match kind {
        StoreKind::Vault => Ok(Box::new(vault::Vault::open(timeout, vault))),
        StoreKind::Auto => Ok(Box::new(Auto::new(timeout, person))),
        StoreKind::File => Ok(Box::new(file::FileStore::open(timeout, person)?)),
        StoreKind::KeyringsAlt => Ok(Box::new(keyrings_alt::KeyringsAlt::open(person)?)),
        #[cfg(target_os = "linux")]
        StoreKind::Keyutils => Ok(Box::new(keyutils::Keyutils::open()?)),
        // The Windows Credential Manager from WSL, through the Windows build.
        #[cfg(target_os = "linux")]
        StoreKind::Windows => Ok(Box::new(bridge::Bridge::open(timeout))),
        other if other.name() == native_name() => open_native(timeout, person),
        other => Err(StoreError::from(Common::Unsupported {
            store: other.name(),
        })),
    }
}

/// `auto`: the platform's keyring when one answers, else the file store.
/// On WSL the Windows Credential Manager comes first (through the Windows
/// build, see `bridge`), when its helper is there.
///
/// On Linux "answers" means a session bus on which something owns (or can
/// be started as) `org.freedesktop.secrets`. That is only known after the
/// first call, so the choice is made then: the first batch goes to the
/// Secret Service, and only an error that says no keyring daemon is there
/// (no bus, no reachable bus, no service) sends it, and everything after
/// it, to the file store. A locked, hung or refusing keyring stays an error:
/// silently using another store would hide it.
struct Auto {
    timeout: Duration,
    person: &'static dyn Person,
    chosen: Option<Box<dyn Store>>,
    /// Why the native keyring was passed over, for `doctor`.
    reason: Option<StoreError>,
    /// Every store passed over and why, for `-v`.
    passed: Vec<(&'static str, StoreError)>,
    /// The store whose error ended the choice, so that the error is told
    /// under its name.
    failed: Option<&'static str>,
}

impl Auto {
    fn new(timeout: Duration, person: &'static dyn Person) -> Self {
        Self {
            timeout,
            person,
            chosen: None,
            reason: None,
            passed: Vec::new(),
            failed: None,
        }
    }

    fn with<T>(
        &mut self,
        mut call: impl FnMut(&mut dyn Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(store) = &mut self.chosen {
            return call(store.as_mut());
        }
        #[cfg(target_os = "linux")]
        if crate::machine::wsl().is_some() {
            let mut windows: Box<dyn Store> = Box::new(bridge::Bridge::open(self.timeout));
            match call(windows.as_mut()) {
                Ok(value) => {
                    self.chosen = Some(windows);
                    return Ok(value);
                }
                Err(err) if err.means_absent() => self.passed.push(("windows", err)),
                Err(err) => {
                    self.failed = Some("windows");
                    return Err(err);
                }
            }
        }
        let native = open_native(self.timeout, self.person).and_then(|mut store| {
            let result = call(store.as_mut());
            result.map(|value| (store, value))
        });
        match native {
            Ok((store, value)) => {
                self.chosen = Some(store);
                Ok(value)
            }
            Err(err) if err.means_absent() => {
                let mut store: Box<dyn Store> =
                    Box::new(file::FileStore::open(self.timeout, self.person)?);
                let value = call(store.as_mut());
                self.chosen = Some(store);
                self.passed.push((native_name(), err.clone()));
                self.reason = Some(err);
                value
            }
            Err(err) => Err(err),
        }
    }
}

impl Store for Auto {
    fn name(&self) -> &'static str {
        match &self.chosen {
            Some(store) => store.name(),
            None => self.failed.unwrap_or(native_name()),
        }
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        self.with(|store| store.get_all(keys))
    }

    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        self.with(|store| store.set(key, label, value))
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        self.with(|store| store.delete(key))
    }

    fn create_all(&mut self, items: &[(Key<'_>, String, &Secret)]) -> Result<(), StoreError> {
        self.with(|store| store.create_all(items))
    }

    fn holds_values(&self) -> bool {
        self.chosen
            .as_ref()
            .is_some_and(|store| store.holds_values())
    }

    fn fallback_reason(&self) -> Option<&StoreError> {
        self.reason.as_ref()
    }

    fn passed_over(&self) -> &[(&'static str, StoreError)] {
        &self.passed
    }
}

fn open_native(
    timeout: Duration,
    person: &'static dyn Person,
) -> Result<Box<dyn Store>, StoreError> {
    #[cfg(all(unix, not(target_os = "macos")))]
    return Ok(Box::new(secret_service::SecretService::connect(
        timeout, person,
    )?));
    #[cfg(target_os = "macos")]
    return {
        let _ = (timeout, person);
        Ok(Box::new(native::Native::open()?))
    };
    #[cfg(windows)]
    return {
        let _ = (timeout, person);
        Ok(Box::new(windows::Windows::open()))
    };
    #[cfg(not(any(unix, windows)))]
    return {
        let _ = (timeout, person);
        Err(StoreError::from(Common::Unsupported {
            store: native_name(),
        }))
    };
}
