//! `auto`: the store a person gets without choosing one.

use super::registry::{native_kind, open};
use super::{Found, Key, Settings, Store, StoreError, StoreKind, native_name};
use crate::secret::Secret;

/// `auto`: the platform's keyring when one answers, else the file store.
/// Where `WITH_SECRETS_AGENT` names an agent, the agent, and nothing else.
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
pub(super) struct Auto {
    settings: Settings,
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
    pub(super) fn new(settings: &Settings) -> Self {
        Self {
            settings: settings.clone(),
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
        // An agent named by WITH_SECRETS_AGENT comes first, and whatever it
        // answers stands: every error of it means it is there and failed.
        if self.settings.agent.is_some() {
            let mut agent = open(StoreKind::Agent, &self.settings)?;
            let result = call(agent.as_mut());
            if result.is_ok() {
                self.chosen = Some(agent);
            } else {
                self.failed = Some("agent");
            }
            return result;
        }
        #[cfg(target_os = "linux")]
        if crate::machine::wsl().is_some() {
            let mut windows = open(StoreKind::Windows, &self.settings)?;
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
        let native = open(native_kind(), &self.settings).and_then(|mut store| {
            let result = call(store.as_mut());
            result.map(|value| (store, value))
        });
        match native {
            Ok((store, value)) => {
                self.chosen = Some(store);
                Ok(value)
            }
            Err(err) if err.means_absent() => {
                let mut store = open(StoreKind::File, &self.settings)?;
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
