//! Finding the manifest: named, or the nearest `secrets.toml` upward, and
//! refusing one found that way that belongs to someone else.

use std::path::{Path, PathBuf};

use super::Error;
use super::FILE_NAME;

/// Where the manifest is, and what named it: `--manifest` or
/// `WITH_SECRETS_MANIFEST`, or nothing when it was found by walking up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) path: PathBuf,
    pub(crate) named_by: Option<&'static str>,
}

/// Finds the manifest: an explicit path and what gave it (`--manifest` or
/// `WITH_SECRETS_MANIFEST`), else the nearest `secrets.toml` from `cwd` upward.
pub(crate) fn locate(
    explicit: Option<(&Path, &'static str)>,
    cwd: &Path,
) -> Result<Located, Error> {
    if let Some((path, named_by)) = explicit {
        return Ok(Located {
            path: path.to_owned(),
            named_by: Some(named_by),
        });
    }
    let mut searched = Vec::new();
    for dir in cwd.ancestors() {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Ok(Located {
                path: candidate,
                named_by: None,
            });
        }
        searched.push(dir.to_owned());
    }
    Err(Error::ManifestNotFound {
        file: FILE_NAME,
        searched,
    })
}

/// Refuses a manifest found by walking up that belongs to another user.
///
/// The walk crosses folders other people may write to: a shared `/tmp`, a
/// group project folder, a mounted volume. A `secrets.toml` someone else
/// planted above your checkout would choose which keyring items your
/// commands receive, and under which names. git refuses repositories owned
/// by others for the same reason since CVE-2022-24765. Yours and root's are
/// used; anyone else's only when named with `-m`, which says you mean it.
///
/// The owner is read from `file`, the one already open for reading, so the
/// path cannot be swapped between check and read. A symbolic link there
/// must be yours or root's too: its owner chose where it points.
#[cfg(unix)]
pub(super) fn refuse_foreign(path: &Path, file: &std::fs::File) -> Result<(), Error> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let foreign = |owner: u32| owner != me && owner != 0;
    let link = std::fs::symlink_metadata(path)
        .ok()
        .filter(|meta| meta.file_type().is_symlink());
    let owners = [
        link.map(|meta| meta.uid()),
        file.metadata().ok().map(|meta| meta.uid()),
    ];
    match owners.into_iter().flatten().find(|&owner| foreign(owner)) {
        Some(owner) => Err(Error::ManifestNotOwned {
            path: path.to_owned(),
            owner,
        }),
        None => Ok(()),
    }
}

#[cfg(not(unix))]
pub(super) fn refuse_foreign(_path: &Path, _file: &std::fs::File) -> Result<(), Error> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_walks_up_and_lists_where_it_looked() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(dir.path().join("a").join(FILE_NAME), "").unwrap();
        assert_eq!(
            locate(None, &nested).unwrap().path,
            dir.path().join("a").join(FILE_NAME)
        );
        let empty = tempfile::tempdir().unwrap();
        match locate(None, empty.path()) {
            Err(Error::ManifestNotFound {
                file: FILE_NAME,
                searched,
            }) => {
                assert_eq!(searched[0], empty.path());
                assert_eq!(searched.last().unwrap(), Path::new("/"));
            }
            other => panic!("{other:?}"),
        }
    }
}
