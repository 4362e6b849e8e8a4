//! A task's private directory: created fresh, inputs placed in it under their
//! remote names, outputs taken from it, removed afterwards whatever happened.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::files::{FileKind, Mount, MOUNT_MKDIR, MOUNT_SYMLINK};
use crate::worker::fetch::Made;

/// A directory that is removed when dropped.
pub struct Sandbox {
    path: PathBuf,
    /// Files the worker keeps that this task uses (see [`crate::worker::fetch`]).
    leases: std::sync::Mutex<Vec<crate::worker::fetch::Lease>>,
}

impl Sandbox {
    /// Creates `root/name` afresh.
    pub fn create(root: &Path, name: &str) -> std::io::Result<Sandbox> {
        let path = root.join(name);
        repair_root(root);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(Sandbox {
            path,
            leases: Default::default(),
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `remote_name` lives inside it (names were validated when added:
    /// relative, without `..`). Refused if a directory on the way is a
    /// symbolic link: one made by the task, or an input linked there, may
    /// point anywhere, and a name through it would place or take a file
    /// outside the sandbox.
    pub fn resolve(&self, remote_name: &str) -> Result<PathBuf, String> {
        resolve_in(&self.path, remote_name)
    }

    /// Where output `remote_name` is, as [`Sandbox::resolve`] finds it. If it
    /// is a symbolic link, what it leads to inside the sandbox is the output
    /// (a link alone would lead elsewhere once moved); one that leads out of
    /// the sandbox (not the task's to deliver) is refused.
    pub fn resolve_output(&self, remote_name: &str) -> Result<PathBuf, String> {
        let at = self.resolve(remote_name)?;
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            let root = std::fs::canonicalize(&self.path)
                .map_err(|e| format!("the sandbox {}: {e}", self.path.display()))?;
            // A link to nothing delivers nothing: it is reported missing.
            let Ok(target) = std::fs::canonicalize(&at) else {
                return Ok(at);
            };
            if !target.starts_with(&root) || target == root {
                return Err(format!(
                    "{remote_name} is a symbolic link that leads out of the sandbox"
                ));
            }
            return Ok(target);
        }
        Ok(at)
    }

    /// Makes the directory of an output attached with `MOUNT_MKDIR`, so the task
    /// finds it there when it starts.
    pub fn prepare_output(&self, mount: &Mount) -> Result<(), String> {
        if mount.flags & MOUNT_MKDIR == 0 {
            return Ok(());
        }
        std::fs::create_dir_all(self.resolve(&mount.remote_name)?)
            .map_err(|e| format!("cannot create output directory {}: {e}", mount.remote_name))
    }

    /// Places one input. Errors are sentences about what is missing.
    pub fn place_input(
        &self,
        mount: &Mount,
        env: &crate::worker::command::CommandEnv,
        stop: &crate::worker::fetch::Stop<'_>,
    ) -> Result<(), String> {
        let target = self.resolve(&mount.remote_name)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        // What an earlier input left at this name (a link inside a directory
        // input, say) is replaced, never written through: a link there may
        // point out of the sandbox.
        let there = std::fs::symlink_metadata(&target);
        let keep_dir = mount.flags & MOUNT_MKDIR != 0 && there.as_ref().is_ok_and(|m| m.is_dir());
        if let (Ok(meta), false) = (there, keep_dir) {
            let removed = if meta.is_dir() {
                std::fs::remove_dir_all(&target)
            } else {
                std::fs::remove_file(&target)
            };
            removed.map_err(|e| format!("cannot replace {}: {e}", mount.remote_name))?;
        }
        if mount.flags & MOUNT_MKDIR != 0 {
            return std::fs::create_dir_all(&target)
                .map_err(|e| format!("cannot create directory {}: {e}", mount.remote_name));
        }
        match mount.file.kind() {
            FileKind::Path(p) => place_path(
                &mount.remote_name,
                p,
                &target,
                mount.flags & MOUNT_SYMLINK != 0,
            ),
            FileKind::Buffer if mount.flags & MOUNT_SYMLINK != 0 => {
                let kept = buffer_on_disk(&mount.file, &env.temp_root)
                    .map_err(|e| format!("cannot write buffer input {}: {e}", mount.remote_name))?;
                place_path(&mount.remote_name, &kept, &target, true)
            }
            FileKind::Buffer => {
                let data = mount.file.contents().unwrap_or_default();
                std::fs::write(&target, &data[..])
                    .map_err(|e| format!("cannot write buffer input {}: {e}", mount.remote_name))
            }
            FileKind::Temp => match mount.file.temp_location() {
                Some(loc) => place_path(
                    &mount.remote_name,
                    &loc,
                    &target,
                    mount.flags & MOUNT_SYMLINK != 0,
                ),
                None => Err(format!(
                    "temp input {} has not been produced by any task",
                    mount.remote_name
                )),
            },
            FileKind::Url(_) | FileKind::MiniTask { .. } => {
                match env.fetcher.get(&mount.file, env, stop)? {
                    Made::Kept(path, lease) => {
                        self.leases
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(lease);
                        place_path(
                            &mount.remote_name,
                            &path,
                            &target,
                            mount.flags & MOUNT_SYMLINK != 0,
                        )
                    }
                    Made::Once(path) => move_file(&path, &target).map_err(|e| {
                        crate::transfer::remove_all(&path);
                        format!("cannot place input {}: {e}", mount.remote_name)
                    }),
                }
            }
        }?;
        // A linked input keeps its source's mode: changing it would change the source.
        match (
            mount.file.delivered_mode(),
            std::fs::symlink_metadata(&target),
        ) {
            (Some(mode), Ok(meta)) if !meta.file_type().is_symlink() => {
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| format!("cannot set the mode of {}: {e}", mount.remote_name))
            }
            _ => Ok(()),
        }
    }
}

/// [`Sandbox::resolve`] in the sandbox at `root`.
pub fn resolve_in(root: &Path, remote_name: &str) -> Result<PathBuf, String> {
    let mut at = root.to_path_buf();
    let mut parts = Path::new(remote_name).components().peekable();
    while let Some(part) = parts.next() {
        at.push(part);
        if parts.peek().is_some()
            && std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(format!(
                "{remote_name} passes through a symbolic link, which may lead out of the sandbox"
            ));
        }
    }
    Ok(at)
}

/// The file under `root` holding buffer `file`'s bytes, written the first
/// time a task links it (`VINE_MOUNT_SYMLINK`), as a remote worker links its
/// cached copy: the sandbox holds a link, not the bytes. Kept until the
/// manager's scratch directory goes, with the buffer's mode.
fn buffer_on_disk(file: &crate::files::File, root: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // Named by its version too: a task's output may have rewritten the buffer
    // since an earlier task linked it.
    let (contents, version) = file.contents_version();
    let kept = root.join(format!("buffer-{}-{version}", file.id()));
    if std::fs::symlink_metadata(&kept).is_ok() {
        return Ok(kept);
    }
    std::fs::create_dir_all(root)?;
    // Written aside and moved into place: a task linking it at the same time
    // finds it whole or not at all.
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let aside = root.join(format!(".buffer-{}-{n}", file.id()));
    let written = std::fs::write(&aside, &contents.unwrap_or_default()[..])
        .and_then(|()| {
            let mode = file.delivered_mode().unwrap_or(0o755);
            std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(mode))
        })
        .and_then(|()| std::fs::rename(&aside, &kept));
    if written.is_err() {
        let _ = std::fs::remove_file(&aside);
    }
    written.map(|()| kept)
}

