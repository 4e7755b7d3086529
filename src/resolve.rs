//! Manifest plus store plus environment: every variable, each with its
//! value's source.
//!
//! Precedence, per variable: the keyring item first; if the keyring has none,
//! or there is no keyring here at all, the same-named variable already in the
//! environment (the CI fallback); else the variable is missing. A missing
//! optional variable is left unset; a missing required one stops the run. A
//! store that is there but fails stops the run whatever the environment
//! holds. The environment is read once, here.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use crate::config::{Config, Project, StoreSource};
use crate::error::{Error, MissingEntry, first_line};
use crate::manifest::{Entry, Manifest};
use crate::secret::Secret;
use crate::store::{self, Found, Key, Store, StoreError};

/// Where one entry's value comes from.
#[derive(Debug)]
pub(crate) enum Source {
    Store(Found),
    /// The variable is already set (and not empty) in the environment: the
    /// value it has there.
    Environment(Secret),
    Missing,
}

/// Every entry's source, in manifest order, plus the store error if the store
/// could not be used at all.
#[derive(Debug)]
pub(crate) struct Resolution {
    pub(crate) store: &'static str,
    pub(crate) sources: Vec<Source>,
    pub(crate) store_error: Option<StoreError>,
    /// Why `auto` passed over the platform's keyring, if it did.
    pub(crate) passed_over: Option<StoreError>,
    /// Every store `auto` passed over (on WSL, `windows` first), and why.
    pub(crate) passed: Vec<(&'static str, StoreError)>,
}

impl Resolution {
    /// The store's error if the store is there but failed (locked, denied,
    /// a wrong passphrase, a damaged file, no answer in time). Then nothing
    /// was looked up, and the environment does not stand in for it: a stale
    /// exported value must never silently win over a keyring that, say, is
    /// only locked.
    pub(crate) fn store_failed(&self) -> Option<&StoreError> {
        self.store_error.as_ref().filter(|err| !err.means_absent())
    }
}

/// A variable with a value, and where the value came from.
#[derive(Debug)]
pub(crate) struct Variable {
    pub(crate) name: String,
    pub(crate) value: Secret,
    /// From the store; else it was already in the environment (the CI
    /// fallback), so the command has it without our help.
    pub(crate) from_store: bool,
}

/// Looks every entry of the project's manifest up in its store, saying under
/// `-v` which store answered, why that one, and how long it took.
pub(crate) fn lookup(config: &Config, project: &Project) -> Resolution {
    let start = Instant::now();
    let resolution = lookup_in(
        &project.manifest.entries,
        project.store.name(),
        || config.open_store(project.store, &project.manifest.vault),
        from_process_env,
    );
    if crate::term::verbosity::verbose() {
        explain_lookup(project, &resolution, start.elapsed());
    }
    resolution
}

/// Looks every entry up with one batch call. `open` is only called when there
/// is something to look up, so an empty manifest never touches the keyring.
fn lookup_in(
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
    let mut passed = Vec::new();
    let (found, store_error) = if keys.is_empty() {
        (Vec::new(), None)
    } else {
        let found = open().and_then(|mut store| {
            let found = store.get_all(&keys);
            // `auto` knows which store it is only once it has been used.
            store_name = store.name();
            passed_over = store.fallback_reason().cloned();
            passed = store.passed_over().to_vec();
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
                None => match env(entry.name.as_str()).filter(|v| fallback && !v.is_empty()) {
                    Some(value) => Source::Environment(Secret::new(value.into_encoded_bytes())),
                    None => Source::Missing,
                },
            },
        )
        .collect();
    Resolution {
        store: store_name,
        sources,
        store_error,
        passed_over,
        passed,
    }
}

/// The store key of an entry.
pub(crate) fn key(entry: &Entry) -> Key<'_> {
    Key {
        service: &entry.service,
        username: &entry.username,
    }
}

/// Every variable with a value, in manifest order. Fails if the store
/// failed, or if a required entry has no value (reporting every such entry
/// at once), or if a value cannot be an environment variable's.
pub(crate) fn variables(
    manifest: &Manifest,
    resolution: Resolution,
    fix: &str,
) -> Result<Vec<Variable>, Error> {
    if let Some(cause) = resolution.store_failed() {
        return Err(Error::Store {
            store: resolution.store,
            cause: cause.clone(),
        });
    }
    let mut variables = Vec::new();
    let mut missing = Vec::new();
    for (entry, source) in manifest.entries.iter().zip(resolution.sources) {
        let name = entry.name.to_string();
        match source {
            Source::Store(found) => {
                if found.secret.expose().contains(&0) {
                    return Err(Error::NulInValue {
                        name,
                        fix: fix.to_owned(),
                    });
                }
                variables.push(Variable {
                    name,
                    value: found.secret,
                    from_store: true,
                });
            }
            Source::Environment(value) => variables.push(Variable {
                name,
                value,
                from_store: false,
            }),
            Source::Missing if entry.optional => {}
            Source::Missing => missing.push(MissingEntry {
                name,
                service: entry.service.clone(),
                username: entry.username.clone(),
                description: entry.description.clone(),
            }),
        }
    }
    if missing.is_empty() {
        return Ok(variables);
    }
    // When there is no store, say so: that, not the entries, is what to fix.
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

/// The ones the command does not already have: those from the store.
pub(crate) fn from_store(variables: &[Variable]) -> Vec<(String, Secret)> {
    variables
        .iter()
        .filter(|v| v.from_store)
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect()
}

/// Every one, by name.
pub(crate) fn all(variables: &[Variable]) -> Vec<(String, Secret)> {
    variables
        .iter()
        .map(|v| (v.name.clone(), v.value.clone()))
        .collect()
}

/// `name`'s value in this process's environment, if it is set.
fn from_process_env(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(OsStr::new(name))
}

fn explain_lookup(project: &Project, resolution: &Resolution, took: Duration) {
    let manifest = &project.manifest;
    if manifest.entries.is_empty() {
        crate::explain!("store not opened: the manifest has no entries");
        return;
    }
    let why = match project.store_source {
        StoreSource::Auto => match (&resolution.passed_over, &resolution.store_error) {
            _ if !resolution.passed.is_empty() => format!(
                "auto: {}",
                resolution
                    .passed
                    .iter()
                    .map(|(name, reason)| format!("{name} is not here: {}", first_line(reason)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            (Some(reason), _) => format!(
                "auto: {} is not here: {}",
                store::native_name(),
                first_line(reason)
            ),
            (None, None) if resolution.store == "windows" && store::native_name() != "windows" => {
                "auto: on WSL, and the Windows helper answered".to_owned()
            }
            (None, None) => "auto: the platform's keyring answered".to_owned(),
            (None, Some(_)) => "auto".to_owned(),
        },
        chosen => chosen.why().to_owned(),
    };
    crate::explain!("store {} ({why})", resolution.store);
    if let Some(err) = resolution.store_failed() {
        crate::explain!(
            "{} failed, so nothing is looked up, not even in the environment: {}",
            resolution.store,
            first_line(err)
        );
    } else if let Some(err) = &resolution.store_error {
        crate::explain!(
            "{} is not here, so every value comes from the environment: {}",
            resolution.store,
            first_line(err)
        );
    }
    let sources: Vec<String> = manifest
        .entries
        .iter()
        .zip(&resolution.sources)
        .map(|(entry, source)| {
            let status = match source {
                Source::Store(_) => format!("from {}", resolution.store),
                Source::Environment(_) => "from the environment".to_owned(),
                Source::Missing if entry.optional => "missing (optional)".to_owned(),
                Source::Missing => "missing".to_owned(),
            };
            format!("{} {status}", entry.name)
        })
        .collect();
    crate::explain!(
        "looked up {} entr{} in {}: {}",
        manifest.entries.len(),
        if manifest.entries.len() == 1 {
            "y"
        } else {
            "ies"
        },
        human(took),
        sources.join(", ")
    );
}

/// `12.3 ms` or `1.25 s`.
fn human(took: Duration) -> String {
    if took < Duration::from_secs(1) {
        format!("{:.1} ms", took.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", took.as_secs_f64())
    }
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

    fn resolve(store: Memory, env: &[(&str, &str)]) -> Result<Vec<Variable>, Error> {
        let manifest = manifest();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let resolution = lookup_in(
            &manifest.entries,
            "memory",
            || Ok(Box::new(store)),
            |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.into()),
        );
        variables(&manifest, resolution, "with-secrets")
    }

    fn names(vars: &[Variable]) -> Vec<&str> {
        vars.iter().map(|v| v.name.as_str()).collect()
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
        let resolution = lookup_in(
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
            .map(|v| (v.name.as_str(), v.value.expose()))
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
        assert_eq!(vars[1].value.expose(), b"2");
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
        assert_eq!(names(&vars), ["A", "B"]);
        assert_eq!(vars[0].value.expose(), b"store");
        assert!(vars[0].from_store);
        assert_eq!(vars[1].value.expose(), b"env");
        assert!(!vars[1].from_store);
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
        let vars = resolve(store, &[("A", "x"), ("B", "y")]).unwrap();
        assert_eq!(names(&vars), ["A", "B"]);
        assert!(vars.iter().all(|v| !v.from_store));
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
        let resolution = lookup_in(&manifest.entries, "memory", || panic!("opened"), |_| None);
        assert!(resolution.sources.is_empty());
    }
}
