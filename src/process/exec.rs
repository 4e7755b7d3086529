//! Running the command: find it first, then exec in place (Unix) or spawn and
//! wait (Windows), with the caller's environment plus the resolved variables.
//! With `--mask` it is spawned instead, and `supervise` takes over.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use crate::error::Error;
use crate::secret::Secret;

/// Finds `program` the way execvp would, so that a typo fails with 127 before
/// any keyring access (and so before any unlock prompt).
///
/// A name with a path separator is used as it is; exec reports what is wrong
/// with it. A bare name is searched in `PATH`. As with env(1), a file that is
/// in `PATH` but not executable is "cannot execute" (126), not "not found".
pub(crate) fn find(program: &OsStr, cwd: &Path) -> Result<PathBuf, Error> {
    if program.is_empty() {
        return Err(Error::CommandNotFound {
            program: program.to_owned(),
        });
    }
    if has_separator(program) {
        return Ok(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    match which::which_in(program, Some(&path), cwd) {
        Ok(found) => Ok(found),
        Err(_) => {
            let exists = std::env::split_paths(&path).any(|dir| dir.join(program).is_file());
            Err(if exists {
                Error::CannotExecute {
                    program: program.to_owned(),
                    cause: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                }
            } else {
                Error::CommandNotFound {
                    program: program.to_owned(),
                }
            })
        }
    }
}

fn has_separator(program: &OsStr) -> bool {
    let bytes = program.as_encoded_bytes();
    bytes.contains(&b'/') || (cfg!(windows) && bytes.contains(&b'\\'))
}

/// Runs `path` (found as `program`) with `args`, adding `variables` to the
/// environment and leaving out `withheld` (variables that open a whole
/// store, which the command must not get). On Unix this only returns on failure, unless `mask` is given:
/// then the command runs as our child with each of those values masked in
/// its output (see `supervise`), and its status is returned.
pub(crate) fn run(
    program: &OsStr,
    path: &Path,
    args: &[OsString],
    variables: Vec<(String, Secret)>,
    withheld: &[&str],
    mask: Option<&[(String, Secret)]>,
    fix: &str,
) -> Result<ExitCode, Error> {
    let mut command = Command::new(path);
    command.args(args);
    for name in withheld {
        command.env_remove(name);
    }
    for (name, value) in &variables {
        command.env(name, env_value(name, value, fix)?);
    }
    // `Command` copied the values; drop ours now so they are wiped before
    // the command runs (after exec our memory is gone in any case).
    drop(variables);
    match mask {
        Some(values) => crate::process::supervise::run(program, command, values),
        None => platform::run(program, command),
    }
}

#[cfg(unix)]
fn env_value(_name: &str, value: &Secret, _fix: &str) -> Result<OsString, Error> {
    use std::os::unix::ffi::OsStrExt;
    Ok(OsStr::from_bytes(value.expose()).to_owned())
}

#[cfg(not(unix))]
fn env_value(name: &str, value: &Secret, fix: &str) -> Result<OsString, Error> {
    std::str::from_utf8(value.expose())
        .map(OsString::from)
        .map_err(|_| Error::ValueNotText {
            name: name.to_owned(),
            fix: fix.to_owned(),
        })
}

#[cfg(unix)]
mod platform {
    use std::ffi::OsStr;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, ExitCode};

    use crate::error::Error;

    /// Replaces this process with the command: same PID, so signals sent to
    /// us reach it, and its exit status is what our caller sees.
    pub(crate) fn run(program: &OsStr, mut command: Command) -> Result<ExitCode, Error> {
        // argv[0] is the name the user typed, as a shell would pass it.
        command.arg0(program);
        let cause = command.exec();
        Err(Error::CannotExecute {
            program: program.to_owned(),
            cause,
        })
    }
}

#[cfg(windows)]
mod platform {
    use std::ffi::OsStr;
    use std::process::{Command, ExitCode};

    use crate::error::Error;

    /// Windows has no exec: spawn, wait, and pass the exit code through.
    pub(crate) fn run(program: &OsStr, mut command: Command) -> Result<ExitCode, Error> {
        let mut child = command.spawn().map_err(|cause| Error::CannotExecute {
            program: program.to_owned(),
            cause,
        })?;
        drop(command);
        crate::process::outlive_ctrl_c();
        let status = child.wait().map_err(|cause| Error::CannotExecute {
            program: program.to_owned(),
            cause,
        })?;
        // Exit codes are 32 bits here; ExitCode only carries 8.
        std::process::exit(status.code().unwrap_or(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_bare_name_is_not_found() {
        let err = find(OsStr::new("with-secrets-no-such-command"), Path::new("/")).unwrap_err();
        assert_eq!(err.exit_code(), 127);
        assert_eq!(
            err.to_string(),
            "with-secrets-no-such-command: command not found"
        );
    }

    #[test]
    fn a_path_is_used_as_given() {
        let found = find(OsStr::new("./nope"), Path::new("/")).unwrap();
        assert_eq!(found, Path::new("./nope"));
    }

    #[test]
    fn an_empty_name_is_not_found() {
        assert_eq!(
            find(OsStr::new(""), Path::new("/"))
                .unwrap_err()
                .exit_code(),
            127
        );
    }
}
