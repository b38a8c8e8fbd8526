//! The only writer of new mail into the queue: qmail-queue's contract (docs/CONVENTIONS.md §8).
//!
//! [`run`] reads the message (fd 0) to EOF into `mess/ID` behind a `Received:` line, then
//! the text0 envelope (fd 1) into `intd/ID`, fsyncs both files and `mess/`, and
//! accepts the message with the single atomic `rename(intd/ID, todo/ID)` + `fsync(todo/)`
//! (docs/ARCHITECTURE.md "The queue on disk"). Before that rename nothing is visible to
//! dispatch; on any failure before it, `mess/ID` and `intd/ID` are removed.
//!
//! Every failure is a [`QueueError`] whose [`QueueError::code`] is the qmail-queue exit code.
//! It must not deliver, interpret the message, or trust the environment for paths.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::exit::queue::OK,
    mailorder_core::exit::queue::ADDR_TOO_LONG,
    mailorder_core::exit::queue::NOMEM,
    mailorder_core::exit::queue::TIMEOUT,
    mailorder_core::exit::queue::WRITE,
    mailorder_core::exit::queue::READ,
    mailorder_core::exit::queue::CONFIG,
    mailorder_core::exit::queue::HOME,
    mailorder_core::exit::queue::QUEUE_DIR,
    mailorder_core::exit::queue::MESS_DIR,
    mailorder_core::exit::queue::INTD_DIR,
    mailorder_core::exit::queue::TODO_DIR,
    mailorder_core::exit::queue::BUG,
    mailorder_core::exit::queue::ENVELOPE,
];

use mailorder_core::Exit;
use mailorder_core::atomic::GroupSync;
use mailorder_core::exit::queue as code;
use mailorder_queue_format::envelope::{self, EnvelopeError, MAX_ENVELOPE};
use mailorder_queue_format::spare::{For, Taker};
use mailorder_queue_format::{Queue, date};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default for `control/timeoutqueue`: qmail-queue's 86400 s alarm.
pub const DEFAULT_TIMEOUT: u64 = 86_400;

/// Why the message was not queued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// `ROOT` is missing.
    #[error("cannot reach the mailorder root {0}")]
    Home(PathBuf),
    /// `ROOT/queue` is missing.
    #[error("cannot reach the queue directory {0}")]
    QueueDir(PathBuf),
    /// `mess/` problem (not a write error).
    #[error("queue/mess: {0}")]
    Mess(io::Error),
    /// `intd/` problem (not a write error).
    #[error("queue/intd: {0}")]
    Intd(io::Error),
    /// `todo/` problem.
    #[error("queue/todo: {0}")]
    Todo(io::Error),
    /// Write or fsync failed (disk full, quota, I/O error).
    #[error("write error: {0}")]
    Write(io::Error),
    /// Reading the message failed.
    #[error("cannot read message: {0}")]
    Read(io::Error),
    /// The envelope is unreadable, malformed or too large.
    #[error("{0}")]
    Envelope(#[from] EnvelopeError),
    /// A control file is unreadable.
    #[error("{0}")]
    Config(#[from] mailorder_core::control::ControlError),
    /// Out of memory.
    #[error("out of memory")]
    NoMem,
}

impl QueueError {
    /// The qmail-queue exit code.
    pub fn code(&self) -> u8 {
        match self {
            QueueError::Home(_) => code::HOME,
            QueueError::QueueDir(_) => code::QUEUE_DIR,
            QueueError::Mess(_) => code::MESS_DIR,
            QueueError::Intd(_) => code::INTD_DIR,
            QueueError::Todo(_) => code::TODO_DIR,
            QueueError::Write(_) => code::WRITE,
            QueueError::Read(_) => code::READ,
            QueueError::Envelope(e) => e.queue_code(),
            QueueError::Config(_) => code::CONFIG,
            QueueError::NoMem => code::NOMEM,
        }
    }

    /// Permanent for 11–40, temporary otherwise.
    pub fn class(&self) -> Exit {
        if code::is_permanent(self.code()) {
            Exit::Perm
        } else {
            Exit::Temp
        }
    }
}

/// Whether an errno means "the write failed" (53) rather than "the directory is wrong".
fn is_write_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EIO | libc::EFBIG | libc::EROFS)
    )
}

