//! The Windows Credential Manager, in the layout of Python's `keyring`, so
//! that both tools read and write the same items.
//!
//! What Python's `keyring` 25.7 does (`keyring/backends/Windows.py`, through
//! pywin32-ctypes' `win32cred`), quoted where we rely on it:
//!
//! - Every item is a generic credential, persisted for the enterprise:
//!   `Type=win32cred.CRED_TYPE_GENERIC`, `Persist=self.persist`, which is
//!   `getattr(keyring, '_persist', win32cred.CRED_PERSIST_ENTERPRISE)`.
//! - The value is `CredentialBlob=password`, a `str`, which pywin32-ctypes
//!   (`win32ctypes/core/ctypes/_authentication.py`, `_make_blob`) writes as
//!   UTF-16LE without a terminator: `ctypes.create_unicode_buffer(data)`,
//!   "Create_unicode_buffer adds a NULL at the end of the string we do not
//!   want that", so `blob_size = ctypes.sizeof(blob_data) -
//!   ctypes.sizeof(ctypes.c_wchar)`. Python reads it back with
//!   `cred.decode('utf-16')`, and on a `UnicodeDecodeError` with
//!   `cred.decode('utf-8')`.
//! - Read: "first attempt to get the password under the service name":
//!   `res = self._read_credential(service)`, and
//!   `if not res or username and res['UserName'] != username:` then
//!   `res = self._read_credential(self._compound_name(username, service))`,
//!   where `_compound_name` is `f'{username}@{service}'`.
//! - Write: `existing_pw = self._read_credential(service)`; `if existing_pw:`
//!   "resave the existing password using a compound target"
//!   (`existing_username@service`), then
//!   `self._set_password(service, username, str(password))`, with
//!   `Comment="Stored using python-keyring"`.
//! - Delete: `for target in service, compound:` ... `if existing_pw and
//!   existing_pw['UserName'] == username:` delete it.
//!
//! So the item named SERVICE belongs to whichever username wrote last, and
//! every other username of the service sits at `USERNAME@SERVICE`; Python's
//! lookup finds each of them. We write the same way, with one difference
//! that Python's readers cannot see: when SERVICE already belongs to the
//! username being written, Python still copies the old value to
//! `USERNAME@SERVICE`, where it stays, shadowed and stale. We overwrite
//! SERVICE in place and delete such a shadowed copy, so that one item per
//! (service, username) is left, and an old value does not outlive a change.
//!
//! Earlier with-secrets versions wrote through keyring-core's Windows store:
//! target `USERNAME.SERVICE`, `UserName` USERNAME, the value as raw UTF-8.
//! Such an item is still read (after Python's two), and `set` replaces it
//! with Python's form and deletes it.

use std::collections::HashMap;
use std::ptr;

use windows_sys::Win32::Security::Credentials::{
    CRED_MAX_CREDENTIAL_BLOB_SIZE, CRED_PERSIST_ENTERPRISE, CRED_TYPE_GENERIC, CREDENTIALW,
    CredDeleteW, CredFree, CredReadW, CredWriteW,
};
use zeroize::Zeroizing;

use super::{Found, Key, Store, StoreError};
use crate::secret::Secret;
use crate::store::Common;

/// `ERROR_NOT_FOUND`: there is no credential with that target name.
const NOT_FOUND: i32 = 1168;

/// The comment Python's `keyring` writes on every item: an item that bears
/// it is never taken for one of ours at the old `USERNAME.SERVICE` target.
const PYTHON_COMMENT: &str = "Stored using python-keyring";

/// The longest value, in UTF-16 code units: the blob holds 2,560 bytes.
pub(crate) const MAX_UNITS: usize = CRED_MAX_CREDENTIAL_BLOB_SIZE as usize / 2;

pub(crate) struct Windows;

impl Windows {
    pub(crate) fn open() -> Self {
        Self
    }
}

