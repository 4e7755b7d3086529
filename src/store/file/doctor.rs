//! The file store's section of `doctor`.

use super::FileStore;
use crate::store::Settings;

/// For `doctor`: where the file store is and whether it exists, and on
/// Linux how it is unlocked; each as (label, text). Nothing when its
/// folder is unknown.
pub(crate) fn report(settings: &Settings) -> Vec<(&'static str, String)> {
    let Some(file) = FileStore::default_path() else {
        return Vec::new();
    };
    let state = if file.exists() {
        "exists"
    } else {
        "not created yet"
    };
    let place = ("file store:", format!("{} ({state})", file.display()));
    #[cfg(target_os = "linux")]
    let unlock = FileStore::open(settings)
        .ok()
        .and_then(|store| store.unlock_state())
        .map(|state| ("unlock:", state));
    #[cfg(not(target_os = "linux"))]
    let unlock = {
        let _ = settings;
        None
    };
    std::iter::once(place).chain(unlock).collect()
}
