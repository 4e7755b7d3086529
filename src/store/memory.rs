//! An in-memory store for unit tests; it exists only under `#[cfg(test)]`.

use std::collections::HashMap;
use std::fmt;

use super::{Ask, Class, Common, Fault, Found, Key, Person, Store, StoreError};
use crate::secret::Secret;

/// A failure of the in-memory store, of any class: what a store of that
/// class would say, for tests of what each class lets happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure(pub(crate) Class);

impl Fault for Failure {
    fn class(&self) -> Class {
        self.0
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the in-memory store failed: {:?}", self.0)
    }
}

/// One item `create_all` stored: service, username, value.
pub(crate) type Created = (String, String, Secret);

#[derive(Default)]
pub(crate) struct Memory {
    pub(crate) items: HashMap<(String, String), Secret>,
    /// When set, every call fails with this error, as an unreachable store would.
    pub(crate) fail: Option<StoreError>,
    /// How many keys each `get_all` batch asked for, shared with the test
    /// that handed the store over.
    pub(crate) batches: std::rc::Rc<std::cell::RefCell<Vec<usize>>>,
    /// What each `create_all` call stored, shared like `batches`.
    pub(crate) created: std::rc::Rc<std::cell::RefCell<Vec<Vec<Created>>>>,
    /// A store that is made on first write, as the file store with no file.
    pub(crate) not_made: bool,
    /// Items another process stores once the first batch has been read.
    pub(crate) later: Vec<((String, String), Secret)>,
}

impl Memory {
    pub(crate) fn with(items: &[(&str, &str, &str)]) -> Self {
        Self {
            items: items
                .iter()
                .map(|(service, username, value)| {
                    (
                        (service.to_string(), username.to_string()),
                        Secret::from(*value),
                    )
                })
                .collect(),
            ..Self::default()
        }
    }

    fn check(&self) -> Result<(), StoreError> {
        self.fail.clone().map_or(Ok(()), Err)
    }
}

fn id(key: Key<'_>) -> (String, String) {
    (key.service.to_owned(), key.username.to_owned())
}

impl Store for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        self.check()?;
        self.batches.borrow_mut().push(keys.len());
        let found = keys
            .iter()
            .map(|&key| {
                self.items.get(&id(key)).map(|secret| Found {
                    secret: secret.clone(),
                    matches: 1,
                    cached: None,
                })
            })
            .collect();
        self.items.extend(self.later.drain(..));
        Ok(found)
    }

    fn set(&mut self, key: Key<'_>, _label: &str, value: &Secret) -> Result<(), StoreError> {
        self.check()?;
        self.items.insert(id(key), value.clone());
        Ok(())
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        self.check()?;
        Ok(usize::from(self.items.remove(&id(key)).is_some()))
    }

    fn create_all(&mut self, items: &[(Key<'_>, String, &Secret)]) -> Result<(), StoreError> {
        self.check()?;
        let mut batch = Vec::new();
        for (key, _, value) in items {
            self.items.insert(id(*key), (*value).clone());
            batch.push((
                key.service.to_owned(),
                key.username.to_owned(),
                (*value).clone(),
            ));
        }
        self.created.borrow_mut().push(batch);
        Ok(())
    }

    fn holds_values(&self) -> bool {
        !self.not_made
    }
}

/// A person who is not there: nothing to ask, nothing shown.
pub(crate) struct Nobody;

pub(crate) static NOBODY: Nobody = Nobody;

impl Person for Nobody {
    fn secret(&self, ask: &Ask<'_>) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        Err(StoreError::from(Common::NeedPassword {
            path: ask.path.to_owned(),
            variable: ask.variable,
        }))
    }

    fn is_present(&self) -> bool {
        false
    }

    fn tell(&self, _message: &str) {}

    fn warn(&self, _message: &str) {}
}

/// The store contract of tests/contract.rs, at the `Store` level: this
/// store is not in the binary, so the cases that need a run (the run form,
/// `check`, the environment standing in) are left to the stores there.
#[cfg(test)]
mod contract {
    use super::{Key, Memory, Store};
    use crate::secret::Secret;

