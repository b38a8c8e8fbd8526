//! Running the queue program (qmail-queue contract, CONVENTIONS §8): the message goes into
//! its fd 0, the text0 envelope into its fd 1. Closing both without the envelope makes it
//! queue nothing.

use std::io::{self, PipeWriter, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// One running queue program.
pub(crate) struct QueueJob {
    child: Child,
    message: Option<ChildStdin>,
    envelope: Option<PipeWriter>,
    write_failed: bool,
}

impl QueueJob {
    /// Start `prog` with pipes on fd 0 (message) and fd 1 (envelope).
    pub(crate) fn start(prog: &Path) -> io::Result<QueueJob> {
        let (env_r, env_w) = std::io::pipe()?;
        let mut child = Command::new(prog)
            .stdin(Stdio::piped())
            .stdout(Stdio::from(env_r))
            .spawn()?;
        let message = child.stdin.take();
        Ok(QueueJob {
            child,
            message,
            envelope: Some(env_w),
            write_failed: false,
        })
    }

    /// Write message bytes. A failure is remembered; the program's exit code tells why.
    pub(crate) fn write(&mut self, data: &[u8]) {
        if self.write_failed || data.is_empty() {
            return;
        }
        match self.message.as_mut() {
            Some(m) => {
                if m.write_all(data).is_err() {
                    self.write_failed = true;
                }
            }
            None => self.write_failed = true,
        }
    }

    /// Close both pipes without an envelope: nothing is queued.
    pub(crate) fn abort(mut self) {
        self.message = None;
        self.envelope = None;
        let _ = self.child.wait();
    }

    /// Close the message, write the envelope, wait. Returns the queue's exit code (by the
    /// pass-up rule); a message that could not be written fully is never reported as 0.
    pub(crate) fn commit(mut self, envelope: &[u8]) -> io::Result<u8> {
        self.message = None;
        let env_ok = match self.envelope.take() {
            Some(mut e) => e.write_all(envelope).is_ok(),
            None => false,
        };
        let status = self.child.wait()?;
        let code = mailorder_core::exit::pass_up(status);
        if code == 0 && (self.write_failed || !env_ok) {
            return Ok(mailorder_core::exit::queue::WRITE);
        }
        Ok(code)
    }
}