/// Classify an error of an operation on a directory: write errors are 53, the rest `dir`.
fn dir_err(dir: fn(io::Error) -> QueueError) -> impl Fn(io::Error) -> QueueError {
    move |e| {
        if e.kind() == io::ErrorKind::OutOfMemory {
            QueueError::NoMem
        } else if is_write_error(&e) {
            QueueError::Write(e)
        } else {
            dir(e)
        }
    }
}

/// What [`run`] needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// `ROOT` (only checked for existence: 61).
    pub root: PathBuf,
    /// `ROOT/queue`.
    pub queue: Queue,
    /// Seconds allowed for the whole run before [`Config::on_timeout`].
    pub timeout: u64,
    /// What ends the process when `timeout` passes (half-written files already removed):
    /// the binary exits 52 through core's table.
    pub on_timeout: fn() -> !,
    /// The invoking (real) uid, for the `Received:` line.
    pub uid: u32,
    /// Upper bound on the envelope's size.
    pub max_envelope: usize,
}

impl Config {
    /// The installation's configuration: compile-time root (or `MAILORDER_ROOT` when not
    /// set-id), `control/timeoutqueue`, the real uid; `on_timeout` as given.
    pub fn from_system(on_timeout: fn() -> !) -> Result<Config, QueueError> {
        let root = mailorder_core::root::root();
        let timeout = mailorder_core::control::Control::new(root.join("control"))
            .number("timeoutqueue", DEFAULT_TIMEOUT)?;
        Ok(Config {
            queue: Queue::new(root.join("queue")),
            root,
            timeout,
            on_timeout,
            uid: mailorder_core::sys::ids().0,
            max_envelope: MAX_ENVELOPE,
        })
    }
}

pub mod framed;

pub use framed::run_framed;

/// Files to remove if the run fails or times out before the message is accepted.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    files: Vec<PathBuf>,
    accepting: bool,
}

/// Where `queue_message` records its files and the moment of acceptance: the one-shot
/// mode's `Mutex<Pending>`, or the framed mode's shared per-message record.
pub(crate) trait PendingSink {
    fn with(&self, f: &mut dyn FnMut(&mut Pending));
}

impl PendingSink for Mutex<Pending> {
    fn with(&self, f: &mut dyn FnMut(&mut Pending)) {
        let mut p = match self.lock() {
            Ok(p) => p,
            Err(e) => e.into_inner(),
        };
        f(&mut p);
    }
}

fn cleanup(p: &mut Pending) {
    for f in p.files.drain(..) {
        let _ = std::fs::remove_file(f);
    }
}

/// The watchdog: after `secs`, remove what is half-written and call `expired` (the binary's
/// exit 52), unless the message is being accepted already. The library never ends the
/// process itself: the main thread may be blocked reading fd 0, so the binary says how.
fn watchdog(secs: u64, pending: Arc<Mutex<Pending>>, expired: fn() -> !) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        let mut p = match pending.lock() {
            Ok(p) => p,
            Err(e) => e.into_inner(),
        };
        if !p.accepting {
            cleanup(&mut p);
            log::error!("timeout after {secs} s (#4.4.2)");
            expired();
        }
    });
}

/// What a queue process keeps between messages (the framed mode, for every message):
///
/// - the directory fsyncs of `mess/` and `todo/`, shared with every other `queue` process
///   (group commit, `mailorder_core::atomic::GroupSync`, records `queue/lock/sync.mess`
///   and `queue/lock/sync.todo`): one `fsync` that starts after a message's rename covers
///   it, whoever runs it;
/// - two helper threads, started at the first message and kept: one fsyncs `mess/ID`, the
///   other `mess/`, while the main thread writes and fsyncs the envelope (a thread start
///   per message was about 3 % of the mail path's CPU);
/// - its listing of `queue/spare/` (mailorder-queue-format `spare`): finished files that
///   queue-clean kept, taken before a new file is created.
#[derive(Default)]
pub(crate) struct Kept {
    /// `mess/`'s syncer when no helper thread could be started (then used inline).
    mess: Option<GroupSync>,
    todo: Option<GroupSync>,
    file_helper: Option<Helper<File>>,
    mess_helper: Option<Helper<()>>,
    spares: Taker,
    /// The trigger FIFO, open for writing while dispatch reads it ([`Trigger`]).
    trigger: Trigger,
    /// The copy buffer, kept: a new 64 KiB zeroed per message was measurable.
    buf: Vec<u8>,
    /// The root and `queue/` were found (codes 61 and 62 are told at the first message).
    checked: bool,
}