fn place_path(name: &str, source: &Path, target: &Path, symlink: bool) -> Result<(), String> {
    // Named by its name in the sandbox first: at a remote worker `source` is
    // the worker's own copy, a path the program never gave.
    let meta = std::fs::metadata(source)
        .map_err(|e| format!("input {name} ({}) is missing: {e}", source.display()))?;
    // A FIFO, socket or device is never opened: reading one could hold the
    // task's slot forever. Remote workers refuse them too.
    if let Some(kind) = crate::transfer::special_kind(meta.file_type()) {
        return Err(format!(
            "input {name} ({}) is {kind}, not a regular file or directory",
            source.display()
        ));
    }
    if symlink {
        let abs = std::path::absolute(source)
            .map_err(|e| format!("input {name} ({}): {e}", source.display()))?;
        return std::os::unix::fs::symlink(&abs, target)
            .map_err(|e| format!("cannot link input {name} ({}): {e}", source.display()));
    }
    // A hard link or a symbolic link shares the data without copying, but a
    // task writing to its input would then change the original: copy instead.
    let copied = if meta.is_dir() {
        copy_tree(source, target)
    } else {
        std::fs::copy(source, target).map(|_| ())
    };
    copied
        .and_then(|()| detach(target))
        .map_err(|e| format!("cannot copy input {name} ({}): {e}", source.display()))
}

