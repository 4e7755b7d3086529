//! The session cache: values that runs read from a slow store (the Windows
//! store through the bridge, `vault`, the agent), kept for this login
//! session and user while `with-secrets unlock` lasts, so that a run finds
//! them without reaching the store at all.
//!
//! Opt-in by the person, never by the manifest: `unlock` starts it (and
//! `lock`, its end, or the end of the login session ends it), and
//! `--no-cache` (`WITH_SECRETS_NO_CACHE`) leaves it aside for one run. The
//! local keyring and the file store are never cached: they answer in a few
//! milliseconds already, and a cached copy would outlive a keyring the
//! person locked.
//!
//! Where it is kept. The cache's key C (32 random bytes) is kept as
//! `session_keyring` keeps a key, in two halves (`with-secrets:cache-key:1`
//! in the session keyring, its pad in the user keyring), so only this
//! session and this uid get C back, until the unlock ends. Each store's
//! values are one `user` key in the session keyring,
//! `with-secrets:cache:ID`, sealed with ChaCha20-Poly1305 under a key made
//! from C. ID names the store: an HMAC under C of its identity (what
//! `Store::cache_identity` says: the server's address, namespace, mount and
//! token for `vault`, the helper for `windows`, the socket for the agent),
//! so that the description says nothing of it (not even a token's hash) and
//! a store's values are never served for another. The ID is the sealed
//! values' associated data, so values cannot be moved from one store's key
//! to another's. Another uid in the session reads the sealed key, but has
//! no pad, so no C.
//!
//! What is kept of each value: the item (service and username), the value,
//! how many items matched, and when it was read from the store. A value
//! the store does not have is not kept (the next run asks again, so a value
//! stored since is seen), and so a run with a value missing reaches the
//! store, as one with nothing cached does: what the cache lacks, the run
//! asks the store for, and an error of the store fails the run as it would
//! without a cache. A value changed in the store by something other than
//! this with-secrets is served as it was until the cache ends; `set`,
//! `delete`, `import` and generated values through with-secrets update or
//! drop what they touch, even under `--no-cache`.
//!
//! Limits. A `user` key holds at most 32,767 bytes, so a store's values
//! are kept up to that size, the most recently read first. The kernel's
//! per-user quota (`/proc/sys/kernel/keys/maxbytes`, 20,000 bytes for users
//! other than root by default) caps everything a user keeps; a value that
//! does not fit is simply not kept (`-v` says so).
//!
//! Runs at once. A change to a store's kept values (keeping what a run
//! read, or what a write changed) reads them, merges and writes them back,
//! under a lock file beside the file store's, so that no change is lost to
//! another's. The merge keeps, of two entries for one item, the one made
//! last: a value is stamped with the moment before the store was asked for
//! it, and a write through with-secrets leaves a mark that the item was
//! forgotten before the store changes and another once it has, then keeps
//! the new value, stamped after both. So a run that read the old value while
//! a `set` or `delete` changed it can never put it back: its stamp is older
//! than the second mark. Where the lock cannot be had (no folder for it, or
//! another run holds it for a second), the change is made without it. A
//! write also drops what every other store keeps in this session (another
//! token or prefix may reach the same secret), and where its marks cannot
//! be kept (the kernel's quota, say) the cache ends, as `lock` would end
//! it: an old value is never served. A store's old key is taken out before
//! its new one is added, so a new one refused leaves nothing old behind.

use std::fs::File;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce, Tag};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::keyutils::Failure;
use super::session_keyring::{self as keyring, Session};
use super::{Found, Key, Store, StoreError};
use crate::secret::Secret;

/// The cache's key C, kept in two halves.
const KEY_KIND: &str = "cache-key";
const KEY_ID: &str = "1";
/// Each store's sealed values.
const VALUES_KIND: &str = "cache";
/// Every kind `lock` forgets, besides the file store's.
pub(crate) const KINDS: [&str; 2] = [KEY_KIND, VALUES_KIND];
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The layout of the sealed values, first byte of the plaintext.
const FORMAT: u8 = 1;
/// The most a store's values may take, sealed.
const MAX_SEALED: usize = keyring::MAX_PAYLOAD;
/// The most a store's values may take before they are sealed.
const MAX_PLAIN: usize = MAX_SEALED - NONCE_LEN - TAG_LEN;
/// The bytes of one kept value besides its item's names and the value:
/// when it was read (8), matches (4), and the three lengths (2, 2, 4).
const ENTRY_OVERHEAD: usize = 8 + 4 + 2 + 2 + 4;
/// The lock file, in with-secrets' data folder.
const LOCK_FILE: &str = "cache.lock";
/// How long a change waits for another run's: a change takes microseconds.
const LOCK_WAIT: Duration = Duration::from_secs(1);

