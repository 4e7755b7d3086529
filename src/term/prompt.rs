//! Asking for a secret on the terminal, without echo.

use zeroize::Zeroizing;

/// Whether there is a terminal to ask on: the controlling terminal, which
/// is where [`password`] reads, whatever standard input is. So
/// `printf %s "$T" | with-secrets set NAME` typed at a terminal can still be
/// asked for a passphrase, while CI and cron, which have none, are not.
#[cfg(unix)]
use std::os::unix::fs::OpenOptionsExt;

#[cfg(unix)]
pub(crate) fn has_terminal() -> bool {
    // O_NOCTTY: never acquire one by asking.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/tty")
        .is_ok()
}

#[cfg(not(unix))]
pub(crate) fn has_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

/// Prints `prompt` on the terminal and reads one line without echoing it.
///
/// Echo is switched off before the prompt is printed, not after: otherwise
/// whatever is typed (or pasted) as soon as the prompt shows can appear on
/// screen in the moment between the two. It is switched back on however the
/// prompt ends, a signal included (see [`EchoOff`]).
#[cfg(unix)]
pub(crate) fn password(prompt: &str) -> std::io::Result<Zeroizing<String>> {
    use std::io::Write;
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
    let echo_off = EchoOff::enter(fd, original, silent)?;
    (&tty).write_all(prompt.as_bytes())?;
    (&tty).flush()?;
    let line = read_line(&tty)?;
    drop(echo_off);
    into_text(line)
}

/// Reads one line from `input`, without its `\n` or `\r\n`. A terminal in
/// its usual (canonical) mode hands over one line per read; anything a read
/// brings after the newline is dropped.
///
/// Not a `BufReader` and `read_line`: the reader's buffer and each smaller
/// copy of a growing `String` would be freed unwiped. This buffer grows by
/// hand, wiping each smaller copy, and is wiped when dropped.
#[cfg(unix)]
pub(crate) fn read_line(mut input: impl std::io::Read) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut line = Zeroizing::new(Vec::with_capacity(256));
    loop {
        crate::secret::reserve_wiped(&mut line, 1);
        let filled = line.len();
        let capacity = line.capacity();
        line.resize(capacity, 0);
        match input.read(&mut line[filled..]) {
            Ok(0) => {
                line.truncate(filled);
                return Ok(line);
            }
            Ok(n) => {
                line.truncate(filled + n);
                if let Some(end) = line[filled..].iter().position(|&byte| byte == b'\n') {
                    line.truncate(filled + end);
                    if line.ends_with(b"\r") {
                        line.pop();
                    }
                    return Ok(line);
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => line.truncate(filled),
            Err(err) => return Err(err),
        }
    }
}

/// The line as text, in the same wiped buffer; an answer that is not UTF-8
/// is wiped and refused.
#[cfg(unix)]
fn into_text(mut line: Zeroizing<Vec<u8>>) -> std::io::Result<Zeroizing<String>> {
    match String::from_utf8(std::mem::take(&mut *line)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(err) => {
            zeroize::Zeroize::zeroize(&mut err.into_bytes());
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the answer is not valid UTF-8 text",
            ))
        }
    }
}

#[cfg(unix)]
use echo_off::EchoOff;

/// The terminal with echo off, until dropped or a signal ends the prompt.
#[cfg(unix)]
mod echo_off {
    use std::cell::UnsafeCell;
    use std::io;
    use std::mem::MaybeUninit;
    use std::sync::atomic::{AtomicI32, Ordering};

    /// The signals that end a prompt: each puts the terminal back, then
    /// takes its default action (SIGTSTP stops, then turns echo off again).
    const SIGNALS: [libc::c_int; 5] = [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGTSTP,
    ];

    /// The terminal's descriptor while echo is off, else -1.
    static TTY: AtomicI32 = AtomicI32::new(-1);
    /// Its settings (original, silent), written before `TTY` is set and
    /// read only by the handler while it is.
    static SETTINGS: Settings = Settings(UnsafeCell::new(MaybeUninit::uninit()));

    struct Settings(UnsafeCell<MaybeUninit<(libc::termios, libc::termios)>>);

    // SAFETY: written only while no handler can read it (before `TTY` is
    // set, one prompt at a time); read only by the handler.
    unsafe impl Sync for Settings {}

    /// Echo off on a terminal, and each of `SIGNALS` caught meanwhile (unless
    /// ignored) to put it back on: a Ctrl+C at a prompt must not leave the
    /// shell it returns to typing blind. After putting the settings back the
    /// handler takes the signal's default action, so we still die by it and
    /// the shell sees a death by SIGINT, as it expects of a Ctrl+C.
    pub(super) struct EchoOff {
        fd: libc::c_int,
        original: libc::termios,
        previous: Vec<(libc::c_int, libc::sigaction)>,
    }