/// Copies directory `source` to `target`, which must not exist, as a remote
/// worker receives one: directories with their modes, regular files with
/// theirs, symbolic links as links; FIFOs, sockets and devices are left out.
fn copy_tree(source: &Path, target: &Path) -> std::io::Result<()> {
    std::fs::create_dir(target)?;
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        let (from, to) = (entry.path(), target.join(entry.file_name()));
        // Not followed: a link is copied as a link.
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if kind.is_file() {
            std::fs::copy(&from, &to)?;
        }
    }
    // Last, so that a directory without write permission is filled first.
    std::fs::set_permissions(target, std::fs::metadata(source)?.permissions())
}

/// Makes `path` (a file, or a directory and all it holds) what a remote worker
/// would deliver or receive: regular files with no other name, and modes without
/// setuid, setgid or sticky bits. A task could otherwise make an output a hard
/// link to a file outside its sandbox, and the output delivered would be that
/// file, which a later write to either would change. Links are left as links.
/// FIFOs, sockets and devices inside a directory are removed, never opened: a
/// remote worker leaves them out, and a device node a task planted (as root)
/// must not reach the program's output path. `path` itself must not be one
/// (outputs are checked first, see [`crate::transfer::check_output`]).
pub fn detach(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::symlink_metadata(path)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Ok(());
    }
    if kind.is_dir() {
        // One the task made closed to its owner is opened for the walk, then
        // given back its mode (without special bits).
        let mode = meta.mode() & 0o777;
        let opened = mode & 0o700 != 0o700;
        if opened {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | 0o700))?;
        }
        let walked = std::fs::read_dir(path).and_then(|entries| {
            for entry in entries {
                let entry = entry?;
                // Its own type (a link is not followed), taken without opening it.
                let ft = entry.file_type()?;
                if ft.is_fifo() || ft.is_socket() || ft.is_block_device() || ft.is_char_device() {
                    std::fs::remove_file(entry.path())?;
                } else {
                    detach(&entry.path())?;
                }
            }
            Ok(())
        });
        if opened || meta.mode() & 0o7000 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        }
        return walked;
    } else if kind.is_file() && meta.nlink() > 1 {
        let copy = beside(path, "copy")?;
        let copied = std::fs::copy(path, &copy).and_then(|_| std::fs::rename(&copy, path));
        if copied.is_err() {
            let _ = std::fs::remove_file(&copy);
        }
        copied?;
    }
    if meta.mode() & 0o7000 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o777))?;
    }
    Ok(())
}

/// Moves `from` (a file or a directory) to `to`, replacing what is there, a
/// directory with all it holds too; copies when they are on different file
/// systems. What was at `to` stays if the move fails.
pub fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    let is_dir = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir());
    // A rename replaces a file in one step, but not a directory, nor a file
    // by a directory: that is put aside first, and removed once `from` is in
    // its place (or put back).
    let aside = if std::fs::symlink_metadata(to).is_ok() && (is_dir(to) || is_dir(from)) {
        let aside = beside(to, "old")?;
        std::fs::rename(to, &aside)?;
        Some(aside)
    } else {
        None
    };
    let moved = match std::fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => copy_across(from, to),
        moved => moved,
    };
    if let Some(aside) = aside {
        if moved.is_ok() {
            crate::transfer::remove_all(&aside);
        } else {
            let _ = std::fs::rename(&aside, to);
        }
    }
    moved
}