impl std::fmt::Debug for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kept").finish_non_exhaustive()
    }
}

/// A long-lived thread that runs one kind of job at a time and reports each result in
/// order. Every job submitted must be waited for ([`Helper::wait`]) before the next.
struct Helper<J: Send + 'static> {
    jobs: std::sync::mpsc::Sender<J>,
    done: std::sync::mpsc::Receiver<io::Result<()>>,
}

impl<J: Send + 'static> Helper<J> {
    fn start(mut run: impl FnMut(J) -> io::Result<()> + Send + 'static) -> io::Result<Self> {
        let (jobs, job_rx) = std::sync::mpsc::channel::<J>();
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                for job in job_rx {
                    if done_tx.send(run(job)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Helper { jobs, done })
    }

    /// Hand `job` over; gives it back when the thread is gone (run it inline then).
    fn submit(&self, job: J) -> Result<(), J> {
        self.jobs.send(job).map_err(|e| e.0)
    }

    fn wait(&self) -> io::Result<()> {
        self.done
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("fsync thread gone")))
    }
}

/// A job started by [`Kept::start_file_sync`] or [`Kept::start_mess_sync`]: on a helper
/// thread, or still to run inline.
enum Started<T> {
    Helper,
    Inline(T),
}

impl Kept {
    /// A spare moved to `path` (to be overwritten from its start), else a new file created
    /// exclusively; with the file's old length (0 for a new one): [`finish`].
    fn file(&mut self, q: &Queue, path: &Path, kind: For) -> io::Result<(File, u64)> {
        match self.spares.take(q, path, kind) {
            Some(s) => Ok((s.file, s.old_len)),
            None => create_excl(path).map(|f| (f, 0)),
        }
    }

    /// Start the `fsync` of the message file on the helper thread (closed there).
    fn start_file_sync(&mut self, f: File) -> Started<File> {
        if self.file_helper.is_none() {
            self.file_helper = Helper::start(|f: File| f.sync_all()).ok();
        }
        match &self.file_helper {
            Some(h) => match h.submit(f) {
                Ok(()) => Started::Helper,
                Err(f) => {
                    self.file_helper = None;
                    Started::Inline(f)
                }
            },
            None => Started::Inline(f),
        }
    }

    fn finish_file_sync(&mut self, s: Started<File>) -> io::Result<()> {
        match (s, &self.file_helper) {
            (Started::Inline(f), _) => f.sync_all(),
            (Started::Helper, Some(h)) => h.wait(),
            (Started::Helper, None) => Err(io::Error::other("fsync thread gone")),
        }
    }

    /// Start the (shared) `fsync` of `mess/` on its helper thread: `mess/ID` is already
    /// there, so any `fsync` of `mess/` from now on makes its name durable.
    fn start_mess_sync(&mut self, q: &Queue) -> Started<()> {
        if self.mess_helper.is_none() {
            let (dir, record) = (q.mess_dir(), q.lock_dir().join("sync.mess"));
            let mut slot = None;
            self.mess_helper =
                Helper::start(move |()| sync(&mut slot, &dir, &record).map(drop)).ok();
        }
        match &self.mess_helper {
            Some(h) => match h.submit(()) {
                Ok(()) => Started::Helper,
                Err(()) => {
                    self.mess_helper = None;
                    Started::Inline(())
                }
            },
            None => Started::Inline(()),
        }
    }

    fn finish_mess_sync(&mut self, q: &Queue, s: Started<()>) -> io::Result<()> {
        match (s, &self.mess_helper) {
            (Started::Inline(()), _) => sync(
                &mut self.mess,
                &q.mess_dir(),
                &q.lock_dir().join("sync.mess"),
            )
            .map(drop),
            (Started::Helper, Some(h)) => h.wait(),
            (Started::Helper, None) => Err(io::Error::other("fsync thread gone")),
        }
    }
}

