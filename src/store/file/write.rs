//! The atomic write of the store file: the whole new file goes to a private
//! temporary file beside it, is synced, and is renamed over the store file,
//! then the folder is synced; and the temporary files of writers that died.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::FileStore;
use crate::store::StoreError;

/// Temporary files are `.secrets.age.<random>.tmp`; a writer that died can
/// leave one behind, which the next writer removes.
const TEMP_PREFIX: &str = ".secrets.age.";
const TEMP_SUFFIX: &str = ".tmp";

impl FileStore {
    /// Temporary files of writers that died before their rename. Only a
    /// lock holder writes one, so while we hold the lock, any are leftovers.
    pub(super) fn remove_leftovers(&self) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Puts `file` in place of the store file in one atomic step.
    pub(super) fn replace(&self, file: &[u8]) -> Result<(), StoreError> {
        let mut name = [0u8; 8];
        getrandom::getrandom(&mut name).map_err(|err| self.write_error(&self.dir, err))?;
        let name = crate::store::escape::hex(&name);
        let temp = self.dir.join(format!("{TEMP_PREFIX}{name}{TEMP_SUFFIX}"));
        let written = private_options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .and_then(|mut out| {
                out.write_all(file)?;
                out.sync_all()
            });
        if let Err(err) = written {
            let _ = fs::remove_file(&temp);
            return Err(self.write_error(&temp, err));
        }
        failpoint("file-before-rename");
        if let Err(err) = fs::rename(&temp, &self.path) {
            let _ = fs::remove_file(&temp);
            return Err(self.write_error(&self.path, err));
        }
        // The rename itself is only durable once the folder is synced.
        sync_dir(&self.dir).map_err(|err| self.write_error(&self.dir, err))
    }
}

/// Makes `dir` and any missing parents, readable by its owner only (the XDG
/// spec asks 0700 for data folders that did not exist).
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Options for a file only its owner may read and write.
#[cfg(unix)]
pub(crate) fn private_options() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}

/// On Windows, files in a user's %LOCALAPPDATA% are already the user's only.
#[cfg(not(unix))]
pub(crate) fn private_options() -> OpenOptions {
    OpenOptions::new()
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Windows cannot open a folder as a file; NTFS journals the rename.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// A test hook, in debug builds only: with `WITH_SECRETS_FAILPOINT` set to
/// `name`, the process stops itself (SIGSTOP) at that point, so a test can
/// SIGKILL it there, as a crash would. `file-before-rename` is after the new
/// file is written and synced and before it replaces the store file.
/// Release builds contain neither the check nor the variable's name.
#[cfg(all(debug_assertions, unix))]
fn failpoint(name: &str) {
    if std::env::var_os("WITH_SECRETS_FAILPOINT").is_some_and(|value| value == name) {
        // SAFETY: raise only sends a signal to this process.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
}

#[cfg(not(all(debug_assertions, unix)))]
fn failpoint(_name: &str) {}
