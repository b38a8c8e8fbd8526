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
//! Two forms of the hand-off, one rule: [`Client::new`] runs the program once per message
//! (sendmail, dispatch, local-deliver, and any qmail-queue filter); [`Client::framed`] keeps
//! one `PROG framed` (queue's framed mode, its CONTRACT) for every message of the client:
//! frames `m LEN\n DATA` for the message, `e LEN\n ENVELOPE` to commit, `a0\n` to abort,
//! one answer line (the exit code) per commit, given only once the message is durable.
//! A framed process that dies is started again at the next message. A content filter
//! (issue 13) that speaks the framed protocol on both sides can sit in this hand-off
//! without a process start per message: the client names it instead of `queue`.
//!
//! A framed filter may follow a non-zero code with an enhanced status code and a text
//! (`31 5.7.1 virus found: NAME`, grammar in `mailorder_filter_proto::answer`): the caller
//! gets [`QueueError::Refused`] and can put them in its SMTP reply.
//!
//! It must not parse or change the message, and it spawns nothing but the queue program.

#![warn(missing_docs)]

use mailorder_core::Exit;
use mailorder_core::exit::queue;
use mailorder_filter_proto::answer::Answer;
use std::io::{self, BufRead, PipeWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

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
    /// A framed content filter (issue 13) refused the message with its own reason: the
    /// code's class decides 5xx or 4xx, the enhanced code and text go into the reply.
    #[error("{text} (#{esc}) (filter exit {code})")]
    Refused {
        /// The qmail-queue exit code (31 permanent, 71 temporary…).
        code: u8,
        /// The RFC 3463 enhanced status code (`5.7.1`).
        esc: String,
        /// Printable text, one line (`mailorder_filter_proto::answer`).
        text: String,
    },
}

impl QueueError {
    /// The qmail-queue exit code this failure stands for ([`queue::BUG`] when the queue
    /// program never ran to an answer).
    pub fn code(&self) -> u8 {
        match self {
            QueueError::Exit { code } | QueueError::Refused { code, .. } => *code,
            QueueError::Start { .. } | QueueError::Wait { .. } => queue::BUG,
        }
    }

    /// Whether the refusal is permanent (exit codes 11–40): the message must not be
    /// offered again as it is. Everything else is temporary.
    pub fn is_permanent(&self) -> bool {
        matches!(self, QueueError::Exit { code } | QueueError::Refused { code, .. }
            if queue::is_permanent(*code))
    }

