//! Signals for `--mask`, which runs the command as a child: SIGINT, SIGTERM,
//! SIGHUP and SIGQUIT sent to us are passed on to it, SIGWINCH wakes the
//! pseudo-terminal loop through a pipe so it can pass the new window size
//! on, and a death of the command by a signal becomes ours (`die_by`).
//!
//! A handler may only do what is async-signal-safe, so it uses nothing but
//! atomics, `kill` and `write`.
//!
//! It sits at the bottom beside `term`, whose passphrase prompt uses it too
//! (to put the terminal back and die by the signal that interrupted it), so
//! it knows nothing of the command runner in `process`.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The child to forward to; 0 before it exists and after it is reaped.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// A signal that came before the child existed, to forward once it does.
static PENDING: AtomicI32 = AtomicI32::new(0);
/// Whether to forward a signal the kernel raised (e.g. Ctrl+C on our
/// terminal), which in pipe mode already reached the command, as it shares
/// our process group.
static FORWARD_KERNEL: AtomicBool = AtomicBool::new(true);
/// The write end of the SIGWINCH pipe, or -1.
static WINCH: AtomicI32 = AtomicI32::new(-1);

const FORWARDED: [libc::c_int; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

/// Catches SIGINT, SIGTERM, SIGHUP and SIGQUIT from now on, to forward them
/// to the child. `from_kernel`: forward those the kernel raised too, as when
/// the child has a terminal of its own and so does not get them itself.
///
/// A signal we were started ignoring stays ignored, by us and so by the
/// command, which inherits that (a caught signal would be reset to its
/// default action in the command instead): under nohup, or in the
/// background of a shell without job control, the command must not die by
/// a SIGHUP or SIGINT that the caller meant to shield it from.
pub(crate) fn install(from_kernel: bool) -> io::Result<()> {
    FORWARD_KERNEL.store(from_kernel, Ordering::Relaxed);
    for signal in FORWARDED {
        if !ignored(signal)? {
            handle(signal, forward as *const () as libc::sighandler_t)?;
        }
    }
    Ok(())
}

/// Takes `signal`'s default action now. After `--mask`'s command died by
/// it, this ends us the same way, so that our caller sees what it would
/// have seen had the command run in our place: a shell breaks out of its
/// loop when a job dies by SIGINT, but not when one exits 130. No core is
/// dumped for SIGQUIT or SIGABRT, as `main` made us non-dumpable. Returns
/// only if `signal` does not end a process: once a stop (SIGTSTP) is
/// continued, or when its action is to be ignored.
pub(crate) fn die_by(signal: libc::c_int) {
    // SAFETY: plain calls on valid, zero-initialized values; SIG_DFL is a
    // valid disposition for any signal (sigaction refuses SIGKILL and
    // SIGSTOP, which need none).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(signal, &action, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
}

/// Whether `signal` is ignored.
pub(crate) fn ignored(signal: libc::c_int) -> io::Result<bool> {
    // SAFETY: a zeroed sigaction is a valid buffer for sigaction to fill.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only reads the current one.
    if unsafe { libc::sigaction(signal, std::ptr::null(), &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(current.sa_sigaction == libc::SIG_IGN)
}

/// Forwards from now on to `pid`, including a signal that came before it.
pub(crate) fn forward_to(pid: u32) {
    let pid = libc::pid_t::try_from(pid).unwrap_or(0);
    CHILD.store(pid, Ordering::SeqCst);
    let pending = PENDING.swap(0, Ordering::SeqCst);
    if pending != 0 && pid > 0 {
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(pid, pending);
        }
    }
}

/// Stops forwarding: the child is reaped and its PID may be reused.
pub(crate) fn forget_child() {
    CHILD.store(0, Ordering::SeqCst);
}

/// A pipe that becomes readable whenever SIGWINCH arrives; returns its read
/// end. Both ends are non-blocking and close on exec.
pub(crate) fn window_changes() -> io::Result<OwnedFd> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe just returned these two descriptors, owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [fds[0], fds[1]] {
        set_nonblocking(fd)?;
        set_close_on_exec(fd)?;
    }
    // The handler owns the write end for the rest of the process's life.
    let write = std::os::fd::IntoRawFd::into_raw_fd(write);
    let old = WINCH.swap(write, Ordering::SeqCst);
    if old >= 0 {
        // SAFETY: `old` was ours, from an earlier call; nothing else uses it.
        unsafe {
            libc::close(old);
        }
    }
    handle(
        libc::SIGWINCH,
        window_changed as *const () as libc::sighandler_t,
    )?;
    Ok(read)
}

pub(crate) fn set_close_on_exec(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

pub(crate) fn set_nonblocking(fd: std::os::fd::RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn handle(signal: libc::c_int, handler: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is a valid value to fill in; the handler
    // has the SA_SIGINFO signature and only does async-signal-safe things.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

extern "C" fn forward(
    signal: libc::c_int,
    info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    if from_kernel(info) && !FORWARD_KERNEL.load(Ordering::Relaxed) {
        return;
    }
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        keeping_errno(|| unsafe {
            libc::kill(pid, signal);
        });
    } else {
        PENDING.store(signal, Ordering::SeqCst);
    }
}

/// Whether the kernel raised the signal (a terminal's Ctrl+C or hangup)
/// rather than a process with kill(2). Only Linux says so; elsewhere every
/// signal counts as sent.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn from_kernel(info: *mut libc::siginfo_t) -> bool {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t.
    !info.is_null() && unsafe { (*info).si_code } == libc::SI_KERNEL
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn from_kernel(_info: *mut libc::siginfo_t) -> bool {
    false
}

extern "C" fn window_changed(
    _signal: libc::c_int,
    _info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    let fd = WINCH.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write is async-signal-safe. A full pipe (EAGAIN) already
        // says "the size changed", so the result does not matter.
        keeping_errno(|| unsafe {
            libc::write(fd, b"w".as_ptr().cast(), 1);
        });
    }
}

/// Runs `call` in a signal handler without disturbing the errno of the code
/// the signal interrupted.
pub(crate) fn keeping_errno(call: impl FnOnce()) {
    let location = errno_location();
    // SAFETY: the location, when known, is this thread's errno.
    let saved = location.map(|errno| unsafe { *errno });
    call();
    if let (Some(errno), Some(saved)) = (location, saved) {
        // SAFETY: as above.
        unsafe { *errno = saved };
    }
}

fn errno_location() -> Option<*mut libc::c_int> {
    // SAFETY: each returns this thread's errno, always valid.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return Some(unsafe { libc::__errno_location() });
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    return Some(unsafe { libc::__error() });
    #[cfg(any(target_os = "netbsd", target_os = "openbsd"))]
    return Some(unsafe { libc::__errno() });
    #[allow(
        unreachable_code,
        reason = "reached only on a system none of the returns above is for"
    )]
    None
}
