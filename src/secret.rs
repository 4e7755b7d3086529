//! `Secret`: a value from a store, which never prints and is wiped when dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A secret value as the store holds it: bytes, usually UTF-8.
///
/// `Debug` and `Display` print `***`, so a value can't reach a log or an error
/// message by accident, and the buffer is zeroed when the `Secret` is dropped.
///
/// The unit tests below prove the wipe rather than trust it: a test-only
/// global allocator (it exists in the unit-test binary alone, never in
/// with-secrets itself) looks at a `Secret`'s heap block at the moment it is
/// handed back, while it is still allocated, so nothing reads freed memory.
/// What this type cannot wipe, and why that is accepted: the copy that
/// `Command::env` makes for the child, which exec replaces with the child's
/// own image (on exec failure the process exits right after); buffers inside
/// libdbus and the kernel's pipe and socket buffers; serde_json's scratch
/// buffer for strings with escapes (see `store/file.rs`). A `Vec` that grows
/// while a value is read into it leaves its old blocks unwiped, so code that
/// builds a value should size its buffer first or wipe as it grows.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, still wiped when dropped.
    pub(crate) fn into_bytes(self) -> Zeroizing<Vec<u8>> {
        self.0
    }

    #[cfg_attr(
        not(target_os = "linux"),
        allow(dead_code, reason = "only the kernel keyring uses it")
    )]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self::new(value.as_bytes().to_vec())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Standard output or standard error, written straight to its file
/// descriptor: std's `Stdout` keeps a line buffer that is never wiped (nor
/// freed), so a value printed through it would stay in our memory.
#[cfg(unix)]
pub(crate) struct Unbuffered(std::os::fd::RawFd);

#[cfg(unix)]
pub(crate) fn stdout() -> Unbuffered {
    Unbuffered(libc::STDOUT_FILENO)
}

#[cfg(unix)]
pub(crate) fn stderr() -> Unbuffered {
    Unbuffered(libc::STDERR_FILENO)
}