fn sync(slot: &mut Option<GroupSync>, dir: &Path, record: &Path) -> io::Result<bool> {
    let g = match slot {
        Some(g) => g,
        None => slot.insert(GroupSync::open(dir, record)?),
    };
    g.sync()
}

/// Queue one message: `message` read to EOF, then `envelope`. Returns the new id.
pub fn run(cfg: &Config, message: impl Read, envelope: impl Read) -> Result<String, QueueError> {
    let pending = Arc::new(Mutex::new(Pending::default()));
    watchdog(cfg.timeout, Arc::clone(&pending), cfg.on_timeout);
    let res = queue_message(cfg, message, envelope, &*pending, &mut Kept::default());
    if res.is_err() {
        let mut p = match pending.lock() {
            Ok(p) => p,
            Err(e) => e.into_inner(),
        };
        cleanup(&mut p);
    }
    res
}

fn remember(pending: &impl PendingSink, path: &Path) {
    pending.with(&mut |p| p.files.push(path.to_owned()));
}

/// Create `path` exclusively, mode 0640 (group mosend reads it; the directories are
/// set-gid mosend so the group is inherited).
fn create_excl(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(path)
}

fn queue_message(
    cfg: &Config,
    mut message: impl Read,
    envelope: impl Read,
    pending: &impl PendingSink,
    kept: &mut Kept,
) -> Result<String, QueueError> {
    // Once per process (framed: at the first message): a tree that goes away later makes
    // the steps below fail with the code of the directory they touch, temporary all the
    // same; two path lookups per message saved (issue #11).
    if !kept.checked {
        if !cfg.root.is_dir() {
            return Err(QueueError::Home(cfg.root.clone()));
        }
        if !cfg.queue.root.is_dir() {
            return Err(QueueError::QueueDir(cfg.queue.root.clone()));
        }
        kept.checked = true;
    }
    let q = &cfg.queue;

    // Step 1: mess/ID, a spare or a new file (O_EXCL), never an existing name; retry with
    // a fresh id on a collision.
    let mut attempt = 0;
    let (id, mess, old_len) = loop {
        let id = Queue::new_id();
        let path = q.mess(&id);
        match kept.file(q, &path, For::Message) {
            Ok((f, old_len)) => {
                remember(pending, &path);
                break (id, f, old_len);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 20 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(dir_err(QueueError::Mess)(e)),
        }
    };
    let mut w = Counted {
        w: BufWriter::with_capacity(64 * 1024, mess),
        n: 0,
    };
    writeln!(
        w,
        "Received: (mailorder-queue invoked by uid {}); {}",
        cfg.uid,
        date::now()
    )
    .map_err(QueueError::Write)?;
    if kept.buf.len() != COPY_BUF {
        kept.buf = vec![0u8; COPY_BUF];
    }
    copy(&mut message, &mut w, &mut kept.buf)?;
    let written = w.n;
    let mess =
        w.w.into_inner()
            .map_err(|e| QueueError::Write(e.into_error()))?;
    finish(&mess, old_len, written)?;

    // Step 2: the envelope into intd/ID, while mess/ID's fsync and mess/'s run on the two
    // helper threads (a message waits for one device flush here, not two in a row: mess/ID
    // exists already, so mess/'s fsync need not wait for the rename); all three must have
    // succeeded before step 3.
    let intd = q.intd(&id);
    let file_sync = kept.start_file_sync(mess);
    let mess_sync = kept.start_mess_sync(q);
    let written = (|| {
        let env = envelope::read_envelope(envelope, cfg.max_envelope)?;
        let (mut f, old_len) = kept
            .file(q, &intd, For::Envelope)
            .map_err(dir_err(QueueError::Intd))?;
        remember(pending, &intd);
        let data = envelope::encode(&env);
        f.write_all(&data).map_err(QueueError::Write)?;
        finish(&f, old_len, data.len() as u64)?;
        f.sync_all().map_err(QueueError::Write)
    })();
    // Both jobs are waited for whatever happened, so the helpers stay in step.
    let mess_synced = kept.finish_file_sync(file_sync);
    let dir_synced = kept.finish_mess_sync(q, mess_sync);
    written?;
    mess_synced.map_err(QueueError::Write)?;
    dir_synced.map_err(dir_err(QueueError::Mess))?;

    // Step 3: the single atomic step. The watchdog may no longer interfere.
    pending.with(&mut |p| p.accepting = true);
    std::fs::rename(&intd, q.todo(&id)).map_err(dir_err(QueueError::Todo))?;
    // From here the message is visible to dispatch: never remove it. If the fsync fails the
    // caller sees 66 and may retry: a duplicate is better than a loss.
    pending.with(&mut |p| p.files.clear());
    // todo/ID durable before the answer (fsync of todo/, shared with the other queue
    // processes). intd/ is not fsynced: the file only passes through it.
    sync(
        &mut kept.todo,
        &q.todo_dir(),
        &q.lock_dir().join("sync.todo"),
    )
    .map_err(dir_err(QueueError::Todo))?;

    // Step 4: wake dispatch, naming the message.
    kept.trigger.pull(&q.trigger(), &id);
    Ok(id)
}

/// Size of the buffer the message is copied through.
const COPY_BUF: usize = 64 * 1024;

/// A writer that counts what went through it (the new length of a spare being rewritten,
/// without asking the kernel for the file position).
struct Counted<W: Write> {
    w: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.w.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// After the last write into a file from [`Kept::file`]: a spare that was longer than
/// the `written` octets is cut to them (mailorder-queue-format `spare::Spare::finish`).
fn finish(f: &File, old_len: u64, written: u64) -> Result<(), QueueError> {
    if old_len == 0 {
        return Ok(());
    }
    mailorder_queue_format::spare::Spare::finish(f, old_len, written).map_err(QueueError::Write)
}

/// Copy the message through `buf`; read errors are 54, write errors 53.
fn copy(r: &mut impl Read, w: &mut impl Write, buf: &mut [u8]) -> Result<(), QueueError> {
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(QueueError::Read(e)),
        };
        w.write_all(&buf[..n]).map_err(QueueError::Write)?;
    }
}

