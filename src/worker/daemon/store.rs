//! The store of files kept forever (cache level FOREVER), shared by one user's
//! workers in one work directory and left in place when they exit.

use std::path::{Path, PathBuf};

use crate::protocol::{self};

/// Creates or opens the store of files kept forever. A directory that another user
/// owns or could write to is not used (it could hold anything under a name), nor
/// one that cannot be made: the worker then keeps such files for its life only.
pub(super) fn open_store(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let made = std::fs::DirBuilder::new().mode(0o700).create(path);
    if let Err(e) = made {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            super::log::notice(&format!(
                "no store of files kept forever at {}: {e}",
                path.display()
            ));
            return None;
        }
    }
    // SAFETY: geteuid takes nothing and cannot fail.
    let uid = unsafe { libc::geteuid() };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() && m.uid() == uid && m.mode() & 0o022 == 0 => Some(path.to_owned()),
        _ => {
            super::log::notice(&format!(
                "not using {} for files kept forever: not a directory of \
                 this user's that only it can write",
                path.display()
            ));
            None
        }
    }
}

/// The names of the files in a store of files kept forever.
pub(super) fn stored_names(store: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(store) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| protocol::is_content_name(n))
        .collect()
}

/// What identifies one version of a file on disk: any write changes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp(u64, u64, u64, i64, i64, i64, i64);

pub(super) fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())?;
    Some(Stamp(
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

#[cfg(test)]
mod test {
    use super::*;
    #[test]
    fn a_store_others_can_write_to_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::files::fresh_dir(&std::env::temp_dir(), "vine-store-test").unwrap();
        let mine = dir.join("mine");
        assert_eq!(open_store(&mine), Some(mine.clone()));
        assert_eq!(open_store(&mine), Some(mine.clone()), "opened again");
        let shared = dir.join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(open_store(&shared), None);
        let file = dir.join("file");
        std::fs::write(&file, b"").unwrap();
        assert_eq!(open_store(&file), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
