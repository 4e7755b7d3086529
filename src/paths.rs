//! Where files live: the user's data folder, as the XDG spec and each
//! platform's conventions place it.

use std::path::PathBuf;

/// A variable that names a folder, if set and not empty.
fn folder(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// `$XDG_DATA_HOME` where it is set to an absolute path (the XDG spec says
/// to ignore a relative one), else `~/.local/share`.
pub(crate) fn xdg_data_home() -> Option<PathBuf> {
    folder("XDG_DATA_HOME")
        .filter(|path| path.is_absolute())
        .or_else(|| folder("HOME").map(|home| home.join(".local/share")))
}

/// Where with-secrets keeps its own data: `$XDG_DATA_HOME` wherever it is
/// set, else the platform's place for it.
pub(crate) fn data_home() -> Option<PathBuf> {
    if let Some(data) = folder("XDG_DATA_HOME").filter(|path| path.is_absolute()) {
        return Some(data);
    }
    if cfg!(windows) {
        return folder("LOCALAPPDATA");
    }
    if cfg!(target_os = "macos") {
        return folder("HOME").map(|home| home.join("Library/Application Support"));
    }
    xdg_data_home()
}

/// Where Python's keyring keeps its data (and so keyrings.alt its files):
/// `keyring.util.platform_.data_root()`, less the folder name.
pub(crate) fn python_keyring_home() -> Option<PathBuf> {
    if cfg!(windows) {
        return folder("LOCALAPPDATA").or_else(|| folder("ProgramData"));
    }
    xdg_data_home()
}