/// Write `ID\n` to the trigger FIFO without blocking; a missing reader (ENXIO), a
/// missing FIFO (ENOENT) or a full pipe (EAGAIN) is fine: dispatch scans `todo/` anyway
/// (at once when it finds the pipe was full, otherwise within its periodic rescan).
pub fn trigger(path: &Path, id: &str) {
    Trigger::default().pull(path, id);
}

/// The trigger FIFO as one process writes it for many messages (`queue framed`): opened
/// once and kept while writes succeed (an open and a close per message saved). When its
/// reader is gone (dispatch restarted: `EPIPE`, std ignores `SIGPIPE`) it is closed and
/// opened again at the next message, which reaches the new reader.
///
/// Each message is named by one line, `ID\n` (issue #11): dispatch takes `todo/ID` without
/// listing `todo/`. The line is written by one `write` shorter than `PIPE_BUF`, so the
/// kernel puts it in the pipe whole or not at all (`EAGAIN`): lines from many queue
/// processes never interleave.
#[derive(Debug, Default)]
pub struct Trigger(Option<File>);

impl Trigger {
    /// Write `ID\n` to the FIFO at `path`, without blocking; failures are fine (see
    /// [`trigger`]).
    pub fn pull(&mut self, path: &Path, id: &str) {
        let mut line = Vec::with_capacity(id.len() + 1);
        line.extend_from_slice(id.as_bytes());
        line.push(b'\n');
        for _ in 0..2 {
            let f = match self.0.take() {
                Some(f) => f,
                None => match OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                    .open(path)
                {
                    Ok(f) => f,
                    Err(e) => {
                        log::debug!("trigger: {e}");
                        return;
                    }
                },
            };
            match (&f).write(&line) {
                Ok(_) => {
                    self.0 = Some(f);
                    return;
                }
                // Full: dispatch has not read for a while; it sees a full pipe and lists
                // todo/, which finds this message.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.0 = Some(f);
                    return;
                }
                // No reader on this open FIFO any more: open it again (once).
                Err(e) => log::debug!("trigger: {e}"),
            }
        }
    }
}

/// Reads the envelope from fd 1, which the caller opened for reading (qmail-queue's
/// contract), through a borrowed descriptor.
pub struct Fd1;

