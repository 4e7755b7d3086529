//! Reading a reply: an error reply as the `StoreError` it means, else its
//! arguments.

use dbus::Message;

use super::ServiceError;
use super::{Daemon, StoreError};

/// Turns an error reply into a `StoreError`.
pub(super) fn check(reply: &mut Message) -> Result<(), StoreError> {
    reply.as_result().map(|_| ()).map_err(|err| {
        let name = err.name().unwrap_or("");
        let message = err.message().unwrap_or("").to_owned();
        match name {
            "org.freedesktop.DBus.Error.ServiceUnknown"
            | "org.freedesktop.DBus.Error.NameHasNoOwner" => {
                StoreError::from(ServiceError::NoService)
            }
            // The bus knows a service file for the name but could not start
            // it (ServiceNotFound, ExecFailed, ChildExited...): no Secret
            // Service here, as surely as when there is no service file.
            spawn if spawn.starts_with("org.freedesktop.DBus.Error.Spawn.") => {
                StoreError::from(ServiceError::NoService)
            }
            "org.freedesktop.Secret.Error.IsLocked" => StoreError::from(ServiceError::Locked {
                daemon: Daemon::Unknown,
            }),
            "org.freedesktop.Secret.Error.NoSuchObject"
                if message.contains("collection") || message.is_empty() =>
            {
                StoreError::from(ServiceError::NoDefaultCollection {
                    daemon: Daemon::Unknown,
                })
            }
            "org.freedesktop.DBus.Error.AccessDenied" => {
                StoreError::from(ServiceError::Denied(message))
            }
            "org.freedesktop.DBus.Error.NoReply" | "org.freedesktop.DBus.Error.Timeout" => {
                StoreError::from(ServiceError::Protocol(format!("{name}: {message}")))
            }
            _ => StoreError::from(ServiceError::Protocol(format!("{name}: {message}"))),
        }
    })
}

/// Checks a reply for an error, then reads its arguments.
pub(super) fn read<T: dbus::arg::ReadAll>(reply: &mut Message) -> Result<T, StoreError> {
    check(reply)?;
    reply.read_all().map_err(|err| {
        StoreError::from(ServiceError::Protocol(
            err.message().unwrap_or("bad reply").to_owned(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::super::connection::method;
    use super::super::{SERVICE, SERVICE_IFACE, SERVICE_PATH};
    use super::*;

    /// A reply with the error `name` to a call, as the bus would deliver it.
    fn error_reply(name: &str, message: &str) -> Message {
        let mut call = method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "SearchItems");
        call.set_serial(7);
        let message = std::ffi::CString::new(message).unwrap();
        call.error(&name.into(), &message)
    }

    #[test]
    fn error_replies_become_the_store_errors_they_mean() {
        let no_service = [
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "org.freedesktop.DBus.Error.NameHasNoOwner",
            "org.freedesktop.DBus.Error.Spawn.ExecFailed",
            "org.freedesktop.DBus.Error.Spawn.ChildExited",
        ];
        for name in no_service {
            assert_eq!(
                check(&mut error_reply(name, "gone")),
                Err(StoreError::from(ServiceError::NoService)),
                "{name}"
            );
        }
        let locked = check(&mut error_reply(
            "org.freedesktop.Secret.Error.IsLocked",
            "",
        ));
        assert!(
            matches!(
                locked.as_ref().map_err(StoreError::fault::<ServiceError>),
                Err(Some(ServiceError::Locked { .. }))
            ),
            "{locked:?}"
        );
        let collection = "org.freedesktop.Secret.Error.NoSuchObject";
        for message in ["", "The collection does not exist"] {
            let err = check(&mut error_reply(collection, message));
            assert!(
                matches!(
                    err.as_ref().map_err(StoreError::fault::<ServiceError>),
                    Err(Some(ServiceError::NoDefaultCollection { .. }))
                ),
                "{message:?}: {err:?}"
            );
        }
        assert_eq!(
            check(&mut error_reply(collection, "No such item")),
            Err(StoreError::from(ServiceError::Protocol(format!(
                "{collection}: No such item"
            ))))
        );
        assert_eq!(
            check(&mut error_reply(
                "org.freedesktop.DBus.Error.AccessDenied",
                "not you"
            )),
            Err(StoreError::from(ServiceError::Denied("not you".into())))
        );
        assert_eq!(
            check(&mut error_reply(
                "org.freedesktop.DBus.Error.NoReply",
                "late"
            )),
            Err(StoreError::from(ServiceError::Protocol(
                "org.freedesktop.DBus.Error.NoReply: late".into()
            )))
        );
    }

    #[test]
    fn read_checks_for_an_error_then_reads_the_arguments() {
        let mut call = method(SERVICE, SERVICE_PATH, SERVICE_IFACE, "ReadAlias").append1("default");
        call.set_serial(7);
        let alias = "/org/freedesktop/secrets/collection/login";
        let mut reply = call.method_return().append1(dbus::Path::from(alias));
        let (path,): (dbus::Path<'static>,) = read(&mut reply).unwrap();
        assert_eq!(&*path, alias);
        let wrong = read::<(u32,)>(&mut call.method_return().append1("text"));
        assert!(
            matches!(
                wrong.as_ref().map_err(StoreError::fault::<ServiceError>),
                Err(Some(ServiceError::Protocol(_)))
            ),
            "{wrong:?}"
        );
        let error = read::<(dbus::Path<'static>,)>(&mut error_reply(
            "org.freedesktop.DBus.Error.ServiceUnknown",
            "",
        ));
        assert_eq!(
            error.unwrap_err(),
            StoreError::from(ServiceError::NoService)
        );
    }
}
