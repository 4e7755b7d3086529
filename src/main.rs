//! The binary: parse arguments, call `with_secrets::run`, report the error chain,
//! and exit with the code env(1) would use.

use std::io::Write as _;
use std::process::ExitCode;

use with_secrets::{Cli, EXIT_FAILURE};

fn main() -> ExitCode {
    forbid_core_dumps();
    let cli = match Cli::parse_args() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version print to stdout and succeed; a usage
            // error is our own failure, which env(1) reports as 125.
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(EXIT_FAILURE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match with_secrets::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // Not eprintln!, which panics (exit 101) when stderr is a closed
            // pipe: the exit code is the message that must get through.
            let message = with_secrets::message(&err);
            let _ = writeln!(std::io::stderr(), "with-secrets: {message}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// Makes this process non-dumpable before any value is in its memory: no
/// core dump (of a crash, or of `--mask` dying by the command's SIGQUIT)
/// holds a value, and processes of the same user can no longer ptrace us or
/// read our memory or environment through /proc (its files become root's).
/// The flag is reset when the command is exec'd, so the command is as it
/// would be without us.
fn forbid_core_dumps() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: prctl with PR_SET_DUMPABLE takes plain integers.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}
