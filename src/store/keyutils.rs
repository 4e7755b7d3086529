//! The `keyutils` store: values as `user` keys in the Linux kernel's user
//! keyring (`@u`), through the raw `add_key` and `keyctl` system calls.
//!
//! Why the user keyring. The kernel gives a process several keyrings:
//! - the session keyring (`@s`) belongs to one login session: a value set in
//!   one SSH login or terminal would be missing in the next, and
//!   `keyctl session`, systemd services and some containers start a fresh one;
//! - the user keyring (`@u`) is shared by every process of the user, in every
//!   session: desktop, each SSH login, each WSL shell. Since Linux 5.3 the
//!   kernel keeps it in a register of the user namespace, so it lasts until
//!   reboot even when the user has no process left (older kernels drop it with
//!   the user's last process). That is the store's promise: until reboot;
//! - the persistent keyring (`KEYCTL_GET_PERSISTENT`) expires after three days
//!   unused and needs `CONFIG_PERSISTENT_KEYRINGS`.
//!
//! So keys go into `@u`, and are looked up there by its special ID
//! (`KEY_SPEC_USER_KEYRING`), never through the process's keyrings as
//! `request_key` does: `pam_keyinit` links `@u` into the session keyring it
//! makes, but `keyctl session -`, systemd services (`KeyringMode=private`)
//! and containers have a session keyring without that link, where a
//! `request_key` finds nothing.
//!
//! Who can read a value. The kernel checks a key against four bytes of
//! permissions: its possessor's, its owner uid's, its group's and everyone
//! else's. A process whose uid (fsuid) owns the key gets the owner's byte,
//! and one that possesses it (reaches it from its thread, process or session
//! keyring) gets the possessor's byte on top, whatever its uid. `add_key`
//! gives a new `user` key every permission for its possessor and only "view"
//! for its owner uid, which is not enough: `pam_keyinit` links `@u` into the
//! session keyring of a login, and `su`, `runuser`, `setpriv` and `sudo` keep
//! the session keyring, so another uid started from your login possesses your
//! `@u` and every key in it. So every key the store writes gets every
//! permission for its owner uid and none for anyone else, its possessor
//! included ([`PERMISSIONS`]): only processes of your uid read it, possessed
//! or not (and root, which can take your uid). `set` makes a new key in this
//! thread's keyring, gives it those permissions, and only then links it into
//! `@u`; it gives a key already in `@u` those permissions before it changes
//! its value in place. So no value it writes is ever in `@u` with the
//! kernel's default permissions, not even for a moment.
//!
//! Keys written before the store did this have those default permissions.
//! Every read sets a key's permissions to [`PERMISSIONS`] (`KEYCTL_SETPERM`)
//! before it reads the value, and so does `set` before it writes, so an old
//! key is restricted the first time it is used. Setting them takes the
//! "setattr" permission, which an old key grants only its possessor; that is
//! why the search links the key it finds into this thread's own keyring (its
//! fourth argument). The special ID makes `@u` possessed for the search
//! itself, but each later call looks the serial up afresh, and where `@u` is
//! not linked into the session keyring (inside `keyctl session -`, say) the
//! key would not be possessed. The thread keyring is private, goes away with
//! the thread and is dropped at exec, so the command we run inherits nothing.
//! Linking takes the "link" permission, which [`PERMISSIONS`] keeps for the
//! owner uid; it gives no one else anything, as possession grants nothing.
//!
//! Limits: a `user` key holds 1 to 32767 bytes, and the kernel's per-user
//! quota caps all of a user's keys together (`/proc/key-users`; by default
//! 20000 bytes for users other than root). Docker's default seccomp profile
//! blocks `keyctl`, `add_key` and `request_key`; `Failure::explain` says so.

use std::ffi::{CStr, CString};
use std::io;

use libc::{c_long, c_ulong};
use zeroize::Zeroizing;

use super::escape::escape;
use super::{Class, Common, Fault, Found, Key, Report, Store, StoreError};
use crate::secret::Secret;

