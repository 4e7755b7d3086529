//! The macOS Keychain, through keyring-core's apple-native store.
//!
//! Items are generic passwords whose service and account attributes are the
//! entry's service and username, with the value's bytes (UTF-8) as the
//! password: the convention of Python `keyring`'s macOS backend, read from
//! the sources of both (keyring 25.7 `backends/macOS/api.py`: `SecItemAdd`
//! with `kSecClassGenericPassword`, `kSecAttrService = service`,
//! `kSecAttrAccount = username`, the password UTF-8 encoded; and
//! apple-native-keyring-store 1.0.3 `keychain.rs`: `set_generic_password(
//! service, account, secret)`), so both tools share entries. Not run here.

use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error as KeyringError};

use super::{Found, Key, Store, StoreError};
use crate::secret::Secret;
use crate::store::Common;

pub(crate) struct Native {
    store: Arc<CredentialStore>,
}

impl Native {
    pub(crate) fn open() -> Result<Self, StoreError> {
        let store: Arc<CredentialStore> =
            apple_native_keyring_store::keychain::Store::new().map_err(platform)?;
        Ok(Self { store })
    }

    fn entry(&self, key: Key<'_>) -> Result<Entry, StoreError> {
        Entry::new_in_store(&self.store, key.service, key.username).map_err(platform)
    }
}

impl Store for Native {
    fn name(&self) -> &'static str {
        super::native_name()
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        keys.iter()
            .map(|&key| match self.entry(key)?.get_secret() {
                Ok(bytes) => Ok(Some(Found {
                    secret: Secret::new(bytes),
                    matches: 1,
                    cached: None,
                })),
                Err(KeyringError::NoEntry) => Ok(None),
                Err(err) => Err(platform(err)),
            })
            .collect()
    }

    fn set(&mut self, key: Key<'_>, _label: &str, value: &Secret) -> Result<(), StoreError> {
        self.entry(key)?
            .set_secret(value.expose())
            .map_err(platform)
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        match self.entry(key)?.delete_credential() {
            Ok(()) => Ok(1),
            Err(KeyringError::NoEntry) => Ok(0),
            Err(err) => Err(platform(err)),
        }
    }
}

fn platform(err: KeyringError) -> StoreError {
    match err {
        KeyringError::NoStorageAccess(inner) => StoreError::from(Common::Denied(inner.to_string())),
        // These two carry the stored bytes; their messages must not be shown.
        KeyringError::BadEncoding(_) | KeyringError::BadDataFormat(..) => StoreError::from(
            Common::Failed("the stored item is in a format with-secrets cannot read".into()),
        ),
        other => StoreError::from(Common::Failed(other.to_string())),
    }
}