impl Store for Windows {
    fn name(&self) -> &'static str {
        super::native_name()
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        // Every lookup starts at the item named SERVICE, and a manifest's
        // entries often share one service: each is read once per batch.
        let mut services: Vec<&str> = keys.iter().map(|key| key.service).collect();
        services.sort_unstable();
        services.dedup();
        let owners: HashMap<&str, Option<Item>> = services
            .iter()
            .copied()
            .zip(in_parallel(&services, |service| read(service))?)
            .collect();
        let found = in_parallel(keys, |&key| find(key, owners[key.service].as_ref()))?;
        Ok(found
            .into_iter()
            .map(|secret| {
                secret.map(|secret| Found {
                    secret,
                    matches: 1,
                    cached: None,
                })
            })
            .collect())
    }

    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        let blob = encode(label, value)?;
        if let Some(existing) = read(key.service)?
            && existing.username != key.username
        {
            // Python's move of the other username's item to its own
            // compound name, before SERVICE is overwritten.
            write(
                &compound(&existing.username, key.service),
                &existing.username,
                &existing.comment,
                &existing.blob,
            )?;
        }
        write(key.service, key.username, label, &blob)?;
        // A copy of this username's value under its compound name is now
        // shadowed by SERVICE (Python reads SERVICE first), and so is an
        // item of an earlier with-secrets version.
        delete_if_ours(&compound(key.username, key.service), key.username)?;
        delete_legacy(key)?;
        Ok(())
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        let mut deleted = 0;
        for target in [key.service.to_owned(), compound(key.username, key.service)] {
            deleted += usize::from(delete_if_ours(&target, key.username)?);
        }
        deleted += usize::from(delete_legacy(key)?);
        Ok(deleted)
    }
}

/// How an item's blob is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Python's: UTF-16LE, read as UTF-8 when it is not valid UTF-16.
    Python,
    /// An earlier with-secrets version's: the bytes as they were given.
    Legacy,
}

impl Form {
    fn decode(self, blob: &[u8]) -> Vec<u8> {
        match self {
            Self::Python => utf16_to_utf8(blob).unwrap_or_else(|| blob.to_vec()),
            Self::Legacy => blob.to_vec(),
        }
    }
}

/// Threads that read at once: each `CredReadW` waits on round trips (to LSA
/// on Windows, to wineserver under Wine, where 4 threads read 49 items in
/// half the time 1 does: bench/wine-credread.c).
const READERS: usize = 4;

/// `read` of every item, on up to `READERS` threads; the first error wins.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    read: impl Fn(&T) -> Result<R, StoreError> + Sync,
) -> Result<Vec<R>, StoreError> {
    // A thread costs about as much as a read: a few items stay on this one.
    if items.len() < 2 * READERS {
        return items.iter().map(&read).collect();
    }
    let chunk = items.len().div_ceil(READERS);
    std::thread::scope(|scope| {
        let readers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().map(&read).collect::<Result<Vec<R>, _>>()))
            .collect();
        let mut all = Vec::with_capacity(items.len());
        for reader in readers {
            all.extend(
                reader
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
            );
        }
        Ok(all)
    })
}

/// The value Python's lookup finds for `key`, else an earlier version's;
/// `owner` is the item named SERVICE, if there is one.
fn find(key: Key<'_>, owner: Option<&Item>) -> Result<Option<Secret>, StoreError> {
    if let Some(item) = owner
        && item.username == key.username
    {
        return Ok(Some(Secret::new(Form::Python.decode(&item.blob))));
    }
    // Python does not check the UserName of the compound item.
    if let Some(item) = read(&compound(key.username, key.service))? {
        return Ok(Some(Secret::new(Form::Python.decode(&item.blob))));
    }
    Ok(read_legacy(key)?.map(|item| Secret::new(Form::Legacy.decode(&item.blob))))
}

fn compound(username: &str, service: &str) -> String {
    format!("{username}@{service}")
}

/// The target name keyring-core's Windows store gave an item: its default
/// prefix and suffix are empty and its delimiter is `.`.
fn legacy_target(key: Key<'_>) -> String {
    format!("{}.{}", key.username, key.service)
}