const NAME: &str = "keyutils";
/// The largest value the kernel takes for a `user` key (`user_preparse`).
pub(crate) const MAX_VALUE: usize = 32_767;
/// The longest key description the kernel takes (`KEY_MAX_DESC_SIZE` less the NUL).
const MAX_DESCRIPTION: usize = 4_095;
const KEY_TYPE: &CStr = c"user";
/// Where values live; see the module doc.
const STORE_KEYRING: i32 = libc::KEY_SPEC_USER_KEYRING;
/// Where a found key is linked, and a new one made, for possession; see the
/// module doc.
const POSSESS_KEYRING: i32 = libc::KEY_SPEC_THREAD_KEYRING;
/// The permissions of every key the store writes or reads: `KEY_USR_ALL`
/// (linux/key.h), all for the key's owner uid, nothing for its possessor,
/// group or anyone else; see the module doc. The owner needs view and read
/// to read it, write for `add_key` to update it in place, search for
/// `KEYCTL_SEARCH` and `KEYCTL_INVALIDATE`, link for the search's link into
/// this thread's keyring and `set`'s into `@u`, setattr to set these again.
const PERMISSIONS: u32 = 0x003f_0000;
/// A first guess at a value's size; larger ones cost a second read.
const READ_GUESS: usize = 4096;

pub(crate) struct Keyutils;

impl Keyutils {
    /// Makes no system call: the first lookup or write finds out whether the
    /// keyring is usable here.
    pub(crate) fn open() -> Result<Self, StoreError> {
        Ok(Self)
    }

    /// Whether the kernel keyring is usable here, for `doctor`: fetches (and
    /// if need be creates) the user keyring, which fails as every other call
    /// would where a seccomp filter blocks `keyctl` or the kernel has no
    /// keyring.
    fn probe() -> Result<(), StoreError> {
        keyctl(
            "keyctl(KEYCTL_GET_KEYRING_ID)",
            libc::KEYCTL_GET_KEYRING_ID,
            [serial_arg(STORE_KEYRING), 1, 0, 0],
        )
        .map(drop)
        .map_err(Failure::into_error)
    }
}

/// The kernel keyring's line in `doctor`: usable, or why not.
pub(crate) fn report() -> Report {
    let line = match Keyutils::probe() {
        Ok(()) => "usable (values last until reboot)".to_owned(),
        Err(err) => crate::term::printable::first_line(&err),
    };
    Report::lines(vec![("keyutils:", line)])
}

impl Store for Keyutils {
    fn name(&self) -> &'static str {
        NAME
    }

    /// One search and one read per key: system calls that take microseconds,
    /// so there is nothing to gain from batching them.
    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        keys.iter()
            .map(|key| {
                let description = description(*key)?;
                let Some(serial) = search(&description).map_err(Failure::into_error)? else {
                    return Ok(None);
                };
                // A key written before the store restricted its keys is
                // restricted before its value leaves the kernel.
                if !restrict(serial).map_err(Failure::into_error)? {
                    return Ok(None);
                }
                let secret = read(serial).map_err(Failure::into_error)?;
                Ok(secret.map(|secret| Found {
                    secret,
                    matches: 1,
                    cached: None,
                }))
            })
            .collect()
    }

    /// Writes the value into this thread's keyring, restricts the key, and
    /// only then links it into `@u` (see the module doc), so one key is left.
    /// A key already there is found first, which links it into this
    /// thread's keyring, and restricted: `add_key` then changes its value in
    /// place, which the owner's write permission allows, rather than make a
    /// second key, for which the user's key quota may have no room. Keys have
    /// no label, so `label` is not used.
    fn set(&mut self, key: Key<'_>, _label: &str, value: &Secret) -> Result<(), StoreError> {
        check_size(value.len())?;
        let description = description(key)?;
        if let Some(serial) = search(&description).map_err(Failure::into_error)? {
            restrict(serial).map_err(Failure::into_error)?;
        }
        // SAFETY: the pointers are valid, NUL-terminated where the kernel
        // expects it, for the length given; the kernel copies what it reads.
        let result = unsafe {
            libc::syscall(
                libc::SYS_add_key,
                KEY_TYPE.as_ptr(),
                description.as_ptr(),
                value.expose().as_ptr(),
                value.len(),
                c_long::from(POSSESS_KEYRING),
            )
        };
        // A serial is a positive 32-bit number.
        let serial = checked("add_key", result).map_err(Failure::into_error)? as i32;
        let linked = restrict(serial).and_then(|_| {
            keyctl(
                "keyctl(KEYCTL_LINK)",
                libc::KEYCTL_LINK,
                [serial_arg(serial), serial_arg(STORE_KEYRING), 0, 0],
            )
        });
        if let Err(failure) = linked {
            // Out of this thread's keyring, a key made here and linked
            // nowhere else is gone; one this thread found before stays where
            // it was.
            let _ = keyctl(
                "keyctl(KEYCTL_UNLINK)",
                libc::KEYCTL_UNLINK,
                [serial_arg(serial), serial_arg(POSSESS_KEYRING), 0, 0],
            );
            return Err(failure.into_error());
        }
        Ok(())
    }

    /// Invalidates the key, which takes it out of every keyring at once.
    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        let description = description(key)?;
        let Some(serial) = search(&description).map_err(Failure::into_error)? else {
            return Ok(0);
        };
        match keyctl(
            "keyctl(KEYCTL_INVALIDATE)",
            libc::KEYCTL_INVALIDATE,
            [serial_arg(serial), 0, 0, 0],
        ) {
            Ok(_) => Ok(1),
            Err(failure) if failure.means_gone() => Ok(0),
            Err(failure) => Err(failure.into_error()),
        }
    }
}

