//! The freedesktop Secret Service (gnome-keyring, KeePassXC, oo7, KWallet), spoken
//! directly over one pipelined D-Bus connection.
//!
//! Why not a generic client: a run must cost about one exec plus one keyring
//! session, whatever the number of secrets. Clients that look entries up one at
//! a time pay two round trips per secret, one after the other. Here every call
//! of a batch is written before any reply is read: `Hello`, `OpenSession` and
//! one `SearchItems` per entry leave in a single write, and then one
//! `GetSecrets` fetches every item found. Every wait has a deadline, so a hung
//! daemon is an error, never a hang.
//!
//! Items are written with exactly the attributes Python's `keyring` uses,
//! `service`, `username` and `application = "Python keyring library"`:
//! `keyring set` replaces an existing item only when all three match, so any
//! other choice would leave a duplicate beside ours after the user's next
//! `keyring set`. Lookups match on `service` and `username` only, as Python's
//! do, so items written by any tool are found.
//!
//! The parts, one job each, as oo7 splits its client by D-Bus interface:
//! this file is the store itself (lookups, writes, deletes); `connection`
//! talks to the bus (deadlines, pipelining); `session` carries values over
//! it (with `dh`, the key exchange); `search` finds items and unlocks what
//! hides them; `prompt` runs the service's prompts; `daemon` names the
//! program behind the service for advice; `error` holds its errors and the
//! advice for each daemon; `diagnose` finds, and `doctor` words, its
//! section of `with-secrets doctor`.

use std::collections::HashMap;
use std::time::Duration;

use dbus::Message;
use dbus::arg::{PropMap, RefArg, Variant};
use dbus::channel::Channel;

use self::connection::method;
use self::error::is_locked;
pub(crate) use self::error::{Daemon, Error as ServiceError, for_daemon};
use self::prompt::refused;
use self::reply::{check, read};
use self::session::{Cipher, Session};
use super::{Common, Found, Key, Person, Store, StoreError};
use crate::secret::Secret;

mod connection;
mod daemon;
mod dh;
mod diagnose;
mod doctor;
mod error;
mod prompt;
mod reply;
mod search;
mod session;

use diagnose::diagnose;
pub(crate) use doctor::report;
pub(crate) use session::PLAIN_SESSION_VARIABLE;

const BUS: &str = "org.freedesktop.DBus";
const SERVICE: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE_IFACE: &str = "org.freedesktop.Secret.Service";
const ITEM_IFACE: &str = "org.freedesktop.Secret.Item";
const COLLECTION_IFACE: &str = "org.freedesktop.Secret.Collection";
const DEFAULT_COLLECTION: &str = "/org/freedesktop/secrets/aliases/default";
const NO_PROMPT: &str = "/";
const PROMPT_IFACE: &str = "org.freedesktop.Secret.Prompt";
const PROPERTIES_IFACE: &str = "org.freedesktop.DBus.Properties";

/// The `application` attribute that Python's `keyring` writes and matches on.
pub(crate) const APPLICATION: &str = "Python keyring library";
/// The content type Python's `keyring` (via secretstorage) writes.
const CONTENT_TYPE: &str = "text/plain";

type ObjectPath = dbus::Path<'static>;
/// The Secret Service `Secret` struct: (session, parameters, value, content type).
type WireSecret = (ObjectPath, Vec<u8>, Vec<u8>, String);

/// A connection to the Secret Service with an encrypted session.
pub(crate) struct SecretService {
    channel: Channel,
    timeout: Duration,
    session: Session,
    /// Replies read but not yet taken, by serial.
    early: HashMap<u32, Message>,
    /// Prompt `Completed` signals that arrived while we waited for replies.
    completed: Vec<Message>,
    /// The unique bus name (":1.42") of the service, from its replies: the
    /// only sender whose `Completed` signals count.
    owner: Option<String>,
    /// How many times we waited for the service: the cost a run pays in
    /// latency, which must not grow with the number of secrets.
    round_trips: u32,
    /// Who may answer a prompt, and is told what we wait for.
    person: &'static dyn Person,
}

/// Debug builds only: `WITH_SECRETS_TRACE_ROUND_TRIPS=1` reports how many
/// times a run waited for the service, for the test that keeps that number
/// from growing with the number of secrets.
#[cfg(debug_assertions)]
impl Drop for SecretService {
    fn drop(&mut self) {
        if std::env::var_os("WITH_SECRETS_TRACE_ROUND_TRIPS").is_some() {
            eprintln!("with-secrets: trace: {} round trips", self.round_trips);
        }
    }
}

