//! `--mask` on a terminal: the command runs on a pseudo-terminal of its own,
//! whose output we mask before it reaches the real one.
//!
//! This is what script(1) does. The command's stdout (and its stdin and
//! stderr, when ours are the terminal too) is the pseudo-terminal, which is
//! also its controlling terminal, so `isatty` is true, colours stay on and
//! prompts, line editing and Ctrl+C work as usual. Our own terminal is put
//! in raw mode, so each key goes to the command's terminal untouched and
//! that terminal's line discipline does the echoing and signalling; ours is
//! restored when the command is done. A window size change (SIGWINCH) is
//! copied across, which sends the command its own SIGWINCH.
//!
//! A terminal turns each `\n` into `\r\n` on the way out, so a value with a
//! newline is also matched in that form.

use std::io::{self, IsTerminal, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};

use zeroize::Zeroizing;

use crate::error::Error;
use crate::process::mask::{Output, READ_SIZE, copy, masker};
use crate::secret::Secret;
use crate::signals;

/// Stop reading our stdin while this much typed input waits for the command.
const MAX_PENDING_INPUT: usize = 64 * 1024;

/// Runs `command` on a new pseudo-terminal, masking `values` in what it
/// shows, until the terminal is closed by everything that had it open; then
/// reaps the command.
pub(crate) fn run(
    program: &std::ffi::OsStr,
    mut command: Command,
    values: &[(String, Secret)],
) -> Result<ExitStatus, Error> {
    let failed = |what| move |source| Error::Mask { what, source };
    let stdin_is_terminal = io::stdin().is_terminal();
    let stderr_is_terminal = io::stderr().is_terminal();
    let settings = termios(libc::STDOUT_FILENO).map_err(failed("read the terminal's settings"))?;
    let (master, slave) = open(&settings).map_err(failed("open a pseudo-terminal"))?;
    copy_window_size(libc::STDOUT_FILENO, master.as_raw_fd());

    let terminal = |what| slave.try_clone().map(Stdio::from).map_err(failed(what));
    command.stdout(terminal("share the pseudo-terminal")?);
    if stdin_is_terminal {
        command.stdin(terminal("share the pseudo-terminal")?);
    }
    command.stderr(if stderr_is_terminal {
        terminal("share the pseudo-terminal")?
    } else {
        Stdio::piped()
    });
    // SAFETY: setsid and ioctl are async-signal-safe, as code between fork
    // and exec must be. std has already made the terminal our stdout.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(libc::STDOUT_FILENO, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }

    // The command has a terminal of its own, so signals our terminal raises
    // no longer reach it: forward those too.
    signals::install(true).map_err(failed("handle signals"))?;
    let window = signals::window_changes().map_err(failed("watch the window size"))?;
    // Raw mode before the command starts, so that a failure leaves no
    // command behind; the guard restores the terminal on every way out.
    let raw = if stdin_is_terminal {
        Some(RawMode::enter(libc::STDIN_FILENO).map_err(failed("put the terminal in raw mode"))?)
    } else {
        None
    };
    let mut child = command
        .spawn()
        .map_err(crate::process::spawn_error(program))?;
    // Only the command may keep the terminal open: its end of file, when the
    // command and all it started are done, is how we know to stop.
    drop(command);
    drop(slave);
    signals::forward_to(child.id());

    let stderr = child.stderr.take().map(|stderr| {
        let masker = masker(values, false);
        std::thread::spawn(move || copy(stderr, crate::secret::stderr(), masker))
    });
    let copied = relay(&master, &window, stdin_is_terminal, values);
    drop(raw);
    if let Some(thread) = stderr {
        let _ = thread.join();
    }
    let status = child.wait();
    signals::forget_child();
    copied.map_err(failed("copy the command's output"))?;
    status.map_err(failed("wait for the command"))
}

