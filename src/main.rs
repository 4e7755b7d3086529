//! The binary: parse arguments, call `with_secrets::run`, report the error chain,
//! and exit with the code env(1) would use.

use std::error::Error as _;
use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use with_secrets::Cli;
use with_secrets::error::EXIT_FAILURE;

fn main() -> ExitCode {
    forbid_core_dumps();
    let cli = match Cli::try_parse() {
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
            let report = report(&err);
            let report = with_secrets::manifest::printable_lines(&report);
            let _ = writeln!(std::io::stderr(), "with-secrets: {report}");
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

/// The message, with each cause appended to its first line (`message: cause`)
/// and any advice lines kept below.
fn report(err: &with_secrets::Error) -> String {
    let message = err.to_string();
    let (head, advice) = message.split_once('\n').unwrap_or((&message, ""));
    let mut out = head.to_owned();
    let mut cause = err.source();
    while let Some(source) = cause {
        out.push_str(": ");
        out.push_str(&source.to_string());
        cause = source.source();
    }
    if !advice.is_empty() {
        out.push('\n');
        out.push_str(advice);
    }
    out
}
