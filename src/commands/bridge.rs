//! `with-secrets bridge` (hidden): the server end of the WSL bridge. The
//! Linux build starts the Windows build with this subcommand and sends it
//! requests on stdin, one JSON line each, answered on stdout (see
//! `store::bridge::wire`), until stdin ends.
//!
//! On Windows it serves the Credential Manager. Elsewhere it serves the store
//! `--store` names (the file store, say), so the protocol is tested on Linux
//! without Wine; `windows` and `auto` are refused there, as they would start
//! a bridge from the bridge.

use std::io::{Read, Write};
use std::process::ExitCode;

use zeroize::Zeroizing;

use crate::config::Config;
use crate::error::Error;
use crate::store::bridge::wire::{
    self, Lines, PROTOCOL, Request, Response, VERSION, WireFound, WireValue,
};
use crate::store::{self, Key, Store, StoreError, StoreKind};

pub(crate) fn run(config: &Config) -> Result<ExitCode, Error> {
    let kind = served(config.store_without_manifest().0)?;
    let mut store: Option<Box<dyn Store>> = None;
    let (mut input, mut output) = pipes();
    let mut lines = Lines::new();
    let mut chunk = Zeroizing::new([0u8; 8192]);
    loop {
        let taken = lines.take().map_err(|too_long| Error::BridgeInput {
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, too_long.to_string()),
        })?;
        let Some(line) = taken else {
            let read = match input.read(&mut chunk[..]) {
                Ok(0) => return Ok(ExitCode::SUCCESS),
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(Error::BridgeInput { source }),
            };
            lines.push(&chunk[..read]);
            continue;
        };
        let response = match wire::read_request(&line) {
            Ok(request) => answer(request, kind, &mut store, config),
            Err(error) => Response {
                error: Some(error),
                ..Response::default()
            },
        };
        let answer = wire::to_line(&response);
        drop(response);
        output
            .write_all(&answer)
            .and_then(|()| output.flush())
            .map_err(|source| Error::Stdout { source })?;
    }
}

/// Standard input and output, read and written straight through, never
/// through a buffer of std's, which would keep what passed (the values'
/// base64 among it) unwiped.
#[cfg(unix)]
fn pipes() -> (crate::secret::Unbuffered, crate::secret::Unbuffered) {
    (crate::secret::stdin(), crate::secret::stdout())
}

/// On Windows, std's handles read ahead into, and write through, buffers of
/// their own (8 KiB, never wiped), so the bridge goes around them with the
/// handles themselves. Its stdin and stdout are pipes, where std would not
/// convert anything either (it writes UTF-16 only to a console).
#[cfg(windows)]
fn pipes() -> (
    std::mem::ManuallyDrop<std::fs::File>,
    std::mem::ManuallyDrop<std::fs::File>,
) {
    use std::os::windows::io::{AsRawHandle as _, FromRawHandle as _};
    // SAFETY: the process's standard handles, open for its whole life;
    // ManuallyDrop never closes them.
    unsafe {
        (
            std::mem::ManuallyDrop::new(std::fs::File::from_raw_handle(
                std::io::stdin().as_raw_handle(),
            )),
            std::mem::ManuallyDrop::new(std::fs::File::from_raw_handle(
                std::io::stdout().as_raw_handle(),
            )),
        )
    }
}

/// The store to serve: the platform's on Windows; elsewhere the one named.
fn served(kind: StoreKind) -> Result<StoreKind, Error> {
    if cfg!(windows) && kind == StoreKind::Auto {
        return Ok(StoreKind::Windows);
    }
    if cfg!(not(windows)) && matches!(kind, StoreKind::Auto | StoreKind::Windows) {
        return Err(Error::Usage {
            message: "bridge serves the Windows Credential Manager on Windows; elsewhere, \
                      name the store to serve with --store (e.g. --store file)"
                .to_owned(),
        });
    }
    Ok(kind)
}

fn answer(
    request: Request,
    kind: StoreKind,
    store: &mut Option<Box<dyn Store>>,
    config: &Config,
) -> Response {
    if let Request::Hello { .. } = request {
        return Response {
            protocol: Some(PROTOCOL),
            version: Some(VERSION.to_owned()),
            store: Some(kind.name().to_owned()),
            ..Response::default()
        };
    }
    let result = match store {
        Some(store) => Ok(store),
        None => store::open(
            kind,
            &store::Settings {
                timeout: config.timeout,
                person: &crate::person::NOBODY,
                vault: Default::default(),
                agent: None,
                cache: false,
            },
        )
        .map(|opened| store.insert(opened)),
    }
    .and_then(|store| serve(request, store.as_mut()));
    result.unwrap_or_else(|err| Response {
        error: Some(err.to_string()),
        class: Some(err.class().name().to_owned()),
        ..Response::default()
    })
}

pub(crate) fn serve(request: Request, store: &mut dyn Store) -> Result<Response, StoreError> {
    match request {
        Request::Hello { .. } => Ok(Response::default()),
        Request::Get { keys } => {
            let keys: Vec<Key<'_>> = keys
                .iter()
                .map(|key| Key {
                    service: &key.service,
                    username: &key.username,
                })
                .collect();
            let found = store.get_all(&keys)?;
            Ok(Response {
                found: Some(
                    found
                        .into_iter()
                        .map(|slot| {
                            slot.map(|found| WireFound {
                                value: WireValue::encode(found.secret.expose()),
                                matches: found.matches,
                            })
                        })
                        .collect(),
                ),
                ..Response::default()
            })
        }
        Request::Set {
            service,
            username,
            label,
            value,
        } => {
            let Some(secret) = value.decode() else {
                return Ok(Response {
                    error: Some("not a request: its value is not base64".into()),
                    ..Response::default()
                });
            };
            let key = Key {
                service: &service,
                username: &username,
            };
            store.set(key, &label, &secret)?;
            Ok(Response::default())
        }
        Request::Delete { service, username } => {
            let deleted = store.delete(Key {
                service: &service,
                username: &username,
            })?;
            Ok(Response {
                deleted: Some(deleted),
                ..Response::default()
            })
        }
    }
}
