//! Manifest plus store plus environment: where each variable's value comes from.
//!
//! Precedence, per variable: the keyring item first; if the keyring has none,
//! or there is no keyring here at all, the same-named variable already in the
//! environment (the CI fallback); else the variable is missing. A missing
//! optional variable is left unset; a missing required one stops the run. A
//! store that is there but fails stops the run whatever the environment
//! holds.

use std::ffi::OsStr;

use crate::error::{Error, MissingEntry};
use crate::manifest::{Entry, Manifest};
use crate::secret::Secret;
use crate::store::{Found, Key, Store, StoreError};

/// Where one entry's value comes from.
#[derive(Debug)]
pub enum Source {
    Store(Found),
    /// The variable is already set (and not empty) in the environment.
    Environment,
    Missing,
}

/// Every entry's source, in manifest order, plus the store error if the store
/// could not be used at all.
#[derive(Debug)]
pub struct Resolution {
    pub store: &'static str,
    pub sources: Vec<Source>,
    pub store_error: Option<StoreError>,
    /// Why `auto` passed over the platform's keyring, if it did.
    pub passed_over: Option<StoreError>,
}

impl Resolution {
    /// The store's error if the store is there but failed (locked, denied,
    /// a wrong passphrase, a damaged file, no answer in time). Then nothing
    /// was looked up, and the environment does not stand in for it: a stale
    /// exported value must never silently win over a keyring that, say, is
    /// only locked.
    pub fn store_failed(&self) -> Option<&StoreError> {
        self.store_error.as_ref().filter(|err| !err.means_absent())
    }
}

/// Looks every entry up with one batch call. `open` is only called when there
/// is something to look up, so an empty manifest never touches the keyring.
pub fn lookup(
    entries: &[Entry],
    store_name: &'static str,
    open: impl FnOnce() -> Result<Box<dyn Store>, StoreError>,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Resolution {
    // Two names may map to one item (one token under two variable names):
    // each item is asked for once, and every name that maps to it gets it.
    let mut keys: Vec<Key<'_>> = Vec::with_capacity(entries.len());
    let slots: Vec<usize> = entries
        .iter()
        .map(|entry| {
            let key = key(entry);
            keys.iter().position(|k| *k == key).unwrap_or_else(|| {
                keys.push(key);
                keys.len() - 1
            })
        })
        .collect();
    let mut store_name = store_name;
    let mut passed_over = None;
    let (found, store_error) = if keys.is_empty() {
        (Vec::new(), None)
    } else {
        let found = open().and_then(|mut store| {
            let found = store.get_all(&keys);
            // `auto` knows which store it is only once it has been used.
            store_name = store.name();
            passed_over = store.fallback_reason().cloned();
            found
        });
        match found {
            Ok(found) => (found, None),
            Err(err) => (Vec::new(), Some(err)),
        }
    };
    let fallback = store_error.as_ref().is_none_or(StoreError::means_absent);
    let sources = entries
        .iter()
        .zip(&slots)
        .map(
            |(entry, &slot)| match found.get(slot).and_then(Option::as_ref) {
                Some(found) => Source::Store(Found {
                    secret: found.secret.clone(),
                    matches: found.matches,
                }),
                // An empty variable counts as unset: CI systems expand a secret
                // that was never configured to an empty string.
                None if fallback && env(entry.name.as_str()).is_some_and(|v| !v.is_empty()) => {
                    Source::Environment
                }
                None => Source::Missing,
            },
        )
        .collect();
    Resolution {
        store: store_name,
        sources,
        store_error,
        passed_over,
    }
}

pub fn key(entry: &Entry) -> Key<'_> {
    Key {
        service: &entry.service,
        username: &entry.username,
    }
}

/// The variables to add to the command's environment: every value the store
/// found. Values from the environment are already there. Fails if a required
/// entry has no value, reporting every such entry at once.
pub fn variables(
    manifest: &Manifest,
    resolution: Resolution,
    fix: &str,
) -> Result<Vec<(String, Secret)>, Error> {
    if let Some(cause) = resolution.store_failed() {
        return Err(Error::Store {
            store: resolution.store,
            cause: cause.clone(),
        });
    }
    let mut variables = Vec::new();
    let mut missing = Vec::new();
    for (entry, source) in manifest.entries.iter().zip(resolution.sources) {
        match source {
            Source::Store(found) => {
                if found.secret.expose().contains(&0) {
                    return Err(Error::NulInValue {
                        name: entry.name.to_string(),
                        fix: fix.to_owned(),
                    });
                }
                variables.push((entry.name.to_string(), found.secret));
            }
            Source::Environment => {}
            Source::Missing if entry.optional => {}
            Source::Missing => missing.push(MissingEntry {
                name: entry.name.to_string(),
                service: entry.service.clone(),
                username: entry.username.clone(),
                description: entry.description.clone(),
            }),
        }
    }
    if missing.is_empty() {
        return Ok(variables);
    }
    // When the store itself failed, say why: that, not the entries, is what to fix.
    Err(match resolution.store_error {
        Some(cause) => Error::StoreUnavailable {
            store: resolution.store,
            cause,
            names: missing.into_iter().map(|m| m.name).collect(),
        },
        None => Error::Missing {
            missing,
            store: resolution.store,
            fix: fix.to_owned(),
            passed_over: resolution.passed_over,
        },
    })
}

