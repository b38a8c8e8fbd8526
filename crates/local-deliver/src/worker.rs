//! The long-lived mode (issue #11): started by dispatch (through deliver-as for another
//! uid) with a hand-off socket on the descriptor named by `MAILORDER_POOLFD`, it delivers
//! one message after another for its one mailbox owner, each exactly as a run of its own:
//! the message file arrives as a descriptor (`mailorder_core::handoff`), with the
//! variables `S` (sender), `R` (recipient) and `A` (queue age, seconds); the answer is one
//! message `CODE TEXT` (the exit code and the result line the one-shot mode would give).
//! End of file on the socket (dispatch retired it, or is gone) ends it with exit 0.
//!
//! A worker killed in the middle of a message is the case of a killed one-shot run: no
//! answer, dispatch retries, the message is delivered at least once.
//!
//! The file back-end of the directory is opened once and kept while an inotify watch on
//! `control/` and `directory/` is quiet (`mailorder_core::watch`): any edit there makes the
//! next message open it again, so a user added, changed or removed is seen by the first
//! delivery after the change. The LDAP back-end is opened for each message, as in a
//! one-shot run (it holds a server connection). `control/maxhops`, which every delivery
//! asks, is kept with it under the same watch.

use crate::{Config, Outcome, run};
use mailorder_core::watch::Kept;
use mailorder_core::{Exit, root};
use mailorder_directory::Directory;
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

/// Serve deliveries from `sock` until end of file; the exit code.
pub fn serve(sock: &OwnedFd) -> u8 {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    // Inherited without close-on-exec; a |program must never hold it.
    if let Err(e) = fcntl(sock, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
        log::error!("worker socket: {e}");
        return Exit::Temp.code();
    }
    // The worker's uid never changes: asked once, not per message.
    let euid = mailorder_core::sys::ids().1;
    let top = root::root();
    let mut dir: Kept<Read> = Kept::new(vec![top.join("control"), top.join("directory")]);
    loop {
        let (fd, vars) = match mailorder_core::handoff::recv_conn(sock.as_fd()) {
            Ok(Some(r)) => r,
            Ok(None) => return Exit::Ok.code(),
            Err(e) => {
                log::error!("worker socket: {e}");
                return Exit::Temp.code();
            }
        };
        let o = deliver_one(fd, vars.into_iter().collect(), euid, &mut dir);
        let answer = format!("{} {}", o.exit.code(), o.text);
        if let Err(e) = mailorder_core::handoff::send_msg(sock.as_fd(), answer.as_bytes()) {
            // dispatch is gone: the delivery is done; it will be retried (at least once).
            log::info!("worker: scheduler gone: {e}");
            return Exit::Ok.code();
        }
    }
}

/// What a worker keeps while `control/` and `directory/` are unchanged: the directory, and
/// `control/maxhops` when it could be read (else each delivery reads it, and reports what
/// is wrong with it).
struct Read {
    dir: Directory,
    maxhops: Option<u64>,
}

fn read() -> Result<Read, mailorder_directory::DirError> {
    let maxhops = mailorder_core::control::Control::default()
        .number("maxhops", crate::DEFAULT_MAXHOPS)
        .ok();
    Ok(Read {
        dir: Directory::open()?,
        maxhops,
    })
}

fn deliver_one(
    fd: OwnedFd,
    vars: HashMap<String, String>,
    euid: u32,
    dir: &mut Kept<Read>,
) -> Outcome {
    let (Some(sender), Some(recipient)) = (vars.get("S"), vars.get("R")) else {
        return Outcome {
            exit: Exit::Temp,
            text: "worker request without sender or recipient (#4.3.5)".to_owned(),
        };
    };
    let mut cfg = Config {
        sender: sender.clone(),
        recipient: recipient.clone(),
        root: root::root(),
        control: mailorder_core::control::Control::default(),
        queue_age: vars.get("A").and_then(|v| v.parse().ok()),
        queue: root::program("queue"),
        euid,
        maxhops: None,
    };
    let mut msg = File::from(fd);
    let resolved = dir.get(read, |r| !r.dir.is_ldap()).and_then(|r| {
        cfg.maxhops = r.maxhops;
        r.dir.resolve(&cfg.recipient)
    });
    // A lookup that failed is not trusted to the kept directory: opened again next time.
    if resolved.is_err() {
        dir.forget();
    }
    run(&cfg, resolved, &mut msg)
}
