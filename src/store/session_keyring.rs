//! What a login session keeps for one user in the Linux kernel's keyrings,
//! with a timeout: the file store's key (`with-secrets unlock`, see
//! `file::unlock`) and the session cache's key and values (`cache`).
//!
//! A key is kept in two halves, a random pad P and the key xor P, so that
//! only the same session and the same uid get it back:
//! - `with-secrets:KIND:ID`, a `user` key in the session keyring (`@s`):
//!   the key xor P, then when the keeping ends (8 bytes, Unix seconds,
//!   big-endian, for messages: the kernel's timeout is what ends it);
//! - `with-secrets:KIND-pad:ID:SESSION` (SESSION: the serial of that session
//!   keyring, in decimal), a `user` key in the user keyring (`@u`): P. The
//!   serial in its name keeps a keeping in another session of the same
//!   user, which makes a pad of its own, from replacing this one.
//!
//! Why the session keyring. It belongs to one login session: `pam_keyinit`
//! makes one per login where PAM runs it, `keyctl session` makes a new one,
//! and Docker gives each container its own. Another session of the same user
//! has another, where the first half is not. A process that has no session
//! keyring of its own uses the user-session keyring (`@us`), which every such
//! process of the user shares ([`Session::Shared`]).
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
//! in the session possesses this `@u` and every key in it. So a run gets the
//! key only with the same session and the same uid. Root is not stopped: it
//! can take your uid in your session (`setpriv --reuid`). Nor is any process
//! of your uid in this session (README, "Security notes").
//!
//! What a kept key encrypts (the cache's values) is kept in `@s` as the
//! first half is, with its permissions: another uid in the session can read
//! it, but without the pad cannot decrypt it.
//!
//! Only keys our uid owns are trusted. Such another uid possesses `@s`, and
//! `@u` through it, and possession lets it add keys to both: with our
//! descriptions and with rights that let us read them, it could give us a
//! cache key of its choosing, and read what we sealed under it. So every key
//! read here is first described (`KEYCTL_DESCRIBE`), and one whose owner is
//! not our uid is treated as absent; `forget` takes such keys out of the
//! keyring too (unlinks what it may not invalidate).
//!
//! Each key is made in this thread's keyring, given its timeout and only
//! then linked into its keyring, so a crash in between never leaves one that
//! does not expire; the pad comes first, and is invalidated if the other half
//! cannot be kept. Linking replaces a key of the same description, so
//! keeping again just sets a new end. [`forget`] invalidates both halves of
//! this session; where one has expired or is gone, the other is useless.

use std::ffi::{CStr, CString};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use libc::{c_long, c_ulong};
use zeroize::Zeroizing;

use super::keyutils::{Failure, checked, keyctl, serial_arg, unless_gone};

const KEY_TYPE: &CStr = c"user";
/// Every description starts with this.
const PREFIX: &str = "with-secrets:";

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
/// A key in the session keyring. No write (a kept key is replaced, never
/// changed) and no link (it can never be linked into a keyring that other
/// sessions search).
const PERMISSIONS: u32 = POS_VIEW | POS_READ | POS_SEARCH | POS_SETATTR | USR_VIEW;
/// The pad: its owner's uid only, never its possessor (see the module doc).
/// Search lets `forget` invalidate it.
const PAD_PERMISSIONS: u32 = USR_VIEW | USR_READ | USR_SEARCH;
/// The largest payload the kernel takes for a `user` key.
pub(crate) const MAX_PAYLOAD: usize = 32_767;

/// Which keyring holds what a session keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    /// This login session's own keyring.
    Own,
    /// The user-session keyring, shared by every process of the user that
    /// has no session keyring of its own.
    Shared,
}

/// The serial of the keyring `special` (`KEY_SPEC_...`) names here.
fn keyring_id(special: i32) -> Result<i32, Failure> {
    keyctl(
        "keyctl(KEYCTL_GET_KEYRING_ID)",
        libc::KEYCTL_GET_KEYRING_ID,
        [serial_arg(special), 0, 0, 0],
    )
    .map(|serial| serial as i32)
}

