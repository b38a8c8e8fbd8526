//! The only module of mailorder allowed to hold `unsafe` code: thin wrappers over libc
//! calls that neither std nor nix offer in the form needed.
#![allow(unsafe_code)]

use std::os::fd::RawFd;

/// Whether this process runs set-id (real and effective ids differ), in which case the
/// environment must not redirect it.
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

/// Take ownership of a descriptor the kernel has just put into this process, received in
/// an `SCM_RIGHTS` message: open by construction and owned by nobody yet, so it is not
/// checked the way [`take_fd`] checks an inherited one (issue #11: one `fcntl` less per
/// hand-off). `None` for a negative number, which the kernel never gives.
pub fn own_received(fd: RawFd) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return None;
    }
    // SAFETY: `recvmsg` has just installed `fd` in this process and given its number to the
    // caller alone; the OwnedFd becomes its only owner.
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

/// Spawn `cmd` with `fd` (open in the parent, close-on-exec) as descriptor `target` in the
/// child: [`spawn_with_fds`] with one pair.
pub fn spawn_with_fd(
    cmd: &mut std::process::Command,
    fd: RawFd,
    target: RawFd,
) -> std::io::Result<std::process::Child> {
    spawn_with_fds(cmd, &[(fd, target)])
}

/// Spawn `cmd` with each `(fd, target)` of `fds` (`fd` open in the parent, close-on-exec)
/// as descriptor `target` in the child, as [`child_fd`] does, but without a fork when
/// every target is free here: the descriptors are put on their targets for the moment of
/// the spawn and closed again after, so that std can use `posix_spawn` (a vfork: this
/// process's page tables are not copied and not faulted back in, a cost paid on every
/// connection by tlswrap and on every login by the front ends). When a target is taken
/// (or is also a source), [`child_fd`] in a forked child as before.
///
/// Only for a single-threaded caller (tlswrap, pop3d-login, imapd-login): a spawn by
/// another thread in that moment would inherit the targets.
pub fn spawn_with_fds(
    cmd: &mut std::process::Command,
    fds: &[(RawFd, RawFd)],
) -> std::io::Result<std::process::Child> {
    let clash = fds
        .iter()
        .any(|&(_, t)| fd_is_open(t) || fds.iter().any(|&(f, _)| f == t));
    if clash {
        for &(fd, target) in fds {
            child_fd(cmd, fd, target);
        }
        return cmd.spawn();
    }
    let mut placed = Vec::with_capacity(fds.len());
    let mut spawned = None;
    let mut taken = false;
    for &(fd, target) in fds {
        // SAFETY: `target` is not open in this process (checked above, and the caller has
        // no other thread that could open it meanwhile); dup2 creates it without
        // close-on-exec, and the close below removes exactly that descriptor again.
        if unsafe { libc::dup2(fd, target) } == -1 {
            let e = std::io::Error::last_os_error();
            // EBUSY: another thread is taking that very number (inside open or dup: a
            // test harness's threads), so it is not free after all: the fork way below.
            taken = e.raw_os_error() == Some(libc::EBUSY);
            spawned = Some(Err(e));
            break;
        }
        placed.push(target);
    }
    let spawned = spawned.unwrap_or_else(|| cmd.spawn());
    for target in placed {
        // SAFETY: as above: `target` is a duplicate made here, owned by nothing else.
        unsafe { libc::close(target) };
    }
    if taken {
        for &(fd, target) in fds {
            child_fd(cmd, fd, target);
        }
        return cmd.spawn();
    }
    spawned
}

/// A descriptor number held for children: `/dev/null`, close-on-exec, sits on it so that
/// nothing this process opens takes it, and [`Reserved::spawn_with`] puts another
/// descriptor there only for the moment of a spawn. So a long-lived process whose low
/// descriptors fill up (a pooled smtpd: its queue child's pipes, its inotify watch) can
/// still start a checkpassword program with its fd 3 by `posix_spawn` (a vfork), not by a
/// fork that copies its page tables ([`spawn_with_fds`] falls back to one when the target
/// is taken).
///
/// Only for a process whose other threads start no programs: a spawn by another thread in
/// that moment would inherit the descriptor.
#[derive(Debug)]
pub struct Reserved {
    target: RawFd,
    null: std::os::fd::OwnedFd,
}