    /// The enhanced status code a filter gave with its refusal ([`QueueError::Refused`]).
    pub fn enhanced(&self) -> Option<&str> {
        match self {
            QueueError::Refused { esc, .. } => Some(esc),
            _ => None,
        }
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
    pub fn text(&self) -> &str {
        match self {
            QueueError::Exit { code } => queue::describe(*code),
            QueueError::Refused { text, .. } => text,
            QueueError::Start { .. } | QueueError::Wait { .. } => {
                "cannot run the queue, try again later (#4.3.0)"
            }
        }
    }
}

/// The hand-off to one queue program: a process per message (the qmail-queue contract),
/// or one long-lived `PROG framed` taking every message of this client ([`Client::framed`]).
#[derive(Debug)]
pub struct Client {
    prog: PathBuf,
    framed: bool,
    /// The running `PROG framed`, between messages.
    conn: Option<Framed>,
}

/// A running `queue framed`: frames into its fd 0, one answer line per message from its fd 1.
#[derive(Debug)]
struct Framed {
    child: Child,
    to: Option<io::BufWriter<ChildStdin>>,
    from: io::BufReader<ChildStdout>,
}

impl Framed {
    fn frame(&mut self, tag: u8, data: &[u8]) -> io::Result<()> {
        let to = self
            .to
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        writeln!(to, "{}{}", tag as char, data.len())?;
        to.write_all(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.to.as_mut() {
            Some(t) => t.flush(),
            None => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        }
    }

    /// The answer to the last `e`: the queue's code (a filter may add a reason), or
    /// `None` when it is gone. At most 512 octets are read: a longer line is no answer.
    fn answer(&mut self) -> Option<Answer> {
        let mut line = Vec::new();
        match self.from.by_ref().take(512).read_until(b'\n', &mut line) {
            Ok(n) if n > 0 && line.ends_with(b"\n") => Answer::parse(&line),
            _ => None,
        }
    }

    /// Close its input and wait: its status by the pass-up rule.
    fn end(mut self) -> Option<u8> {
        self.to = None;
        self.child.wait().ok().map(mailorder_core::exit::pass_up)
    }
}

impl Drop for Framed {
    /// End of file between messages ends `queue framed` (inside a message it removes the
    /// half-written files); reap it.
    fn drop(&mut self) {
        self.to = None;
        let _ = self.child.wait();
    }
}

/// One message on its way to the queue. Write the message into it (`Write`, or
/// [`Submission::write_data`]), then give it back to [`Client::commit`] with the envelope.
#[derive(Debug)]
pub struct Submission {
    inner: Option<Inner>,
    write_failed: bool,
}

#[derive(Debug)]
enum Inner {
    OneShot {
        child: Child,
        message: Option<ChildStdin>,
        envelope: Option<PipeWriter>,
    },
    Framed(Framed),
}

impl Client {
    /// A client for the queue program `prog` (normally `ROOT/bin/queue`; smtpd takes
    /// `MAILORDER_QUEUE` when set), one process per message.
    pub fn new(prog: impl Into<PathBuf>) -> Client {
        Client {
            prog: prog.into(),
            framed: false,
            conn: None,
        }
    }

    /// A client that keeps one `PROG framed` for all its messages (`queue`'s framed mode:
    /// each message answered once durable). Started at the first message, started again
    /// after it died; the process ends when the client is dropped.
    pub fn framed(prog: impl Into<PathBuf>) -> Client {
        Client {
            framed: true,
            ..Client::new(prog)
        }
    }

    /// The program this client runs.
    pub fn program(&self) -> &Path {
        &self.prog
    }

    /// Whether this client keeps one framed queue process ([`Client::framed`]).
    pub fn is_framed(&self) -> bool {
        self.framed
    }

    fn start_err(&self) -> impl Fn(io::Error) -> QueueError + '_ {
        |source| QueueError::Start {
            prog: self.prog.clone(),
            source,
        }
    }

    /// Start a message: run the queue program with a pipe on its fd 0 (message) and fd 1
    /// (envelope), or take the framed one. Its fd 2 is ours (the log).
    pub fn start(&mut self) -> Result<Submission, QueueError> {
        if self.framed {
            let conn = match self.conn.take() {
                Some(c) => c,
                None => {
                    let mut child = Command::new(&self.prog)
                        .arg("framed")
                        .stdin(Stdio::piped())
                        .stdout(Stdio::piped())
                        .spawn()
                        .map_err(self.start_err())?;
                    let (Some(to), Some(from)) = (child.stdin.take(), child.stdout.take()) else {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(self.start_err()(io::Error::other("no pipes")));
                    };
                    Framed {
                        child,
                        to: Some(io::BufWriter::with_capacity(64 * 1024, to)),
                        from: io::BufReader::new(from),
                    }
                }
            };
            return Ok(Submission {
                inner: Some(Inner::Framed(conn)),
                write_failed: false,
            });
        }
        let (env_r, env_w) = io::pipe().map_err(self.start_err())?;
        let mut child = Command::new(&self.prog)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(env_r))
            .spawn()
            .map_err(self.start_err())?;
        let message = child.stdin.take();
        Ok(Submission {
            write_failed: message.is_none(),
            inner: Some(Inner::OneShot {
                child,
                message,
                envelope: Some(env_w),
            }),
        })
    }

