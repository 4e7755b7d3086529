//! An unlocked file store: its file key, kept for one login session and one
//! user in the Linux kernel's keyrings, with a timeout (`with-secrets unlock`).
//!
//! What is kept is the file key K (16 bytes) in two halves: a random pad P,
//! and K xor P. Each alone says nothing of K; a run needs both.
//! - `with-secrets:file:SALT` (SALT: the hex of the file's scrypt salt), a
//!   `user` key in the session keyring (`@s`): K xor P, then when the unlock
//!   ends (8 bytes, Unix seconds, big-endian, for messages: the kernel's
//!   timeout is what ends it).
//! - `with-secrets:file-pad:SALT:SESSION` (SESSION: the serial of that
//!   session keyring, in decimal), a `user` key in the user keyring (`@u`):
//!   P. The serial in its name keeps an unlock in another session of the same
//!   user, which makes a pad of its own, from replacing this one.
//!
//! Never the passphrase: the file key opens this file only, and says nothing
//! of the passphrase. A new file key always comes with a new salt
//! (`age::encrypt`), so halves kept for an older one are never found, and a
//! change of passphrase leaves them useless. A run checks K against the
//! header's MAC before it trusts it, so halves of two different unlocks
//! (one of them replaced since) are never taken for a key.
//!
//! Why the session keyring. It belongs to one login session: `pam_keyinit`
//! makes one per login where PAM runs it, `keyctl session` makes a new one,
//! and Docker gives each container its own. Another session of the same user
//! has another, where the first half is not. A process that has no session
//! keyring of its own uses the user-session keyring (`@us`), which every such
//! process of the user shares; `unlock` says so when that is where it goes.
//!
//! Why the user keyring too. Every process of the session possesses `@s`,
//! whatever its uid: `su`, `runuser`, `setpriv` and `sudo` keep the session
//! keyring, and a possessor's rights do not depend on the uid. So the first
//! half (which grants its possessor view, read, search and setattr, and its
//! owner only view) is readable by another user started from the unlocked
//! shell. The pad is what such a process lacks: `@u` is per uid (another uid
//! has another `@u`), and the pad grants its owner's uid view, read and
//! search, and its possessor nothing. Possessor rights would not do:
//! `pam_keyinit` links `@u` into the session keyring it makes, so another uid
//! in the session possesses this `@u` and every key in it. So a run gets K
//! only with the same session and the same uid. Root is not stopped: it can
//! take your uid in your session (`setpriv --reuid`). Nor is any process of
//! your uid in this session, the commands with-secrets runs included
//! (README, "Security notes"): they stay in the session keyring, so that a
//! `with-secrets` a command starts (a Makefile target's `with-secrets check`,
//! a script's `with-secrets -- ...`) asks no passphrase either. Moving them
//! into a keyring of their own (`KEYCTL_JOIN_SESSION_KEYRING`) would make
//! every such nested run ask again, and would not keep out a process of
//! your uid, which can get into your session by other ways: it may ptrace
//! your shell where Yama does not forbid it, or edit your shell's startup
//! files.
//!
//! Each half is made in this thread's keyring, given its timeout and only
//! then linked into its keyring, so a crash in between never leaves one that
//! does not expire; the pad comes first, and is invalidated if the other half
//! cannot be kept. Linking replaces a key of the same description, so
//! unlocking again just sets a new end. `lock` invalidates both halves of
//! this session; where one has expired or is gone, the other is useless, and
//! runs ask for the passphrase.

use std::ffi::{CStr, CString};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libc::{c_long, c_ulong};
use zeroize::Zeroizing;

use super::age::{FILE_KEY_LEN, FileKey};
use crate::store::Common;
use crate::store::StoreError;
use crate::store::keyutils::{Failure, checked, keyctl, serial_arg};

const KEY_TYPE: &CStr = c"user";
/// The half in the session keyring: `with-secrets:file:SALT`.
const PREFIX: &str = "with-secrets:file:";
/// The pad in the user keyring: `with-secrets:file-pad:SALT:SESSION`.
const PAD_PREFIX: &str = "with-secrets:file-pad:";
/// K xor P, then the end.
const PAYLOAD: usize = FILE_KEY_LEN + 8;

// Key permissions (linux/key.h): the possessor's byte, then the owner's.
const POS_VIEW: u32 = 0x0100_0000;
const POS_READ: u32 = 0x0200_0000;
const POS_SEARCH: u32 = 0x0800_0000;
const POS_SETATTR: u32 = 0x2000_0000;
const USR_VIEW: u32 = 0x0001_0000;
const USR_READ: u32 = 0x0002_0000;
const USR_SEARCH: u32 = 0x0008_0000;
const USR_LINK: u32 = 0x0010_0000;
const USR_SETATTR: u32 = 0x0020_0000;
/// What our uid keeps of a new key until it is linked where it belongs
/// (see `add`).
const LINK_RIGHTS: u32 = USR_LINK | USR_SETATTR;
/// The session keyring's half. No write (a kept key is replaced, never
/// changed) and no link (it can never be linked into a keyring that other
/// sessions search).
const PERMISSIONS: u32 = POS_VIEW | POS_READ | POS_SEARCH | POS_SETATTR | USR_VIEW;
/// The pad: its owner's uid only, never its possessor (see the module doc).
/// Search lets `lock` invalidate it.
const PAD_PERMISSIONS: u32 = USR_VIEW | USR_READ | USR_SEARCH;

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
    StoreError::from(Common::Unavailable {
        store: "file",
        reason: format!(
            "the kernel keyring cannot be used here, so the file store cannot be unlocked: \
             {}\n  runs ask for the passphrase (or read WITH_SECRETS_PASSPHRASE) as before",
            failure.why()
        ),
    })
}

