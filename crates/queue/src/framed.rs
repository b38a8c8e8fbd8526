//! `queue framed`: many messages over one pair of pipes (issue #11), each acknowledged
//! only once it is durable, so smtpd starts no process per message.
//!
//! Frames on fd 0 (from the client), each `TAG LENGTH \n DATA` with a one-letter tag and
//! LENGTH in decimal ASCII:
//!
//! - `m`: a piece of the current message (the first piece after an end starts a message);
//! - `e`: the text0 envelope: the message is complete, queue it now;
//! - `a`: abort the current message (its DATA is ignored): nothing is queued, no answer.
//!
//! After each `e` one line goes to fd 1: the qmail-queue exit code in decimal (`0` =
//! queued: `mess/ID`, `mess/` and the envelope fsync'd, renamed into `todo/`, `todo/` fsync'd —
//! exactly the one-shot mode's steps, [`crate::run`]'s code path). A refused message (91,
//! 11, a write error…) is answered and the next one may follow. End of file between
//! messages ends the program (exit 0); end of file inside a message, a bad frame or a
//! frame over the limits is a protocol error: the half-written files are removed and it
//! exits 54. `control/timeoutqueue` bounds each message (from its first frame to its
//! answer), not the idle time between messages.

use crate::{Config, Pending, QueueError, cleanup, queue_message};
use std::cell::RefCell;
use std::io::{self, BufRead, Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use mailorder_queue_format::frame::MAX_PIECE;

/// How a message's frames ended.
#[derive(Debug)]
enum End {
    Envelope(Vec<u8>),
    Abort,
}

/// Why the frame stream cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// End of file, a read error, a bad tag or length: the client is gone or broken.
    #[error("framed input: {0}")]
    Protocol(String),
}

struct Frames<R: BufRead> {
    r: R,
    /// Bytes left in the current `m` frame.
    left: usize,
    end: Option<End>,
    /// Whether any frame of the current message was read.
    started: bool,
    max_envelope: usize,
}

impl<R: BufRead> Frames<R> {
    /// The next frame header: `None` at a clean end of file (only between messages).
    fn header(&mut self) -> Result<Option<(u8, usize)>, FrameError> {
        mailorder_queue_format::frame::read_header(&mut self.r)
            .map_err(|e| FrameError::Protocol(e.to_string()))
    }

    fn take(&mut self, len: usize) -> Result<Vec<u8>, FrameError> {
        let mut v = vec![0u8; len];
        self.r
            .read_exact(&mut v)
            .map_err(|e| FrameError::Protocol(e.to_string()))?;
        Ok(v)
    }

    /// Read frames until the current `m` frame has data or the message has ended.
    fn advance(&mut self) -> Result<(), FrameError> {
        while self.left == 0 && self.end.is_none() {
            let Some((tag, len)) = self.header()? else {
                return Err(FrameError::Protocol("end of file inside a message".into()));
            };
            self.started = true;
            match tag {
                b'm' if len <= MAX_PIECE => self.left = len,
                b'e' if len <= self.max_envelope + 1 => {
                    self.end = Some(End::Envelope(self.take(len)?));
                }
                b'a' if len <= MAX_PIECE => {
                    self.take(len)?;
                    self.end = Some(End::Abort);
                }
                _ => return Err(FrameError::Protocol(format!("bad frame {:?}", tag as char))),
            }
        }
        Ok(())
    }

    /// Skip whatever is left of the current message (after a failure that stopped reading).
    fn drain(&mut self) -> Result<(), FrameError> {
        loop {
            if self.left > 0 {
                let n = io::copy(&mut self.r.by_ref().take(self.left as u64), &mut io::sink())
                    .map_err(|e| FrameError::Protocol(e.to_string()))?;
                if n == 0 {
                    return Err(FrameError::Protocol("end of file inside a message".into()));
                }
                self.left -= usize::try_from(n).unwrap_or(self.left);
                continue;
            }
            if self.end.is_some() {
                return Ok(());
            }
            self.advance()?;
        }
    }
}

/// The message as `queue_message` reads it: the `m` pieces, end of file at `e`; an `a`
/// is a read error, so the half-written files are removed.
struct MessagePart<'a, R: BufRead>(&'a RefCell<Frames<R>>);

impl<R: BufRead> Read for MessagePart<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut f = self.0.borrow_mut();
        f.advance().map_err(io::Error::other)?;
        match f.end {
            Some(End::Envelope(_)) => return Ok(0),
            Some(End::Abort) => return Err(io::Error::other("aborted by the client")),
            None => {}
        }
        let want = buf.len().min(f.left);
        let n = f.r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::other("end of file inside a message"));
        }
        f.left -= n;
        Ok(n)
    }
}

