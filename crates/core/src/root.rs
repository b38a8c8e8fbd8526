//! Where the installation lives.
//!
//! The root is the compile-time constant [`DEFAULT_ROOT`]. `MAILORDER_ROOT` overrides it only
//! when the real and effective ids agree, so a set-id program (`queue`) cannot be
//! pointed at a tree of the caller's choosing.
//!
//! A set-id program uses the tree it is installed in instead: `ROOT/bin/PROG` serves `ROOT`
//! (`make install PREFIX=…` into any place, `make run` as root into `./run`), but only when
//! every directory from `ROOT/bin` up to `/` belongs to root and no one else can rename or
//! replace anything in it (not group- or world-writable, unless sticky like `/tmp`). A copy
//! or link of the program placed anywhere else serves the compiled-in root, as before.

use std::path::PathBuf;

/// The compiled-in root. `make install PREFIX=…` installs here by default.
pub const DEFAULT_ROOT: &str = "/var/mailorder";

/// The root directory for this process, decided at the first call and kept: a long-lived
/// worker asked for it several times per message (each answer cost four `get*id` calls,
/// and a set-id program's a walk up to `/`). A set-id program that drops its privileges
/// later keeps the root it was started for.
pub fn root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(find_root).clone()
}

fn find_root() -> PathBuf {
    if !crate::sys::is_setid() {
        if let Some(r) = std::env::var_os("MAILORDER_ROOT")
            && !r.is_empty()
        {
            return PathBuf::from(r);
        }
    } else if let Some(r) = installed_root() {
        return r;
    }
    PathBuf::from(DEFAULT_ROOT)
}

/// `ROOT` when this program is `ROOT/bin/PROG` in a tree only root can change.
fn installed_root() -> Option<PathBuf> {
    let exe = std::fs::read_link("/proc/self/exe").ok()?;
    let bin = exe.parent()?;
    if bin.file_name()? != "bin" {
        return None;
    }
    let mut dir = Some(bin);
    while let Some(d) = dir {
        if !root_only(d) {
            return None;
        }
        dir = d.parent();
    }
    bin.parent().map(PathBuf::from)
}

/// A directory that belongs to root and whose entries no one else can rename or replace.
fn root_only(dir: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(dir) {
        Ok(m) => m.is_dir() && m.uid() == 0 && (m.mode() & 0o022 == 0 || m.mode() & 0o1000 != 0),
        Err(_) => false,
    }
}

/// `ROOT/control`.
pub fn control_dir() -> PathBuf {
    root().join("control")
}

/// `ROOT/queue`.
pub fn queue_dir() -> PathBuf {
    root().join("queue")
}

/// `ROOT/bin`, where the programs are installed; `MAILORDER_BIN_DIR` overrides it for
/// programs that are not set-id (tests and `make run` point it at `target/…`). Decided at
/// the first call and kept, like [`root`].
pub fn bin_dir() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(find_bin_dir).clone()
}

fn find_bin_dir() -> PathBuf {
    if !crate::sys::is_setid()
        && let Some(r) = std::env::var_os("MAILORDER_BIN_DIR")
        && !r.is_empty()
    {
        return PathBuf::from(r);
    }
    root().join("bin")
}

/// The path of one of mailorder's programs.
pub fn program(name: &str) -> PathBuf {
    bin_dir().join(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_root_owned_trees_count() {
        let is_root = crate::sys::ids().1 == 0;
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(root_only(d.path()), is_root);
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(!root_only(d.path()));
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(root_only(d.path()), is_root);
        assert!(root_only(std::path::Path::new("/")));
        // This test program is not `…/bin/PROG`.
        assert_eq!(installed_root(), None);
    }
}
