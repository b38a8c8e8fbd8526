//! The one audited privilege switch (STYLE §7): supplementary groups, then gid, then uid,
//! then a check that root cannot be regained.

use nix::unistd::{Gid, Uid, User, setgid, setgroups, setuid};

/// Why a switch failed. Always temporary: a misconfigured installation is not the mail's fault.
#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    /// A system call failed.
    #[error("cannot switch to uid {uid} gid {gid}: {source} (#4.3.0)")]
    Switch {
        /// Target uid.
        uid: u32,
        /// Target gid.
        gid: u32,
        /// errno.
        source: nix::Error,
    },
    /// Refused to switch to root.
    #[error("refusing to run as uid 0 (#4.3.0)")]
    Root,
    /// Root could be regained after the switch.
    #[error("privileges not dropped: still able to become root (#4.3.0)")]
    NotDropped,
    /// No such account.
    #[error("no such system user {0} (#4.3.0)")]
    NoUser(String),
}

/// Become `uid`/`gid` with no supplementary groups but `extra`. A no-op when already
/// running as `uid` with the same gid and not as root. Refuses uid 0.
pub fn drop_to(uid: u32, gid: u32, extra: &[u32]) -> Result<(), PrivError> {
    if uid == 0 {
        return Err(PrivError::Root);
    }
    let (ruid, euid, rgid, egid) = crate::sys::ids();
    if ruid == uid && euid == uid && rgid == gid && egid == gid {
        return Ok(());
    }
    let err = |source| PrivError::Switch { uid, gid, source };
    let mut groups: Vec<Gid> = vec![Gid::from_raw(gid)];
    groups.extend(extra.iter().map(|g| Gid::from_raw(*g)));
    if euid == 0 {
        setgroups(&groups).map_err(err)?;
    }
    setgid(Gid::from_raw(gid)).map_err(err)?;
    setuid(Uid::from_raw(uid)).map_err(err)?;
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err(PrivError::NotDropped);
    }
    Ok(())
}

/// Look up a system account: (uid, gid, home).
pub fn account(name: &str) -> Result<(u32, u32, std::path::PathBuf), PrivError> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw(), u.dir)),
        _ => Err(PrivError::NoUser(name.to_owned())),
    }
}
