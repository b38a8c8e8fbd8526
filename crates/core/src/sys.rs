//! The only module of mailorder allowed to hold `unsafe` code: thin wrappers over libc
//! calls that neither std nor nix offer in the form needed.
#![allow(unsafe_code)]

use std::os::fd::RawFd;

/// Whether this process runs set-id (real and effective ids differ), in which case the
/// environment must not redirect it (STYLE §7).
pub fn is_setid() -> bool {
    let (ruid, euid, rgid, egid) = ids();
    ruid != euid || rgid != egid
}

/// (real uid, effective uid, real gid, effective gid).
pub fn ids() -> (u32, u32, u32, u32) {
    // SAFETY: these calls cannot fail and have no preconditions.
    unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    }
}

/// Whether `fd` is open.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on any integer is harmless; it only reports EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// Clear the close-on-exec flag of `fd`, so that it survives an exec (fd 3 for
/// checkpassword, the message fd for local-deliver).
pub fn clear_cloexec(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl with F_GETFD/F_SETFD only changes the descriptor's flags.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags == -1 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Take ownership of the inherited descriptor `fd` (fd 3 for checkpassword), or `None` when
/// it is not open. Call it once per descriptor, early in `main`, before anything else in the
/// process could have claimed that number.
pub fn take_fd(fd: RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 0 || !fd_is_open(fd) {
        return None;
    }
    // SAFETY: `fd` is open, was inherited from the parent, and by this function's contract
    // nothing else in the process owns it; the OwnedFd becomes its only owner.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Arrange for the child that `cmd` spawns to have `fd` (open in the parent) as descriptor
/// `target`, without close-on-exec — e.g. a pipe on fd 3 for a checkpassword program. The
/// parent must keep `fd` open until the child is spawned.
pub fn child_fd(cmd: &mut std::process::Command, fd: RawFd, target: RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and calls only dup2/fcntl, which are
    // async-signal-safe; it allocates nothing and touches no locks.
    unsafe {
        cmd.pre_exec(move || {
            if fd == target {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags == -1 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(fd, target) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Duplicate `fd` onto the lowest free descriptor at or above `min`, close-on-exec (so that
/// fixed child descriptor numbers, e.g. tlswrap's 5/6/7, cannot collide with the source).
pub fn dup_at_least(
    fd: std::os::fd::BorrowedFd<'_>,
    min: RawFd,
) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: F_DUPFD_CLOEXEC creates a new descriptor and touches nothing else.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) };
    if new == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `new` was just created by fcntl and is owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(new) })
}

/// Make the child that `cmd` spawns start with an empty signal mask. A process that blocks
/// signals to `sigwait` for them (dispatch) would otherwise pass the blocked set on through
/// fork and exec, and its children could not be stopped with TERM.
pub fn child_clear_sigmask(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec and calls only sigemptyset and
    // sigprocmask, which are async-signal-safe; it allocates nothing and touches no locks.
    unsafe {
        cmd.pre_exec(|| {
            let mut set = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
            if libc::sigemptyset(set.as_mut_ptr()) == -1
                || libc::sigprocmask(libc::SIG_SETMASK, set.as_ptr(), std::ptr::null_mut()) == -1
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    #[test]
    fn child_fd_puts_a_pipe_on_fd_3() {
        let (r, mut w) = std::io::pipe().unwrap();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", "cat <&3"])
            .stdout(std::process::Stdio::piped());
        child_fd(&mut cmd, r.as_raw_fd(), 3);
        let mut child = cmd.spawn().unwrap();
        drop(r);
        w.write_all(b"on fd 3").unwrap();
        drop(w);
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(out, "on fd 3");
    }

    #[test]
    fn take_fd_refuses_closed_descriptors() {
        assert!(take_fd(-1).is_none());
        assert!(take_fd(1_000_000).is_none());
    }
}