impl Read for Fd1 {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::fd::AsFd;
        let out = io::stdout();
        nix::unistd::read(out.as_fd(), buf).map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Config) {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path().join("queue"));
        q.create_dirs().unwrap();
        let cfg = Config {
            root: d.path().to_owned(),
            queue: q,
            timeout: 3600,
            on_timeout: || -> ! { unreachable!("no unit test runs for an hour") },
            uid: 42,
            max_envelope: MAX_ENVELOPE,
        };
        (d, cfg)
    }

    fn frame(tag: char, data: &[u8]) -> Vec<u8> {
        let mut v = format!("{tag}{}\n", data.len()).into_bytes();
        v.extend_from_slice(data);
        v
    }

    // See: issue #11 (spares: no inode freed and allocated per message)
    #[test]
    fn a_new_message_reuses_spare_files_and_writes_them_whole() {
        use std::os::unix::fs::MetadataExt;
        let (_d, cfg) = setup();
        let q = &cfg.queue;
        // Two finished files, as queue-clean leaves them once usable (one was larger).
        mailorder_queue_format::spare::make_lanes(q).unwrap();
        let lane = mailorder_queue_format::spare::lane_dir(q, 1);
        std::fs::write(lane.join("1.1.1.m"), "x".repeat(10_000)).unwrap();
        std::fs::write(lane.join("1.1.1.t"), "Fold@x\0Told@y\0\0").unwrap();
        let inos: Vec<u64> = ["1.1.1.m", "1.1.1.t"]
            .iter()
            .map(|n| std::fs::metadata(lane.join(n)).unwrap().ino())
            .collect();
        let id = run(&cfg, &b"Subject: new\n\nbody\n"[..], &b"Fa@b\0Tc@d\0\0"[..]).unwrap();
        let (m, e) = (q.mess(&id), q.todo(&id));
        let mut used = vec![
            std::fs::metadata(&m).unwrap().ino(),
            std::fs::metadata(&e).unwrap().ino(),
        ];
        used.sort_unstable();
        let mut inos = inos;
        inos.sort_unstable();
        assert_eq!(used, inos, "both files are the spares");
        let text = std::fs::read_to_string(&m).unwrap();
        assert!(text.starts_with("Received: ") && text.ends_with("Subject: new\n\nbody\n"));
        assert!(!text.contains('x'), "nothing of the old content");
        assert_eq!(std::fs::read(&e).unwrap(), b"Fa@b\0Tc@d\0\0");
        assert_eq!(std::fs::read_dir(&lane).unwrap().count(), 0);
        // No spare left: created as before.
        let id2 = run(&cfg, &b"x\n"[..], &b"Fa@b\0Tc@d\0\0"[..]).unwrap();
        assert!(q.todo(&id2).exists() && q.mess(&id2).exists());
    }

    // See: issue #11 (queue framed: many messages, each answered once durable)
    #[test]
    fn framed_queues_many_answers_each_and_aborts_leave_nothing() {
        let (_d, cfg) = setup();
        let mut input = Vec::new();
        // 1: two pieces, queued.
        input.extend(frame('m', b"Subject: one\n\n"));
        input.extend(frame('m', b"body\n"));
        input.extend(frame('e', b"Fa@b\0Tc@d\0\0"));
        // 2: aborted: nothing, no answer.
        input.extend(frame('m', b"half"));
        input.extend(frame('a', b""));
        // 3: bad envelope: answered 91, and the stream goes on.
        input.extend(frame('m', b"x"));
        input.extend(frame('e', b"Xbad\0\0"));
        // 4: an empty message, queued.
        input.extend(frame('e', b"F\0Tc@d\0\0"));
        let mut out = Vec::new();
        let n = run_framed(&cfg, &input[..], &mut out).unwrap();
        assert_eq!(n, 2);
        assert_eq!(String::from_utf8(out).unwrap(), "0\n91\n0\n");
        let todo = cfg.queue.list_todo().unwrap();
        assert_eq!(todo.len(), 2);
        assert_eq!(cfg.queue.list_mess().unwrap().len(), 2);
        assert!(
            std::fs::read_dir(cfg.queue.intd_dir())
                .unwrap()
                .next()
                .is_none()
        );
        let m = std::fs::read_to_string(cfg.queue.mess(&todo[0])).unwrap();
        assert!(m.ends_with("Subject: one\n\nbody\n"), "{m}");
        // The directory fsyncs went through the shared records (group commit).
        for r in ["sync.mess", "sync.todo"] {
            assert!(cfg.queue.lock_dir().join(r).exists(), "{r}");
        }
        assert_eq!(
            std::fs::read(cfg.queue.todo(&todo[0])).unwrap(),
            b"Fa@b\0Tc@d\0\0"
        );
    }

    #[test]
    fn framed_end_of_file_inside_a_message_is_an_error_and_leaves_nothing() {
        let (_d, cfg) = setup();
        for input in [
            frame('m', b"Subject: cut\n\n"),
            b"m10\nshort".to_vec(),
            b"z1\nx".to_vec(),
            b"m99999999999\n".to_vec(),
        ] {
            let mut out = Vec::new();
            assert!(run_framed(&cfg, &input[..], &mut out).is_err());
            assert!(out.is_empty());
            assert!(empty(&cfg.queue));
        }
    }

    fn empty(q: &Queue) -> bool {
        q.list_mess().unwrap().is_empty()
            && q.list_intd().unwrap().is_empty()
            && q.list_todo().unwrap().is_empty()
    }

    #[test]
    fn queues_a_message() {
        let (_d, cfg) = setup();
        let id = run(&cfg, &b"Subject: hi\n\nbody\n"[..], &b"Fa@b\0Tc@d\0\0"[..]).unwrap();
        let q = &cfg.queue;
        let mess = std::fs::read_to_string(q.mess(&id)).unwrap();
        assert!(mess.starts_with("Received: (mailorder-queue invoked by uid 42); "));
        assert!(mess.ends_with("+0000\nSubject: hi\n\nbody\n"), "{mess}");
        assert_eq!(std::fs::read(q.todo(&id)).unwrap(), b"Fa@b\0Tc@d\0\0");
        assert!(q.list_intd().unwrap().is_empty());
    }

    #[test]
    fn keeps_dsn_records() {
        let (_d, cfg) = setup();
        let env: &[u8] = b"Fa@b\0ERET=HDRS ENVID=x+2By\0Tc@d\0NNOTIFY=SUCCESS,FAILURE \
            ORCPT=rfc822;c@d\0Te@f\0\0";
        let id = run(&cfg, &b"x\n"[..], env).unwrap();
        assert_eq!(std::fs::read(cfg.queue.todo(&id)).unwrap(), env);
        // Bad values are format errors; good lower-case values are stored upper case.
        let (_d, cfg) = setup();
        let id = run(&cfg, &b"x\n"[..], &b"F\0Eret=x\0\0"[..]);
        assert_eq!(id.unwrap_err().code(), 91);
        let id = run(&cfg, &b"x\n"[..], &b"F\0ERET=hdrs\0Ta\0Nnotify=x\0\0"[..]);
        assert_eq!(id.unwrap_err().code(), 91);
        let id = run(
            &cfg,
            &b"x\n"[..],
            &b"F\0ERET=hdrs\0Ta\0NNOTIFY=never\0\0"[..],
        )
        .unwrap();
        assert_eq!(
            std::fs::read(cfg.queue.todo(&id)).unwrap(),
            b"F\0ERET=HDRS\0Ta\0NNOTIFY=NEVER\0\0"
        );
    }

    #[test]
    fn failures_leave_nothing() {
        let cases: [(&[u8], u8); 6] = [
            (b"Fa@b\0Tc@d\0", 54),
            (b"Xa@b\0\0", 91),
            (b"", 54),
            (b"Fa@b\0Tc@d\0Ye\0\0", 91),
            (b"Fa@b\0Tc@d\0ERET=FULL\0\0", 91),
            (b"Fa@b\0Tc@d\0NORCPT=bad\0\0", 91),
        ];
        for (env, want) in cases {
            let (_d, cfg) = setup();
            let e = run(&cfg, &b"x\n"[..], env).unwrap_err();
            assert_eq!(e.code(), want, "{env:?}");
            assert!(empty(&cfg.queue));
        }
        let (_d, cfg) = setup();
        let long = format!("Fa\0T{}\0\0", "x".repeat(1001));
        let e = run(&cfg, &b"x\n"[..], long.as_bytes()).unwrap_err();
        assert_eq!((e.code(), e.class()), (11, Exit::Perm));
        assert!(empty(&cfg.queue));
    }

    /// Crash safety: whatever step fails, todo/ never names a message whose mess/ is not
    /// complete, and a failure removes what it wrote.
    #[test]
    fn todo_only_after_complete_mess() {
        let (_d, cfg) = setup();
        std::fs::remove_dir(cfg.queue.todo_dir()).unwrap();
        let e = run(&cfg, &b"x\n"[..], &b"Fa\0Tb\0\0"[..]).unwrap_err();
        assert_eq!(e.code(), 66);
        assert!(cfg.queue.list_mess().unwrap().is_empty());
        assert!(cfg.queue.list_intd().unwrap().is_empty());

        let (_d, cfg) = setup();
        std::fs::remove_dir(cfg.queue.intd_dir()).unwrap();
        assert_eq!(
            run(&cfg, &b"x\n"[..], &b"Fa\0Tb\0\0"[..])
                .unwrap_err()
                .code(),
            65
        );
        assert!(cfg.queue.list_mess().unwrap().is_empty());

        let (_d, cfg) = setup();
        std::fs::remove_dir(cfg.queue.mess_dir()).unwrap();
        assert_eq!(
            run(&cfg, &b"x\n"[..], &b"Fa\0Tb\0\0"[..])
                .unwrap_err()
                .code(),
            64
        );

        // A read error in the middle of the message: 54, nothing left.
        struct Broken(bool);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 {
                    return Err(io::Error::other("boom"));
                }
                self.0 = true;
                buf[0] = b'x';
                Ok(1)
            }
        }
        let (_d, cfg) = setup();
        assert_eq!(
            run(&cfg, Broken(false), &b"Fa\0Tb\0\0"[..])
                .unwrap_err()
                .code(),
            54
        );
        assert!(empty(&cfg.queue));
    }

    #[test]
    fn missing_dirs() {
        let (d, mut cfg) = setup();
        cfg.queue = Queue::new(d.path().join("nope"));
        assert_eq!(run(&cfg, &b""[..], &b"F\0\0"[..]).unwrap_err().code(), 62);
        cfg.root = d.path().join("nothing");
        assert_eq!(run(&cfg, &b""[..], &b"F\0\0"[..]).unwrap_err().code(), 61);
    }

    #[test]
    fn error_classes() {
        let enospc = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(dir_err(QueueError::Mess)(enospc).code(), 53);
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(dir_err(QueueError::Mess)(eacces).code(), 64);
        assert_eq!(QueueError::Write(io::Error::other("x")).class(), Exit::Temp);
    }

    // See: issue #11 (the framed mode keeps the FIFO open; a dispatch that restarts
    // gets its byte through a new open)
    #[test]
    fn a_kept_trigger_reaches_a_new_reader_after_the_old_one_is_gone() {
        use std::os::unix::fs::OpenOptionsExt;
        let (_d, cfg) = setup();
        let path = cfg.queue.trigger();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let reader = || {
            OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                .unwrap()
        };
        let got = |r: &mut File| {
            let mut b = [0u8; 64];
            let n = r.read(&mut b).unwrap_or(0);
            b[..n].to_vec()
        };
        let mut t = Trigger::default();
        let mut r1 = reader();
        t.pull(&path, "1.2.3");
        t.pull(&path, "1.2.4");
        assert_eq!(got(&mut r1), b"1.2.3\n1.2.4\n");
        assert!(t.0.is_some(), "kept open");
        drop(r1);
        t.pull(&path, "1.2.5"); // EPIPE, then ENXIO: nothing, no panic
        assert!(t.0.is_none());
        let mut r2 = reader();
        t.pull(&path, "1.2.6");
        assert_eq!(got(&mut r2), b"1.2.6\n", "the new reader is woken");
    }

    #[test]
    fn trigger_without_reader_is_fine() {
        let (_d, cfg) = setup();
        trigger(&cfg.queue.trigger(), "1.2.3");
        nix::unistd::mkfifo(
            &cfg.queue.trigger(),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        trigger(&cfg.queue.trigger(), "1.2.3");
    }
}