/// Whether a run uses the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Serve what is kept, keep what is read.
    On,
    /// `--no-cache`: neither; writes still drop what they touch.
    Skip,
}

/// Starts the cache for this session and uid, for `duration` from now; one
/// that is already on is given the new end and keeps its values. Returns
/// when it ends and where it is kept.
pub(crate) fn start(duration: Duration) -> Result<(SystemTime, Session), Failure> {
    let key = match keyring::find::<KEY_LEN>(KEY_KIND, KEY_ID)? {
        Some(kept) => kept.key,
        None => {
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            getrandom::getrandom(key.as_mut()).map_err(|err| {
                Failure::new("getrandom", err.raw_os_error().unwrap_or(libc::EIO))
            })?;
            key
        }
    };
    keyring::keep(KEY_KIND, KEY_ID, key.as_slice(), duration)
}

/// The cache's line in `doctor`: on until when, off, or unusable here;
/// `used` is false under `--no-cache`.
pub(crate) fn report(used: bool) -> String {
    match Open::find() {
        Ok(Some(open)) => format!(
            "on until {}: values read from vault, windows on WSL or an agent are kept \
             for this login session{}; `with-secrets lock` ends it",
            crate::term::when::describe_moment(open.until),
            if used {
                ""
            } else {
                " (not used by this run: --no-cache)"
            }
        ),
        Ok(None) => "off: `with-secrets unlock` keeps the values runs read from vault, windows \
                     on WSL or an agent for this login session"
            .to_owned(),
        Err(failure) => format!("cannot be used here: {}", failure.why()),
    }
}

/// The cache, found on: its key and its end.
struct Open {
    key: Zeroizing<[u8; KEY_LEN]>,
    until: SystemTime,
}

impl Open {
    /// The cache, if it is on: its key is kept and its end has not come.
    /// The kernel ends it by the second; the end kept with it is the same
    /// moment, so the cache is never used a moment past what `unlock` said.
    fn find() -> Result<Option<Self>, Failure> {
        Ok(keyring::find::<KEY_LEN>(KEY_KIND, KEY_ID)?
            .filter(|kept| kept.until > SystemTime::now())
            .map(|kept| Self {
                key: kept.key,
                until: kept.until,
            }))
    }

    /// HMAC-SHA256 under C of `label`, then of `data`.
    fn mac(&self, label: &[u8], data: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.as_slice())
            .expect("HMAC takes any key length");
        mac.update(label);
        mac.update(&[0]);
        mac.update(data);
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// The name of the key that holds the values of the store `identity`.
    fn id(&self, identity: &str) -> String {
        crate::store::escape::hex(&self.mac(b"with-secrets cache id", identity.as_bytes())[..16])
    }

    /// The values kept for the store `id`, none if there are none, or if
    /// they do not open (sealed under an earlier key, damaged, not ours).
    fn load(&self, id: &str) -> Result<Vec<Kept>, Failure> {
        let Some(sealed) = keyring::load(VALUES_KIND, id, MAX_SEALED)? else {
            return Ok(Vec::new());
        };
        Ok(self.open(id, &sealed).unwrap_or_default())
    }

