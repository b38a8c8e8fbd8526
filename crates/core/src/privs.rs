//! The one audited privilege switch: supplementary groups, then gid, then uid,
//! then a check that root cannot be regained. Also the two guards every network-facing
//! program calls first: [`refuse_root`] and [`no_new_privs`].

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

/// Become the system account `name` as `login(1)` would: all its supplementary groups
/// from the group database (initgroups), its primary gid, its uid. A launcher that binds as
/// root and then serves as `name` (`listen -u`) uses it; `setuidgid` and `tcpserver -u -g`
/// keep only the primary group. Refuses an account with uid 0.
pub fn become_user(name: &str) -> Result<(), PrivError> {
    let user = match User::from_name(name) {
        Ok(Some(u)) => u,
        _ => return Err(PrivError::NoUser(name.to_owned())),
    };
    let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
    if uid == 0 {
        return Err(PrivError::Root);
    }
    let err = |source| PrivError::Switch { uid, gid, source };
    let cname = std::ffi::CString::new(name).map_err(|_| PrivError::NoUser(name.to_owned()))?;
    nix::unistd::initgroups(&cname, user.gid).map_err(err)?;
    setgid(user.gid).map_err(err)?;
    setuid(user.uid).map_err(err)?;
    if setuid(Uid::from_raw(0)).is_ok() {
        return Err(PrivError::NotDropped);
    }
    Ok(())
}

/// Refuse to run as root (DESIGN invariant 2: no root where input is parsed). Every
/// program that reads network input or message content calls it first in `main`: it
/// logs one line and exits 111 when the real or effective uid is 0.
pub fn refuse_root(prog: &str) {
    let (ruid, euid, _, _) = crate::sys::ids();
    if ruid == 0 || euid == 0 {
        log::error!(
            "{prog} reads untrusted input and does not run as root: start it under its own uid (#4.3.0)"
        );
        crate::exit::exit(crate::Exit::Temp.code());
    }
}

/// Set no-new-privileges (`prctl(PR_SET_NO_NEW_PRIVS)`): from now on no exec can gain
/// privileges through set-id bits or file capabilities. Called first in `main` by every
/// program that never execs a set-id one. A failure is logged, not fatal (an old kernel).
pub fn no_new_privs() {
    if let Err(e) = nix::sys::prctl::set_no_new_privs() {
        log::warn!("cannot set no-new-privileges: {e}");
    }
}

/// Look up a system account: (uid, gid, home).
pub fn account(name: &str) -> Result<(u32, u32, std::path::PathBuf), PrivError> {
    match User::from_name(name) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw(), u.dir)),
        _ => Err(PrivError::NoUser(name.to_owned())),
    }
}