    fn key<'a>(service: &'a str, username: &'a str) -> Key<'a> {
        Key { service, username }
    }

    fn set(store: &mut Memory, service: &str, username: &str, value: impl Into<Vec<u8>>) {
        store
            .set(key(service, username), "label", &Secret::new(value.into()))
            .unwrap();
    }

    /// What `get_all` finds for `keys`, in their order.
    fn values(store: &mut Memory, keys: &[(&str, &str)]) -> Vec<Option<Vec<u8>>> {
        let keys: Vec<_> = keys.iter().map(|&(s, u)| key(s, u)).collect();
        store
            .get_all(&keys)
            .unwrap()
            .into_iter()
            .map(|found| found.map(|found| found.secret.expose().to_vec()))
            .collect()
    }

    fn some(value: &str) -> Option<Vec<u8>> {
        Some(value.as_bytes().to_vec())
    }

    #[test]
    fn batch_order() {
        let mut store = Memory::default();
        set(&mut store, "other", "mike", "third");
        set(&mut store, "batch", "zulu", "first");
        set(&mut store, "batch", "alpha", "second");
        let keys = [("batch", "zulu"), ("batch", "alpha"), ("other", "mike")];
        let found = values(&mut store, &keys);
        assert_eq!(found, [some("first"), some("second"), some("third")]);
    }

    #[test]
    fn duplicate_item() {
        let mut store = Memory::default();
        set(&mut store, "dup", "shared", "one value");
        let found = values(&mut store, &[("dup", "shared"), ("dup", "shared")]);
        assert_eq!(found, [some("one value"), some("one value")]);
    }

    #[test]
    fn replace_on_set() {
        let mut store = Memory::default();
        set(&mut store, "replace", "ci", "old value");
        set(&mut store, "replace", "ci", "new value");
        assert_eq!(
            values(&mut store, &[("replace", "ci")]),
            [some("new value")]
        );
        assert_eq!(store.delete(key("replace", "ci")).unwrap(), 1);
        assert_eq!(values(&mut store, &[("replace", "ci")]), [None]);
    }

    #[test]
    fn delete_counts() {
        let mut store = Memory::default();
        set(&mut store, "delete", "ci", "to go");
        set(&mut store, "delete", "other", "to stay");
        assert_eq!(store.delete(key("delete", "ci")).unwrap(), 1);
        assert_eq!(store.delete(key("delete", "ci")).unwrap(), 0);
        let found = values(&mut store, &[("delete", "ci"), ("delete", "other")]);
        assert_eq!(found, [None, some("to stay")]);
    }

    #[test]
    fn largest_value() {
        let mut store = Memory::default();
        let value: Vec<u8> = (0..32 * 1024).map(|i| b'0' + (i % 64) as u8).collect();
        set(&mut store, "large", "ci", value.clone());
        assert_eq!(values(&mut store, &[("large", "ci")]), [Some(value)]);
    }

    #[test]
    fn non_utf8() {
        let mut store = Memory::default();
        let value = b"\xff\xfe caf\xe9 \x80end".to_vec();
        set(&mut store, "bytes", "ci", value.clone());
        assert_eq!(values(&mut store, &[("bytes", "ci")]), [Some(value)]);
    }

    #[test]
    fn separators_in_names() {
        let mut store = Memory::default();
        let keys = [
            ("a:b/c", "d:e/f"),
            ("s:t", "u"),
            ("s", "t:u"),
            ("s/t", "u"),
            ("s", "t/u"),
        ];
        for (service, username) in keys {
            set(
                &mut store,
                service,
                username,
                format!("{service} {username}"),
            );
        }
        let expected: Vec<_> = keys
            .iter()
            .map(|(s, u)| some(&format!("{s} {u}")))
            .collect();
        assert_eq!(values(&mut store, &keys), expected);
    }

    #[test]
    fn unknown_key() {
        let mut store = Memory::default();
        set(&mut store, "unknown", "known", "here");
        let found = values(&mut store, &[("unknown", "never"), ("unknown", "known")]);
        assert_eq!(found, [None, some("here")]);
    }
}