    fn open(&self, id: &str, sealed: &[u8]) -> Option<Vec<Kept>> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let mut plain = Zeroizing::new(body.to_vec());
        let key = self.mac(b"with-secrets cache seal", b"");
        ChaCha20Poly1305::new_from_slice(key.as_slice())
            .expect("a 32-byte key")
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                id.as_bytes(),
                &mut plain,
                Tag::from_slice(tag),
            )
            .ok()?;
        decode(&plain)
    }

    /// `plain` sealed for the store `id`: a random nonce, the ciphertext,
    /// the tag.
    fn seal(&self, id: &str, plain: &[u8]) -> Result<Zeroizing<Vec<u8>>, Failure> {
        let mut sealed = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN));
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut nonce)
            .map_err(|err| Failure::new("getrandom", err.raw_os_error().unwrap_or(libc::EIO)))?;
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plain);
        let key = self.mac(b"with-secrets cache seal", b"");
        let tag = ChaCha20Poly1305::new_from_slice(key.as_slice())
            .expect("a 32-byte key")
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                id.as_bytes(),
                &mut sealed[NONCE_LEN..],
            )
            .expect("far below ChaCha20-Poly1305's length limit");
        sealed.extend_from_slice(&tag);
        Ok(sealed)
    }

    /// Seals `kept` (as many as fit, in the order given) as the values of
    /// the store `id`, until the cache ends; returns how many did not fit.
    fn save(&self, id: &str, kept: &[Kept]) -> Result<usize, Failure> {
        let Ok(left) = self.until.duration_since(SystemTime::now()) else {
            return Ok(0);
        };
        // The old key goes first: were the new one refused (the kernel's
        // quota, which counts both until the old one is collected), no
        // older values would be left to serve.
        keyring::remove(VALUES_KIND, id)?;
        if kept.is_empty() {
            return Ok(0);
        }
        let (plain, fitted) = encode(kept);
        let sealed = self.seal(id, &plain)?;
        keyring::store(VALUES_KIND, id, &sealed, left)?;
        Ok(kept.len() - fitted)
    }
}

/// One item's entry: its value as read, or a mark that it was forgotten.
struct Kept {
    service: String,
    username: String,
    /// `None`: forgotten (see the module doc), so a run asks the store.
    value: Option<Secret>,
    /// How many items matched; 0 for a forgotten one.
    matches: u32,
    /// When the store was asked for it, or was about to change it.
    read: SystemTime,
}

impl Kept {
    fn is(&self, key: Key<'_>) -> bool {
        self.service == key.service && self.username == key.username
    }

    fn is_item_of(&self, other: &Self) -> bool {
        self.service == other.service && self.username == other.username
    }

    fn size(&self) -> usize {
        let value = self.value.as_ref().map_or(0, Secret::len);
        ENTRY_OVERHEAD + self.service.len() + self.username.len() + value
    }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

/// The plaintext of `kept`, as many as fit in `MAX_PLAIN` in the order
/// given, and how many that is. Sized first, so that no copy of a value is
/// left behind by a growing buffer.
fn encode(kept: &[Kept]) -> (Zeroizing<Vec<u8>>, usize) {
    let mut size = 1;
    let fitted = kept
        .iter()
        .take_while(|kept| {
            // Names and values longer than their length fields never come
            // from a store (a value is capped far below 4 GiB), but are
            // left out rather than cut.
            let fits = size + kept.size() <= MAX_PLAIN
                && kept.service.len() <= usize::from(u16::MAX)
                && kept.username.len() <= usize::from(u16::MAX);
            if fits {
                size += kept.size();
            }
            fits
        })
        .count();
    let mut plain = Zeroizing::new(Vec::with_capacity(size));
    plain.push(FORMAT);
    for kept in &kept[..fitted] {
        plain.extend_from_slice(&nanos(kept.read).to_be_bytes());
        // 0 matches is a forgotten item's mark, whose value is empty.
        let matches = if kept.value.is_some() {
            kept.matches.max(1)
        } else {
            0
        };
        plain.extend_from_slice(&matches.to_be_bytes());
        for name in [&kept.service, &kept.username] {
            plain.extend_from_slice(&(name.len() as u16).to_be_bytes());
            plain.extend_from_slice(name.as_bytes());
        }
        let value = kept.value.as_ref().map_or(&[][..], Secret::expose);
        plain.extend_from_slice(&(value.len() as u32).to_be_bytes());
        plain.extend_from_slice(value);
    }
    debug_assert_eq!(plain.len(), size);
    (plain, fitted)
}

/// What `encode` wrote; `None` for anything else.
fn decode(plain: &[u8]) -> Option<Vec<Kept>> {
    let (&format, mut rest) = plain.split_first()?;
    if format != FORMAT {
        return None;
    }
    fn take<'a>(rest: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
        let (head, tail) = (rest.len() >= len).then(|| rest.split_at(len))?;
        *rest = tail;
        Some(head)
    }
    fn number<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
        take(rest, N)?.try_into().ok()
    }
    let mut kept = Vec::new();
    while !rest.is_empty() {
        let read = u64::from_be_bytes(number(&mut rest)?);
        let matches = u32::from_be_bytes(number(&mut rest)?);
        let mut names = [String::new(), String::new()];
        for name in &mut names {
            let len = u16::from_be_bytes(number(&mut rest)?);
            *name = String::from_utf8(take(&mut rest, usize::from(len))?.to_vec()).ok()?;
        }
        let len = u32::from_be_bytes(number(&mut rest)?) as usize;
        let value = take(&mut rest, len)?;
        let value = (matches > 0).then(|| Secret::new(value.to_vec()));
        let [service, username] = names;
        kept.push(Kept {
            service,
            username,
            value,
            matches,
            read: UNIX_EPOCH + Duration::from_nanos(read),
        });
    }
    Some(kept)
}

