//! mailorder-queue-client: the one way a program hands a message to the queue uid.
//!
//! Every sender of new mail (smtpd, dispatch's bounces and reports, local-deliver's
//! forwards, sendmail) goes through [`Client`]: it runs the queue program (`ROOT/bin/queue`,
//! or a filter in its place) with the qmail-queue contract, message on its fd 0 and the
//! text0 envelope on its fd 1, and turns the outcome into one [`QueueError`] with one rule:
//!
//! - the queue's exit code is the verdict: 0 queued, anything else refused or failed, with
//!   the meaning from `mailorder_core::exit::queue` (11–40 permanent, the rest temporary);
//! - a message or envelope this side could not write fully is **never** reported queued:
//!   if the queue nevertheless exits 0, the result is [`queue::WRITE`] (temporary), since
//!   what was queued is not what the caller meant; if it exits non-zero, its code explains
//!   the broken pipe better than the pipe does;
//! - a queue program that cannot be started or waited for is temporary.
//!
//! Writes never fail towards the caller ([`Submission`] implements `Write` and remembers the
//! first failure): the caller keeps reading its input to the end and then asks
//! [`Client::commit`], which gives the verdict above. Nothing is queued without an
//! envelope, so [`Client::abort`] (or dropping the submission) queues nothing.
//!
//! The client owns the hand-off, so the long-lived framed mode (many messages over one
//! channel, each acknowledged once durable) plugs in here without touching the callers.
//!
//! It must not parse or change the message, and it spawns nothing but the queue program.

#![warn(missing_docs)]

use mailorder_core::Exit;
use mailorder_core::exit::queue;
use std::io::{self, PipeWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

/// Why a message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue program could not be started.
    #[error("cannot run {prog}: {source} (#4.3.0)")]
    Start {
        /// The program.
        prog: PathBuf,
        /// errno.
        source: io::Error,
    },
    /// Waiting for the queue program failed.
    #[error("waiting for {prog}: {source} (#4.3.0)")]
    Wait {
        /// The program.
        prog: PathBuf,
        /// errno.
        source: io::Error,
    },
    /// The queue answered with a non-zero exit code (or exited 0 while our write failed:
    /// then the code is [`queue::WRITE`]).
    #[error("{} (queue exit {code})", queue::describe(*code))]
    Exit {
        /// The qmail-queue exit code.
        code: u8,
    },
}

impl QueueError {
    /// The qmail-queue exit code this failure stands for ([`queue::BUG`] when the queue
    /// program never ran to an answer).
    pub fn code(&self) -> u8 {
        match self {
            QueueError::Exit { code } => *code,
            QueueError::Start { .. } | QueueError::Wait { .. } => queue::BUG,
        }
    }

    /// Whether the refusal is permanent (exit codes 11–40): the message must not be
    /// offered again as it is. Everything else is temporary.
    pub fn is_permanent(&self) -> bool {
        matches!(self, QueueError::Exit { code } if queue::is_permanent(*code))
    }

    /// The delivery-style class: [`Exit::Perm`] or [`Exit::Temp`].
    pub fn class(&self) -> Exit {
        if self.is_permanent() {
            Exit::Perm
        } else {
            Exit::Temp
        }
    }

    /// The short human text with its RFC 3463 code, fit for an SMTP reply or a bounce.
    pub fn text(&self) -> &'static str {
        match self {
            QueueError::Exit { code } => queue::describe(*code),
            QueueError::Start { .. } | QueueError::Wait { .. } => {
                "cannot run the queue, try again later (#4.3.0)"
            }
        }
    }
}

/// The hand-off to one queue program.
#[derive(Debug, Clone)]
pub struct Client {
    prog: PathBuf,
}

/// One message on its way to the queue. Write the message into it (`Write`, or
/// [`Submission::write_data`]), then give it back to [`Client::commit`] with the envelope.
#[derive(Debug)]
pub struct Submission {
    child: Child,
    message: Option<ChildStdin>,
    envelope: Option<PipeWriter>,
    write_failed: bool,
}

impl Client {
    /// A client for the queue program `prog` (normally `ROOT/bin/queue`; smtpd takes
    /// `MAILORDER_QUEUE` when set).
    pub fn new(prog: impl Into<PathBuf>) -> Client {
        Client { prog: prog.into() }
    }

    /// The program this client runs.
    pub fn program(&self) -> &Path {
        &self.prog
    }

