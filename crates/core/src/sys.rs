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