/// The key description for `key`: `with-secrets:SERVICE:USERNAME`, each part
/// escaped as keyrings.alt does (`[A-Za-z0-9]` kept, every other byte `_XX`).
/// Escaped parts hold no `:`, so no two keys share a description, and
/// `keyctl show @u` stays readable.
fn description(key: Key<'_>) -> Result<CString, StoreError> {
    let text = format!(
        "with-secrets:{}:{}",
        escape(key.service),
        escape(key.username)
    );
    if text.len() > MAX_DESCRIPTION {
        return Err(StoreError::from(Common::Failed(format!(
            "the service and username of this entry are too long for the kernel keyring \
             (a key's description holds at most {MAX_DESCRIPTION} bytes; escaped, these take {})\n  \
             shorten them in the manifest, or use --store file",
            text.len()
        ))));
    }
    // Escaping turns a NUL into `_00`.
    Ok(CString::new(text).expect("an escaped description has no NUL"))
}

/// Refuses what the kernel would refuse, before any system call, with the
/// reason (add_key says only EINVAL).
fn check_size(len: usize) -> Result<(), StoreError> {
    if len == 0 {
        return Err(StoreError::from(Common::Failed(
            "the kernel keyring cannot hold an empty value; nothing was changed".to_owned(),
        )));
    }
    if len > MAX_VALUE {
        return Err(StoreError::from(Common::Failed(format!(
            "the kernel keyring holds values of at most {MAX_VALUE} bytes, and this one has \
             {len}; nothing was changed\n  use --store file for larger values"
        ))));
    }
    Ok(())
}

/// Our key for `description` in the user keyring, linked into this thread's
/// keyring so that this thread possesses it (see the module doc).
fn search(description: &CStr) -> Result<Option<i32>, Failure> {
    match keyctl(
        "keyctl(KEYCTL_SEARCH)",
        libc::KEYCTL_SEARCH,
        [
            serial_arg(STORE_KEYRING),
            KEY_TYPE.as_ptr() as c_ulong,
            description.as_ptr() as c_ulong,
            serial_arg(POSSESS_KEYRING),
        ],
    ) {
        // A serial is a positive 32-bit number.
        Ok(serial) => Ok(Some(serial as i32)),
        Err(failure) if failure.means_gone() => Ok(None),
        Err(failure) => Err(failure),
    }
}

/// Gives key `serial` the store's [`PERMISSIONS`]; `false` if it went away
/// since the search.
fn restrict(serial: i32) -> Result<bool, Failure> {
    match keyctl(
        "keyctl(KEYCTL_SETPERM)",
        libc::KEYCTL_SETPERM,
        [serial_arg(serial), c_ulong::from(PERMISSIONS), 0, 0],
    ) {
        Ok(_) => Ok(true),
        Err(failure) if failure.means_gone() => Ok(false),
        Err(failure) => Err(failure),
    }
}

