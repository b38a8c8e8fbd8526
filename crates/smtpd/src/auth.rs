//! Running the checkpassword program (docs/CONVENTIONS.md §3) for AUTH.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

/// fd 3 held for the checkpassword program by a pooled smtpd ([`hold_fd3`]).
static FD3: std::sync::OnceLock<mailorder_core::sys::Reserved> = std::sync::OnceLock::new();

/// Hold fd 3 (which must be free) for the checkpassword program, so that AUTH starts it
/// without a fork however many descriptors the process has open (issue #11).
pub(crate) fn hold_fd3() {
    match mailorder_core::sys::Reserved::new(3) {
        Ok(r) => {
            let _ = FD3.set(r);
        }
        Err(e) => log::debug!("fd 3 not held: {e}"),
    }
}

/// Run `prog true` with `login\0password\0\0` on fd 3, `SERVICE=smtp` and `TCPREMOTEIP`.
/// Returns its exit code by the pass-up rule. The password buffer is zeroed afterwards.
pub(crate) fn checkpassword(
    prog: &Path,
    login: &str,
    password: Vec<u8>,
    ip: &str,
) -> io::Result<u8> {
    let (r, mut w) = std::io::pipe()?;
    let mut cmd = Command::new(prog);
    cmd.arg("true")
        .env("SERVICE", "smtp")
        .env("TCPREMOTEIP", ip)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // A pooled smtpd keeps fd 3 held (its hand-off socket moved off it): no fork there;
    // otherwise fd 3 is usually free (tcpserver, systemd) and std can use posix_spawn.
    let spawned = match FD3.get() {
        Some(held) => held.spawn_with(&mut cmd, r.as_raw_fd()),
        None => mailorder_core::sys::spawn_with_fd(&mut cmd, r.as_raw_fd(), 3),
    };
    drop(r);
    let mut data = Vec::with_capacity(login.len() + password.len() + 3);
    data.extend_from_slice(login.as_bytes());
    data.push(0);
    data.extend_from_slice(&password);
    data.push(0);
    data.push(0);
    let mut password = password;
    password.iter_mut().for_each(|b| *b = 0);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            data.iter_mut().for_each(|b| *b = 0);
            return Err(e);
        }
    };
    // The program may exit without reading: that is its answer, not our error.
    let _ = w.write_all(&data);
    data.iter_mut().for_each(|b| *b = 0);
    drop(w);
    let status = child.wait()?;
    Ok(mailorder_core::exit::pass_up(status))
}
