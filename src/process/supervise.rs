//! `--mask`: run the command as our child, copy its output through the
//! matcher, and pass its fate on.
//!
//! Masking means reading the command's output, so unlike the plain run it
//! cannot exec in our place. What exec gave for free is rebuilt by hand:
//! SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to us are forwarded to the
//! command, its exit status becomes ours, and when a signal kills it, we
//! kill ourselves with the same signal. When our stdout is a terminal the
//! command gets a pseudo-terminal of its own (see `pty`), so it still sees
//! a terminal and keeps its colours, line editing and prompts.
//!
//! We read until every writer has closed the stream, as a pipe into `cat`
//! would: a command that leaves a background process holding its stdout
//! open keeps us waiting for that process too.

use std::process::{Command, ExitCode};

use crate::error::Error;
use crate::process::mask::{copy, masker};
use crate::secret::Secret;

/// Runs `command` (typed as `program`) with `values` masked in its output.
pub(crate) fn run(
    program: &std::ffi::OsStr,
    command: Command,
    values: &[(String, Secret)],
) -> Result<ExitCode, Error> {
    platform::run(program, command, values)
}

/// Copies the child's piped stdout and stderr to ours, each through its own
/// masker, on two threads; join both once the child has exited.
pub(crate) fn pump(
    child: &mut std::process::Child,
    values: &[(String, Secret)],
) -> [std::thread::JoinHandle<()>; 2] {
    let masker = masker(values, false);
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let out = {
        let masker = masker.clone();
        std::thread::spawn(move || copy(stdout, crate::secret::stdout(), masker))
    };
    let err = std::thread::spawn(move || copy(stderr, crate::secret::stderr(), masker));
    [out, err]
}

#[cfg(unix)]
mod platform {
    use std::ffi::OsStr;
    use std::io::{self, IsTerminal};
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::{Command, ExitCode, ExitStatus, Stdio};

    use super::pump;
    use crate::error::Error;
    use crate::process::spawn_error;
    use crate::process::{pty, signals};
    use crate::secret::Secret;

    pub(crate) fn run(
        program: &OsStr,
        mut command: Command,
        values: &[(String, Secret)],
    ) -> Result<ExitCode, Error> {
        command.arg0(program);
        let status = if io::stdout().is_terminal() {
            pty::run(program, command, values)?
        } else {
            pipes(program, command, values)?
        };
        // Our terminal is restored and every byte of output passed on.
        if let Some(signal) = status.signal() {
            signals::die_by(signal);
        }
        Ok(exit_code(status))
    }

    /// Stdout and stderr each through a pipe and a thread of their own, so
    /// that stderr stays stderr.
    fn pipes(
        program: &OsStr,
        mut command: Command,
        values: &[(String, Secret)],
    ) -> Result<ExitStatus, Error> {
        // The terminal sends Ctrl+C to our whole process group, the command
        // included; only signals sent to us alone need forwarding.
        signals::install(false).map_err(|source| Error::Mask {
            what: "handle signals",
            source,
        })?;
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(spawn_error(program))?;
        drop(command);
        signals::forward_to(child.id());
        let pumps = pump(&mut child, values);
        let status = child.wait();
        signals::forget_child();
        for pump in pumps {
            let _ = pump.join();
        }
        status.map_err(|source| Error::Mask {
            what: "wait for the command",
            source,
        })
    }

    /// The child's status as a shell reports it: its code, or 128+N for a
    /// death by signal N that could not end us too.
    pub(crate) fn exit_code(status: ExitStatus) -> ExitCode {
        let code = match (status.code(), status.signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => 128 + signal,
            (None, None) => 1,
        };
        ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))
    }
}

#[cfg(windows)]
mod platform {
    use std::ffi::OsStr;
    use std::process::{Command, ExitCode, Stdio};

    use super::pump;
    use crate::error::Error;
    use crate::process::spawn_error;
    use crate::secret::Secret;

    /// Windows: pipes, no pseudo-terminal, so the command sees no console on
    /// stdout and stderr (and may drop its colours).
    pub(crate) fn run(
        program: &OsStr,
        mut command: Command,
        values: &[(String, Secret)],
    ) -> Result<ExitCode, Error> {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(spawn_error(program))?;
        drop(command);
        crate::process::outlive_ctrl_c();
        let pumps = pump(&mut child, values);
        let status = child.wait().map_err(|source| Error::Mask {
            what: "wait for the command",
            source,
        })?;
        for pump in pumps {
            let _ = pump.join();
        }
        // Exit codes are 32 bits here; ExitCode only carries 8.
        std::process::exit(status.code().unwrap_or(1))
    }
}