/// Which keyring `@s` is here; fails where the kernel keyring cannot be used.
pub(crate) fn session() -> Result<Session, Failure> {
    let session = keyring_id(libc::KEY_SPEC_SESSION_KEYRING)?;
    let user_session = keyring_id(libc::KEY_SPEC_USER_SESSION_KEYRING)?;
    Ok(if session == user_session {
        Session::Shared
    } else {
        Session::Own
    })
}

fn description(kind: &str, id: &str) -> CString {
    CString::new(format!("{PREFIX}{kind}:{id}")).expect("no NUL in our descriptions")
}

fn pad_description(kind: &str, id: &str, session: i32) -> CString {
    CString::new(format!("{PREFIX}{kind}-pad:{id}:{session}")).expect("no NUL in our descriptions")
}

/// A key kept by [`keep`], and when its keeping ends.
pub(crate) struct Kept<const N: usize> {
    pub(crate) key: Zeroizing<[u8; N]>,
    pub(crate) until: SystemTime,
}

/// The key of `N` bytes kept as `kind` `id`, if this session keeps its
/// first half and this uid its pad, neither expired.
pub(crate) fn find<const N: usize>(kind: &str, id: &str) -> Result<Option<Kept<N>>, Failure> {
    let Some(payload) = read(
        libc::KEY_SPEC_SESSION_KEYRING,
        &description(kind, id),
        N + 8,
    )?
    else {
        return Ok(None);
    };
    if payload.len() != N + 8 {
        return Ok(None);
    }
    let session = keyring_id(libc::KEY_SPEC_SESSION_KEYRING)?;
    let Some(pad) = read(
        libc::KEY_SPEC_USER_KEYRING,
        &pad_description(kind, id, session),
        N,
    )?
    else {
        return Ok(None);
    };
    if pad.len() != N {
        return Ok(None);
    }
    let mut key = Zeroizing::new([0u8; N]);
    for (byte, (masked, pad)) in key.iter_mut().zip(payload.iter().zip(pad.iter())) {
        *byte = masked ^ pad;
    }
    let mut end = [0u8; 8];
    end.copy_from_slice(&payload[N..]);
    let until = UNIX_EPOCH + Duration::from_secs(u64::from_be_bytes(end));
    Ok(Some(Kept { key, until }))
}

/// Keeps `key` as `kind` `id` for this session and uid for `duration`;
/// returns when that ends and where it went.
pub(crate) fn keep(
    kind: &str,
    id: &str,
    key: &[u8],
    duration: Duration,
) -> Result<(SystemTime, Session), Failure> {
    let session = session()?;
    let session_id = keyring_id(libc::KEY_SPEC_SESSION_KEYRING)?;
    let until = SystemTime::now() + duration;
    let end = until
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let mut pad = Zeroizing::new(vec![0u8; key.len()]);
    random(&mut pad)?;
    let mut payload = Zeroizing::new(Vec::with_capacity(key.len() + 8));
    payload.extend(key.iter().zip(pad.iter()).map(|(key, pad)| key ^ pad));
    payload.extend_from_slice(&end.to_be_bytes());
    let pad = add(
        &pad_description(kind, id, session_id),
        &pad,
        duration,
        libc::KEY_SPEC_USER_KEYRING,
        PAD_PERMISSIONS,
    )?;
    if let Err(failure) = add(
        &description(kind, id),
        &payload,
        duration,
        session_id,
        PERMISSIONS,
    ) {
        invalidate(pad);
        return Err(failure);
    }
    Ok((until, session))
}

/// Fills `buffer` with random bytes; a failure reads as the kernel's.
fn random(buffer: &mut [u8]) -> Result<(), Failure> {
    getrandom::getrandom(buffer)
        .map_err(|err| Failure::new("getrandom", err.raw_os_error().unwrap_or(libc::EIO)))
}

/// The payload of the `user` key `kind` `id` in the session keyring, if
/// there is one of at most `max` bytes (a larger one is not ours).
pub(crate) fn load(
    kind: &str,
    id: &str,
    max: usize,
) -> Result<Option<Zeroizing<Vec<u8>>>, Failure> {
    read(libc::KEY_SPEC_SESSION_KEYRING, &description(kind, id), max)
}