fn description(salt: &[u8]) -> CString {
    let hex = crate::store::escape::hex(salt);
    CString::new(format!("{PREFIX}{hex}")).expect("hex has no NUL")
}

/// The pad's description, for the session keyring whose serial is `session`.
fn pad_description(salt: &[u8], session: i32) -> CString {
    let hex = crate::store::escape::hex(salt);
    CString::new(format!("{PAD_PREFIX}{hex}:{session}")).expect("hex has no NUL")
}

/// The serial of the keyring `special` (`KEY_SPEC_...`) names here.
fn keyring_id(special: i32) -> Result<i32, StoreError> {
    keyctl(
        "keyctl(KEYCTL_GET_KEYRING_ID)",
        libc::KEYCTL_GET_KEYRING_ID,
        [serial_arg(special), 0, 0, 0],
    )
    .map(|serial| serial as i32)
    .map_err(unusable)
}

/// Which keyring `@s` is here; fails where the kernel keyring cannot be used.
pub(crate) fn session() -> Result<Session, StoreError> {
    let session = keyring_id(libc::KEY_SPEC_SESSION_KEYRING)?;
    let user_session = keyring_id(libc::KEY_SPEC_USER_SESSION_KEYRING)?;
    Ok(if session == user_session {
        Session::Shared
    } else {
        Session::Own
    })
}

/// The file key kept for the file whose scrypt salt is `salt`, if this
/// session keeps its first half and this uid its pad, neither expired.
pub(crate) fn find(salt: &[u8]) -> Result<Option<Kept>, StoreError> {
    let Some(payload) = read::<PAYLOAD>(libc::KEY_SPEC_SESSION_KEYRING, &description(salt))? else {
        return Ok(None);
    };
    let session = keyring_id(libc::KEY_SPEC_SESSION_KEYRING)?;
    let Some(pad) =
        read::<FILE_KEY_LEN>(libc::KEY_SPEC_USER_KEYRING, &pad_description(salt, session))?
    else {
        return Ok(None);
    };
    let mut key = Zeroizing::new([0u8; FILE_KEY_LEN]);
    for (byte, (masked, pad)) in key.iter_mut().zip(payload.iter().zip(pad.iter())) {
        *byte = masked ^ pad;
    }
    let mut end = [0u8; 8];
    end.copy_from_slice(&payload[FILE_KEY_LEN..]);
    let until = UNIX_EPOCH + Duration::from_secs(u64::from_be_bytes(end));
    Ok(Some(Kept { key, until }))
}

/// The payload of the `user` key `description` that a search of `keyring`
/// finds, if it has one of exactly `N` bytes: one of another length is not
/// ours, whatever its name, and is never trusted.
fn read<const N: usize>(
    keyring: i32,
    description: &CStr,
) -> Result<Option<Zeroizing<[u8; N]>>, StoreError> {
    let serial = match keyctl(
        "keyctl(KEYCTL_SEARCH)",
        libc::KEYCTL_SEARCH,
        [
            serial_arg(keyring),
            KEY_TYPE.as_ptr() as c_ulong,
            description.as_ptr() as c_ulong,
            0,
        ],
    ) {
        Ok(serial) => serial as i32,
        Err(failure) if failure.means_gone() => return Ok(None),
        Err(failure) => return Err(unusable(failure)),
    };
    let mut payload = Zeroizing::new([0u8; N]);
    match keyctl(
        "keyctl(KEYCTL_READ)",
        libc::KEYCTL_READ,
        [
            serial_arg(serial),
            payload.as_mut_ptr() as c_ulong,
            N as c_ulong,
            0,
        ],
    ) {
        Ok(len) if len as usize == N => Ok(Some(payload)),
        Ok(_) => Ok(None),
        // Expired or revoked since the search.
        Err(failure) if failure.means_gone() => Ok(None),
        Err(failure) => Err(unusable(failure)),
    }
}

