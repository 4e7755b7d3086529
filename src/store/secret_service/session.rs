//! The session values travel in: DH-encrypted by default, plain on request.

use dbus::Message;
use dbus::arg::Variant;

use super::dh::{KeyPair, SessionKey};
use super::reply::read;
use super::{CONTENT_TYPE, ObjectPath, SecretService, ServiceError, StoreError, WireSecret};
use crate::secret::Secret;

pub(super) enum Session {
    /// `OpenSession` was sent; its reply has not been read yet. `None` for
    /// the plain algorithm, which exchanges no keys.
    Pending {
        serial: u32,
        keys: Option<KeyPair>,
    },
    Open {
        path: ObjectPath,
        cipher: Cipher,
    },
}

/// How values travel over the bus in an open session.
pub(super) enum Cipher {
    /// AES-128-CBC with the key from the Diffie-Hellman exchange: the default.
    Dh(SessionKey),
    /// In the clear: only when `WITH_SECRETS_PLAIN_SESSION=1` asks for it.
    Plain,
}

impl Cipher {
    /// Returns (parameters, value) for the Secret Service `Secret` struct.
    fn encrypt(&self, value: &Secret) -> Result<(Vec<u8>, Vec<u8>), StoreError> {
        match self {
            Self::Dh(key) => key
                .encrypt(value)
                .map_err(|reason| ServiceError::Protocol(reason).into()),
            Self::Plain => Ok((Vec::new(), value.expose().to_vec())),
        }
    }

    pub(super) fn decrypt(&self, parameters: &[u8], value: Vec<u8>) -> Result<Secret, StoreError> {
        match self {
            Self::Dh(key) => key
                .decrypt(parameters, &value)
                .map_err(|reason| ServiceError::Protocol(reason).into()),
            Self::Plain => Ok(Secret::new(value)),
        }
    }
}

/// Whether the user chose the plain algorithm.
///
/// Measured against gnome-keyring, the DH exchange is about half of a run
/// (11.2 ms against 6.3 ms with 10 secrets, here): the daemon's side of it
/// runs before it answers anything else. The plain algorithm skips it, and
/// values then cross the session bus unencrypted. Who could read them there:
/// a process allowed to monitor the bus (on a standard session bus, processes
/// of the same user, and root), while the value passes. Those same processes
/// can read the command's environment in /proc/PID/environ anyway, so plain
/// adds exposure only where the bus is shared with other users or recorded
/// (dbus-monitor, Bustle); and our copy of the value then also passes
/// through libdbus's message buffers, which are freed without being wiped.
/// So it is an opt-in, never the default.
pub(super) fn plain_session() -> bool {
    std::env::var_os(PLAIN_SESSION_VARIABLE).is_some_and(|value| value == "1")
}

/// `WITH_SECRETS_PLAIN_SESSION=1` opens a plain (unencrypted) session.
pub(crate) const PLAIN_SESSION_VARIABLE: &str = "WITH_SECRETS_PLAIN_SESSION";

impl SecretService {
    /// The open session, waiting for the `OpenSession` reply if need be.
    pub(super) fn session(&mut self) -> Result<(&ObjectPath, &Cipher), StoreError> {
        if let Session::Pending { serial, .. } = self.session {
            let mut reply = self.wait(&[serial])?.remove(0);
            let Session::Pending { keys, .. } = &self.session else {
                unreachable!("the session is still pending")
            };
            let (path, cipher) = opened(&mut reply, keys.as_ref())?;
            self.session = Session::Open { path, cipher };
        }
        match &self.session {
            Session::Open { path, cipher } => Ok((path, cipher)),
            Session::Pending { .. } => unreachable!("the session was opened above"),
        }
    }

    pub(super) fn wire_secret(&mut self, value: &Secret) -> Result<WireSecret, StoreError> {
        let (path, cipher) = self.session()?;
        let (parameters, value) = cipher.encrypt(value)?;
        Ok((path.clone(), parameters, value, CONTENT_TYPE.to_owned()))
    }
}

/// The session an `OpenSession` reply opened: DH with our `keys`, or plain
/// when there are none.
fn opened(reply: &mut Message, keys: Option<&KeyPair>) -> Result<(ObjectPath, Cipher), StoreError> {
    match keys {
        Some(keys) => {
            let (output, path): (Variant<Vec<u8>>, ObjectPath) = read(reply)?;
            let key = keys.derive(&output.0).map_err(ServiceError::Protocol)?;
            Ok((path, Cipher::Dh(key)))
        }
        None => {
            let (_, path): (Variant<String>, ObjectPath) = read(reply)?;
            Ok((path, Cipher::Plain))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/org/freedesktop/secrets/session/7";

    fn open_session_call() -> Message {
        let mut call = Message::new_method_call(
            "org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service",
            "OpenSession",
        )
        .unwrap();
        call.set_serial(7);
        call
    }

    #[test]
    fn a_plain_session_carries_values_as_they_are() {
        let mut reply = open_session_call()
            .method_return()
            .append2(Variant(""), dbus::Path::from(PATH));
        let (path, cipher) = opened(&mut reply, None).unwrap();
        assert_eq!(&*path, PATH);
        let (parameters, value) = cipher.encrypt(&Secret::from("hunter2")).unwrap();
        assert_eq!(
            (parameters.as_slice(), value.as_slice()),
            (&[][..], &b"hunter2"[..])
        );
        let back = cipher.decrypt(&[], b"hunter2".to_vec()).unwrap();
        assert_eq!(back.expose(), b"hunter2");
    }

    #[test]
    fn a_dh_session_encrypts_with_the_key_both_sides_derive() {
        let ours = KeyPair::generate().unwrap();
        let theirs = KeyPair::generate().unwrap();
        let mut reply = open_session_call()
            .method_return()
            .append2(Variant(theirs.public.clone()), dbus::Path::from(PATH));
        let (path, cipher) = opened(&mut reply, Some(&ours)).unwrap();
        assert_eq!(&*path, PATH);
        let (iv, value) = cipher.encrypt(&Secret::from("hunter2")).unwrap();
        assert_ne!(value, b"hunter2");
        let service = theirs.derive(&ours.public).unwrap();
        assert_eq!(service.decrypt(&iv, &value).unwrap().expose(), b"hunter2");
        let short = cipher.decrypt(&iv[..15], value);
        assert_eq!(
            short.unwrap_err(),
            StoreError::from(ServiceError::Protocol(
                "the service sent a 15-byte IV".into()
            ))
        );
    }

    #[test]
    fn a_session_reply_the_keys_do_not_fit_is_a_protocol_error() {
        let ours = KeyPair::generate().unwrap();
        let mut degenerate = open_session_call()
            .method_return()
            .append2(Variant(vec![1u8]), dbus::Path::from(PATH));
        let err = opened(&mut degenerate, Some(&ours)).err().unwrap();
        assert_eq!(
            err,
            StoreError::from(ServiceError::Protocol(
                "the service sent an invalid public key".into()
            ))
        );
        // A plain answer to a DH request has no key in it.
        let mut plain = open_session_call()
            .method_return()
            .append2(Variant(""), dbus::Path::from(PATH));
        let err = opened(&mut plain, Some(&ours)).err().unwrap();
        assert!(matches!(
            err.fault::<ServiceError>(),
            Some(ServiceError::Protocol(_))
        ));
    }
}