/// The value of key `serial`, or `None` if it went away since the search.
///
/// KEYCTL_READ copies at most the buffer's length but returns the value's
/// full length, so a value larger than the buffer (or one that grew since
/// the last read) is read again into a buffer of that length. Every buffer is
/// zeroed when dropped.
fn read(serial: i32) -> Result<Option<Secret>, Failure> {
    let mut buffer = Zeroizing::new(vec![0u8; READ_GUESS]);
    loop {
        let len = match keyctl(
            "keyctl(KEYCTL_READ)",
            libc::KEYCTL_READ,
            [
                serial_arg(serial),
                buffer.as_mut_ptr() as c_ulong,
                buffer.len() as c_ulong,
                0,
            ],
        ) {
            Ok(len) => len as usize,
            Err(failure) if failure.means_gone() => return Ok(None),
            Err(failure) => return Err(failure),
        };
        if len <= buffer.len() {
            buffer.truncate(len);
            return Ok(Some(Secret::new(std::mem::take(&mut *buffer))));
        }
        buffer = Zeroizing::new(vec![0u8; len]);
    }
}

/// A key serial as a system call argument: the kernel reads the low 32 bits
/// as a signed `key_serial_t`, so the special IDs (-1, -4) sign-extend.
pub(super) fn serial_arg(serial: i32) -> c_ulong {
    c_long::from(serial) as c_ulong
}

pub(super) fn keyctl(
    call: &'static str,
    operation: u32,
    args: [c_ulong; 4],
) -> Result<c_long, Failure> {
    // SAFETY: each operation used here takes serials and integers, or
    // pointers that the caller keeps valid (NUL-terminated strings, a buffer
    // with its true length) for the duration of the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            c_long::from(operation),
            args[0],
            args[1],
            args[2],
            args[3],
        )
    };
    checked(call, result)
}

pub(super) fn checked(call: &'static str, result: c_long) -> Result<c_long, Failure> {
    if result >= 0 {
        return Ok(result);
    }
    let errno = io::Error::last_os_error().raw_os_error().unwrap_or(0);
    Err(Failure { call, errno })
}

/// A failed system call: which one, for the message, and its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    call: &'static str,
    errno: i32,
}

impl Failure {
    pub(super) fn new(call: &'static str, errno: i32) -> Self {
        Self { call, errno }
    }

    /// The kernel's per-user quota on keys is used up.
    pub(super) fn over_quota(self) -> bool {
        self.errno == libc::EDQUOT
    }

    /// No such key, or one that expired or was revoked: missing, not an error.
    pub(super) fn means_gone(self) -> bool {
        matches!(
            self.errno,
            libc::ENOKEY | libc::EKEYEXPIRED | libc::EKEYREVOKED
        )
    }

    fn into_error(self) -> StoreError {
        self.explain(&Confinement::detect(), &Quota::detect)
    }

    /// What failed and, where a filter or the kernel refused the call, the
    /// most likely reason, without the keyutils store's next step.
    pub(crate) fn why(self) -> String {
        let what = format!(
            "{} failed: {}",
            self.call,
            io::Error::from_raw_os_error(self.errno)
        );
        match self.errno {
            libc::EPERM | libc::ENOSYS | libc::EACCES => {
                let reason = Confinement::detect().explain(self.errno);
                let reason = reason.lines().next().unwrap_or_default();
                format!("{what}: {reason}")
            }
            _ => what,
        }
    }