/// Keeps `key`, the file key of the file whose salt is `salt`, for this
/// session and uid for `duration`; returns when it ends and where it went.
pub(crate) fn keep(
    salt: &[u8],
    key: &FileKey,
    duration: Duration,
) -> Result<(SystemTime, Session), StoreError> {
    let session = session()?;
    let session_id = keyring_id(libc::KEY_SPEC_SESSION_KEYRING)?;
    let until = SystemTime::now() + duration;
    let end = until
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let seconds = u32::try_from(duration.as_secs().max(1)).unwrap_or(u32::MAX);
    let mut pad = Zeroizing::new([0u8; FILE_KEY_LEN]);
    getrandom::getrandom(pad.as_mut()).map_err(|err| {
        StoreError::from(Common::Failed(format!(
            "no randomness to unlock the file store with: {err}"
        )))
    })?;
    let mut payload = Zeroizing::new([0u8; PAYLOAD]);
    for (masked, (key, pad)) in payload.iter_mut().zip(key.iter().zip(pad.iter())) {
        *masked = key ^ pad;
    }
    payload[FILE_KEY_LEN..].copy_from_slice(&end.to_be_bytes());
    let pad = add(
        &pad_description(salt, session_id),
        pad.as_slice(),
        seconds,
        libc::KEY_SPEC_USER_KEYRING,
        PAD_PERMISSIONS,
    )?;
    if let Err(err) = add(
        &description(salt),
        payload.as_slice(),
        seconds,
        session_id,
        PERMISSIONS,
    ) {
        invalidate(pad);
        return Err(err);
    }
    Ok((until, session))
}

/// Adds a `user` key to this thread's keyring, gives it `seconds` to live,
/// links it into `keyring`, and gives it `permissions` (which may take away
/// the right to link or to set a timeout); returns its serial.
///
/// The permissions are set before the link, so the key is never in a shared
/// keyring with the kernel's default permissions, which let whoever
/// possesses it read it: another uid that possesses `@u` through `@s`
/// (`pam_keyinit` links them, and `su` keeps `@s`) could read a pad in that
/// moment. Until the link is made, our uid keeps the rights to link and to
/// set the final permissions (`LINK_RIGHTS`), and no possessor gains any.
fn add(
    description: &CStr,
    payload: &[u8],
    seconds: u32,
    keyring: i32,
    permissions: u32,
) -> Result<i32, StoreError> {
    // SAFETY: the pointers are valid, NUL-terminated where the kernel
    // expects it, for the length given; the kernel copies what it reads.
    let serial = checked("add_key", unsafe {
        libc::syscall(
            libc::SYS_add_key,
            KEY_TYPE.as_ptr(),
            description.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            c_long::from(libc::KEY_SPEC_THREAD_KEYRING),
        )
    })
    .map_err(unusable)? as i32;
    for (call, operation, arg) in [
        (
            "keyctl(KEYCTL_SET_TIMEOUT)",
            libc::KEYCTL_SET_TIMEOUT,
            c_ulong::from(seconds),
        ),
        (
            "keyctl(KEYCTL_SETPERM)",
            libc::KEYCTL_SETPERM,
            c_ulong::from(permissions | LINK_RIGHTS),
        ),
        (
            "keyctl(KEYCTL_LINK)",
            libc::KEYCTL_LINK,
            serial_arg(keyring),
        ),
        (
            "keyctl(KEYCTL_SETPERM)",
            libc::KEYCTL_SETPERM,
            c_ulong::from(permissions),
        ),
    ] {
        if let Err(failure) = keyctl(call, operation, [serial_arg(serial), arg, 0, 0]) {
            // Never leave a key behind that was not set up in full.
            invalidate(serial);
            return Err(unusable(failure));
        }
    }
    Ok(serial)
}

fn invalidate(serial: i32) {
    let _ = keyctl(
        "keyctl(KEYCTL_INVALIDATE)",
        libc::KEYCTL_INVALIDATE,
        [serial_arg(serial), 0, 0, 0],
    );
}

/// Forgets every file key this session keeps for this uid, both halves;
/// returns how many there were (in the session keyring).
pub(crate) fn forget() -> Result<usize, StoreError> {
    let session = keyring_id(libc::KEY_SPEC_SESSION_KEYRING)?;
    let forgotten = forget_in(libc::KEY_SPEC_SESSION_KEYRING, |description| {
        description.starts_with(PREFIX)
    })?;
    // This session's pads only: other sessions' unlocks stay.
    let suffix = format!(":{session}");
    forget_in(libc::KEY_SPEC_USER_KEYRING, |description| {
        description.starts_with(PAD_PREFIX) && description.ends_with(&suffix)
    })?;
    Ok(forgotten)
}

/// Invalidates the `user` keys linked in `keyring` itself (not in keyrings
/// below it) whose description is `ours`; returns how many.
fn forget_in(keyring: i32, ours: impl Fn(&str) -> bool) -> Result<usize, StoreError> {
    // The keyring's contents: an array of serials.
    let mut serials = vec![0i32; 256];
    loop {
        let size = std::mem::size_of_val(serials.as_slice());
        let len = keyctl(
            "keyctl(KEYCTL_READ)",
            libc::KEYCTL_READ,
            [
                serial_arg(keyring),
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
        if !ours(description) {
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
