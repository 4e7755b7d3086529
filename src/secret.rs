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
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes, still wiped when dropped.
    pub fn into_bytes(self) -> Zeroizing<Vec<u8>> {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Watches one heap block, and records what it held when it was freed.
    mod watch {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::sync::Mutex;
        use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

        /// The address of the watched block; 0 (never a block) for none.
        static WATCHED: AtomicUsize = AtomicUsize::new(0);
        static OUTCOME: AtomicU8 = AtomicU8::new(NOT_FREED);
        /// One watch at a time: tests run in parallel threads.
        static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

        const NOT_FREED: u8 = 0;
        const ZEROED: u8 = 1;
        const NOT_ZEROED: u8 = 2;
        const MOVED: u8 = 3;

        #[derive(Debug, PartialEq, Eq)]
        pub enum Outcome {
            NotFreed,
            Zeroed,
            NotZeroed,
            /// Reallocated: the old block was copied and freed without a look.
            Moved,
        }

        /// The system allocator, with a look at the watched block on its way out.
        pub struct Watching;

        // SAFETY: every call is forwarded to `System` with the same arguments.
        unsafe impl GlobalAlloc for Watching {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                unsafe { System.alloc(layout) }
            }

            unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
                unsafe { System.alloc_zeroed(layout) }
            }

            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                let watched =
                    WATCHED.compare_exchange(ptr as usize, 0, Ordering::AcqRel, Ordering::Relaxed);
                if watched.is_ok() {
                    // SAFETY: the block is still allocated (it is freed on
                    // the next line), `layout` is its size, and `look_at`
                    // only watches blocks whose every byte was initialized.
                    let bytes = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
                    let zeroed = bytes.iter().all(|&byte| byte == 0);
                    OUTCOME.store(if zeroed { ZEROED } else { NOT_ZEROED }, Ordering::SeqCst);
                }
                unsafe { System.dealloc(ptr, layout) }
            }

            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                let watched =
                    WATCHED.compare_exchange(ptr as usize, 0, Ordering::AcqRel, Ordering::Relaxed);
                if watched.is_ok() {
                    OUTCOME.store(MOVED, Ordering::SeqCst);
                }
                unsafe { System.realloc(ptr, layout, new_size) }
            }
        }

        /// Where a buffer's heap block is: only its address and sizes, so no
        /// reference to it is alive while it is wiped and freed.
        pub struct Block {
            address: usize,
            len: usize,
            capacity: usize,
        }

        pub fn block(bytes: &[u8], capacity: usize) -> Block {
            Block {
                address: bytes.as_ptr() as usize,
                len: bytes.len(),
                capacity,
            }
        }

        /// Watches `block`, which must be fully initialized (`len ==
        /// capacity`), while `drop` runs, and says what it held when freed.
        pub fn look_at(block: Block, free: impl FnOnce()) -> Outcome {
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
    }

    // Only in the unit-test binary: with-secrets itself uses the system
    // allocator directly.
    #[global_allocator]
    static ALLOCATOR: watch::Watching = watch::Watching;

    use watch::{Outcome, block, look_at};

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

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::from("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        assert_eq!(secret.expose(), b"hunter2");
    }
}
