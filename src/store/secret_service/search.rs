//! Finding items by key, and unlocking the items and collections that hide them.

use std::collections::HashMap;

use dbus::Message;
use dbus::arg::Variant;

use super::ServiceError;
use super::connection::method;
use super::reply::read;
use super::{
    COLLECTION_IFACE, Daemon, Key, NO_PROMPT, ObjectPath, PROPERTIES_IFACE, SERVICE, SERVICE_IFACE,
    SERVICE_PATH, SecretService, StoreError,
};

impl SecretService {
    /// Every item path for each key: one `SearchItems` per key, pipelined.
    ///
    /// Locked items are unlocked. Some daemons (KeePassXC with "unlock before
    /// search" off, oo7-daemon) return nothing at all for a locked
    /// collection, rather than its items as locked ones, so nothing found
    /// means nothing only when every collection is unlocked, not just the
    /// default one: KeePassXC shows each open database as a collection of
    /// its own. The service's `Collections` property travels in the same
    /// write as the searches, so a run that finds everything pays nothing
    /// for it. Only when some key found nothing is each collection asked
    /// whether it is locked (one more round trip, all pipelined); a
    /// collection that cannot say counts as locked. Locked ones are
    /// unlocked (which may prompt) and the empty keys searched again; a
    /// collection that stays locked is a `Locked` error, never "missing".
    pub(super) fn search(&mut self, keys: &[Key<'_>]) -> Result<Vec<Vec<ObjectPath>>, StoreError> {
        let collections = method(SERVICE, SERVICE_PATH, PROPERTIES_IFACE, "Get")
            .append2(SERVICE_IFACE, "Collections");
        let (mut results, locked_items, mut replies) = self.search_once(keys, vec![collections])?;
        let empty: Vec<usize> = (0..keys.len())
            .filter(|&index| results[index].is_empty())
            .collect();
        let locked_collections = if empty.is_empty() {
            Vec::new()
        } else {
            let (collections,): (Variant<Vec<ObjectPath>>,) = read(&mut replies[0])?;
            self.locked_among(collections.0)?
        };
        if locked_items.is_empty() && locked_collections.is_empty() {
            return Ok(results);
        }
        let mut objects = locked_items;
        objects.extend(locked_collections.iter().cloned());
        self.unlock(objects)?;
        if !locked_collections.is_empty() {
            // Searched again with each unlocked collection's `Locked` in the
            // same write: one locked again in between still hides its items.
            let again: Vec<Key<'_>> = empty.iter().map(|&index| keys[index]).collect();
            let asks = locked_collections.iter().map(locked_property).collect();
            let (found, _, mut replies) = self.search_once(&again, asks)?;
            for (&index, paths) in empty.iter().zip(found) {
                results[index] = paths;
            }
            let still_locked = replies.iter_mut().any(|reply| !is_unlocked(reply));
            if still_locked && empty.iter().any(|&index| results[index].is_empty()) {
                return Err(StoreError::from(ServiceError::Locked {
                    daemon: Daemon::Unknown,
                }));
            }
        }
        Ok(results)
    }

    /// One pipelined batch of searches, plus the calls in `also`. Returns
    /// every key's paths (locked ones included), the locked paths, and the
    /// replies to `also`, unchecked.
    #[allow(
        clippy::type_complexity,
        reason = "three plain vectors, named in the doc comment"
    )]
    fn search_once(
        &mut self,
        keys: &[Key<'_>],
        also: Vec<Message>,
    ) -> Result<(Vec<Vec<ObjectPath>>, Vec<ObjectPath>, Vec<Message>), StoreError> {
        let mut messages: Vec<Message> = keys
            .iter()
            .map(|key| {
                let attributes =
                    HashMap::from([("service", key.service), ("username", key.username)]);
                method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "SearchItems").append1(attributes)
            })
            .collect();
        messages.extend(also);
        let mut replies = self.call_all(messages)?;
        let others = replies.split_off(keys.len());
        let mut results = Vec::with_capacity(keys.len());
        let mut locked = Vec::new();
        for mut reply in replies {
            let (mut unlocked, still_locked): (Vec<ObjectPath>, Vec<ObjectPath>) =
                read(&mut reply)?;
            unlocked.extend(still_locked.iter().cloned());
            locked.extend(still_locked);
            results.push(unlocked);
        }
        Ok((results, locked, others))
    }

    /// Which of `collections` are locked, or cannot say: their `Locked`
    /// properties, pipelined. A failed `Get` is not "unlocked", as that
    /// would let the environment stand in for what may be hidden there.
    fn locked_among(
        &mut self,
        collections: Vec<ObjectPath>,
    ) -> Result<Vec<ObjectPath>, StoreError> {
        let asks = collections.iter().map(locked_property).collect();
        let replies = self.call_all(asks)?;
        Ok(collections
            .into_iter()
            .zip(replies)
            .filter_map(|(collection, mut reply)| (!is_unlocked(&mut reply)).then_some(collection))
            .collect())
    }

    /// The path of the default collection, which `Unlock` needs: not every
    /// service resolves the alias path there.
    pub(super) fn default_collection(&mut self) -> Result<ObjectPath, StoreError> {
        let mut reply = self
            .call(method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "ReadAlias").append1("default"))?;
        let (path,): (ObjectPath,) = read(&mut reply)?;
        if &*path == NO_PROMPT {
            return Err(StoreError::from(ServiceError::NoDefaultCollection {
                daemon: Daemon::Unknown,
            }));
        }
        Ok(path)
    }

    /// Unlocks `objects`, through the service's prompt if it returns one.
    ///
    /// What counts is what the service says it unlocked: the list in its
    /// reply, plus the list in its prompt's `Completed` signal. A prompt
    /// that completes without being dismissed may still leave something
    /// locked (a person unlocked one database of two), and gnome-keyring
    /// then silently leaves locked items out of `GetSecrets`: so anything
    /// asked for and not in those lists is a `Locked` error. An item counts
    /// as unlocked when its collection is in them, as older KeePassXC
    /// answers with the collection for an item.
    pub(super) fn unlock(&mut self, objects: Vec<ObjectPath>) -> Result<(), StoreError> {
        let ask = method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "Unlock").append1(objects.clone());
        let mut reply = self.call(ask)?;
        let (mut unlocked, prompt): (Vec<ObjectPath>, ObjectPath) = read(&mut reply)?;
        // An unlock prompt is a dialog that asks for a password, not a
        // confirmation that a setting could turn off: say so if it times out.
        let completed = self
            .complete(
                &prompt,
                StoreError::from(ServiceError::UnlockDismissed {
                    daemon: Daemon::Unknown,
                }),
            )
            .map_err(|err| match err.fault::<ServiceError>() {
                Some(ServiceError::PromptTimedOut { daemon, after }) => {
                    StoreError::from(ServiceError::UnlockTimedOut {
                        daemon: daemon.clone(),
                        after: *after,
                    })
                }
                _ => err,
            })?;
        unlocked.extend(completed);
        if objects.iter().all(|object| covered(&unlocked, object)) {
            Ok(())
        } else {
            Err(StoreError::from(ServiceError::Locked {
                daemon: Daemon::Unknown,
            }))
        }
    }
}