/// An earlier version's item for `key`. A Python item of a service that
/// happens to be called `USERNAME.SERVICE` has Python's comment, and is left
/// alone.
fn read_legacy(key: Key<'_>) -> Result<Option<Item>, StoreError> {
    Ok(read(&legacy_target(key))?
        .filter(|item| item.username == key.username && item.comment != PYTHON_COMMENT))
}

fn delete_legacy(key: Key<'_>) -> Result<bool, StoreError> {
    if read_legacy(key)?.is_none() {
        return Ok(false);
    }
    remove(&legacy_target(key))
}

/// Deletes the item at `target` if its UserName is `username`, as Python's
/// `delete_password` does.
fn delete_if_ours(target: &str, username: &str) -> Result<bool, StoreError> {
    match read(target)? {
        Some(item) if item.username == username => remove(target),
        _ => Ok(false),
    }
}

/// The blob Python would write for `value`: UTF-16LE, no terminator. A value
/// that is not UTF-8, or too long for the Credential Manager, is refused.
fn encode(label: &str, value: &Secret) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let text = std::str::from_utf8(value.expose()).map_err(|_| {
        StoreError::from(Common::Unstorable {
            what: label.to_owned(),
            reason: "the value is not UTF-8 text, which the Windows Credential Manager \
                 holds for Python's keyring as UTF-16"
                .into(),
        })
    })?;
    let units = text.encode_utf16().count();
    if units > MAX_UNITS {
        return Err(StoreError::from(Common::Unstorable {
            what: label.to_owned(),
            reason: format!(
                "the value is {units} UTF-16 units long, and the Windows Credential \
                 Manager holds at most {MAX_UNITS} (2,560 bytes)"
            ),
        }));
    }
    let mut blob = Zeroizing::new(Vec::with_capacity(units * 2));
    for unit in text.encode_utf16() {
        blob.extend_from_slice(&unit.to_le_bytes());
    }
    Ok(blob)
}

/// `blob` as UTF-16LE turned into UTF-8, or `None` if it is not valid
/// UTF-16 (an odd length, a lone surrogate), as Python's decode fails then.
fn utf16_to_utf8(blob: &[u8]) -> Option<Vec<u8>> {
    if !blob.len().is_multiple_of(2) {
        return None;
    }
    let units = blob
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]));
    let mut text = Zeroizing::new(String::with_capacity(blob.len()));
    for char in char::decode_utf16(units) {
        text.push(char.ok()?);
    }
    Some(text.as_bytes().to_vec())
}

/// A generic credential, as read.
struct Item {
    username: String,
    comment: String,
    blob: Zeroizing<Vec<u8>>,
}

fn wide(text: &str) -> Vec<u16> {
    text.encode_utf16().chain([0]).collect()
}

/// Reads the generic credential `target`; `None` when there is none.
fn read(target: &str) -> Result<Option<Item>, StoreError> {
    let target_name = wide(target);
    let mut credential: *mut CREDENTIALW = ptr::null_mut();
    // SAFETY: the target name is NUL-terminated and outlives the call;
    // `credential` receives a buffer that we free with CredFree below.
    let ok = unsafe { CredReadW(target_name.as_ptr(), CRED_TYPE_GENERIC, 0, &mut credential) };
    if ok == 0 {
        let err = std::io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(NOT_FOUND) => Ok(None),
            _ => Err(failed("read", target, &err)),
        };
    }
    // SAFETY: CredReadW succeeded, so `credential` points to a valid
    // CREDENTIALW whose strings are NUL-terminated (or null) and whose blob
    // has CredentialBlobSize bytes, all alive until CredFree.
    let item = unsafe {
        let cred = &*credential;
        let blob = if cred.CredentialBlob.is_null() || cred.CredentialBlobSize == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(cred.CredentialBlob, cred.CredentialBlobSize as usize)
                .to_vec()
        };
        Item {
            username: from_wide(cred.UserName),
            comment: from_wide(cred.Comment),
            blob: Zeroizing::new(blob),
        }
    };
    // SAFETY: the buffer came from CredReadW and is freed once. The blob's
    // copy in it is Windows' own; we cannot wipe it before freeing.
    unsafe { CredFree(credential.cast()) };
    Ok(Some(item))
}