/// The envelope: the `e` frame's data.
struct EnvelopePart<'a, R: BufRead> {
    frames: &'a RefCell<Frames<R>>,
    pos: usize,
}

impl<R: BufRead> Read for EnvelopePart<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let f = self.frames.borrow();
        let Some(End::Envelope(env)) = &f.end else {
            return Ok(0);
        };
        let rest = env.get(self.pos..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

/// One watchdog for the whole run: a message that takes longer than `timeout` from its
/// first frame to its answer has its files removed and ends the process (`expired`).
fn watchdog(timeout: u64, pending: Arc<Mutex<(Pending, Option<Instant>)>>, expired: fn() -> !) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1).min(Duration::from_secs(timeout.max(1))));
            let mut p = match pending.lock() {
                Ok(p) => p,
                Err(e) => e.into_inner(),
            };
            let (pend, started) = &mut *p;
            if started.is_some_and(|t| t.elapsed() >= Duration::from_secs(timeout))
                && !pend.accepting
            {
                cleanup(pend);
                log::error!("timeout after {timeout} s (#4.4.2)");
                expired();
            }
        }
    });
}

/// Serve frames from `input`, answers to `output`, until a clean end of file. Returns the
/// number of messages queued; `Err` on a protocol error (the current message's files are
/// removed).
pub fn run_framed(
    cfg: &Config,
    input: impl BufRead,
    mut output: impl Write,
) -> Result<u64, FrameError> {
    let shared = Arc::new(Mutex::new((Pending::default(), None::<Instant>)));
    watchdog(cfg.timeout, Arc::clone(&shared), cfg.on_timeout);
    let frames = RefCell::new(Frames {
        r: input,
        left: 0,
        end: None,
        started: false,
        max_envelope: cfg.max_envelope,
    });
    let mut queued = 0;
    let mut kept = crate::Kept::default();
    loop {
        {
            let mut f = frames.borrow_mut();
            f.end = None;
            f.left = 0;
            f.started = false;
            // A clean end of file is allowed only here, between messages.
            match f.header() {
                Ok(None) => return Ok(queued),
                Ok(Some((tag, len))) => {
                    f.started = true;
                    match tag {
                        b'm' if len <= MAX_PIECE => f.left = len,
                        b'e' if len <= f.max_envelope + 1 => {
                            let env = f.take(len)?;
                            f.end = Some(End::Envelope(env));
                        }
                        b'a' if len <= MAX_PIECE => {
                            f.take(len)?;
                            continue;
                        }
                        _ => {
                            return Err(FrameError::Protocol(format!(
                                "bad frame {:?}",
                                tag as char
                            )));
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if let Ok(mut p) = shared.lock() {
            p.0 = Pending::default();
            p.1 = Some(Instant::now());
        }
        // The same steps as the one-shot mode, on a Pending the watchdog can see.
        let pending = PendingView(Arc::clone(&shared));
        let res = queue_message(
            cfg,
            MessagePart(&frames),
            EnvelopePart {
                frames: &frames,
                pos: 0,
            },
            &pending,
            &mut kept,
        );
        let drained = frames.borrow_mut().drain();
        if (res.is_err() || drained.is_err())
            && let Ok(mut p) = shared.lock()
        {
            cleanup(&mut p.0);
        }
        if let Ok(mut p) = shared.lock() {
            p.1 = None;
        }
        drained?;
        if matches!(frames.borrow().end, Some(End::Abort)) {
            continue;
        }
        let code = match &res {
            Ok(id) => {
                queued += 1;
                log::debug!("queued id={id} uid={}", cfg.uid);
                0
            }
            Err(e) => {
                log::warn!("not queued: {e} code={}", e.code());
                e.code()
            }
        };
        writeln!(output, "{code}")
            .and_then(|()| output.flush())
            .map_err(|e| FrameError::Protocol(format!("cannot answer: {e}")))?;
    }
}

/// `queue_message` takes a `&Mutex<Pending>`; framed mode keeps the Pending beside the
/// message's start time for its single watchdog.
pub(crate) struct PendingView(Arc<Mutex<(Pending, Option<Instant>)>>);

impl crate::PendingSink for PendingView {
    fn with(&self, f: &mut dyn FnMut(&mut Pending)) {
        let mut p = match self.0.lock() {
            Ok(p) => p,
            Err(e) => e.into_inner(),
        };
        f(&mut p.0);
    }
}

impl From<FrameError> for QueueError {
    fn from(e: FrameError) -> QueueError {
        QueueError::Read(io::Error::other(e.to_string()))
    }
}