impl Store for SecretService {
    fn name(&self) -> &'static str {
        "secret-service"
    }

    fn get_all(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        let result = self.fetch(keys);
        self.named(result)
    }

    fn set(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        self.storable(label, value)?;
        let result = self.store(key, label, value);
        self.named(result)
    }

    fn delete(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        let result = self.remove(key);
        self.named(result)
    }

    fn create_all(&mut self, items: &[(Key<'_>, String, &Secret)]) -> Result<(), StoreError> {
        for (_, label, value) in items {
            self.storable(label, value)?;
        }
        let result = self.create_many(items);
        self.named(result)
    }
}

impl SecretService {
    /// Refuses a value that is not UTF-8 where the daemon would change it:
    /// KeePassXC keeps a password as text and stores U+FFFD for each byte
    /// that is not UTF-8, then says it succeeded. Asked only for such a
    /// value, so a UTF-8 one costs no call.
    fn storable(&mut self, label: &str, value: &Secret) -> Result<(), StoreError> {
        if std::str::from_utf8(value.expose()).is_err() && self.daemon() == Daemon::KeePassXc {
            return Err(StoreError::from(Common::Unstorable {
                what: label.to_owned(),
                reason: "the value is not UTF-8 text, and KeePassXC keeps values as text \
                         (it would replace the bytes that are not)"
                    .into(),
            }));
        }
        Ok(())
    }

    fn fetch(&mut self, keys: &[Key<'_>]) -> Result<Vec<Option<Found>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let groups = self.search(keys)?;
        let newest = self.newest(&groups)?;
        let chosen: Vec<ObjectPath> = groups
            .iter()
            .zip(&newest)
            .filter_map(|(paths, &index)| paths.get(index).cloned())
            .collect();
        let mut secrets: HashMap<ObjectPath, WireSecret> = if chosen.is_empty() {
            HashMap::new()
        } else {
            let session = self.session()?.0.clone();
            let mut reply = self.call(
                method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "GetSecrets").append2(chosen, session),
            )?;
            let (secrets,): (HashMap<ObjectPath, WireSecret>,) = read(&mut reply)?;
            secrets
        };
        let (_, cipher) = self.session()?;
        found_values(&groups, newest, &mut secrets, cipher)
    }

    fn store(&mut self, key: Key<'_>, label: &str, value: &Secret) -> Result<(), StoreError> {
        let secret = self.wire_secret(value)?;
        let mut unlocked = false;
        loop {
            let found = self.search(&[key])?.remove(0);
            if !found.is_empty() {
                return self.update(&found, secret);
            }
            match self.create(key, label, secret.clone()) {
                // The collection was locked after all (its `Locked` property
                // said otherwise, or it was locked since): unlock it, which
                // may prompt, and start over, as libsecret does. Searching
                // again, as the item may have been hidden while locked.
                Err(err) if is_locked(&err) && !unlocked => {
                    unlocked = true;
                    let collection = self.default_collection()?;
                    self.unlock(vec![collection])?;
                }
                other => return other,
            }
        }
    }

    /// Every item created at once: one `CreateItem` each, all sent before
    /// any reply is read, so one round trip for them all. A locked
    /// collection sends them through `store` one by one, which unlocks it.
    fn create_many(&mut self, items: &[(Key<'_>, String, &Secret)]) -> Result<(), StoreError> {
        let mut messages = Vec::with_capacity(items.len());
        for (key, label, value) in items {
            let secret = self.wire_secret(value)?;
            messages.push(create_item(*key, label, secret));
        }
        let mut locked = false;
        for mut reply in self.call_all(messages)? {
            match read::<(ObjectPath, ObjectPath)>(&mut reply) {
                Ok((_item, prompt)) => {
                    self.complete(&prompt, refused("storing the item"))?;
                }
                Err(err) if is_locked(&err) => locked = true,
                Err(err) => return Err(err),
            }
        }
        if locked {
            for (key, label, value) in items {
                self.store(*key, label, value)?;
            }
        }
        Ok(())
    }

    fn create(&mut self, key: Key<'_>, label: &str, secret: WireSecret) -> Result<(), StoreError> {
        let mut reply = self.call(create_item(key, label, secret))?;
        let (_item, prompt): (ObjectPath, ObjectPath) = read(&mut reply)?;
        self.complete(&prompt, refused("storing the item"))
            .map(drop)
    }

    /// Updates the newest of `found` in place, so an item Python or another
    /// tool created keeps its label, and removes any duplicates beside it.
    fn update(&mut self, found: &[ObjectPath], secret: WireSecret) -> Result<(), StoreError> {
        let keep = self.newest(&[found.to_vec()])?[0];
        let mut messages =
            vec![method(SERVICE, &found[keep], ITEM_IFACE, "SetSecret").append1(secret)];
        for (index, path) in found.iter().enumerate() {
            if index != keep {
                messages.push(method(SERVICE, path, ITEM_IFACE, "Delete"));
            }
        }
        let mut replies = self.call_all(messages)?.into_iter();
        let mut first = replies.next().expect("SetSecret was sent");
        check(&mut first)?;
        for mut reply in replies {
            let (prompt,): (ObjectPath,) = read(&mut reply)?;
            self.complete(&prompt, refused("removing a duplicate item"))?;
        }
        Ok(())
    }

    fn remove(&mut self, key: Key<'_>) -> Result<usize, StoreError> {
        let found = self.search(&[key])?.remove(0);
        let messages = found
            .iter()
            .map(|path| method(SERVICE, path, ITEM_IFACE, "Delete"))
            .collect();
        for mut reply in self.call_all(messages)? {
            let (prompt,): (ObjectPath,) = read(&mut reply)?;
            self.complete(&prompt, refused("deleting the item"))?;
        }
        Ok(found.len())
    }

    /// For each group of paths, the index of the most recently modified one.
    /// Only groups with more than one path cost a (pipelined) call.
    fn newest(&mut self, groups: &[Vec<ObjectPath>]) -> Result<Vec<usize>, StoreError> {
        let mut asks = Vec::new();
        let mut messages = Vec::new();
        for (group, paths) in groups.iter().enumerate() {
            if paths.len() > 1 {
                for (index, path) in paths.iter().enumerate() {
                    asks.push((group, index));
                    messages.push(
                        method(SERVICE, path, "org.freedesktop.DBus.Properties", "Get")
                            .append2(ITEM_IFACE, "Modified"),
                    );
                }
            }
        }
        let mut modified: Vec<Vec<u64>> = groups.iter().map(|paths| vec![0; paths.len()]).collect();
        for ((group, index), mut reply) in asks.into_iter().zip(self.call_all(messages)?) {
            let (seconds,): (Variant<u64>,) = read(&mut reply)?;
            modified[group][index] = seconds.0;
        }
        // Modified has whole seconds, so ties are common. They go to the
        // later path: gnome-keyring and KeePassXC number items upward, and
        // (length, text) orders ".../9" before ".../10".
        Ok(groups
            .iter()
            .zip(modified)
            .map(|(paths, modified)| newest_index(paths, &modified))
            .collect())
    }
}

/// The index of the newest of `paths`, given each one's `Modified` time.
fn newest_index(paths: &[ObjectPath], modified: &[u64]) -> usize {
    (0..paths.len())
        .max_by_key(|&i| (modified[i], paths[i].len(), &*paths[i]))
        .unwrap_or(0)
}

/// Each key's value from a `GetSecrets` reply: `None` where its group of
/// paths is empty, else the value of the path `newest` chose, decrypted.
fn found_values(
    groups: &[Vec<ObjectPath>],
    newest: Vec<usize>,
    secrets: &mut HashMap<ObjectPath, WireSecret>,
    cipher: &Cipher,
) -> Result<Vec<Option<Found>>, StoreError> {
    groups
        .iter()
        .zip(newest)
        .map(|(paths, index)| {
            let Some(path) = paths.get(index) else {
                return Ok(None);
            };
            // Found, yet not fetched: gnome-keyring leaves locked items
            // out of GetSecrets without an error, so the item was locked
            // again since the search, or an unlock did not reach it. Not
            // "missing", or a stale variable would stand in for it.
            let Some((_, parameters, value, _)) = secrets.remove(path) else {
                return Err(StoreError::from(ServiceError::Locked {
                    daemon: Daemon::Unknown,
                }));
            };
            let secret = cipher.decrypt(&parameters, value)?;
            Ok(Some(Found {
                secret,
                matches: paths.len(),
                cached: None,
            }))
        })
        .collect()
}

/// A `CreateItem` call for `key`, laid out as Python's keyring lays items
/// out. replace = true: two concurrent `set`s that both found nothing leave
/// one item, since the service replaces an identical one.
fn create_item(key: Key<'_>, label: &str, secret: WireSecret) -> Message {
    let attributes = HashMap::from([
        ("service".to_owned(), key.service.to_owned()),
        ("username".to_owned(), key.username.to_owned()),
        ("application".to_owned(), APPLICATION.to_owned()),
    ]);
    let mut properties = PropMap::new();
    properties.insert(
        format!("{ITEM_IFACE}.Label"),
        Variant(Box::new(label.to_owned()) as Box<dyn RefArg>),
    );
    properties.insert(
        format!("{ITEM_IFACE}.Attributes"),
        Variant(Box::new(attributes) as Box<dyn RefArg>),
    );
    method(SERVICE, DEFAULT_COLLECTION, COLLECTION_IFACE, "CreateItem")
        .append3(properties, secret, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> ObjectPath {
        ObjectPath::new(text.to_owned()).unwrap()
    }

    fn wire(value: &str) -> WireSecret {
        let session = path("/org/freedesktop/secrets/session/1");
        (
            session,
            Vec::new(),
            value.as_bytes().to_vec(),
            CONTENT_TYPE.to_owned(),
        )
    }

    #[test]
    fn the_most_recently_modified_match_wins_and_ties_go_to_the_later_item() {
        let paths = [path("/c/login/9"), path("/c/login/10"), path("/c/login/2")];
        assert_eq!(newest_index(&paths, &[5, 5, 5]), 1, "/10 is later than /9");
        assert_eq!(newest_index(&paths, &[7, 5, 5]), 0);
        assert_eq!(newest_index(&paths, &[5, 5, 6]), 2);
        assert_eq!(newest_index(&paths[..1], &[0]), 0);
        assert_eq!(newest_index(&[], &[]), 0);
    }

    #[test]
    fn a_get_secrets_reply_gives_each_key_its_chosen_value() {
        let (one, two, three) = (path("/c/i/1"), path("/c/i/2"), path("/c/i/3"));
        let mut call = method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "GetSecrets");
        call.set_serial(7);
        let sent = HashMap::from([(one.clone(), wire("first")), (three.clone(), wire("third"))]);
        let mut reply = call.method_return().append1(sent);
        let (mut secrets,): (HashMap<ObjectPath, WireSecret>,) = read(&mut reply).unwrap();
        let groups = vec![Vec::new(), vec![one], vec![two, three]];
        let found = found_values(&groups, vec![0, 0, 1], &mut secrets, &Cipher::Plain).unwrap();
        let found: Vec<_> = found
            .iter()
            .map(|slot| {
                slot.as_ref()
                    .map(|f| (f.secret.expose().to_vec(), f.matches))
            })
            .collect();
        assert_eq!(
            found,
            [
                None,
                Some((b"first".to_vec(), 1)),
                Some((b"third".to_vec(), 2))
            ]
        );
    }

    #[test]
    fn an_item_found_but_left_out_of_get_secrets_is_locked_not_missing() {
        let groups = vec![vec![path("/c/i/1")]];
        let mut secrets = HashMap::new();
        let result = found_values(&groups, vec![0], &mut secrets, &Cipher::Plain);
        assert!(
            matches!(
                result.as_ref().map_err(StoreError::fault::<ServiceError>),
                Err(Some(ServiceError::Locked { .. }))
            ),
            "{result:?}"
        );
    }

    /// The string pairs of an `a{ss}` read back as a `RefArg`.
    fn string_pairs(dict: &dyn RefArg) -> HashMap<String, String> {
        let items: Vec<String> = dict
            .as_iter()
            .unwrap()
            .map(|item| item.as_str().unwrap().to_owned())
            .collect();
        items
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect()
    }

    #[test]
    fn items_are_created_as_pythons_keyring_creates_them() {
        let key = Key {
            service: "api",
            username: "me",
        };
        let message = create_item(key, "with-secrets: API_TOKEN", wire("value"));
        assert_eq!(&*message.path().unwrap(), DEFAULT_COLLECTION);
        assert_eq!(&*message.member().unwrap(), "CreateItem");
        let (properties, secret, replace) = message.read3::<PropMap, WireSecret, bool>().unwrap();
        let attributes = string_pairs(&*properties["org.freedesktop.Secret.Item.Attributes"].0);
        assert_eq!(
            attributes,
            HashMap::from([
                ("service".to_owned(), "api".to_owned()),
                ("username".to_owned(), "me".to_owned()),
                (
                    "application".to_owned(),
                    "Python keyring library".to_owned()
                ),
            ])
        );
        let label = properties["org.freedesktop.Secret.Item.Label"].0.as_str();
        assert_eq!(label, Some("with-secrets: API_TOKEN"));
        assert_eq!(secret, wire("value"));
        assert!(replace, "an identical item is replaced, never duplicated");
    }
}