impl Reserved {
    /// Hold `target`, which must not be open (`AlreadyExists` otherwise).
    pub fn new(target: RawFd) -> std::io::Result<Reserved> {
        use std::os::fd::{AsFd, AsRawFd};
        if fd_is_open(target) {
            return Err(std::io::ErrorKind::AlreadyExists.into());
        }
        // Kept off the low numbers, so that it is never `target` itself (dup3 refuses to
        // copy a descriptor onto itself).
        let null = dup_at_least(std::fs::File::open("/dev/null")?.as_fd(), 10)?;
        if null.as_raw_fd() == target {
            return Err(std::io::ErrorKind::AlreadyExists.into());
        }
        // SAFETY: `target` is not open (checked above; no other thread opens descriptors
        // meanwhile, the documented condition); dup3 creates it, close-on-exec, as a copy
        // of our /dev/null, owned by this value from now on.
        if unsafe { libc::dup3(null.as_raw_fd(), target, libc::O_CLOEXEC) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Reserved { target, null })
    }

    /// The descriptor number held.
    pub fn target(&self) -> RawFd {
        self.target
    }

    /// Spawn `cmd` with `fd` (open here, close-on-exec) as descriptor [`Reserved::target`]
    /// in the child; afterwards the number holds `/dev/null` again.
    pub fn spawn_with(
        &self,
        cmd: &mut std::process::Command,
        fd: RawFd,
    ) -> std::io::Result<std::process::Child> {
        use std::os::fd::AsRawFd;
        // SAFETY: `target` holds our placeholder, which nothing else uses; dup2 replaces it
        // with a copy of `fd` without close-on-exec, for the spawn only.
        if unsafe { libc::dup2(fd, self.target) } == -1 {
            return Err(std::io::Error::last_os_error());
        }
        let spawned = cmd.spawn();
        // SAFETY: as above; the copy of `fd` is closed and the placeholder is back,
        // close-on-exec. It cannot fail on two valid descriptors.
        unsafe { libc::dup3(self.null.as_raw_fd(), self.target, libc::O_CLOEXEC) };
        spawned
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

/// The write end of the pipe that [`signal_pipe`]'s handler writes to (-1: none yet).
static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    if fd < 0 {
        return;
    }
    // SAFETY: only async-signal-safe calls (write; errno saved and restored around it).
    unsafe {
        let errno = libc::__errno_location();
        let saved = *errno;
        let byte = sig as u8;
        libc::write(fd, (&raw const byte).cast(), 1);
        *errno = saved;
    }
}

/// The self-pipe trick: install a handler for each of `signals` that writes the signal's
/// number as one byte to a pipe, and return the pipe's read end. Nothing is blocked, so
/// the children this process spawns start with an empty signal mask and, after exec,
/// default dispositions — and std may spawn them with `posix_spawn` (vfork) instead of
/// fork. The write end is non-blocking: when the pipe is full a signal is dropped, which
/// is harmless for requests that only say "stop" or "look again". Call once.
pub fn signal_pipe(signals: &[libc::c_int]) -> std::io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    let mut fds = [-1; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fds[0] is a new descriptor that nothing else owns.
    let read = unsafe { std::fs::File::from_raw_fd(fds[0]) };
    // SAFETY: fds[1] is ours; O_NONBLOCK so the handler can never block.
    if unsafe { libc::fcntl(fds[1], libc::F_SETFL, libc::O_NONBLOCK) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    SIGNAL_PIPE.store(fds[1], std::sync::atomic::Ordering::Relaxed);
    for &sig in signals {
        // SAFETY: a zeroed sigaction is valid; the handler is async-signal-safe (above).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) == -1 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    /// Close our copy of the pipe's read end `r` (the child has its own), write `data`
    /// into it, and return what the child printed; the child must succeed.
    fn feed(
        mut child: std::process::Child,
        r: std::io::PipeReader,
        mut w: std::io::PipeWriter,
        data: &[u8],
    ) -> String {
        drop(r);
        w.write_all(data).unwrap();
        drop(w);
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert!(child.wait().unwrap().success());
        out
    }

    // See: issue #11 (AUTH in a pooled smtpd started checkpassword by a fork: fd 3 was
    // taken)
    #[test]
    fn a_reserved_descriptor_reaches_the_child_and_holds_dev_null_otherwise() {
        // The lowest free number: the one `File::open` would take (a pooled smtpd holds 3
        // right after closing it). Another test's thread may take it first: try again.
        let (target, held) = (0..50)
            .find_map(|_| {
                let target = std::fs::File::open("/dev/null").unwrap().as_raw_fd();
                Reserved::new(target).ok().map(|h| (target, h))
            })
            .expect("a free descriptor held");
        assert!(Reserved::new(target).is_err(), "taken now");
        let link = || std::fs::read_link(format!("/proc/self/fd/{target}")).unwrap();
        let cloexec = || unsafe { libc::fcntl(target, libc::F_GETFD) } & libc::FD_CLOEXEC != 0;
        assert_eq!(link(), std::path::Path::new("/dev/null"));
        assert!(cloexec());
        let (r, w) = std::io::pipe().unwrap();
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", &format!("cat /proc/self/fd/{target}")])
            .stdout(std::process::Stdio::piped());
        let child = held.spawn_with(&mut cmd, r.as_raw_fd()).unwrap();
        let out = feed(child, r, w, b"secret");
        assert_eq!(out, "secret");
        assert_eq!(
            link(),
            std::path::Path::new("/dev/null"),
            "the placeholder is back"
        );
        assert!(cloexec());
    }

    #[test]
    fn signal_pipe_reports_signals_and_children_get_an_empty_mask() {
        let mut r = signal_pipe(&[libc::SIGUSR2]).unwrap();
        // SAFETY: raising a signal we have a handler for.
        assert_eq!(unsafe { libc::raise(libc::SIGUSR2) }, 0);
        let mut b = [0u8; 1];
        r.read_exact(&mut b).unwrap();
        assert_eq!(b[0] as libc::c_int, libc::SIGUSR2);
        let out = std::process::Command::new("grep")
            .args(["SigBlk", "/proc/self/status"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.trim_end().ends_with(":\t0000000000000000"), "{text}");
    }

    #[test]
    fn child_fd_puts_a_pipe_on_fd_3() {
        let (r, w) = std::io::pipe().unwrap();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", "cat <&3"])
            .stdout(std::process::Stdio::piped());
        child_fd(&mut cmd, r.as_raw_fd(), 3);
        let child = cmd.spawn().unwrap();
        let out = feed(child, r, w, b"on fd 3");
        assert_eq!(out, "on fd 3");
    }

    #[test]
    fn spawn_with_fd_puts_a_pipe_on_a_free_or_a_taken_number() {
        // 200 is free (the vfork way, closed again after), 201 is taken (the fork way).
        let (_keep_r, keep_w) = std::io::pipe().unwrap();
        // SAFETY: a test: 201 is made to be taken, and closed at the end.
        assert_eq!(unsafe { libc::dup2(keep_w.as_raw_fd(), 201) }, 201);
        for target in [200, 201] {
            let (r, w) = std::io::pipe().unwrap();
            // bash: dash reads only one-digit descriptor numbers.
            let mut cmd = std::process::Command::new("/bin/bash");
            cmd.args(["-c", &format!("cat <&{target}")])
                .stdout(std::process::Stdio::piped());
            let child = spawn_with_fd(&mut cmd, r.as_raw_fd(), target).unwrap();
            let out = feed(child, r, w, b"passed on");
            assert_eq!(out, "passed on", "fd {target}");
        }
        assert!(!fd_is_open(200));
        assert!(fd_is_open(201));
        // SAFETY: the descriptor made above.
        unsafe { libc::close(201) };
    }

    #[test]
    fn spawn_with_fds_passes_several() {
        let (r1, mut w1) = std::io::pipe().unwrap();
        let (r2, mut w2) = std::io::pipe().unwrap();
        let mut cmd = std::process::Command::new("/bin/bash");
        cmd.args(["-c", "cat <&150; cat <&151"])
            .stdout(std::process::Stdio::piped());
        let fds = [(r1.as_raw_fd(), 150), (r2.as_raw_fd(), 151)];
        let mut child = spawn_with_fds(&mut cmd, &fds).unwrap();
        drop((r1, r2));
        assert!(!fd_is_open(150) && !fd_is_open(151));
        w1.write_all(b"one ").unwrap();
        w2.write_all(b"two").unwrap();
        drop((w1, w2));
        let mut out = String::new();
        let mut so = child.stdout.take().unwrap();
        so.read_to_string(&mut out).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(out, "one two");
    }

    #[test]
    fn take_fd_refuses_closed_descriptors() {
        assert!(take_fd(-1).is_none());
        assert!(take_fd(1_000_000).is_none());
    }
}