/// A slow store with the session cache in front of it (see the module
/// doc): what a run finds kept is served from the cache, and only the rest
/// is asked of the store, whose errors stand as they would without it.
pub(crate) struct Cached {
    inner: Box<dyn Store>,
    identity: Zeroizing<String>,
    using: Use,
    /// The cache, once looked for; `Some(None)` when it is off here.
    open: Option<Option<Open>>,
}

impl Cached {
    pub(crate) fn new(inner: Box<dyn Store>, identity: Zeroizing<String>, using: Use) -> Self {
        Self {
            inner,
            identity,
            using,
            open: None,
        }
    }

    /// The cache, looked for on first use; `None` where it is off, or where
    /// the kernel keyring cannot be used (which `-v` tells).
    fn open(&mut self) -> Option<&Open> {
        self.open
            .get_or_insert_with(|| match Open::find() {
                Ok(open) => open,
                Err(failure) => {
                    crate::explain!("session cache not used: {}", failure.why());
                    None
                }
            })
            .as_ref()
    }

    /// Merges `entries` into what the cache holds for this store: of two
    /// entries for one item, the one made last stays (see the module doc).
    fn update(&mut self, entries: Vec<Kept>) -> bool {
        let identity = self.identity.clone();
        let name = self.inner.name();
        let Some(open) = self.open() else {
            return true;
        };
        let id = open.id(&identity);
        let _lock = lock();
        let result = open.load(&id).and_then(|mut kept| {
            merge(&mut kept, entries);
            open.save(&id, &kept)
        });
        match result {
            Ok(0) => true,
            Ok(left_out) => {
                crate::explain!(
                    "session cache: {left_out} value{} not kept: a store's values are kept up to \
                     {MAX_SEALED} bytes",
                    if left_out == 1 { "" } else { "s" }
                );
                true
            }
            Err(failure) if failure.over_quota() => {
                crate::explain!(
                    "session cache: values not kept ({name} is asked for them): your kernel key \
                     quota is used up (/proc/sys/kernel/keys/maxbytes and maxkeys)"
                );
                false
            }
            Err(failure) => {
                crate::explain!(
                    "session cache: values not kept ({name} is asked for them): {}",
                    failure.why()
                );
                false
            }
        }
    }

