//! Running the command: find it and exec it in our place ([`exec`]), or,
//! with `--mask`, run it as our child and pass its output through the
//! matcher ([`supervise`], [`mask`]), on a pseudo-terminal of its own when
//! ours is one ([`pty`]), with signals passed on ([`crate::signals`]).
//!
//! Nothing here knows of manifests, stores or commands: it takes a program,
//! its arguments, and the variables and values to give and to mask.

pub(crate) mod exec;
pub(crate) mod mask;
#[cfg(unix)]
pub(crate) mod pty;
pub(crate) mod supervise;

use std::io;

use crate::error::Error;

/// The error for a command that could not be started.
pub(crate) fn spawn_error(program: &std::ffi::OsStr) -> impl FnOnce(io::Error) -> Error + '_ {
    move |cause| Error::CannotExecute {
        program: program.to_owned(),
        cause,
    }
}

#[cfg(windows)]
type HandlerRoutine = unsafe extern "system" fn(u32) -> i32;

#[cfg(windows)]
unsafe extern "system" {
    fn SetConsoleCtrlHandler(handler: Option<HandlerRoutine>, add: i32) -> i32;
}

/// Ctrl+C goes to every process on the console. The command decides what
/// to do with it; we must not die first and leave it orphaned (or, under
/// `--mask`, stop passing its output and status on). Called after the
/// command is spawned, so the command does not inherit the handler.
#[cfg(windows)]
pub(crate) fn outlive_ctrl_c() {
    unsafe extern "system" fn ignore(_event: u32) -> i32 {
        1
    }
    // SAFETY: registering a handler that only returns TRUE has no preconditions.
    unsafe {
        SetConsoleCtrlHandler(Some(ignore), 1);
    }
}