    /// The error for this failure, with what most likely caused it where we
    /// are (`confinement`), and what to do next.
    fn explain(self, confinement: &Confinement, quota: &dyn Fn() -> Option<Quota>) -> StoreError {
        let what = format!(
            "{} failed: {}",
            self.call,
            io::Error::from_raw_os_error(self.errno)
        );
        match self.errno {
            // A key the search found, that this process may not read,
            // restrict or remove: the store is here and refuses, so nothing
            // may stand in for it (see StoreError::means_absent).
            libc::EACCES
                if !confinement.seccomp
                    && matches!(
                        self.call,
                        "keyctl(KEYCTL_READ)"
                            | "keyctl(KEYCTL_SETPERM)"
                            | "keyctl(KEYCTL_INVALIDATE)"
                    ) =>
            {
                StoreError::from(Denied(format!(
                    "{what}: the key is there, but its permissions do not let this process \
                     use it"
                )))
            }
            // These never come from our calls on a keyring we may use: a
            // filter or the kernel itself refuses the system call.
            libc::EPERM | libc::ENOSYS | libc::EACCES => StoreError::from(Common::Unavailable {
                store: NAME,
                reason: format!("{what}: {}", confinement.explain(self.errno)),
            }),
            libc::EDQUOT => StoreError::from(Common::Failed(format!(
                "{what}: this user's kernel key quota has no room for it{}\n  \
                 delete entries you no longer need (with-secrets delete NAME, or keyctl), \
                 or use --store file",
                quota().map_or_else(
                    || " (see /proc/key-users)".to_owned(),
                    |quota| format!(" ({quota} in use; see /proc/key-users)")
                )
            ))),
            _ => StoreError::from(Common::Failed(what)),
        }
    }
}

/// A key that is there, but that this process may not use: the store is
/// here and refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Denied(String);

impl Fault for Denied {
    fn class(&self) -> Class {
        Class::Denied
    }
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n  see its owner and permissions with: keyctl show @u",
            self.0
        )
    }
}

/// What about this process explains a refused system call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Confinement {
    /// The container this runs in, if any: `Docker`, `Podman`, or what
    /// `container=` says in PID 1's environment (`lxc`, `systemd-nspawn`, ...).
    container: Option<String>,
    /// Whether a seccomp filter applies to this process.
    seccomp: bool,
}

impl Confinement {
    fn detect() -> Self {
        let container = crate::machine::container().map(|container| container.name);
        let seccomp = std::fs::read_to_string("/proc/self/status")
            .is_ok_and(|status| seccomp_filtered(&status));
        Self { container, seccomp }
    }

    /// Why the call was most likely refused, and the next step.
    fn explain(&self, errno: i32) -> String {
        let container = self.container.as_deref();
        let why = match (container, self.seccomp) {
            (Some(container), true) => format!(
                "this {container} container's seccomp profile blocks the kernel keyring, \
                 as Docker's default profile does"
            ),
            (None, true) => "a seccomp filter on this process blocks the kernel keyring \
                             (a sandbox, or systemd's SystemCallFilter=, may set one)"
                .to_owned(),
            (Some(container), false) if errno == libc::ENOSYS => format!(
                "the kernel of this {container} container has no keyring \
                 (gVisor, for one, has none)"
            ),
            (None, false) if errno == libc::ENOSYS => {
                "this kernel has no keyring (it was built without CONFIG_KEYS)".to_owned()
            }
            (_, false) => "the kernel, or a security module such as SELinux or AppArmor, \
                           refused access to your user keyring (see what `keyctl show @u` says)"
                .to_owned(),
        };
        let next = match (container, self.seccomp) {
            (Some(_), true) => {
                "use --store file (or WITH_SECRETS_STORE=file) in the container, or run it \
                 with a seccomp profile that allows keyctl, add_key and request_key"
            }
            (None, true) => {
                "use --store file (or WITH_SECRETS_STORE=file) here, or allow the keyctl and \
                 add_key system calls"
            }
            (_, false) => "use --store file (or WITH_SECRETS_STORE=file) here",
        };
        format!("{why}\n  {next}")
    }
}

/// `container=NAME` in a NUL-separated environment, as systemd, LXC and
/// Podman set it for PID 1.
/// Whether /proc/self/status says a seccomp filter applies (`Seccomp: 2`).
fn seccomp_filtered(status: &str) -> bool {
    status
        .lines()
        .filter_map(|line| line.strip_prefix("Seccomp:"))
        .any(|mode| mode.trim() == "2")
}

/// This user's line of /proc/key-users, for the message when the quota is
/// used up: keys and bytes used, and the most allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Quota {
    keys: (u64, u64),
    bytes: (u64, u64),
}

impl Quota {
    fn detect() -> Option<Self> {
        // SAFETY: getuid cannot fail and touches no memory.
        let uid = unsafe { libc::getuid() };
        let text = std::fs::read_to_string("/proc/key-users").ok()?;
        Self::parse(&text, uid)
    }