    impl EchoOff {
        pub(super) fn enter(
            fd: libc::c_int,
            original: libc::termios,
            silent: libc::termios,
        ) -> io::Result<Self> {
            // SAFETY: no handler of ours is installed, so none reads it now.
            unsafe { (*SETTINGS.0.get()).write((original, silent)) };
            TTY.store(fd, Ordering::SeqCst);
            let mut echo_off = Self {
                fd,
                original,
                previous: Vec::with_capacity(SIGNALS.len()),
            };
            // The handlers come first: a signal between echo off and them
            // would leave echo off.
            for signal in SIGNALS {
                if crate::signals::ignored(signal)? {
                    continue;
                }
                echo_off.previous.push((signal, catch(signal)?));
            }
            // SAFETY: fd is open; TCSANOW keeps anything already typed.
            if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &silent) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(echo_off)
        }
    }

    impl Drop for EchoOff {
        fn drop(&mut self) {
            // The settings, then the handlers: a signal in between puts the
            // settings back once more, which does no harm.
            // SAFETY: the settings read before echo went off, on the same descriptor.
            unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.original) };
            for (signal, previous) in &self.previous {
                // SAFETY: `previous` is what sigaction returned for `signal`.
                unsafe { libc::sigaction(*signal, previous, std::ptr::null_mut()) };
            }
            TTY.store(-1, Ordering::SeqCst);
        }
    }

    /// Installs `put_back_then_default` for `signal`; returns what it replaced.
    fn catch(signal: libc::c_int) -> io::Result<libc::sigaction> {
        // SAFETY: zeroed sigactions are valid values to fill in; the handler
        // only does async-signal-safe things. sigaction is async-signal-safe,
        // as the handler calls this too.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = put_back_then_default as *const () as libc::sighandler_t;
            // SA_RESTART: a read on the terminal goes on after a stop.
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, &action, &mut previous) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(previous)
        }
    }

    extern "C" fn put_back_then_default(signal: libc::c_int) {
        crate::signals::keeping_errno(|| {
            let fd = TTY.load(Ordering::SeqCst);
            // SAFETY: `TTY` is set only after `SETTINGS` was written.
            let settings = (fd >= 0).then(|| unsafe { (*SETTINGS.0.get()).assume_init() });
            if let Some((original, _)) = &settings {
                // SAFETY: tcsetattr is async-signal-safe.
                unsafe { libc::tcsetattr(fd, libc::TCSANOW, original) };
            }
            // The default action, now: unblocked, raise acts before it
            // returns. It returns only from a stop (SIGTSTP), once continued,
            // or if the stop did not happen (an orphaned process group).
            crate::signals::die_by(signal);
            if let Some((_, silent)) = &settings {
                // SAFETY: as above. From the background this stops us again
                // (SIGTTOU) until we are in the foreground, as it should.
                unsafe { libc::tcsetattr(fd, libc::TCSANOW, silent) };
                let _ = catch(signal);
            }
        });
    }
}

#[cfg(not(unix))]
pub(crate) fn password(prompt: &str) -> std::io::Result<Zeroizing<String>> {
    rpassword::prompt_password(prompt).map(Zeroizing::new)
}

#[cfg(all(test, unix))]
mod tests {
    use std::io::Read;

    use super::*;

    /// Hands over at most `step` bytes a read, as a terminal may.
    struct Slow<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Slow<'_> {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buffer.len()).min(self.bytes.len());
            buffer[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_line_is_read_without_its_newline_or_what_follows_it() {
        for (input, line) in [
            ("abc\n", "abc"),
            ("abc\r\n", "abc"),
            ("abc", "abc"),
            ("abc\r", "abc\r"),
            ("a\nb\n", "a"),
            ("\n", ""),
            ("", ""),
        ] {
            for step in [1, 2, 300] {
                let read = read_line(Slow {
                    bytes: input.as_bytes(),
                    step,
                })
                .unwrap();
                assert_eq!(&read[..], line.as_bytes(), "{input:?} by {step}");
            }
        }
        assert!(into_text(Zeroizing::new(vec![0xff])).is_err());
    }

    #[test]
    fn reading_a_long_line_leaves_no_unwiped_copy_of_it() {
        const CANARY: &[u8] = b"canary-d41c7e-typed";
        let typed = Zeroizing::new([CANARY, &[b'x'; 5000], CANARY, b"\r\n"].concat());
        let found = crate::secret::watch::unwiped_copies(CANARY, || {
            for step in [7, 4096] {
                let line = read_line(Slow {
                    bytes: &typed,
                    step,
                })
                .unwrap();
                let text = into_text(line).unwrap();
                assert_eq!(text.len(), typed.len() - 2);
                assert!(text.ends_with("canary-d41c7e-typed"));
            }
        });
        assert_eq!(found, 0, "unwiped copies of the line were freed");
    }
}
