//! The `file` store: an age-encrypted file in $XDG_DATA_HOME/with-secrets.
//! (Being written: see issue 4.)

use super::{Found, Key, Store, StoreError};
use crate::secret::Secret;

pub struct FileStore;

impl FileStore {
    pub fn open() -> Result<Self, StoreError> {
        Ok(Self)
    }
}

impl Store for FileStore {
    fn name(&self) -> &'static str {
        "file"
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        Ok(keys.iter().map(|_| None).collect())
    }

    fn set(&mut self, _key: Key<'_>, _label: &str, _value: &Secret) -> Result<(), StoreError> {
        Err(StoreError::Unsupported { store: "file" })
    }

    fn delete(&mut self, _key: Key<'_>) -> Result<usize, StoreError> {
        Err(StoreError::Unsupported { store: "file" })
    }
}
