//! Running the checkpassword program (docs/CONVENTIONS.md §3) for AUTH.

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

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
    mailorder_core::sys::child_fd(&mut cmd, r.as_raw_fd(), 3);
    let spawned = cmd.spawn();
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