#[cfg(unix)]
impl std::io::Write for Unbuffered {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        // SAFETY: `bytes` is valid for reads of its length.
        let n = unsafe { libc::write(self.0, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(n) {
            Ok(n) => Ok(n),
            // A closed descriptor swallows everything, as it does for std's Stdout.
            Err(_) if std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF) => {
                Ok(bytes.len())
            }
            Err(_) => Err(std::io::Error::last_os_error()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Standard input, read straight from its file descriptor: std's `Stdin`
/// reads ahead into a buffer of its own that lives, unwiped, as long as the
/// process, so a value piped to `set` would stay there.
#[cfg(unix)]
pub(crate) fn stdin() -> Unbuffered {
    Unbuffered(libc::STDIN_FILENO)
}

#[cfg(unix)]
impl std::io::Read for Unbuffered {
    fn read(&mut self, bytes: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: `bytes` is valid for writes of its length.
        let n = unsafe { libc::read(self.0, bytes.as_mut_ptr().cast(), bytes.len()) };
        usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
pub(crate) fn stdin() -> std::io::Stdin {
    std::io::stdin()
}

/// Elsewhere std's own handles; Windows' console writes go through a
/// buffer of std's either way.
#[cfg(not(unix))]
pub(crate) fn stdout() -> std::io::Stdout {
    std::io::stdout()
}

#[cfg(not(unix))]
pub(crate) fn stderr() -> std::io::Stderr {
    std::io::stderr()
}

/// The unit-test binary's allocator (with-secrets itself uses the system
/// allocator directly), which looks at blocks on their way out, while they
/// are still allocated, so nothing reads freed memory.
///
/// Two looks: [`look_at`] says what one block held when it was freed, and
/// [`unwiped_copies`] counts the blocks freed while holding some bytes, such
/// as a value, wherever those blocks came from. For the second, every block
/// starts zeroed (so every byte of it was written before it is read), and a
/// reallocation always moves: the old block is looked at and freed, as the
/// system allocator may do, and which is how a growing buffer leaves copies.
#[cfg(test)]
pub(crate) mod watch {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

    /// The address of the watched block; 0 (never a block) for none.
    static WATCHED: AtomicUsize = AtomicUsize::new(0);
    static OUTCOME: AtomicU8 = AtomicU8::new(NOT_FREED);
    /// The bytes to look for in every freed block, while `SEEKING`.
    static NEEDLE: AtomicUsize = AtomicUsize::new(0);
    static NEEDLE_LEN: AtomicUsize = AtomicUsize::new(0);
    static SEEKING: AtomicBool = AtomicBool::new(false);
    static FOUND: AtomicUsize = AtomicUsize::new(0);
    /// One watch at a time: tests run in parallel threads.
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    const NOT_FREED: u8 = 0;
    const ZEROED: u8 = 1;
    const NOT_ZEROED: u8 = 2;
    const MOVED: u8 = 3;

    #[derive(Debug, PartialEq, Eq)]
    pub(crate) enum Outcome {
        NotFreed,
        Zeroed,
        NotZeroed,
        /// Reallocated: the old block was copied and freed without a look.
        Moved,
    }

    /// The system allocator, with a look at blocks on their way out.
    pub(crate) struct Watching;

    impl Watching {
        /// Looks at a block that is about to be freed.
        ///
        /// # Safety
        /// `ptr` is a live block of `size` bytes from this allocator.
        unsafe fn look(&self, ptr: *mut u8, size: usize) {
            let watched =
                WATCHED.compare_exchange(ptr as usize, 0, Ordering::AcqRel, Ordering::Relaxed);
            let seeking = SEEKING.load(Ordering::Acquire);
            if watched.is_err() && !seeking {
                return;
            }
            // SAFETY: the block is live, and every byte of it was written:
            // by `alloc_zeroed` at the start, then by its owner.
            let bytes = unsafe { std::slice::from_raw_parts(ptr, size) };
            if watched.is_ok() {
                let zeroed = bytes.iter().all(|&byte| byte == 0);
                OUTCOME.store(if zeroed { ZEROED } else { NOT_ZEROED }, Ordering::SeqCst);
            }
            if seeking {
                let len = NEEDLE_LEN.load(Ordering::Acquire);
                // SAFETY: `unwiped_copies` set a 'static slice of `len` bytes.
                let needle = unsafe {
                    std::slice::from_raw_parts(NEEDLE.load(Ordering::Acquire) as *const u8, len)
                };
                if len > 0 && bytes.windows(len).any(|window| window == needle) {
                    FOUND.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    // SAFETY: every block comes from `System` with the caller's layout, and
    // goes back to it with that layout.
    unsafe impl GlobalAlloc for Watching {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: our caller's promise (a layout of non-zero size) is
            // the one `alloc_zeroed` asks for.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            // SAFETY: as in `alloc`: the caller's layout, passed on.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller promises `ptr` is a live block of ours with
            // `layout`; every block of ours came from `System` with the
            // caller's layout, so `look` may read its `layout.size()`
            // bytes, and `System` takes it back with that layout.
            unsafe {
                self.look(ptr, layout.size());
                System.dealloc(ptr, layout)
            }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let watched =
                WATCHED.compare_exchange(ptr as usize, 0, Ordering::AcqRel, Ordering::Relaxed);
            if watched.is_ok() {
                OUTCOME.store(MOVED, Ordering::SeqCst);
            }
            // SAFETY: the caller guarantees `new_size`, with the old
            // alignment, is a valid layout.
            let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
            // SAFETY: `new_layout` is valid (above) and of non-zero size,
            // as the caller promises `new_size` is.
            let new = unsafe { System.alloc_zeroed(new_layout) };
            if !new.is_null() {
                // SAFETY: `ptr` is a live block of ours of `layout.size()`
                // bytes (the caller's promise) and `new` a fresh one of
                // `new_size`, so they do not overlap and both hold the bytes
                // copied; then `ptr` is looked at and freed as in `dealloc`.
                unsafe {
                    std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                    self.look(ptr, layout.size());
                    System.dealloc(ptr, layout);
                }
            }
            new
        }
    }

    /// Where a buffer's heap block is: only its address and sizes, so no
    /// reference to it is alive while it is wiped and freed.
    pub(crate) struct Block {
        address: usize,
        len: usize,
        capacity: usize,
    }

    pub(crate) fn block(bytes: &[u8], capacity: usize) -> Block {
        Block {
            address: bytes.as_ptr() as usize,
            len: bytes.len(),
            capacity,
        }
    }

    /// Watches `block`, which must be fully initialized (`len ==
    /// capacity`), while `drop` runs, and says what it held when freed.
    pub(crate) fn look_at(block: Block, free: impl FnOnce()) -> Outcome {
        assert_eq!(
            block.len, block.capacity,
            "every byte of the block must be initialized"
        );
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        OUTCOME.store(NOT_FREED, Ordering::SeqCst);
        WATCHED.store(block.address, Ordering::SeqCst);
        free();
        WATCHED.store(0, Ordering::SeqCst);
        match OUTCOME.load(Ordering::SeqCst) {
            NOT_FREED => Outcome::NotFreed,
            ZEROED => Outcome::Zeroed,
            NOT_ZEROED => Outcome::NotZeroed,
            _ => Outcome::Moved,
        }
    }

    /// Runs `run` and counts the heap blocks freed (or moved) meanwhile,
    /// by any thread, that still held `needle`: each is an unwiped copy.
    /// `needle` must be unique to the calling test.
    pub(crate) fn unwiped_copies(needle: &'static [u8], run: impl FnOnce()) -> usize {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        FOUND.store(0, Ordering::SeqCst);
        NEEDLE.store(needle.as_ptr() as usize, Ordering::SeqCst);
        NEEDLE_LEN.store(needle.len(), Ordering::SeqCst);
        SEEKING.store(true, Ordering::SeqCst);
        run();
        SEEKING.store(false, Ordering::SeqCst);
        FOUND.load(Ordering::SeqCst)
    }

    #[global_allocator]
    static ALLOCATOR: Watching = Watching;
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::watch::{Outcome, block, look_at, unwiped_copies};

    const CANARY: &[u8] = b"canary-4e1d7b secret value";

    fn secret() -> Secret {
        let bytes = CANARY.to_vec();
        assert_eq!(bytes.len(), bytes.capacity());
        Secret::new(bytes)
    }

    #[test]
    fn a_dropped_secret_is_zeroed_before_its_memory_is_freed() {
        let secret = secret();
        let watched = block(secret.expose(), secret.0.capacity());
        assert_eq!(look_at(watched, move || drop(secret)), Outcome::Zeroed);
    }

    #[test]
    fn a_clone_and_the_bytes_taken_out_are_zeroed_too() {
        let original = secret();
        let clone = original.clone();
        let watched = block(clone.expose(), clone.0.capacity());
        assert_eq!(look_at(watched, move || drop(clone)), Outcome::Zeroed);
        let taken = original.into_bytes();
        let watched = block(&taken, taken.capacity());
        assert_eq!(look_at(watched, move || drop(taken)), Outcome::Zeroed);
    }

    #[test]
    fn the_watch_sees_a_plain_vec_freed_with_its_bytes() {
        // Without this, a watch that never fired would let the tests above pass.
        let plain = std::hint::black_box(CANARY.to_vec());
        let watched = block(&plain, plain.capacity());
        let outcome = look_at(watched, move || drop(std::hint::black_box(plain)));
        assert_eq!(outcome, Outcome::NotZeroed);
    }

    const GROWN: &[u8] = b"canary-9a3c0e grown value";

    #[test]
    fn the_seek_counts_the_copy_a_growing_vec_leaves_and_none_of_a_secret() {
        // Without this, a seek that never fired would let the tests that
        // use it pass.
        let found = unwiped_copies(GROWN, || {
            let mut grown = std::hint::black_box(Vec::with_capacity(GROWN.len()));
            grown.extend_from_slice(GROWN);
            // No room: the block moves, and the old one still holds the value.
            grown.extend_from_slice(b" and more");
            zeroize::Zeroize::zeroize(&mut grown);
        });
        assert_eq!(found, 1);
        let found = unwiped_copies(GROWN, || drop(Secret::new(GROWN.to_vec())));
        assert_eq!(found, 0);
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        assert_eq!(secret.expose(), b"hunter2");
    }
}

/// Makes room in `buffer` for `additional` more bytes. Where it must grow,
/// it is moved to a larger one (at least twice its size) by hand, so that
/// the smaller copy is wiped as it drops: a `Vec` growing by itself frees it
/// unwiped.
pub(crate) fn reserve_wiped(buffer: &mut Zeroizing<Vec<u8>>, additional: usize) {
    let needed = buffer.len() + additional;
    if needed > buffer.capacity() {
        let mut bigger = Zeroizing::new(Vec::with_capacity(needed.max(2 * buffer.capacity())));
        bigger.extend_from_slice(buffer);
        *buffer = bigger;
    }
}

/// Appends `bytes` to `buffer`, growing it as [`reserve_wiped`] does.
pub(crate) fn append_wiped(buffer: &mut Zeroizing<Vec<u8>>, bytes: &[u8]) {
    reserve_wiped(buffer, bytes.len());
    buffer.extend_from_slice(bytes);
}
