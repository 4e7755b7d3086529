//! Asking for a secret on the terminal, without echo.

use zeroize::Zeroizing;

/// Whether there is a terminal to ask on: the controlling terminal, which
/// is where [`password`] reads, whatever standard input is. So
/// `printf %s "$T" | with-secrets set NAME` typed at a terminal can still be
/// asked for a passphrase, while CI and cron, which have none, are not.
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;

#[cfg(unix)]
pub fn has_terminal() -> bool {
    // O_NOCTTY: never acquire one by asking.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/tty")
        .is_ok()
}

#[cfg(not(unix))]
pub fn has_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Prints `prompt` on the terminal and reads one line without echoing it.
///
/// Echo is switched off before the prompt is printed, not after: otherwise
/// whatever is typed (or pasted) as soon as the prompt shows can appear on
/// screen in the moment between the two.
#[cfg(unix)]
pub fn password(prompt: &str) -> std::io::Result<Zeroizing<String>> {
    use std::io::{BufRead, BufReader, Write};
    use std::os::fd::AsRawFd;

    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")?;
    let fd = tty.as_raw_fd();
    // SAFETY: termios is plain data, filled in by tcgetattr before use.
    let mut original: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: fd is an open descriptor and original a valid termios.
    if unsafe { libc::tcgetattr(fd, &mut original) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut silent = original;
    silent.c_lflag &= !libc::ECHO;
    silent.c_lflag |= libc::ECHONL;
    // SAFETY: as above; TCSANOW keeps anything already typed.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &silent) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    struct Restore(libc::c_int, libc::termios);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores the settings read above on the same descriptor.
            unsafe { libc::tcsetattr(self.0, libc::TCSANOW, &self.1) };
        }
    }
    let _restore = Restore(fd, original);

    (&tty).write_all(prompt.as_bytes())?;
    (&tty).flush()?;
    let mut line = Zeroizing::new(String::new());
    BufReader::new(&tty).read_line(&mut line)?;
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(line)
}

#[cfg(not(unix))]
pub fn password(prompt: &str) -> std::io::Result<Zeroizing<String>> {
    rpassword::prompt_password(prompt).map(Zeroizing::new)
}
