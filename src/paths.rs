//! Where files live: the user's data folder, as the XDG spec and each
//! platform's conventions place it.

use std::path::PathBuf;

/// A variable that names a folder, if set and not empty.
fn folder(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// Where with-secrets keeps its own data: `$XDG_DATA_HOME` wherever it is
/// set, else the platform's place for it.
pub(crate) fn data_home() -> Option<PathBuf> {
    // The XDG spec says to ignore a relative XDG_DATA_HOME.
    if let Some(data) = folder("XDG_DATA_HOME").filter(|path| path.is_absolute()) {
        return Some(data);
    }
    if cfg!(windows) {
        return folder("LOCALAPPDATA");
    }
    let home = folder("HOME")?;
    if cfg!(target_os = "macos") {
        return Some(home.join("Library/Application Support"));
    }
    Some(home.join(".local/share"))
}

/// Where Python's keyring keeps its data (and so keyrings.alt its files):
/// `keyring.util.platform_.data_root()`, less the folder name. Its rule is
/// its own, and what it wrote is where it wrote it: `$XDG_DATA_HOME` even
/// when relative, else `~/.local/share`.
pub(crate) fn python_keyring_home() -> Option<PathBuf> {
    if cfg!(windows) {
        return folder("LOCALAPPDATA").or_else(|| folder("ProgramData"));
    }
    folder("XDG_DATA_HOME").or_else(|| folder("HOME").map(|home| home.join(".local/share")))
}
