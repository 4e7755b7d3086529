//! An unlocked file store: its file key, kept for one login session in the
//! Linux kernel's session keyring, with a timeout (`with-secrets unlock`).
//!
//! What is kept is a `user` key described `with-secrets:file:SALT` (the hex
//! of the file's scrypt salt), whose payload is the file key (16 bytes) and
//! when the unlock ends (8 bytes, Unix seconds, big-endian, for messages: the
//! kernel's timeout is what ends it). Never the passphrase: the file key
//! opens this file only, and says nothing of the passphrase. A new file key
//! always comes with a new salt (`age::encrypt`), so a key kept for an older
//! one is never found, and a change of passphrase leaves it useless. A run
//! checks a kept key against the header's MAC before it trusts it.
//!
//! Why the session keyring (`@s`). It belongs to one login session:
//! `pam_keyinit` makes one per login where PAM runs it, `keyctl session`
//! makes a new one, and Docker gives each container its own. Another session
//! of the same user has another, where this key is not. A process that has
//! no session keyring of its own uses the user-session keyring (`@us`), which
//! every such process of the user shares; `unlock` says so when that is
//! where the key goes. Processes of the session possess the key through
//! `@s`, so they may read it; nobody else may: the key grants its possessor
//! view, read, search and setattr, and its owner only view.
//!
//! The key is made in this thread's keyring, given its timeout and only then
//! linked into `@s`, so a crash in between never leaves a key that does not
//! expire. Linking replaces a key of the same description, so unlocking again
//! just sets a new end.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libc::{c_long, c_ulong};
use zeroize::Zeroizing;

use super::age::{FILE_KEY_LEN, FileKey};
use crate::store::StoreError;
use crate::store::keyutils::{Failure, checked, keyctl, serial_arg};

const KEY_TYPE: &std::ffi::CStr = c"user";
const PREFIX: &str = "with-secrets:file:";
const PAYLOAD: usize = FILE_KEY_LEN + 8;

// Key permissions (linux/key.h): the possessor's byte, then the owner's.
const POS_VIEW: u32 = 0x0100_0000;
const POS_READ: u32 = 0x0200_0000;
const POS_SEARCH: u32 = 0x0800_0000;
const POS_SETATTR: u32 = 0x2000_0000;
const USR_VIEW: u32 = 0x0001_0000;
/// No write (a kept key is replaced, never changed) and no link (it can
/// never be linked into a keyring that other sessions search).
const PERMISSIONS: u32 = POS_VIEW | POS_READ | POS_SEARCH | POS_SETATTR | USR_VIEW;

/// A file key kept by `unlock`.
pub(crate) struct Kept {
    pub(crate) key: FileKey,
    pub(crate) until: SystemTime,
}

/// Which keyring holds what `unlock` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    /// This login session's own keyring.
    Own,
    /// The user-session keyring, shared by every process of the user that
    /// has no session keyring of its own.
    Shared,
}

/// Why nothing can be kept here: the kernel keyring cannot be used.
fn unusable(failure: Failure) -> StoreError {
    StoreError::Unavailable {
        store: "file",
        reason: format!(
            "the kernel keyring cannot be used here, so the file store cannot be unlocked: \
             {}\n  runs ask for the passphrase (or read WITH_SECRETS_PASSPHRASE) as before",
            failure.why()
        ),
    }
}

fn description(salt: &[u8]) -> std::ffi::CString {
    let hex = crate::store::escape::hex(salt);
    std::ffi::CString::new(format!("{PREFIX}{hex}")).expect("hex has no NUL")
}

/// Which keyring `@s` is here; fails where the kernel keyring cannot be used.
pub(crate) fn session() -> Result<Session, StoreError> {
    let id = |special: i32| {
        keyctl(
            "keyctl(KEYCTL_GET_KEYRING_ID)",
            libc::KEYCTL_GET_KEYRING_ID,
            [serial_arg(special), 0, 0, 0],
        )
        .map_err(unusable)
    };
    let session = id(libc::KEY_SPEC_SESSION_KEYRING)?;
    let user_session = id(libc::KEY_SPEC_USER_SESSION_KEYRING)?;
    Ok(if session == user_session {
        Session::Shared
    } else {
        Session::Own
    })
}

/// The file key kept for the file whose scrypt salt is `salt`, if this
/// session has one that has not expired.
pub(crate) fn find(salt: &[u8]) -> Result<Option<Kept>, StoreError> {
    let description = description(salt);
    let serial = match keyctl(
        "keyctl(KEYCTL_SEARCH)",
        libc::KEYCTL_SEARCH,
        [
            serial_arg(libc::KEY_SPEC_SESSION_KEYRING),
            KEY_TYPE.as_ptr() as c_ulong,
            description.as_ptr() as c_ulong,
            0,
        ],
    ) {
        Ok(serial) => serial as i32,
        Err(failure) if failure.means_gone() => return Ok(None),
        Err(failure) => return Err(unusable(failure)),
    };
    let mut payload = Zeroizing::new([0u8; PAYLOAD]);
    let len = match keyctl(
        "keyctl(KEYCTL_READ)",
        libc::KEYCTL_READ,
        [
            serial_arg(serial),
            payload.as_mut_ptr() as c_ulong,
            PAYLOAD as c_ulong,
            0,
        ],
    ) {
        Ok(len) => len as usize,
        // Expired or revoked since the search.
        Err(failure) if failure.means_gone() => return Ok(None),
        Err(failure) => return Err(unusable(failure)),
    };
    if len != PAYLOAD {
        // Not one of ours, whatever its name: never trusted.
        return Ok(None);
    }
    let mut key = Zeroizing::new([0u8; FILE_KEY_LEN]);
    key.copy_from_slice(&payload[..FILE_KEY_LEN]);
    let mut end = [0u8; 8];
    end.copy_from_slice(&payload[FILE_KEY_LEN..]);
    let until = UNIX_EPOCH + Duration::from_secs(u64::from_be_bytes(end));
    Ok(Some(Kept { key, until }))
}

