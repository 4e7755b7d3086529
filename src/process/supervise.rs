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
    use crate::process::mask::{copy, masker};
    use crate::process::pty;
    use crate::process::spawn_error;
    use crate::secret::Secret;
    use crate::signals;

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

    /// The command's output through pipes: one pipe for both stdout and
    /// stderr when ours lead to the same place (see [`one_destination`]),
    /// so that their order is the command's; else each through a pipe and
    /// a thread of its own, so that stderr stays stderr.
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
        let failed = |source| Error::Mask {
            what: "make a pipe for the command's output",
            source,
        };
        let merged = if one_destination() {
            let (reader, writer) = io::pipe().map_err(failed)?;
            command
                .stderr(writer.try_clone().map_err(failed)?)
                .stdout(writer);
            Some(reader)
        } else {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
            None
        };
        let mut child = command.spawn().map_err(spawn_error(program))?;
        // Our copies of the pipe's write end go with `command`: the reader
        // sees the end of the stream once the command and all it started
        // have closed theirs.
        drop(command);
        signals::forward_to(child.id());
        let pumps = match merged {
            Some(reader) => {
                let masker = masker(values, false);
                vec![std::thread::spawn(move || {
                    copy(reader, crate::secret::stdout(), masker)
                })]
            }
            None => pump(&mut child, values).into(),
        };
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

    /// Whether our stdout and stderr are one file: the same pipe (as after
    /// `2>&1 | tee`), socket, device or regular file (`>log 2>&1`, a CI
    /// log), by device and inode. Then what the command writes to either
    /// ends up in one stream, in the order it was written, and two pipes
    /// read by two threads would lose that order. One pipe keeps it.
    ///
    /// A file opened twice (`>log 2>log`) counts too: writing both through
    /// stdout's descriptor gives the command's order where two descriptors,
    /// each with an offset of its own, would write over each other.
    fn one_destination() -> bool {
        let file = |fd| {
            // SAFETY: a zeroed stat is a valid buffer for fstat to fill.
            let mut stat: libc::stat = unsafe { std::mem::zeroed() };
            // SAFETY: fstat writes only to `stat`; a closed `fd` fails.
            (unsafe { libc::fstat(fd, &mut stat) } == 0).then_some((stat.st_dev, stat.st_ino))
        };
        match (file(libc::STDOUT_FILENO), file(libc::STDERR_FILENO)) {
            (Some(out), Some(err)) => out == err,
            _ => false,
        }
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