    /// Marks `keys` of this store forgotten, then runs `write`, a change to
    /// them in the store, then marks them forgotten again, and where the
    /// change worked and the cache is used, keeps `values`. The first mark
    /// keeps a change that fails half-way from leaving an old value kept;
    /// the second, stamped once the store has changed, outdates any old
    /// value a run read meanwhile, whatever became of the change. What
    /// other stores (another token, another helper) keep in this session
    /// is dropped too: they may reach the same values by other names.
    fn forget_then<T>(
        &mut self,
        keys: &[Key<'_>],
        values: impl FnOnce() -> Vec<Kept>,
        write: impl FnOnce(&mut dyn Store) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let marks = |when| keys.iter().map(|key| forgotten(*key, when)).collect();
        let mut marked = self.update(marks(SystemTime::now()));
        self.drop_other_stores();
        let result = write(self.inner.as_mut());
        marked &= self.update(marks(SystemTime::now()));
        if !marked {
            // What is kept may be older than the store now: the cache ends.
            self.end();
            return result;
        }
        if result.is_ok() && self.using == Use::On {
            self.update(values());
        }
        result
    }

    /// Ends the cache in this session, as `lock` does, where a write could
    /// not mark what it changed: an old value must never be served.
    fn end(&mut self) {
        if self.open().is_none() {
            return;
        }
        self.open = Some(None);
        match keyring::forget(KINDS) {
            Ok(_) => crate::warning!(
                "with-secrets: ended the session cache, which could not be updated after this \
                 change; `with-secrets unlock` starts it again"
            ),
            Err(failure) => crate::warning!(
                "with-secrets: warning: the session cache could not be updated after this \
                 change, nor ended ({}); run `with-secrets lock` so that no run is served an \
                 old value",
                failure.why()
            ),
        }
    }

    /// Forgets what every other store keeps in this session.
    fn drop_other_stores(&mut self) {
        let identity = self.identity.clone();
        let Some(open) = self.open() else { return };
        if let Err(failure) = keyring::remove_all_but(VALUES_KIND, &open.id(&identity)) {
            crate::explain!(
                "session cache: other stores' values not dropped: {}",
                failure.why()
            );
        }
    }
}

/// Merges `entries` into `kept`: of two entries for one item, the one made
/// last stays. Then the most recently read come first, so that those are
/// what fits.
fn merge(kept: &mut Vec<Kept>, entries: Vec<Kept>) {
    for new in entries {
        match kept.iter_mut().find(|kept| kept.is_item_of(&new)) {
            Some(old) if old.read > new.read => {}
            Some(old) => *old = new,
            None => kept.push(new),
        }
    }
    kept.sort_by_key(|kept| std::cmp::Reverse(kept.read));
}

/// The lock that keeps two runs' changes to the cache apart, held until
/// the file is dropped: a file beside the file store's. `None` where it
/// cannot be had; the change is then made without it.
fn lock() -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = crate::store::file::FileStore::default_dir()?;
    crate::store::file::create_private_dir(&dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(LOCK_FILE))
        .ok()?;
    match crate::store::file::wait_for_lock(&file, LOCK_WAIT) {
        Ok(true) => Some(file),
        _ => {
            crate::explain!("session cache: changed without its lock, which another run holds");
            None
        }
    }
}