/// Copies the command's terminal output, masked, to our stdout, and our
/// stdin (when `forward_input`) to the command's terminal, until that
/// terminal reports end of file.
fn relay(
    master: &OwnedFd,
    window: &OwnedFd,
    forward_input: bool,
    values: &[(String, Secret)],
) -> io::Result<()> {
    let mut masker = masker(values, true);
    let mut buffer = Zeroizing::new(vec![0u8; READ_SIZE]);
    // What was typed may be a password the command asks for: its buffer
    // has room for all that may wait, so it never grows (and never leaves
    // a copy behind).
    let mut typed = Zeroizing::new(Vec::with_capacity(MAX_PENDING_INPUT));
    let mut stdin_open = forward_input;
    let mut stdout = Output::new(crate::secret::stdout());
    loop {
        let mut master_events = libc::POLLIN;
        if !typed.is_empty() {
            master_events |= libc::POLLOUT;
        }
        let mut fds = vec![
            poll_fd(master.as_raw_fd(), master_events),
            poll_fd(window.as_raw_fd(), libc::POLLIN),
        ];
        let read_stdin = stdin_open && typed.len() < MAX_PENDING_INPUT;
        if read_stdin {
            fds.push(poll_fd(libc::STDIN_FILENO, libc::POLLIN));
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if ready < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let any = libc::POLLIN | libc::POLLHUP | libc::POLLERR;
        if fds[1].revents & libc::POLLIN != 0 {
            let mut drain = [0u8; 64];
            while read(window.as_raw_fd(), &mut drain).is_ok_and(|n| n > 0) {}
            copy_window_size(libc::STDOUT_FILENO, master.as_raw_fd());
        }
        if read_stdin && fds[2].revents & any != 0 {
            let room = MAX_PENDING_INPUT - typed.len();
            match read(libc::STDIN_FILENO, &mut buffer[..room.min(READ_SIZE)]) {
                Ok(0) => stdin_open = false,
                Ok(n) => typed.extend_from_slice(&buffer[..n]),
                Err(err) if retry(&err) => {}
                Err(_) => stdin_open = false,
            }
        }
        if fds[0].revents & libc::POLLOUT != 0 {
            match write(master.as_raw_fd(), &typed) {
                Ok(n) => {
                    typed.drain(..n);
                }
                Err(err) if retry(&err) => {}
                // The command's terminal is gone; what was typed has nowhere to go.
                Err(_) => typed.clear(),
            }
        }
        if fds[0].revents & any != 0 {
            match read(master.as_raw_fd(), &mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    // Our stdout gone: keep reading, so the command is not
                    // stuck on a full terminal, but show nothing.
                    let _ = masker
                        .feed(&buffer[..n], &mut stdout)
                        .and_then(|()| stdout.flush());
                }
                Err(err) if retry(&err) => {}
                // Linux says EIO once every holder of the other end closed it.
                Err(_) => break,
            }
        }
    }
    let _ = masker.finish(&mut stdout).and_then(|()| stdout.flush());
    Ok(())
}

fn retry(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

fn poll_fd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

fn read(fd: RawFd, buffer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buffer` is valid for writes of its length.
    let n = unsafe { libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

fn write(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is valid for reads of its length.
    let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

fn termios(fd: RawFd) -> io::Result<libc::termios> {
    // SAFETY: a zeroed termios is a valid buffer for tcgetattr to fill.
    let mut settings: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `settings` is a valid termios.
    if unsafe { libc::tcgetattr(fd, &mut settings) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(settings)
}

/// A new pseudo-terminal with our terminal's settings: (master, slave).
/// The master is non-blocking; both close on exec (the command gets the
/// slave as its stdio, which std duplicates without that flag).
fn open(settings: &libc::termios) -> io::Result<(OwnedFd, OwnedFd)> {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: the out-pointers are valid; a null name and window size are allowed.
    let status = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            settings as *const libc::termios as *mut libc::termios,
            std::ptr::null_mut(),
        )
    };
    if status != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openpty just returned these two descriptors, owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    signals::set_close_on_exec(master.as_raw_fd())?;
    signals::set_close_on_exec(slave.as_raw_fd())?;
    signals::set_nonblocking(master.as_raw_fd())?;
    Ok((master, slave))
}

/// Gives the terminal `to` the window size of `from`, if `from` has one.
fn copy_window_size(from: RawFd, to: RawFd) {
    // SAFETY: TIOCGWINSZ and TIOCSWINSZ read and write one winsize.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(from, libc::TIOCGWINSZ as _, &mut size) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ as _, &size);
        }
    }
}

/// Our terminal in raw mode until dropped, when its settings are put back,
/// whether the command succeeded, failed or we are unwinding from a panic.
struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    fn enter(fd: RawFd) -> io::Result<Self> {
        let saved = termios(fd)?;
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: as above.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: putting back the settings read in `enter`.
        unsafe {
            libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.saved);
        }
    }
}
