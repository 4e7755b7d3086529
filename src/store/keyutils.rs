//! The `keyutils` store: the Linux kernel keyring. (Being written: see issue 4.)

use super::{Found, Key, Store, StoreError};
use crate::secret::Secret;

pub struct Keyutils;

impl Keyutils {
    pub fn open() -> Result<Self, StoreError> {
        Err(StoreError::Unsupported { store: "keyutils" })
    }
}

impl Store for Keyutils {
    fn name(&self) -> &'static str {
        "keyutils"
    }

    fn get_all(&mut self, _keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        Err(StoreError::Unsupported { store: "keyutils" })
    }

    fn set(&mut self, _key: Key<'_>, _label: &str, _value: &Secret) -> Result<(), StoreError> {
        Err(StoreError::Unsupported { store: "keyutils" })
    }

    fn delete(&mut self, _key: Key<'_>) -> Result<usize, StoreError> {
        Err(StoreError::Unsupported { store: "keyutils" })
    }
}