/// Whether `name` is set to a non-empty value in this process's environment.
pub fn from_process_env(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(OsStr::new(name))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::store::memory::Memory;

    fn manifest() -> Manifest {
        Manifest::parse(
            Path::new("secrets.toml"),
            r#"
[secrets]
A = { service = "s", username = "a" }
B = { service = "s", username = "b" }
C = { service = "s", username = "c", optional = true }
"#,
        )
        .unwrap()
    }

    fn resolve(store: Memory, env: &[(&str, &str)]) -> Result<Vec<(String, Secret)>, Error> {
        let manifest = manifest();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let resolution = lookup(
            &manifest.entries,
            "memory",
            || Ok(Box::new(store)),
            |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.into()),
        );
        variables(&manifest, resolution, "with-secrets")
    }

    fn names(vars: &[(String, Secret)]) -> Vec<&str> {
        vars.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn every_entry_comes_from_one_batch_and_each_item_is_asked_for_once() {
        let manifest = Manifest::parse(
            Path::new("secrets.toml"),
            r#"
[secrets]
A = { service = "s", username = "a" }
B = { service = "s", username = "b" }
ALSO_A = { service = "s", username = "a" }
C = { service = "s", username = "c", optional = true }
"#,
        )
        .unwrap();
        let store = Memory::with(&[("s", "a", "1"), ("s", "b", "2")]);
        let batches = store.batches.clone();
        let resolution = lookup(
            &manifest.entries,
            "memory",
            || Ok(Box::new(store)),
            |_| None,
        );
        assert_eq!(
            *batches.borrow(),
            [3],
            "one batch of the three distinct items"
        );
        let vars = variables(&manifest, resolution, "with-secrets").unwrap();
        let values: Vec<(&str, &[u8])> = vars
            .iter()
            .map(|(name, value)| (name.as_str(), value.expose()))
            .collect();
        assert_eq!(values, [("A", &b"1"[..]), ("B", b"2"), ("ALSO_A", b"1")]);
    }

    #[test]
    fn a_store_that_is_there_but_fails_is_never_replaced_by_the_environment() {
        for fail in [
            StoreError::Locked {
                daemon: crate::store::Daemon::Unknown,
            },
            StoreError::TimedOut {
                after: std::time::Duration::from_secs(1),
                daemon: crate::store::Daemon::Unknown,
            },
            StoreError::Denied("no".into()),
        ] {
            let store = Memory {
                fail: Some(fail.clone()),
                ..Memory::default()
            };
            let err = resolve(store, &[("A", "x"), ("B", "y")]).unwrap_err();
            assert!(
                matches!(&err, Error::Store { cause, .. } if *cause == fail),
                "{err:?}"
            );
        }
    }

    #[test]
    fn a_missing_optional_entry_is_left_unset() {
        let vars = resolve(Memory::with(&[("s", "a", "1"), ("s", "b", "2")]), &[]).unwrap();
        assert_eq!(names(&vars), ["A", "B"]);
        assert_eq!(vars[1].1.expose(), b"2");
    }

    #[test]
    fn every_missing_required_entry_is_reported_at_once() {
        let err = resolve(Memory::default(), &[]).unwrap_err();
        match err {
            Error::Missing { missing, .. } => {
                let names: Vec<_> = missing.iter().map(|m| m.name.as_str()).collect();
                assert_eq!(names, ["A", "B"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_environment_fills_in_what_the_store_lacks_but_never_wins() {
        let vars = resolve(
            Memory::with(&[("s", "a", "store")]),
            &[("A", "env"), ("B", "env")],
        )
        .unwrap();
        assert_eq!(names(&vars), ["A"]);
        assert_eq!(vars[0].1.expose(), b"store");
    }

    #[test]
    fn an_empty_environment_variable_is_not_a_fallback() {
        let err = resolve(Memory::with(&[("s", "a", "1")]), &[("B", "")]).unwrap_err();
        assert!(matches!(err, Error::Missing { .. }), "{err:?}");
    }

    #[test]
    fn an_unreachable_store_falls_back_to_the_environment() {
        let store = Memory {
            fail: Some(StoreError::NoSessionBus),
            ..Memory::default()
        };
        assert!(
            resolve(store, &[("A", "x"), ("B", "y")])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn an_unreachable_store_without_fallback_names_the_store_and_the_variables() {
        let store = Memory {
            fail: Some(StoreError::NoSessionBus),
            ..Memory::default()
        };
        let err = resolve(store, &[("A", "x")]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("memory: no D-Bus session bus"),
            "{message}"
        );
        assert!(
            message.contains("this variable has no fallback in the environment: B"),
            "{message}"
        );
    }

    #[test]
    fn a_value_with_a_nul_byte_is_refused_by_name() {
        let err = resolve(Memory::with(&[("s", "a", "x\0y"), ("s", "b", "2")]), &[]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("value of A contains a NUL byte"),
            "{message}"
        );
    }

    #[test]
    fn an_empty_manifest_never_opens_the_store() {
        let manifest = Manifest::parse(Path::new("m"), "").unwrap();
        let resolution = lookup(&manifest.entries, "memory", || panic!("opened"), |_| None);
        assert!(resolution.sources.is_empty());
    }
}