/// Keeps `payload` as the `user` key `kind` `id` in the session keyring for
/// `duration`, with the first half's permissions, replacing any before it.
pub(crate) fn store(
    kind: &str,
    id: &str,
    payload: &[u8],
    duration: Duration,
) -> Result<(), Failure> {
    let session_id = keyring_id(libc::KEY_SPEC_SESSION_KEYRING)?;
    add(
        &description(kind, id),
        payload,
        duration,
        session_id,
        PERMISSIONS,
    )
    .map(drop)
}

/// Forgets the `user` key `kind` `id` in the session keyring, if it is there.
pub(crate) fn remove(kind: &str, id: &str) -> Result<(), Failure> {
    if let Some(serial) = search(libc::KEY_SPEC_SESSION_KEYRING, &description(kind, id))? {
        drop_key(serial, libc::KEY_SPEC_SESSION_KEYRING)?;
    }
    Ok(())
}

/// Forgets every `user` key `kind:ID` in the session keyring but `kind:keep`.
pub(crate) fn remove_all_but(kind: &str, keep: &str) -> Result<(), Failure> {
    let prefix = format!("{PREFIX}{kind}:");
    let kept = format!("{prefix}{keep}");
    forget_in(libc::KEY_SPEC_SESSION_KEYRING, |description| {
        description.starts_with(&prefix) && description != kept
    })
    .map(drop)
}

/// Whether key `serial` belongs to our uid. Another uid that possesses this
/// session keyring (one started from it with `su` or `sudo`) may add keys
/// to it, and to the user keyring linked into it, with our descriptions and
/// with rights that let us read them: a key it made would give it the
/// cache's key, so only a key our uid made is ever trusted. (Root may make
/// one as our uid; root is not kept out.)
fn ours(serial: i32) -> bool {
    // SAFETY: geteuid has no preconditions.
    describe(serial).is_some_and(|key| key.owner == Some(unsafe { libc::geteuid() }))
}

/// What `KEYCTL_DESCRIBE` says of a key.
struct Described {
    kind: String,
    owner: Option<u32>,
    description: String,
}

/// Key `serial`'s type, owner and description; `None` where it may not be
/// viewed, or is gone.
fn describe(serial: i32) -> Option<Described> {
    let mut text = [0u8; 512];
    let len = keyctl(
        "keyctl(KEYCTL_DESCRIBE)",
        libc::KEYCTL_DESCRIBE,
        [
            serial_arg(serial),
            text.as_mut_ptr() as c_ulong,
            text.len() as c_ulong,
            0,
        ],
    )
    .ok()?;
    // "type;uid;gid;perm;description" and a NUL.
    let text = &text[..(len as usize).min(text.len())];
    let text = String::from_utf8_lossy(text.strip_suffix(&[0]).unwrap_or(text));
    let mut fields = text.splitn(5, ';');
    let kind = fields.next()?.to_owned();
    let owner = fields.next()?.parse().ok();
    let description = fields.nth(2)?.to_owned();
    Some(Described {
        kind,
        owner,
        description,
    })
}

/// Takes key `serial` out of `keyring`: invalidates it, or where its rights
/// do not let us (a key another uid planted), unlinks it from the keyring.
fn drop_key(serial: i32, keyring: i32) -> Result<(), Failure> {
    match unless_gone(keyctl(
        "keyctl(KEYCTL_INVALIDATE)",
        libc::KEYCTL_INVALIDATE,
        [serial_arg(serial), 0, 0, 0],
    )) {
        Ok(_) => Ok(()),
        Err(_) => unless_gone(keyctl(
            "keyctl(KEYCTL_UNLINK)",
            libc::KEYCTL_UNLINK,
            [serial_arg(serial), serial_arg(keyring), 0, 0],
        ))
        .map(drop),
    }
}

/// The serial of the `user` key `description` a search of `keyring` finds.
fn search(keyring: i32, description: &CStr) -> Result<Option<i32>, Failure> {
    let found = unless_gone(keyctl(
        "keyctl(KEYCTL_SEARCH)",
        libc::KEYCTL_SEARCH,
        [
            serial_arg(keyring),
            KEY_TYPE.as_ptr() as c_ulong,
            description.as_ptr() as c_ulong,
            0,
        ],
    ))?;
    Ok(found.map(|serial| serial as i32))
}