/// Keeps `key`, the file key of the file whose salt is `salt`, in this
/// session's keyring for `duration`; returns when it ends and where it went.
pub(crate) fn keep(
    salt: &[u8],
    key: &FileKey,
    duration: Duration,
) -> Result<(SystemTime, Session), StoreError> {
    let session = session()?;
    let session_id = keyctl(
        "keyctl(KEYCTL_GET_KEYRING_ID)",
        libc::KEYCTL_GET_KEYRING_ID,
        [serial_arg(libc::KEY_SPEC_SESSION_KEYRING), 0, 0, 0],
    )
    .map_err(unusable)?;
    let until = SystemTime::now() + duration;
    let end = until
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let mut payload = Zeroizing::new([0u8; PAYLOAD]);
    payload[..FILE_KEY_LEN].copy_from_slice(key.as_ref());
    payload[FILE_KEY_LEN..].copy_from_slice(&end.to_be_bytes());
    let description = description(salt);
    // SAFETY: the pointers are valid, NUL-terminated where the kernel
    // expects it, for the length given; the kernel copies what it reads.
    let serial = checked("add_key", unsafe {
        libc::syscall(
            libc::SYS_add_key,
            KEY_TYPE.as_ptr(),
            description.as_ptr(),
            payload.as_ptr(),
            PAYLOAD,
            c_long::from(libc::KEY_SPEC_THREAD_KEYRING),
        )
    })
    .map_err(unusable)? as i32;
    let seconds = u32::try_from(duration.as_secs().max(1)).unwrap_or(u32::MAX);
    for (call, operation, arg) in [
        (
            "keyctl(KEYCTL_SET_TIMEOUT)",
            libc::KEYCTL_SET_TIMEOUT,
            c_ulong::from(seconds),
        ),
        (
            "keyctl(KEYCTL_LINK)",
            libc::KEYCTL_LINK,
            session_id as c_ulong,
        ),
        (
            "keyctl(KEYCTL_SETPERM)",
            libc::KEYCTL_SETPERM,
            c_ulong::from(PERMISSIONS),
        ),
    ] {
        if let Err(failure) = keyctl(call, operation, [serial_arg(serial), arg, 0, 0]) {
            // Never leave a key behind that was not set up in full.
            let _ = keyctl(
                "keyctl(KEYCTL_INVALIDATE)",
                libc::KEYCTL_INVALIDATE,
                [serial_arg(serial), 0, 0, 0],
            );
            return Err(unusable(failure));
        }
    }
    Ok((until, session))
}

/// Forgets every file key this session keeps; returns how many there were.
pub(crate) fn forget() -> Result<usize, StoreError> {
    // The keyring's contents: an array of serials.
    let mut serials = vec![0i32; 256];
    loop {
        let size = std::mem::size_of_val(serials.as_slice());
        let len = keyctl(
            "keyctl(KEYCTL_READ)",
            libc::KEYCTL_READ,
            [
                serial_arg(libc::KEY_SPEC_SESSION_KEYRING),
                serials.as_mut_ptr() as c_ulong,
                size as c_ulong,
                0,
            ],
        )
        .map_err(unusable)? as usize;
        if len <= size {
            serials.truncate(len / std::mem::size_of::<i32>());
            break;
        }
        serials = vec![0; len / std::mem::size_of::<i32>()];
    }
    let mut forgotten = 0;
    for serial in serials {
        let mut text = [0u8; 512];
        let Ok(len) = keyctl(
            "keyctl(KEYCTL_DESCRIBE)",
            libc::KEYCTL_DESCRIBE,
            [
                serial_arg(serial),
                text.as_mut_ptr() as c_ulong,
                text.len() as c_ulong,
                0,
            ],
        ) else {
            continue;
        };
        // "type;uid;gid;perm;description" and a NUL.
        let text = &text[..(len as usize).min(text.len())];
        let text = String::from_utf8_lossy(text.strip_suffix(&[0]).unwrap_or(text));
        let mut fields = text.splitn(5, ';');
        let (Some("user"), Some(description)) = (fields.next(), fields.nth(3)) else {
            continue;
        };
        if !description.starts_with(PREFIX) {
            continue;
        }
        match keyctl(
            "keyctl(KEYCTL_INVALIDATE)",
            libc::KEYCTL_INVALIDATE,
            [serial_arg(serial), 0, 0, 0],
        ) {
            Ok(_) => forgotten += 1,
            Err(failure) if failure.means_gone() => {}
            Err(failure) => return Err(unusable(failure)),
        }
    }
    Ok(forgotten)
}
