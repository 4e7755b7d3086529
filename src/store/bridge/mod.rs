//! The bridge: on WSL, `--store windows` is the Windows Credential Manager,
//! reached by running the Windows build of with-secrets (`with-secrets.exe
//! bridge`) over WSL interop and talking to it on its stdin and stdout.
//!
//! [`wire`] is the protocol, which both builds compile; the client, which
//! only Linux needs, is [`client`]; the server is `commands::bridge`.

#[cfg(target_os = "linux")]
mod client;
#[cfg(target_os = "linux")]
mod doctor;
#[cfg(target_os = "linux")]
mod error;
pub(crate) mod wire;

#[cfg(target_os = "linux")]
pub(crate) use client::{Bridge, HELPER_VARIABLE, probe};
#[cfg(target_os = "linux")]
pub(crate) use doctor::report;