    /// Reads lines such as `1000:     5 5/5 3/200 46/20000`: the UID, then
    /// usage, keys (all/instantiated), keys in quota/maximum, bytes in
    /// quota/maximum.
    fn parse(text: &str, uid: u32) -> Option<Self> {
        let line = text
            .lines()
            .find(|line| line.trim_start().starts_with(&format!("{uid}:")))?;
        let mut fields = line.split_whitespace().skip(3);
        let mut pair = || {
            let (used, max) = fields.next()?.split_once('/')?;
            Some((used.parse().ok()?, max.parse().ok()?))
        };
        Some(Self {
            keys: pair()?,
            bytes: pair()?,
        })
    }
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} keys and {} of {} bytes",
            self.keys.0, self.keys.1, self.bytes.0, self.bytes.1
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(service: &'a str, username: &'a str) -> Key<'a> {
        Key { service, username }
    }

    fn text(description: Result<CString, StoreError>) -> String {
        description.unwrap().into_string().unwrap()
    }

    #[test]
    fn descriptions_name_the_tool_and_escape_service_and_username() {
        assert_eq!(
            text(description(key("acme-api", "CI Bot"))),
            "with-secrets:acme_2Dapi:CI_20Bot"
        );
        assert_eq!(
            text(description(key("Ümlaut", "a:b"))),
            "with-secrets:_C3_9Cmlaut:a_3Ab"
        );
    }

    #[test]
    fn descriptions_of_different_keys_differ() {
        let pairs = [
            ("a:b", "c"),
            ("a", "b:c"),
            ("a_3Ab", "c"),
            ("ab", ""),
            ("a", "b"),
            ("", "ab"),
            ("svc", "ci bot"),
            ("svc", "CI Bot"),
        ];
        let mut seen: Vec<String> = pairs
            .iter()
            .map(|(service, username)| text(description(key(service, username))))
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), pairs.len(), "{seen:?}");
    }

    #[test]
    fn a_nul_is_escaped_and_an_overlong_description_is_refused() {
        assert_eq!(text(description(key("a\0b", "u"))), "with-secrets:a_00b:u");
        let long = "é".repeat(700);
        let err = description(key(&long, "u")).unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
    }

    #[test]
    fn values_over_the_kernel_limit_or_empty_are_refused_before_any_call() {
        assert_eq!(check_size(1), Ok(()));
        assert_eq!(check_size(MAX_VALUE), Ok(()));
        let err = check_size(MAX_VALUE + 1).unwrap_err().to_string();
        assert!(err.contains("at most 32767 bytes"), "{err}");
        assert!(err.contains("this one has 32768"), "{err}");
        assert!(err.contains("--store file"), "{err}");
        let err = Keyutils
            .set(
                key("s", "u"),
                "label",
                &Secret::new(vec![b'x'; MAX_VALUE + 1]),
            )
            .unwrap_err();
        assert!(err.to_string().contains("nothing was changed"), "{err}");
        let err = check_size(0).unwrap_err().to_string();
        assert!(err.contains("cannot hold an empty value"), "{err}");
    }

    fn explained(errno: i32, container: Option<&str>, seccomp: bool) -> String {
        let confinement = Confinement {
            container: container.map(str::to_owned),
            seccomp,
        };
        let quota = || {
            Some(Quota {
                keys: (12, 200),
                bytes: (19_950, 20_000),
            })
        };
        Failure {
            call: "add_key",
            errno,
        }
        .explain(&confinement, &quota)
        .to_string()
    }

    #[test]
    fn a_seccomp_filter_in_a_container_is_named_with_the_next_step() {
        let message = explained(libc::EPERM, Some("Docker"), true);
        assert!(
            message.starts_with("cannot be used here: add_key failed: Operation not permitted"),
            "{message}"
        );
        assert!(
            message.contains(
                "this Docker container's seccomp profile blocks the kernel keyring, \
                 as Docker's default profile does\n  use --store file"
            ),
            "{message}"
        );
        assert!(
            message.contains("allows keyctl, add_key and request_key"),
            "{message}"
        );
    }

    #[test]
    fn each_kind_of_refusal_has_its_own_reason() {
        let cases = [
            (libc::ENOSYS, None, true, "a seccomp filter on this process"),
            (
                libc::ENOSYS,
                Some("gvisor"),
                false,
                "this gvisor container has no keyring",
            ),
            (libc::ENOSYS, None, false, "built without CONFIG_KEYS"),
            (
                libc::EACCES,
                None,
                false,
                "refused access to your user keyring",
            ),
            (
                libc::EPERM,
                Some("lxc"),
                false,
                "see what `keyctl show @u` says",
            ),
        ];
        for (errno, container, seccomp, expected) in cases {
            let message = explained(errno, container, seccomp);
            assert!(message.contains(expected), "{message}");
            assert!(message.contains("--store file"), "{message}");
            assert!(
                message.starts_with("cannot be used here: add_key failed: "),
                "{message}"
            );
        }
    }

    #[test]
    fn a_found_key_this_process_may_not_read_is_a_refusal_not_an_absent_store() {
        let confinement = Confinement {
            container: None,
            seccomp: false,
        };
        for call in [
            "keyctl(KEYCTL_READ)",
            "keyctl(KEYCTL_SETPERM)",
            "keyctl(KEYCTL_INVALIDATE)",
        ] {
            let err = Failure {
                call,
                errno: libc::EACCES,
            }
            .explain(&confinement, &|| None);
            assert!(err.fault::<Denied>().is_some(), "{err:?}");
            assert!(!err.means_absent(), "{err:?}");
            // The kernel keyring has no access settings to allow us in:
            // the advice is the kernel's own tool.
            let message = err.to_string();
            assert!(
                message.ends_with("\n  see its owner and permissions with: keyctl show @u"),
                "{message}"
            );
            assert!(!message.contains("access settings"), "{message}");
        }
        // The same errno from a seccomp filter, or on the first call, means
        // the kernel keyring cannot be used here at all.
        let filtered = Failure {
            call: "keyctl(KEYCTL_READ)",
            errno: libc::EACCES,
        }
        .explain(
            &Confinement {
                container: None,
                seccomp: true,
            },
            &|| None,
        );
        assert!(filtered.means_absent(), "{filtered:?}");
        let probe = Failure {
            call: "keyctl(KEYCTL_GET_KEYRING_ID)",
            errno: libc::EACCES,
        }
        .explain(&confinement, &|| None);
        assert!(probe.means_absent(), "{probe:?}");
    }

    #[test]
    fn a_full_quota_says_which_and_other_errors_say_what_failed() {
        let message = explained(libc::EDQUOT, None, false);
        assert!(
            message.contains(
                "this user's kernel key quota has no room for it (12 of 200 keys and 19950 of \
                 20000 bytes in use; see /proc/key-users)"
            ),
            "{message}"
        );
        let message = explained(libc::EINVAL, None, false);
        assert_eq!(message, "add_key failed: Invalid argument (os error 22)");
    }

    #[test]
    fn missing_expired_and_revoked_keys_are_gone() {
        for errno in [libc::ENOKEY, libc::EKEYEXPIRED, libc::EKEYREVOKED] {
            assert!(Failure { call: "x", errno }.means_gone());
        }
        for errno in [libc::EPERM, libc::EACCES, libc::EDQUOT] {
            assert!(!Failure { call: "x", errno }.means_gone());
        }
    }

    #[test]
    fn the_quota_is_this_users_line_of_proc_key_users() {
        let text = "    0:    11 10/10 5/1000000 78/25000000\n 4242:     3 3/3 3/200 46/20000\n";
        assert_eq!(
            Quota::parse(text, 4242),
            Some(Quota {
                keys: (3, 200),
                bytes: (46, 20000)
            })
        );
        assert_eq!(Quota::parse(text, 0).unwrap().bytes, (78, 25_000_000));
        assert_eq!(Quota::parse(text, 42), None);
    }

    #[test]
    fn seccomp_mode_2_means_a_filter() {
        assert!(seccomp_filtered(
            "Name:\tx\nSeccomp:\t2\nSeccomp_filters:\t1\n"
        ));
        assert!(!seccomp_filtered(
            "Name:\tx\nSeccomp:\t0\nSeccomp_filters:\t0\n"
        ));
        assert!(!seccomp_filtered("Name:\tx\n"));
    }
}