    /// Close the message, write `envelope` (text0, `mailorder_queue_format::encode`),
    /// wait for the verdict. `Ok` only when the queue said 0 (exit 0, or framed: the
    /// answer `0`) **and** everything was written (the rule in the crate doc).
    pub fn commit(&mut self, mut sub: Submission, envelope: &[u8]) -> Result<(), QueueError> {
        let verdict = |code: u8, complete: bool| match code {
            0 if !complete => Err(QueueError::Exit { code: queue::WRITE }),
            0 => Ok(()),
            code => Err(QueueError::Exit { code }),
        };
        match sub.inner.take() {
            Some(Inner::OneShot {
                mut child,
                message,
                envelope: env_pipe,
            }) => {
                drop(message);
                let env_ok = match env_pipe {
                    Some(mut e) => e.write_all(envelope).is_ok(),
                    None => false,
                };
                let status = child.wait().map_err(|source| QueueError::Wait {
                    prog: self.prog.clone(),
                    source,
                })?;
                verdict(
                    mailorder_core::exit::pass_up(status),
                    !sub.write_failed && env_ok,
                )
            }
            Some(Inner::Framed(mut conn)) => {
                let sent = conn.frame(b'e', envelope).and_then(|()| conn.flush());
                match conn.answer() {
                    Some(Answer {
                        code,
                        reason: Some((esc, text)),
                    }) if code != 0 => {
                        self.conn = Some(conn);
                        Err(QueueError::Refused { code, esc, text })
                    }
                    Some(Answer { code, .. }) => {
                        // Still talking: keep it for the next message.
                        self.conn = Some(conn);
                        verdict(code, !sub.write_failed && sent.is_ok())
                    }
                    // Gone without an answer: its exit status says why; an exit 0 here
                    // is no acknowledgement (possibly queued: a duplicate, never a loss).
                    None => verdict(conn.end().unwrap_or(queue::BUG), false),
                }
            }
            None => Err(QueueError::Exit { code: queue::BUG }),
        }
    }

    /// Give up on a message: nothing is queued (one-shot: both pipes closed without an
    /// envelope; framed: an `a` frame, or the process ended if that fails).
    pub fn abort(&mut self, mut sub: Submission) {
        match sub.inner.take() {
            Some(Inner::OneShot {
                mut child,
                message,
                envelope,
            }) => {
                // Both pipes closed first: no envelope, nothing queued; then reap.
                drop(message);
                drop(envelope);
                let _ = child.wait();
            }
            Some(Inner::Framed(mut conn)) => {
                // Kept only if the abort reached it; otherwise dropped (and reaped).
                let sent = conn.frame(b'a', b"").and_then(|()| conn.flush());
                self.conn = sent.is_ok().then_some(conn);
            }
            None => {}
        }
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
        let ok = match self.inner.as_mut() {
            Some(Inner::OneShot {
                message: Some(m), ..
            }) => m.write_all(data).is_ok(),
            Some(Inner::Framed(conn)) => conn.frame(b'm', data).is_ok(),
            _ => false,
        };
        if !ok {
            self.write_failed = true;
            if let Some(Inner::OneShot { message, .. }) = self.inner.as_mut() {
                *message = None;
            }
        }
    }

    /// Tell a framed content filter about the client (an `i` frame, text0 records, before
    /// the message: mailorder-filter's CONTRACT). Only for a client that runs the filter:
    /// `queue framed` refuses the frame. A failure is remembered like a write's.
    pub fn write_info(&mut self, records: &[u8]) {
        if self.write_failed {
            return;
        }
        let ok = match self.inner.as_mut() {
            Some(Inner::Framed(conn)) => conn.frame(b'i', records).is_ok(),
            _ => true,
        };
        if !ok {
            self.write_failed = true;
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
    /// A submission dropped without commit queues nothing: one-shot, its pipes close
    /// without an envelope; framed, the process sees end of file inside the message and
    /// removes it. Either way the child is reaped.
    fn drop(&mut self) {
        if let Some(Inner::OneShot {
            mut child,
            message,
            envelope,
        }) = self.inner.take()
        {
            drop(message);
            drop(envelope);
            let _ = child.wait();
        }
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