/// The payload of the `user` key `description` that a search of `keyring`
/// finds, if it has one of at most `max` bytes: one that is longer is not
/// ours, whatever its name, and is never trusted.
fn read(
    keyring: i32,
    description: &CStr,
    max: usize,
) -> Result<Option<Zeroizing<Vec<u8>>>, Failure> {
    let Some(serial) = search(keyring, description)? else {
        return Ok(None);
    };
    if !ours(serial) {
        return Ok(None);
    }
    // One more byte than we take, to tell a longer payload from one of `max`.
    let mut payload = Zeroizing::new(vec![0u8; max + 1]);
    // None: expired or revoked since the search.
    let len = unless_gone(keyctl(
        "keyctl(KEYCTL_READ)",
        libc::KEYCTL_READ,
        [
            serial_arg(serial),
            payload.as_mut_ptr() as c_ulong,
            payload.len() as c_ulong,
            0,
        ],
    ))?;
    Ok(match len {
        Some(len) if (len as usize) <= max => {
            payload.truncate(len as usize);
            Some(payload)
        }
        _ => None,
    })
}

/// Adds a `user` key to this thread's keyring, gives it `duration` to live,
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
    duration: Duration,
    keyring: i32,
    permissions: u32,
) -> Result<i32, Failure> {
    let seconds = u32::try_from(duration.as_secs().max(1)).unwrap_or(u32::MAX);
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
    })? as i32;
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
            return Err(failure);
        }
    }
    // Out of this thread's keyring again: a later `add_key` of the same
    // description here would try to update this key in place, which its
    // permissions (no write) refuse. Our uid may always unlink from its own
    // thread keyring; were it refused, that later call would say so.
    let _ = keyctl(
        "keyctl(KEYCTL_UNLINK)",
        libc::KEYCTL_UNLINK,
        [
            serial_arg(serial),
            serial_arg(libc::KEY_SPEC_THREAD_KEYRING),
            0,
            0,
        ],
    );
    Ok(serial)
}

fn invalidate(serial: i32) {
    let _ = keyctl(
        "keyctl(KEYCTL_INVALIDATE)",
        libc::KEYCTL_INVALIDATE,
        [serial_arg(serial), 0, 0, 0],
    );
}

/// Forgets everything of `kinds` this session keeps for this uid: every key
/// `KIND:...` in the session keyring, and this session's pads of them in
/// the user keyring. Returns how many keys of each kind there were in the
/// session keyring.
pub(crate) fn forget<const K: usize>(kinds: [&str; K]) -> Result<[usize; K], Failure> {
    let session = keyring_id(libc::KEY_SPEC_SESSION_KEYRING)?;
    let mut forgotten = [0; K];
    for (index, kind) in kinds.iter().enumerate() {
        let prefix = format!("{PREFIX}{kind}:");
        forgotten[index] = forget_in(libc::KEY_SPEC_SESSION_KEYRING, |description| {
            description.starts_with(&prefix)
        })?;
        // This session's pads only: other sessions' keepings stay.
        let pad_prefix = format!("{PREFIX}{kind}-pad:");
        let suffix = format!(":{session}");
        forget_in(libc::KEY_SPEC_USER_KEYRING, |description| {
            description.starts_with(&pad_prefix) && description.ends_with(&suffix)
        })?;
    }
    Ok(forgotten)
}

/// Invalidates the `user` keys linked in `keyring` itself (not in keyrings
/// below it) whose description is `ours`; returns how many.
fn forget_in(keyring: i32, ours: impl Fn(&str) -> bool) -> Result<usize, Failure> {
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
        )? as usize;
        if len <= size {
            serials.truncate(len / std::mem::size_of::<i32>());
            break;
        }
        serials = vec![0; len / std::mem::size_of::<i32>()];
    }
    let mut forgotten = 0;
    for serial in serials {
        let Some(key) = describe(serial) else {
            continue;
        };
        if key.kind != "user" || !ours(&key.description) {
            continue;
        }
        drop_key(serial, keyring)?;
        forgotten += 1;
    }
    Ok(forgotten)
}