    /// Start a message: run the queue program with a pipe on its fd 0 (message) and fd 1
    /// (envelope). Its fd 2 is ours (the log).
    pub fn start(&mut self) -> Result<Submission, QueueError> {
        let start_err = |source| QueueError::Start {
            prog: self.prog.clone(),
            source,
        };
        let (env_r, env_w) = io::pipe().map_err(start_err)?;
        let mut child = Command::new(&self.prog)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(env_r))
            .spawn()
            .map_err(start_err)?;
        let message = child.stdin.take();
        Ok(Submission {
            child,
            write_failed: message.is_none(),
            message,
            envelope: Some(env_w),
        })
    }

    /// Close the message, write `envelope` (text0, `mailorder_queue_format::encode`),
    /// wait for the verdict. `Ok` only when the queue exited 0 **and** everything was
    /// written (the rule in the crate doc).
    pub fn commit(&mut self, mut sub: Submission, envelope: &[u8]) -> Result<(), QueueError> {
        sub.message = None;
        let env_ok = match sub.envelope.take() {
            Some(mut e) => e.write_all(envelope).is_ok(),
            None => false,
        };
        let status = sub.child.wait().map_err(|source| QueueError::Wait {
            prog: self.prog.clone(),
            source,
        })?;
        match mailorder_core::exit::pass_up(status) {
            0 if sub.write_failed || !env_ok => Err(QueueError::Exit { code: queue::WRITE }),
            0 => Ok(()),
            code => Err(QueueError::Exit { code }),
        }
    }

    /// Give up on a message: close both pipes without an envelope, so nothing is queued.
    pub fn abort(&mut self, mut sub: Submission) {
        sub.message = None;
        sub.envelope = None;
        let _ = sub.child.wait();
    }

    /// The whole hand-off for a message already in memory (or readable): start, copy
    /// `message`, commit. A read error from `message` aborts (nothing queued) and is
    /// reported as [`queue::READ`].
    pub fn submit(
        &mut self,
        mut message: impl io::Read,
        envelope: &[u8],
    ) -> Result<(), QueueError> {
        let mut sub = self.start()?;
        if io::copy(&mut message, &mut sub).is_err() && !sub.write_failed {
            self.abort(sub);
            return Err(QueueError::Exit { code: queue::READ });
        }
        self.commit(sub, envelope)
    }
}

impl Submission {
    /// Write message bytes. A failure is remembered and later bytes are dropped; the
    /// verdict comes from [`Client::commit`].
    pub fn write_data(&mut self, data: &[u8]) {
        if self.write_failed || data.is_empty() {
            return;
        }
        let ok = match self.message.as_mut() {
            Some(m) => m.write_all(data).is_ok(),
            None => false,
        };
        if !ok {
            self.write_failed = true;
            self.message = None;
        }
    }

    /// Whether a write has failed (the queue program is gone or closed its fd 0).
    pub fn write_failed(&self) -> bool {
        self.write_failed
    }
}

/// Never fails: see [`Submission::write_data`].
impl Write for Submission {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_data(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Submission {
    /// A submission dropped without commit queues nothing; reap the child.
    fn drop(&mut self) {
        self.message = None;
        self.envelope = None;
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fake queue: a shell script that runs `body` (it may read fd 0 and fd 1).
    fn fake(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("queue");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn queued_when_the_queue_exits_0_after_reading_everything() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("got");
        let q = fake(
            d.path(),
            &format!("cat > {0}.m; cat <&1 > {0}.e; exit 0", out.display()),
        );
        Client::new(&q)
            .submit(&b"Subject: x\n\nhi\n"[..], b"Fa@b\0Tc@d\0\0")
            .unwrap();
        assert_eq!(
            std::fs::read(d.path().join("got.m")).unwrap(),
            b"Subject: x\n\nhi\n"
        );
        assert_eq!(
            std::fs::read(d.path().join("got.e")).unwrap(),
            b"Fa@b\0Tc@d\0\0"
        );
    }

    #[test]
    fn the_exit_code_is_the_verdict_and_its_class_is_one_table() {
        let d = tempfile::tempdir().unwrap();
        for (code, perm) in [
            (31u8, true),
            (11, true),
            (53, false),
            (81, false),
            (91, false),
        ] {
            let q = fake(d.path(), &format!("cat >/dev/null; exit {code}"));
            let e = Client::new(&q)
                .submit(&b"x"[..], b"F\0Ta@b\0\0")
                .unwrap_err();
            assert_eq!(e.code(), code);
            assert_eq!(e.is_permanent(), perm, "{code}");
            assert_eq!(e.text(), queue::describe(code));
        }
    }

    #[test]
    fn exit_0_after_our_write_failed_is_a_write_error_never_queued() {
        let d = tempfile::tempdir().unwrap();
        // Closes fd 0 and fd 1 at once and claims success.
        let q = fake(d.path(), "exec 0<&- 1>&-; sleep 0.2; exit 0");
        let big = vec![b'x'; 1 << 20];
        let e = Client::new(&q)
            .submit(&big[..], b"F\0Ta@b\0\0")
            .unwrap_err();
        assert_eq!(e.code(), queue::WRITE);
        assert!(!e.is_permanent());
    }

    #[test]
    fn abort_queues_nothing_and_a_missing_program_is_temporary() {
        let d = tempfile::tempdir().unwrap();
        let mark = d.path().join("envelope-seen");
        let q = fake(
            d.path(),
            &format!(
                "cat >/dev/null; cat <&1 > {0}.e; [ -s {0}.e ] && touch {0}; exit 0",
                mark.display()
            ),
        );
        let mut c = Client::new(&q);
        let mut s = c.start().unwrap();
        s.write_data(b"half a message");
        c.abort(s);
        assert!(!mark.exists(), "no envelope was sent");
        let e = Client::new(d.path().join("nope")).start().unwrap_err();
        assert!(matches!(e, QueueError::Start { .. }));
        assert_eq!(e.class(), Exit::Temp);
    }
}