/// Whether `object` is in `unlocked`, or is an item of a collection in it.
fn covered(unlocked: &[ObjectPath], object: &ObjectPath) -> bool {
    unlocked.iter().any(|done| {
        **done == **object
            || object
                .strip_prefix(&**done)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// A collection's `Locked` property, to ask for.
fn locked_property(collection: &ObjectPath) -> Message {
    method(SERVICE, collection, PROPERTIES_IFACE, "Get").append2(COLLECTION_IFACE, "Locked")
}

/// Whether a `Locked` reply says unlocked. An error says nothing, and
/// nothing is not "unlocked".
fn is_unlocked(reply: &mut Message) -> bool {
    read::<(Variant<bool>,)>(reply).is_ok_and(|(locked,)| !locked.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> ObjectPath {
        ObjectPath::new(text.to_owned()).unwrap()
    }

    #[test]
    fn an_item_is_unlocked_with_its_collection_but_not_with_a_namesake() {
        let unlocked = [path("/org/freedesktop/secrets/collection/login")];
        let item = path("/org/freedesktop/secrets/collection/login/7");
        let other = path("/org/freedesktop/secrets/collection/login2/7");
        assert!(covered(&unlocked, &unlocked[0]));
        assert!(covered(&unlocked, &item));
        assert!(!covered(&unlocked, &other), "login2 is not inside login");
        assert!(!covered(&[], &item));
    }

    #[test]
    fn only_a_locked_property_of_false_means_unlocked() {
        let collection = path("/org/freedesktop/secrets/collection/login");
        let mut ask = locked_property(&collection);
        ask.set_serial(7);
        assert_eq!(&*ask.path().unwrap(), &*collection);
        assert_eq!(
            ask.read2::<&str, &str>().unwrap(),
            (COLLECTION_IFACE, "Locked")
        );
        assert!(is_unlocked(
            &mut ask.method_return().append1(Variant(false))
        ));
        assert!(!is_unlocked(
            &mut ask.method_return().append1(Variant(true))
        ));
        let error = ask.error(
            &"org.freedesktop.DBus.Error.UnknownObject".into(),
            c"no such collection",
        );
        assert!(!is_unlocked(&mut { error }), "an error is not unlocked");
    }
}