impl Store for Cached {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        if self.using == Use::Skip {
            return self.inner.get_all(keys);
        }
        let identity = self.identity.clone();
        let Some(open) = self.open() else {
            return self.inner.get_all(keys);
        };
        let kept = match open.load(&open.id(&identity)) {
            Ok(kept) => kept,
            Err(failure) => {
                crate::explain!("session cache not used: {}", failure.why());
                Vec::new()
            }
        };
        let mut found: Vec<Option<Found>> = keys
            .iter()
            .map(|key| {
                let kept = kept.iter().find(|kept| kept.is(*key))?;
                Some(Found {
                    secret: kept.value.clone()?,
                    matches: kept.matches as usize,
                    cached: Some(kept.read),
                })
            })
            .collect();
        let asked: Vec<usize> = (0..keys.len()).filter(|&i| found[i].is_none()).collect();
        if asked.is_empty() {
            crate::explain!(
                "session cache: all {} value{} kept, so {} was not asked",
                keys.len(),
                if keys.len() == 1 { "" } else { "s" },
                self.inner.name()
            );
            return Ok(found);
        }
        if asked.len() < keys.len() {
            crate::explain!(
                "session cache: {} of {} values kept; asking {} for the rest",
                keys.len() - asked.len(),
                keys.len(),
                self.inner.name()
            );
        }
        let read = SystemTime::now();
        let asked_keys: Vec<Key<'_>> = asked.iter().map(|&i| keys[i]).collect();
        let answers = self.inner.get_all(&asked_keys)?;
        let mut put = Vec::new();
        for (&i, answer) in asked.iter().zip(answers) {
            if let Some(answer) = &answer {
                put.push(Kept {
                    service: keys[i].service.to_owned(),
                    username: keys[i].username.to_owned(),
                    value: Some(answer.secret.clone()),
                    matches: u32::try_from(answer.matches).unwrap_or(u32::MAX),
                    read,
                });
            }
            found[i] = answer;
        }
        if !put.is_empty() {
            self.update(put);
        }
        Ok(found)
    }

    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        let values = || vec![written(key, value)];
        self.forget_then(&[key], values, |store| store.set(key, label, value))
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        self.forget_then(&[key], Vec::new, |store| store.delete(key))
    }

    fn create_all(&mut self, items: &[(Key<'_>, String, &Secret)]) -> Result<(), StoreError> {
        let keys: Vec<Key<'_>> = items.iter().map(|(key, _, _)| *key).collect();
        let values = || {
            items
                .iter()
                .map(|(key, _, value)| written(*key, value))
                .collect()
        };
        self.forget_then(&keys, values, |store| store.create_all(items))
    }

    fn holds_values(&self) -> bool {
        self.inner.holds_values()
    }

    fn fallback_reason(&self) -> Option<&StoreError> {
        self.inner.fallback_reason()
    }

    fn passed_over(&self) -> &[(&'static str, StoreError)] {
        self.inner.passed_over()
    }
}

/// A value just written to the store, to keep.
fn written(key: Key<'_>, value: &Secret) -> Kept {
    Kept {
        service: key.service.to_owned(),
        username: key.username.to_owned(),
        value: Some(value.clone()),
        matches: 1,
        read: SystemTime::now(),
    }
}

/// The mark that `key` was forgotten at `when`.
fn forgotten(key: Key<'_>, when: SystemTime) -> Kept {
    Kept {
        service: key.service.to_owned(),
        username: key.username.to_owned(),
        value: None,
        matches: 0,
        read: when,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(service: &str, username: &str, value: &[u8], read: u64) -> Kept {
        Kept {
            service: service.to_owned(),
            username: username.to_owned(),
            value: Some(Secret::new(value.to_vec())),
            matches: 1,
            read: UNIX_EPOCH + Duration::from_nanos(read),
        }
    }

    fn open_with(byte: u8) -> Open {
        Open {
            key: Zeroizing::new([byte; KEY_LEN]),
            until: SystemTime::now() + Duration::from_secs(60),
        }
    }

    #[allow(clippy::type_complexity, reason = "a test's summary")]
    fn summary(kept: &[Kept]) -> Vec<(String, String, Option<Vec<u8>>, u32, SystemTime)> {
        kept.iter()
            .map(|k| {
                let value = k.value.as_ref().map(|v| v.expose().to_vec());
                (
                    k.service.clone(),
                    k.username.clone(),
                    value,
                    k.matches,
                    k.read,
                )
            })
            .collect()
    }

    #[test]
    fn what_is_encoded_decodes_as_it_was_and_a_cut_copy_does_not() {
        let values = [
            kept("acme", "ci", b"first \n value", 1_700_000_000_123_456_789),
            kept("", "", b"", 0),
            kept("a/b", "\u{e9}", &[0, 255, 10, 13], u64::MAX / 2),
            forgotten(
                Key {
                    service: "acme",
                    username: "gone",
                },
                UNIX_EPOCH + Duration::from_nanos(42),
            ),
        ];
        let (plain, fitted) = encode(&values);
        assert_eq!(fitted, 4);
        assert_eq!(summary(&decode(&plain).expect("decodes")), summary(&values));
        // Cut inside the last value: not taken for fewer values.
        assert!(decode(&plain[..plain.len() - 1]).is_none());
        let mut other = plain.to_vec();
        other[0] = FORMAT + 1;
        assert!(decode(&other).is_none(), "another format");
        assert_eq!(decode(&[FORMAT]).map(|kept| kept.len()), Some(0));
    }

    #[test]
    fn a_value_read_before_a_write_forgot_it_is_never_put_back() {
        let key = Key {
            service: "acme",
            username: "ci",
        };
        let at = |nanos| UNIX_EPOCH + Duration::from_nanos(nanos);
        let mut entries = vec![
            kept("acme", "ci", b"old", 10),
            kept("acme", "other", b"o", 11),
        ];
        // A `set` forgets at 20; a run that asked the store at 15 (before
        // the write) then keeps what it read.
        merge(&mut entries, vec![forgotten(key, at(20))]);
        merge(&mut entries, vec![kept("acme", "ci", b"old", 15)]);
        let ci = entries.iter().find(|k| k.is(key)).unwrap();
        assert!(ci.value.is_none(), "the old value came back");
        // The `set`'s own value, stamped after its write, wins over both.
        merge(&mut entries, vec![kept("acme", "ci", b"new", 30)]);
        let ci = entries.iter().find(|k| k.is(key)).unwrap();
        assert_eq!(ci.value.as_ref().unwrap().expose(), b"new");
        // A run that asked the store after the write, and so read the new
        // value, may keep it; one that asked before may not.
        merge(&mut entries, vec![kept("acme", "ci", b"older", 25)]);
        let ci = entries.iter().find(|k| k.is(key)).unwrap();
        assert_eq!(ci.value.as_ref().unwrap().expose(), b"new");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].username, "ci", "the most recent first");
        // A `delete`: a mark before the store changes (40), a run that
        // asked between (45), a mark once it has (50): forgotten, whichever
        // of the three is merged last.
        for order in [[0, 1, 2], [0, 2, 1], [1, 0, 2], [2, 1, 0]] {
            let mut entries = vec![kept("acme", "ci", b"new", 30)];
            let change = |index| match index {
                0 => forgotten(key, at(40)),
                1 => kept("acme", "ci", b"new", 45),
                _ => forgotten(key, at(50)),
            };
            for index in order {
                merge(&mut entries, vec![change(index)]);
            }
            let ci = entries.iter().find(|k| k.is(key)).unwrap();
            assert!(ci.value.is_none(), "{order:?}: the deleted value came back");
        }
    }

    #[test]
    fn values_past_the_size_of_one_key_are_left_out_in_order() {
        let big = vec![b'x'; 10_000];
        let values: Vec<Kept> = (0..5)
            .map(|i| kept("s", &format!("u{i}"), &big, i))
            .collect();
        let (plain, fitted) = encode(&values);
        assert_eq!(fitted, 3, "three of 10,000 bytes fit in {MAX_PLAIN}");
        assert!(plain.len() <= MAX_PLAIN);
        let names: Vec<String> = decode(&plain)
            .unwrap()
            .into_iter()
            .map(|k| k.username)
            .collect();
        assert_eq!(names, ["u0", "u1", "u2"]);
    }

    #[test]
    fn sealed_values_open_only_with_their_key_and_for_their_store() {
        let open = open_with(7);
        let (plain, _) = encode(&[kept("acme", "ci", b"sealed value", 5)]);
        let id = open.id("vault\0https://a\0");
        let sealed = open.seal(&id, &plain).unwrap();
        assert!(
            !sealed.windows(12).any(|window| window == b"sealed value"),
            "the value is not in the sealed bytes"
        );
        assert_eq!(
            summary(&open.open(&id, &sealed).unwrap()),
            summary(&decode(&plain).unwrap())
        );
        // Another store's name, another key, a changed byte: nothing.
        let other_id = open.id("vault\0https://b\0");
        assert_ne!(id, other_id);
        assert!(open.open(&other_id, &sealed).is_none());
        assert!(open_with(8).open(&id, &sealed).is_none());
        for at in [0, NONCE_LEN, sealed.len() - 1] {
            let mut changed = sealed.to_vec();
            changed[at] ^= 1;
            assert!(open.open(&id, &changed).is_none(), "byte {at} changed");
        }
        // The ids say nothing of the identity, and differ by key.
        assert_eq!(id.len(), 32);
        assert_ne!(id, open_with(8).id("vault\0https://a\0"));
    }

    #[test]
    fn encoding_sealing_and_opening_leave_no_unwiped_copy_of_a_value() {
        const CANARY: &[u8] = b"cache-canary-5f0c2e";
        let open = open_with(9);
        let found = crate::secret::watch::unwiped_copies(CANARY, || {
            let values = vec![kept("acme", "ci", CANARY, 1), kept("acme", "cd", CANARY, 2)];
            let (plain, _) = encode(&values);
            let sealed = open.seal("id", &plain).unwrap();
            let opened = open.open("id", &sealed).unwrap();
            assert_eq!(opened.len(), 2);
        });
        assert_eq!(found, 0, "unwiped copies of the value were freed");
    }
}