/// A NUL-terminated UTF-16 string; empty for a null pointer.
///
/// # Safety
/// `text` is null or points to a NUL-terminated UTF-16 string.
unsafe fn from_wide(text: *const u16) -> String {
    if text.is_null() {
        return String::new();
    }
    let mut len = 0;
    // SAFETY: the string is NUL-terminated, so every unit up to the NUL is in it.
    while unsafe { *text.add(len) } != 0 {
        len += 1;
    }
    // SAFETY: the `len` units before the NUL.
    String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) })
}

/// Writes (creates or replaces) the generic credential `target`, with the
/// fields Python's `_set_password` gives it.
fn write(target: &str, username: &str, comment: &str, blob: &[u8]) -> Result<(), StoreError> {
    let mut target_name = wide(target);
    let mut user_name = wide(username);
    let mut comment = wide(comment);
    let mut blob = Zeroizing::new(blob.to_vec());
    let credential = CREDENTIALW {
        Type: CRED_TYPE_GENERIC,
        TargetName: target_name.as_mut_ptr(),
        Comment: comment.as_mut_ptr(),
        // At most MAX_UNITS * 2 bytes, checked by `encode` (or read back
        // from the Credential Manager itself).
        CredentialBlobSize: u32::try_from(blob.len()).unwrap_or(u32::MAX),
        CredentialBlob: if blob.is_empty() {
            ptr::null_mut()
        } else {
            blob.as_mut_ptr()
        },
        Persist: CRED_PERSIST_ENTERPRISE,
        UserName: user_name.as_mut_ptr(),
        ..CREDENTIALW::default()
    };
    // SAFETY: every pointer in `credential` points into a buffer above that
    // lives until after the call; the strings are NUL-terminated.
    if unsafe { CredWriteW(&credential, 0) } == 0 {
        return Err(failed("write", target, &std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Deletes the generic credential `target`; `false` when there was none.
fn remove(target: &str) -> Result<bool, StoreError> {
    let target_name = wide(target);
    // SAFETY: the target name is NUL-terminated and outlives the call.
    if unsafe { CredDeleteW(target_name.as_ptr(), CRED_TYPE_GENERIC, 0) } == 0 {
        let err = std::io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(NOT_FOUND) => Ok(false),
            _ => Err(failed("delete", target, &err)),
        };
    }
    Ok(true)
}

fn failed(what: &str, target: &str, err: &std::io::Error) -> StoreError {
    const ACCESS_DENIED: i32 = 5;
    let reason = format!("cannot {what} the credential {target:?}: {err}");
    match err.raw_os_error() {
        Some(ACCESS_DENIED) => StoreError::from(Common::Denied(reason)),
        _ => StoreError::from(Common::Failed(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_written_as_utf16le_without_a_terminator() {
        let blob = encode("N", &Secret::from("hé€")).unwrap();
        assert_eq!(&blob[..], &[b'h', 0, 0xe9, 0, 0xac, 0x20]);
    }

    #[test]
    fn a_blob_that_is_not_utf16_is_read_as_utf8() {
        assert_eq!(Form::Python.decode(b"abc"), b"abc");
        assert_eq!(Form::Python.decode(&[b'h', 0, 0xe9, 0]), "hé".as_bytes());
        assert_eq!(Form::Legacy.decode(b"ab"), b"ab");
    }

    #[test]
    fn a_value_over_1280_utf16_units_is_refused() {
        assert!(encode("N", &Secret::from("x".repeat(MAX_UNITS).as_str())).is_ok());
        let err = encode(
            "N (s / u)",
            &Secret::from("x".repeat(MAX_UNITS + 1).as_str()),
        )
        .unwrap_err();
        assert!(err.to_string().contains("N (s / u)"), "{err}");
        assert!(encode("N", &Secret::new(vec![0xff])).is_err());
    }
}