/// [`move_file`] to another file system: copied next to `to` first, so that
/// `to` never holds part of it, then renamed into place.
fn copy_across(from: &Path, to: &Path) -> std::io::Result<()> {
    let staging = beside(to, "new")?;
    let copied = if std::fs::symlink_metadata(from).is_ok_and(|m| m.is_dir()) {
        copy_tree(from, &staging)
    } else {
        std::fs::copy(from, &staging).map(|_| ())
    };
    if let Err(e) = copied.and_then(|()| std::fs::rename(&staging, to)) {
        crate::transfer::remove_all(&staging);
        return Err(e);
    }
    crate::transfer::remove_all(from);
    Ok(())
}

/// A fresh hidden name in `to`'s directory, for what is on its way to or from `to`.
fn beside(to: &Path, what: &str) -> std::io::Result<PathBuf> {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let name = to.file_name().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path without a name")
    })?;
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(to.with_file_name(format!(
        ".{}.vine-{what}-{}-{n}",
        name.to_string_lossy(),
        std::process::id()
    )))
}

/// Gives the directory of the sandboxes back the owner's permissions: a task
/// may have taken them away (it is `$VINE_SANDBOX/..`), and no later sandbox
/// could be made in it, nor this one removed.
fn repair_root(root: &Path) {
    if let Ok(m) = std::fs::symlink_metadata(root) {
        let mode = m.permissions().mode();
        if m.is_dir() && mode & 0o700 != 0o700 {
            let _ = std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode | 0o700));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if let Some(root) = self.path.parent() {
            repair_root(root);
        }
        // Directories without write permission (an input's, or the task's) too.
        crate::transfer::remove_all(&self.path);
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::files::{CacheLevel, File};

    #[test]
    fn an_input_placed_where_a_directory_input_holds_a_link_replaces_the_link() {
        let dir = std::env::temp_dir().join(format!("vine-sandbox-links-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (source, outside) = (dir.join("source"), dir.join("outside"));
        std::fs::create_dir_all(&source).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let canary = outside.join("canary");
        std::fs::write(&canary, "kept").unwrap();
        // A directory input holding links out of the sandbox, to a file and to
        // a name that does not exist yet.
        std::os::unix::fs::symlink(&canary, source.join("lnk")).unwrap();
        std::os::unix::fs::symlink(outside.join("made"), source.join("dangling")).unwrap();
        std::os::unix::fs::symlink(&outside, source.join("dirlink")).unwrap();
        let env = crate::worker::command::CommandEnv {
            sandbox_root: dir.join("sandbox"),
            temp_root: dir.join("temp"),
            max_stdout: std::sync::Arc::new(crate::worker::command::DEFAULT_MAX_STDOUT.into()),
            fetcher: std::sync::Arc::new(crate::worker::fetch::Fetcher::new(dir.join("fetched"))),
            watch: None,
        };
        let sandbox = Sandbox::create(&dir.join("sandbox"), "t").unwrap();
        let tree = File::path(&source, CacheLevel::Task, 0).unwrap();
        sandbox
            .place_input(&Mount::new(tree, "d", 0).unwrap(), &env, &|| None)
            .unwrap();
        let buffer = File::buffer(b"PWNED", CacheLevel::Task, 0).unwrap();
        for name in ["d/lnk", "d/dangling"] {
            let m = Mount::new(buffer.clone(), name, 0).unwrap();
            sandbox.place_input(&m, &env, &|| None).unwrap();
            let placed = sandbox.path().join(name);
            assert!(!std::fs::symlink_metadata(&placed).unwrap().is_symlink());
            assert_eq!(std::fs::read(&placed).unwrap(), b"PWNED");
        }
        let copied = File::path(&canary, CacheLevel::Task, 0).unwrap();
        sandbox
            .place_input(&Mount::new(copied, "d/lnk", 0).unwrap(), &env, &|| None)
            .unwrap();
        // A directory made where a link to one was.
        let mkdir = Mount::new(buffer, "d/dirlink", MOUNT_MKDIR).unwrap();
        sandbox.place_input(&mkdir, &env, &|| None).unwrap();
        assert!(std::fs::symlink_metadata(sandbox.path().join("d/dirlink"))
            .unwrap()
            .is_dir());
        assert_eq!(std::fs::read_to_string(&canary).unwrap(), "kept");
        assert!(!outside.join("made").exists());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1);
        drop(sandbox);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
