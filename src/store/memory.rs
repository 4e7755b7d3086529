//! An in-memory store for unit tests; it exists only under `#[cfg(test)]`.

use std::collections::HashMap;

use super::{Ask, Found, Key, Person, Store, StoreError};
use crate::secret::Secret;

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
        Err(StoreError::NeedPassword {
            path: ask.path.to_owned(),
            variable: ask.variable,
        })
    }

    fn is_present(&self) -> bool {
        false
    }

    fn tell(&self, _message: &str) {}

    fn warn(&self, _message: &str) {}
}
