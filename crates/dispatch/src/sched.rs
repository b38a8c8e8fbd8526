//! The running scheduler: threads report into one channel; the main loop owns every
//! [`State`] and is the only writer of `state/`.
//!
//! - one thread per one-shot delivery child and remote-send run: reads its stdout (the
//!   result text), waits, reports;
//! - one thread reads the signal pipe: TERM/INT (stop) and HUP/ALRM (flush), one the
//!   `ctl` FIFO;
//! - the main loop: `poll` until the next retry is due, on the trigger FIFO (opened
//!   `O_RDWR`, so it never sees EOF: the ids that queue names there, `ID\n`, or "list
//!   `todo/`" for anything else), the sockets of the long-lived delivery workers (their
//!   answers), and a wake-up pipe that the threads write after each report (issue #11:
//!   the trigger and each worker answer wake the main loop directly, not a thread that
//!   then wakes it).

use crate::bounce;
use crate::plan::{self, Action, BounceTo, Settings};
use mailorder_core::control::{Control, ControlError};
use mailorder_core::root;
use mailorder_core::watch::Kept;
use mailorder_directory::{DirError, Directory};
use mailorder_queue_client::{Client, QueueError};
use mailorder_queue_format::envelope::{self, MAX_ENVELOPE};
use mailorder_queue_format::state::{Outcome, State, Status};
use mailorder_queue_format::{Envelope, Queue, date, spare};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::ops::Bound;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

/// Age after which a `mess/` file without `todo/` or `state/` is garbage.
pub const ORPHAN_AGE: u64 = 36 * 3600;
/// How long TERM waits for running deliveries.
pub const STOP_GRACE: u64 = 60;
/// Safety-net rescan of `todo/` (in case the trigger FIFO is missing).
const RESCAN: u64 = 60;
/// Orphan cleanup interval.
const ORPHAN_SCAN: u64 = 3600;
/// Longest result text taken from a delivery program or worker.
const MAX_RESULT: usize = 1000;
/// Longest report read from remote-send (a record of ≤ 1001 bytes per recipient).
const MAX_REMOTE_REPORT: u64 = 4 * 1024 * 1024;

/// Why dispatch could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    /// A control file is unreadable or bad.
    #[error("{0}")]
    Control(#[from] ControlError),
    /// The queue cannot be listed.
    #[error("cannot read queue directory {path}: {source} (#4.3.0)")]
    Queue {
        /// The directory.
        path: PathBuf,
        /// errno.
        source: io::Error,
    },
    /// Signal setup failed.
    #[error("signal setup: {0} (#4.3.0)")]
    Signals(io::Error),
    /// `queue/lock/dispatch` is held by another dispatch (or cannot be taken): two
    /// schedulers on one queue would deliver every message twice.
    #[error("{0}")]
    Lock(#[from] mailorder_queue_format::LockError),
}

impl DispatchError {
    /// Always temporary: supervise restarts dispatch.
    pub fn class(&self) -> mailorder_core::Exit {
        mailorder_core::Exit::Temp
    }
}

/// Read the settings from control files.
pub fn load_settings(c: &Control) -> Result<Settings, ControlError> {
    let d = Settings::default();
    let concurrency = c.number("concurrencylocal", d.concurrency as u64)?;
    let remote = c.number("concurrencyremote", d.concurrency_remote as u64)?;
    let per_domain = c.number("concurrencydomain", d.concurrency_domain as u64)?;
    let batch = c.number("remotebatch", d.remote_batch as u64)?;
    Ok(Settings {
        me: c.me()?,
        concurrency: usize::try_from(concurrency.clamp(1, 1000)).unwrap_or(10),
        concurrency_remote: usize::try_from(remote.clamp(1, 1000)).unwrap_or(20),
        concurrency_domain: usize::try_from(per_domain.clamp(1, 1000)).unwrap_or(5),
        remote_batch: usize::try_from(batch.clamp(1, 1000)).unwrap_or(20),
        warn_time: c.number("warntime", d.warn_time)?,
        lifetime: c.number("queuelifetime", d.lifetime)?,
        max_backoff: c.number("maxbackoff", d.max_backoff)?.max(1),
        doublebounceto: c.string("doublebounceto", &d.doublebounceto)?,
        local_workers: c.number("localworkers", 1)? != 0,
    })
}

enum Event {
    Stop,
    Flush,
    /// One remote-send run: per message, its id and the recipients it carried.
    RemoteDone {
        jobs: Vec<(String, Vec<usize>)>,
        domain: String,
        code: Option<u8>,
        out: Vec<u8>,
    },
    Ctl(String),
    /// A one-shot local delivery ended (`control/localworkers` 0).
    Done {
        id: String,
        idx: usize,
        code: Option<u8>,
        text: String,
    },
}

/// How the threads report to the main loop: the event down the channel, then one octet
/// down the wake-up pipe that the main loop polls (a full pipe already wakes it).
#[derive(Clone)]
struct Notify {
    tx: Sender<Event>,
    wake: std::sync::Arc<OwnedFd>,
}

impl Notify {
    /// `Err` when the main loop is gone.
    fn send(&self, ev: Event) -> Result<(), ()> {
        self.tx.send(ev).map_err(|_| ())?;
        let _ = nix::unistd::write(&*self.wake, &[1]);
        Ok(())
    }
}

/// The trigger FIFO as the main loop reads it.
struct TriggerFifo {
    f: File,
    /// The pipe's size ([`parse_trigger`]).
    cap: usize,
    /// Larger than the pipe: one read takes everything it holds.
    buf: Vec<u8>,
}

/// How often the messages are walked for remote work while every local slot is busy.
const REMOTE_WALK: Duration = Duration::from_millis(100);
/// Messages taken at a time by a pass of `start_deliveries`.
const START_CHUNK: usize = 32;
/// Deliveries a local worker makes before it is retired. Postfix's max_use is 100; ten
/// times that, because each retirement costs a fork and exec here (and a deliver-as exec
/// for another uid) and a start of the worker, while a long life lets nothing go stale: the
/// worker reads the control files for each message and the directory again after any change
/// (at 100, the starts were 7 % of dispatch's CPU per message under load: issue #11).
const WORKER_MAXUSE: usize = 1000;
/// Seconds a local worker may stay idle before it is retired.
const WORKER_IDLE: u64 = 60;
/// Size of `ended` that asks for a listing of `todo/` to prune it (issue #11: messages
/// taken by name leave no listing behind them, and at 1,000 messages a second the 60 s
/// rescan alone would let it hold 60,000 ids).
const ENDED_PRUNE: usize = 4096;
/// How long queue-clean commands are gathered before they are written (issue #11): its
/// unlinks and spare moves wait for nothing, and one write per pass of the main loop woke
/// queue-clean about once per message at 10 sessions. A kill of dispatch in between
/// leaves the files of messages it finished meanwhile, which its next start delivers again
/// (at-least-once) or removes.
const CLEAN_DELAY: Duration = Duration::from_millis(10);
/// Octets of pending commands that are written at once (about 80 commands).
const CLEAN_BATCH: usize = 2048;
/// Most octets of queue-clean commands kept while queue-clean cannot be run.
const CLEAN_PENDING_MAX: usize = 1 << 20;

/// A long-lived `local-deliver` for one mailbox owner (`None`: dispatch's own uid, run
/// directly; otherwise started through `deliver-as UID GID`), fed over a hand-off socket.
struct LocalWorker {
    sock: OwnedFd,
    child: Child,
    owner: Option<(u32, u32)>,
    uses: usize,
    /// The delivery it is making.
    busy: Option<(String, usize)>,
    idle_since: u64,
}

/// The long-lived queue-clean child, driven without waiting: commands are written down the
/// pipe, and its answers go to `/dev/null`: queue-clean logs every failed command itself
/// (on the stderr it shares with dispatch), so a thread reading them only logged those
/// failures a second time, at the cost of a wake-up per batch of answers (issue #11).
/// dispatch's main loop never waits for queue-clean's unlink and fsync; order is kept (one
/// pipe), so `mess ID` still comes after `todo ID`. A failed command leaves a file behind
/// that the next scan (`todo/`: the existing state wins) or the orphan sweep (`mess/`)
/// removes.
///
/// The commands of one pass of the main loop are gathered and written at its end in one
/// `write` (issue #11: two per finished message before), in the order given. Nothing
/// waited for them before either: a written command is not a done one (queue-clean may
/// die with it unread), and a file left behind by a lost command is a duplicate delivery
/// after a restart at worst, never a loss.
struct Cleaner {
    program: PathBuf,
    child: Option<(Child, ChildStdin)>,
    /// Commands not written yet, one per line.
    pending: Vec<u8>,
    /// When they are to be written ([`CLEAN_DELAY`] after the first, or a retry's time).
    due: Option<std::time::Instant>,
}

impl Cleaner {
    fn spawn(&mut self) -> io::Result<()> {
        let mut cmd = Command::new(&self.program);
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::null()).spawn()?;
        let Some(i) = child.stdin.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other("no pipe to queue-clean"));
        };
        self.child = Some((child, i));
        Ok(())
    }

    /// Add one command for the next [`Self::flush`].
    fn cmd(&mut self, line: &str) {
        self.pending.extend_from_slice(line.as_bytes());
        self.pending.push(b'\n');
        self.due
            .get_or_insert_with(|| std::time::Instant::now() + CLEAN_DELAY);
    }

    /// How long until the pending commands are due (`None`: there are none).
    fn left(&self) -> Option<Duration> {
        self.due
            .map(|d| d.saturating_duration_since(std::time::Instant::now()))
    }

    /// [`Self::flush`] when the commands are due, fill a batch, or `now` is asked.
    fn flush_if_due(&mut self, now: bool) {
        if now || self.pending.len() >= CLEAN_BATCH || self.left() == Some(Duration::ZERO) {
            self.flush();
        }
    }

    /// Write the pending commands to queue-clean (restarting it once if it died). When
    /// they cannot be written they are kept for the next flush, up to
    /// [`CLEAN_PENDING_MAX`] octets; beyond that they are dropped (logged): their files
    /// stay until the next start, which delivers such a message again or removes it.
    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut why = String::new();
        for _ in 0..2 {
            if self.child.is_none()
                && let Err(e) = self.spawn()
            {
                why = format!("cannot run {}: {e}", self.program.display());
                break;
            }
            if let Some((_, i)) = &mut self.child {
                // One write for all (a pipe write is one system call up to the pipe's size).
                match i.write_all(&self.pending) {
                    Ok(()) => {
                        self.pending.clear();
                        self.due = None;
                        return;
                    }
                    Err(e) => {
                        why = format!("queue-clean died: {e}");
                        if let Some((mut c, _)) = self.child.take() {
                            let _ = c.kill();
                            let _ = c.wait();
                        }
                    }
                }
            }
        }
        if self.pending.len() > CLEAN_PENDING_MAX {
            log::error!(
                "queue-clean: {why}; {} octets of commands dropped (their files stay until the next start)",
                self.pending.len()
            );
            self.pending.clear();
            self.due = None;
        } else {
            log::warn!("queue-clean: {why}; its commands are tried again in a second");
            self.due = Some(std::time::Instant::now() + Duration::from_secs(1));
        }
    }
}

/// The scheduler.
pub struct Dispatch {
    /// `queue/lock/dispatch`, flock'ed for the life of the process.
    _alone: File,
    queue: Queue,
    control: Control,
    settings: Settings,
    own: (u32, u32),
    msgs: BTreeMap<String, State>,
    running: HashSet<(String, usize)>,
    local_jobs: usize,
    remote_jobs: usize,
    domain_jobs: HashMap<String, usize>,
    /// Messages to remove (qadmin `remove`) once their running deliveries end.
    remove_requested: HashSet<String>,
    /// Messages whose only durable record is still `todo/ID` (no `state/ID` written yet).
    unstored: HashSet<String>,
    /// Messages whose state changed since it was last written.
    dirty: HashSet<String>,
    /// Messages ended whose `todo/ID` may still be there until queue-clean removes it;
    /// pruned by each scan of `todo/`.
    ended: HashSet<String>,
    /// How many `ended` kept after the last scan.
    ended_kept: usize,
    /// The trigger asked for a listing: scan `todo/` once the waiting events are taken.
    scan_due: bool,
    /// Ids named by the trigger, taken once the waiting events are taken.
    named: Vec<String>,
    /// Ids whose `state/ID` exists but could not be loaded: the only ids this process has
    /// not loaded that can have a state file (dispatch alone writes `state/`, and keeps
    /// every state it writes in `msgs` until it has removed the file), so a named id
    /// outside this set needs no look at `state/` (issue #11).
    unloaded: HashSet<String>,
    /// Per message and recipient, whether its last resolution was remote delivery.
    kinds: HashMap<String, Vec<Option<bool>>>,
    cleaner: Cleaner,
    /// The file back-end of the directory, kept while `control/` and `directory/` are
    /// unchanged (`mailorder_core::watch`); LDAP is opened again for each pass.
    dir: Kept<Directory>,
    /// Long-lived local delivery workers, by id.
    workers: HashMap<u64, LocalWorker>,
    next_worker: u64,
    tx: Notify,
    rx: Receiver<Event>,
    /// The read end of [`Notify`]'s wake-up pipe.
    wake: OwnedFd,
    /// The trigger FIFO, when it could be opened.
    trigger: Option<TriggerFifo>,
    /// Retired or gone workers not reaped yet.
    exiting: Vec<Child>,
    stop_at: Option<u64>,
    last_rescan: u64,
    /// When `todo/` was last listed, and how many names it held (see `scan_gap`).
    last_scan: std::time::Instant,
    last_listed: usize,
    /// When a pass of `start_deliveries` last walked the messages with the local slots full.
    last_full_walk: std::time::Instant,
    last_orphans: u64,
}

fn lock_or_log<T>(r: Result<T, impl std::fmt::Display>, what: &str) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            log::warn!("{what}: {e}");
            None
        }
    }
}

impl Dispatch {
    /// A scheduler for this installation (root from `mailorder_core::root`).
    pub fn new() -> Result<Dispatch, DispatchError> {
        let queue = Queue::new(root::queue_dir());
        // First of all: one dispatch per queue.
        let alone = queue.lock_alone("dispatch")?;
        let control = Control::default();
        let settings = load_settings(&control)?;
        let (_, euid, _, egid) = mailorder_core::sys::ids();
        let (tx, rx) = mpsc::channel();
        let (wake, wake_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| DispatchError::Signals(e.into()))?;
        Ok(Dispatch {
            _alone: alone,
            queue,
            control,
            settings,
            own: (euid, egid),
            msgs: BTreeMap::new(),
            running: HashSet::new(),
            local_jobs: 0,
            remote_jobs: 0,
            domain_jobs: HashMap::new(),
            remove_requested: HashSet::new(),
            unstored: HashSet::new(),
            dirty: HashSet::new(),
            ended: HashSet::new(),
            ended_kept: 0,
            scan_due: false,
            named: Vec::new(),
            unloaded: HashSet::new(),
            kinds: HashMap::new(),
            cleaner: Cleaner {
                program: root::program("queue-clean"),
                child: None,
                pending: Vec::new(),
                due: None,
            },
            dir: Kept::new(vec![
                root::root().join("control"),
                root::root().join("directory"),
            ]),
            workers: HashMap::new(),
            next_worker: 0,
            tx: Notify {
                tx,
                wake: std::sync::Arc::new(wake_w),
            },
            rx,
            wake,
            trigger: None,
            exiting: Vec::new(),
            stop_at: None,
            last_rescan: 0,
            last_scan: std::time::Instant::now(),
            last_listed: 0,
            last_full_walk: std::time::Instant::now(),
            last_orphans: 0,
        })
    }

    /// Run until TERM; `signals` is the read end of [`catch_signals`]'s pipe.
    pub fn run(mut self, signals: File) -> Result<(), DispatchError> {
        // The main loop's info lines are written once per pass, before it waits (issue
        // #11: four lines per message were four writes); warnings and errors at once.
        mailorder_core::logger::hold();
        let end = self.main_loop(signals);
        mailorder_core::logger::release();
        end
    }

    fn main_loop(&mut self, signals: File) -> Result<(), DispatchError> {
        self.start_threads(signals);
        self.cleaner.cmd("clean");
        self.cleaner.flush();
        self.resume()?;
        self.scan_todo();
        log::info!(
            "started messages={} concurrencylocal={} concurrencyremote={} concurrencydomain={} remotebatch={}",
            self.msgs.len(),
            self.settings.concurrency,
            self.settings.concurrency_remote,
            self.settings.concurrency_domain,
            self.settings.remote_batch
        );
        loop {
            let now = date::unix_now();
            if self.stop_at.is_none() {
                self.retire_idle_workers(now);
                self.start_deliveries(now);
                self.settle_all(now);
                if now >= self.last_rescan + RESCAN {
                    self.scan_todo();
                }
                if now >= self.last_orphans + ORPHAN_SCAN {
                    self.orphans(now);
                }
            }
            self.store_dirty();
            // The queue-clean commands gathered over CLEAN_DELAY, in one write (at once
            // when stopping).
            self.cleaner.flush_if_due(self.stop_at.is_some());
            if let Some(t) = self.stop_at {
                if self.running.is_empty() {
                    log::info!("stopped");
                    return Ok(());
                }
                if now >= t {
                    log::warn!("stopping with {} deliveries running", self.running.len());
                    return Ok(());
                }
            }
            let mut timeout = Duration::from_secs(self.next_wait(now));
            if self.scan_due {
                timeout = timeout.min(self.scan_gap().saturating_sub(self.last_scan.elapsed()));
            }
            if let Some(left) = self.cleaner.left() {
                timeout = timeout.min(left);
            }
            // Every event that is already there is taken before starting deliveries and
            // writing states: a burst of results costs one batch of writes.
            self.wait(timeout, now);
            // The messages the trigger named are taken at once, without listing todo/.
            if !self.named.is_empty() && self.stop_at.is_none() {
                self.take_named();
            }
            // However many listings were asked for, one scan of todo/ takes them all; and
            // while todo/ is long (a backlog, whose every listing costs), one scan per gap.
            if self.scan_due
                && self.stop_at.is_none()
                && self.last_scan.elapsed() >= self.scan_gap()
            {
                self.scan_due = false;
                self.scan_todo();
            }
        }
    }

    /// Wait up to `timeout` for the trigger, a worker's answer or a thread's report, and
    /// take everything that is there.
    fn wait(&mut self, timeout: Duration, now: u64) {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        self.reap_exiting();
        mailorder_core::logger::release();
        // Whole milliseconds, rounded up: never a busy loop before something is due.
        let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
        // Only the workers making a delivery: an idle one has nothing to say, and one that
        // died while idle is found when a delivery cannot be handed to it (`deliver_local`
        // starts another), so a pass costs nothing per idle worker.
        let wids: Vec<u64> = self
            .workers
            .iter()
            .filter(|(_, w)| w.busy.is_some())
            .map(|(id, _)| *id)
            .collect();
        let (woken, triggered, answered) = {
            let mut fds = Vec::with_capacity(2 + wids.len());
            fds.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
            if let Some(t) = &self.trigger {
                fds.push(PollFd::new(t.f.as_fd(), PollFlags::POLLIN));
            }
            for w in &wids {
                if let Some(w) = self.workers.get(w) {
                    fds.push(PollFd::new(w.sock.as_fd(), PollFlags::POLLIN));
                }
            }
            let polled = poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            );
            mailorder_core::logger::hold();
            match polled {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => return,
                Err(e) => {
                    // Cannot happen with valid descriptors; do not spin on it.
                    log::error!("poll: {e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let ready = |p: &PollFd| p.revents().is_some_and(|r| !r.is_empty());
            let woken = ready(&fds[0]);
            let first = if self.trigger.is_some() { 2 } else { 1 };
            let triggered = first == 2 && ready(&fds[1]);
            let answered: Vec<u64> = wids
                .iter()
                .zip(&fds[first..])
                .filter(|(_, p)| ready(p))
                .map(|(w, _)| *w)
                .collect();
            (woken, triggered, answered)
        };
        if woken {
            // Emptied before the channel is read: an octet written after this read stays
            // for the next poll, and its event was sent before it.
            let mut b = [0u8; 256];
            while matches!(nix::unistd::read(&self.wake, &mut b), Ok(n) if n == b.len()) {}
        }
        while let Ok(ev) = self.rx.try_recv() {
            self.handle(ev, now);
        }
        if triggered {
            self.read_trigger();
        }
        for wid in answered {
            let Some(w) = self.workers.get(&wid) else {
                continue;
            };
            let answer = mailorder_core::handoff::recv_msg(w.sock.as_fd());
            self.worker_done(wid, answer, now);
        }
    }

    /// One read of the trigger FIFO (it is readable): the ids it names, or a listing.
    fn read_trigger(&mut self) {
        let Some(t) = &mut self.trigger else {
            return;
        };
        let (ids, list) = match (&t.f).read(&mut t.buf) {
            Ok(n) => parse_trigger(&t.buf[..n], n >= t.cap / 2),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                return;
            }
            Err(e) => {
                log::warn!("trigger: {e}; scanning every {RESCAN} s");
                self.trigger = None;
                return;
            }
        };
        self.scan_due |= list;
        self.named.extend(ids);
    }

    /// Reap the workers that were retired or are gone (`waitpid` without waiting).
    fn reap_exiting(&mut self) {
        self.exiting
            .retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }

    /// Retire worker `wid` (its socket shut down: it reads end of file and exits).
    fn retire_worker(&mut self, wid: u64) {
        if let Some(w) = self.workers.remove(&wid) {
            mailorder_core::handoff::retire(w.sock.as_fd());
            self.exiting.push(w.child);
        }
    }

    fn handle(&mut self, ev: Event, now: u64) {
        match ev {
            Event::Stop => {
                log::info!("stopping: waiting for {} deliveries", self.running.len());
                self.stop_at.get_or_insert(now + STOP_GRACE);
            }
            Event::Flush => self.flush(now),
            Event::RemoteDone {
                jobs,
                domain,
                code,
                out,
            } => self.remote_done(&jobs, &domain, code, &out),
            Event::Ctl(line) => self.control_request(&line, now),
            Event::Done {
                id,
                idx,
                code,
                text,
            } => self.done(&id, idx, code, &text),
        }
    }

    /// A worker's answer (or its end): the delivery's result, and the worker idle again,
    /// retired after `WORKER_MAXUSE`, or forgotten when gone. A worker gone in the middle
    /// of a delivery is a temporary failure: retried, delivered at least once.
    fn worker_done(&mut self, wid: u64, answer: Option<Vec<u8>>, now: u64) {
        let Some(w) = self.workers.get_mut(&wid) else {
            return;
        };
        let job = w.busy.take();
        let (code, text) = match &answer {
            Some(a) => parse_answer(a),
            None => (
                None,
                "delivery worker ended without a result (#4.3.0)".to_owned(),
            ),
        };
        if answer.is_none() || w.uses >= WORKER_MAXUSE {
            self.retire_worker(wid);
        } else {
            w.idle_since = now;
        }
        if let Some((id, idx)) = job {
            self.done(&id, idx, code, &text);
        }
    }

    /// Retire the workers idle longer than `WORKER_IDLE` (their sockets shut down: they
    /// read end of file and exit).
    fn retire_idle_workers(&mut self, now: u64) {
        let old: Vec<u64> = self
            .workers
            .iter()
            .filter(|(_, w)| w.busy.is_none() && now >= w.idle_since + WORKER_IDLE)
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            self.retire_worker(id);
        }
    }

    /// Start a worker for `owner` (the main loop polls its socket for the answers).
    fn start_worker(&mut self, owner: Option<(u32, u32)>) -> io::Result<u64> {
        use std::os::fd::AsRawFd;
        let (ours, theirs) = mailorder_core::handoff::pair()?;
        let (prog, args) = match owner {
            None => ("local-deliver", Vec::new()),
            Some((u, g)) => ("deliver-as", vec![u.to_string(), g.to_string()]),
        };
        let mut cmd = Command::new(root::program(prog));
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .env(mailorder_core::handoff::POOL_FD_VAR, "3");
        mailorder_core::sys::child_fd(&mut cmd, theirs.as_raw_fd(), 3);
        let child = cmd.spawn()?;
        drop(theirs);
        self.next_worker += 1;
        let wid = self.next_worker;
        log::info!(
            "worker started program={prog} owner={owner:?} pid={}",
            child.id()
        );
        self.workers.insert(
            wid,
            LocalWorker {
                sock: ours,
                child,
                owner,
                uses: 0,
                busy: None,
                idle_since: date::unix_now(),
            },
        );
        Ok(wid)
    }

    /// One local delivery through an idle worker of `owner` (started if there is none):
    /// `mess/ID` as the descriptor, sender, recipient and queue age as variables.
    fn deliver_local(
        &mut self,
        id: &str,
        idx: usize,
        owner: Option<(u32, u32)>,
        sender: String,
        rcpt: String,
        age: u64,
    ) -> Result<(), Outcome> {
        let mess = File::open(self.queue.mess(id))
            .map_err(|e| Outcome::Temporary(format!("cannot open message: {e} (#4.3.0)")))?;
        let env = vec![
            ("S".to_owned(), sender),
            ("R".to_owned(), rcpt.clone()),
            ("A".to_owned(), age.to_string()),
        ];
        for _ in 0..2 {
            let idle = self
                .workers
                .iter()
                .filter(|(_, w)| w.owner == owner && w.busy.is_none())
                .map(|(id, _)| *id)
                .max();
            let wid = match idle {
                Some(w) => w,
                None => self.start_worker(owner).map_err(|e| {
                    Outcome::Temporary(format!("cannot start a delivery worker: {e} (#4.3.0)"))
                })?,
            };
            let Some(w) = self.workers.get_mut(&wid) else {
                continue;
            };
            let sent = mailorder_core::handoff::send_conn(w.sock.as_fd(), mess.as_fd(), &env);
            match sent {
                Ok(()) => {
                    w.busy = Some((id.to_owned(), idx));
                    w.uses += 1;
                    log::info!("starting id={id} rcpt=<{rcpt}> worker={wid}");
                    self.running.insert((id.to_owned(), idx));
                    self.local_jobs += 1;
                    return Ok(());
                }
                Err(e) => {
                    log::warn!("delivery worker {wid} gone: {e}");
                    self.retire_worker(wid);
                }
            }
        }
        Err(Outcome::Temporary(
            "cannot hand the message to a delivery worker (#4.3.0)".to_owned(),
        ))
    }

    fn start_threads(&mut self, mut signals: File) {
        self.start_ctl_thread();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                let n = match signals.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        log::error!("signal pipe: {e}");
                        return;
                    }
                };
                for &sig in &buf[..n] {
                    let sig = libc::c_int::from(sig);
                    let ev = if sig == libc::SIGTERM || sig == libc::SIGINT {
                        Event::Stop
                    } else {
                        Event::Flush
                    };
                    if tx.send(ev).is_err() {
                        return;
                    }
                }
            }
        });
        // The FIFO is opened here, before run() scans todo/ for the first time: a message
        // queued between that scan and a later open would find no reader, and its trigger
        // byte would be lost until the next rescan.
        let fifo = self.queue.trigger();
        if !fifo.exists() {
            let mode = nix::sys::stat::Mode::from_bits_truncate(0o620);
            if let Err(e) = nix::unistd::mkfifo(&fifo, mode) {
                log::warn!("cannot create {}: {e}", fifo.display());
            }
        }
        use std::os::unix::fs::OpenOptionsExt;
        let f = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&fifo)
        {
            Ok(f) => f,
            Err(e) => {
                log::warn!(
                    "cannot open trigger {}: {e}; scanning every {RESCAN} s",
                    fifo.display()
                );
                return;
            }
        };
        // One read takes everything the pipe holds: a buffer larger than the pipe, so a
        // read that returns half of the pipe's size or more tells that writers may have
        // found it full and lost their lines ([`parse_trigger`]).
        let cap = nix::fcntl::fcntl(&f, nix::fcntl::FcntlArg::F_GETPIPE_SZ)
            .ok()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(65536);
        self.trigger = Some(TriggerFifo {
            f,
            cap,
            buf: vec![0u8; cap + 4096],
        });
    }

    /// Read requests from `queue/lock/ctl` (created 0600 if missing; opened read-write so
    /// it never sees EOF).
    fn start_ctl_thread(&self) {
        let tx = self.tx.clone();
        let fifo = ctl_path(&self.queue);
        std::thread::spawn(move || {
            if !fifo.exists() {
                let mode = nix::sys::stat::Mode::from_bits_truncate(0o600);
                if let Err(e) = nix::unistd::mkfifo(&fifo, mode) {
                    log::warn!("cannot create {}: {e}", fifo.display());
                    return;
                }
            }
            let f = match std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&fifo)
            {
                Ok(f) => f,
                Err(e) => {
                    log::warn!("cannot open {}: {e}; no qadmin requests", fifo.display());
                    return;
                }
            };
            let mut r = BufReader::new(f);
            let mut line = Vec::new();
            loop {
                line.clear();
                match (&mut r).take(512).read_until(b'\n', &mut line) {
                    Ok(0) => std::thread::sleep(Duration::from_secs(1)),
                    Ok(_) => {
                        let text = String::from_utf8_lossy(&line).trim().to_owned();
                        if !text.is_empty() && tx.send(Event::Ctl(text)).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        log::warn!("ctl: {e}");
                        return;
                    }
                }
            }
        });
    }

    /// Load every `state/ID` (restart).
    fn resume(&mut self) -> Result<(), DispatchError> {
        let ids = self
            .queue
            .list_state()
            .map_err(|source| DispatchError::Queue {
                path: self.queue.state_dir(),
                source,
            })?;
        for id in ids {
            if !self.queue.mess(&id).exists() {
                // The end of this message (unlinks without fsync) was cut short by a crash.
                log::info!("id={id}: state/ without mess/: finished before a restart");
                if let Err(e) = std::fs::remove_file(self.queue.state(&id))
                    && e.kind() != io::ErrorKind::NotFound
                {
                    log::warn!("id={id}: cannot remove state: {e}");
                }
                continue;
            }
            match State::load(&self.queue.state(&id)) {
                Ok(mut st) => {
                    if plan::release_held(&mut st, date::unix_now()) {
                        lock_or_log(State::store(&self.queue, &st), &format!("id={id}"));
                    }
                    self.msgs.insert(id, st);
                }
                Err(e) => {
                    log::error!("id={id}: {e}");
                    self.unloaded.insert(id);
                }
            }
        }
        Ok(())
    }

    /// The least time between two scans of `todo/` for trigger bytes while more new
    /// messages wait in memory than a round of deliveries takes: 50 µs per name `todo/`
    /// held at the last scan, at most 100 ms (issue #11). Those messages wait for free
    /// delivery slots anyway, and listing a long `todo/` at every event (each result, each
    /// trigger) was the largest part of dispatch's CPU under 50 sessions.
    fn scan_gap(&self) -> Duration {
        // Fewer new messages in memory than a round of deliveries: scan now, so that no
        // slot waits for work.
        if self.unstored.len() <= self.running.len() + self.settings.concurrency {
            return Duration::ZERO;
        }
        Duration::from_micros(50 * self.last_listed as u64).min(Duration::from_millis(100))
    }

    /// Take every message in `todo/`.
    fn scan_todo(&mut self) {
        self.last_rescan = date::unix_now();
        self.last_scan = std::time::Instant::now();
        let ids = match self.queue.list_todo() {
            Ok(ids) => ids,
            Err(e) => {
                log::warn!("cannot list {}: {e}", self.queue.todo_dir().display());
                return;
            }
        };
        self.last_listed = ids.len();
        let listed: HashSet<&str> = ids.iter().map(String::as_str).collect();
        self.ended.retain(|id| listed.contains(id.as_str()));
        self.ended_kept = self.ended.len();
        // Messages whose record todo/ID still is, and ended ones, are skipped before
        // anything is read (a stored message's leftover todo/ID still goes to intake,
        // which has it removed).
        let ids: Vec<String> = ids
            .into_iter()
            .filter(|id| !self.unstored.contains(id) && !self.ended.contains(id))
            .collect();
        if ids.is_empty() {
            return;
        }
        let mut kept = std::mem::replace(&mut self.dir, Kept::new(Vec::new()));
        let dir = kept.get(Directory::open, |d| !d.is_ldap());
        if let Err(e) = &dir {
            log::warn!("directory: {e}");
        }
        let dir = dir.ok();
        for id in ids {
            self.take(id, dir, false);
        }
        self.dir = kept;
    }

    /// Take the messages the trigger named (issue #11): `todo/ID` read directly, no listing.
    fn take_named(&mut self) {
        let mut ids = std::mem::take(&mut self.named);
        ids.retain(|id| {
            !self.msgs.contains_key(id) && !self.unstored.contains(id) && !self.ended.contains(id)
        });
        if !ids.is_empty() {
            let mut kept = std::mem::replace(&mut self.dir, Kept::new(Vec::new()));
            let dir = kept.get(Directory::open, |d| !d.is_ldap());
            if let Err(e) = &dir {
                log::warn!("directory: {e}");
            }
            let dir = dir.ok();
            for id in ids.drain(..) {
                self.take(id, dir, true);
            }
            self.dir = kept;
        }
        // The (empty) vector is kept for the next ids.
        self.named = ids;
    }

    /// [`Self::intake`], and a new message kept in memory.
    fn take(&mut self, id: String, dir: Option<&Directory>, named: bool) {
        if let Some(st) = self.intake(&id, dir, named) {
            log::info!(
                "new id={id} sender=<{}> recipients={}",
                st.sender,
                st.recipients.len(),
            );
            // todo/ID stays the durable record until a result must be kept: a message
            // delivered at the first try never gets a state file.
            self.unstored.insert(id.clone());
            self.msgs.insert(id, st);
        }
    }

    /// A message in todo/: an existing state wins (loaded, todo/ID given up); otherwise the
    /// new in-memory state, kept only by todo/ID until [`Self::store_dirty`] writes it.
    ///
    /// `named`: the trigger named `id` (issue #11) and this process does not know it, so
    /// it is a message queue has just accepted: its `mess/ID` was made durable before the
    /// rename into `todo/` and only this process removes it (after `ended`), and it has no
    /// `state/ID` unless it is one of `unloaded`. So `todo/ID` is read at once, without
    /// the two looks (`mess/ID`, `state/ID`) that a listed id needs (a listing also finds
    /// the leftovers of a crash); a `todo/ID` already gone (taken by a listing and finished
    /// before its line was read) is nothing to do.
    fn intake(&mut self, id: &str, dir: Option<&Directory>, named: bool) -> Option<State> {
        if self.unstored.contains(id) || self.ended.contains(id) {
            return None;
        }
        let fresh = named && !self.msgs.contains_key(id) && !self.unloaded.contains(id);
        if !fresh && !self.msgs.contains_key(id) && !self.queue.mess(id).exists() {
            // The end of this message (unlinks without fsync) was cut short by a crash.
            log::info!("id={id}: todo/ without mess/: finished before a restart");
            self.cleaner.cmd(&format!("todo {id}"));
            return None;
        }
        if fresh || (!self.msgs.contains_key(id) && !self.queue.state(id).exists()) {
            let env = match File::open(self.queue.todo(id))
                .map_err(envelope::EnvelopeError::from)
                .and_then(|f| envelope::read_envelope(f, MAX_ENVELOPE))
            {
                Ok(env) => env,
                Err(envelope::EnvelopeError::Io(e))
                    if fresh && e.kind() == io::ErrorKind::NotFound =>
                {
                    return None;
                }
                Err(e) => {
                    log::error!("id={id}: todo: {e}");
                    return None;
                }
            };
            let mut st = State::new(id, &env, date::unix_now());
            for r in &mut st.recipients {
                let res: Result<_, DirError> = match dir {
                    Some(d) => d.resolve(&r.address),
                    None => Ok(mailorder_directory::Resolved::Unknown),
                };
                r.status = plan::initial_status(&res);
            }
            return Some(st);
        }
        if !self.msgs.contains_key(id) {
            match State::load(&self.queue.state(id)) {
                Ok(mut st) => {
                    plan::release_held(&mut st, date::unix_now());
                    self.msgs.insert(id.to_owned(), st);
                }
                Err(e) => {
                    log::error!("id={id}: {e}");
                    self.unloaded.insert(id.to_owned());
                    return None;
                }
            }
        }
        self.cleaner.cmd(&format!("todo {id}"));
        None
    }

    /// Start due deliveries up to the concurrency limits: local ones one recipient at a
    /// time; remote ones gathered per domain (every due recipient of a message in that
    /// domain, messages oldest first, at most as many as the free runs can carry) and
    /// started as runs of up to `remotebatch` messages each ([`plan::batch_size`]).
    fn start_deliveries(&mut self, now: u64) {
        let local_full = |d: &Dispatch| d.local_jobs >= d.settings.concurrency;
        let free_remote = self
            .settings
            .concurrency_remote
            .saturating_sub(self.remote_jobs);
        // Messages gathered for remote runs, and how many the free runs can carry.
        let remote_cap = free_remote.saturating_mul(self.settings.remote_batch);
        let mut gathered: BTreeMap<String, Vec<(String, Vec<usize>)>> = BTreeMap::new();
        let mut n_gathered = 0usize;
        if local_full(self) && free_remote == 0 {
            return;
        }
        // With every local slot busy, walking the messages can only find remote work: done
        // at most once per REMOTE_WALK, not at every event, which made each event cost a
        // look at every message of a backlog. A remote start waits for the first event
        // after that (the loop wakes at least every second while something is due).
        let walk_due = |d: &Dispatch| d.last_full_walk.elapsed() >= REMOTE_WALK;
        if local_full(self) && !walk_due(self) {
            return;
        }

        // Local deliveries full (they stay so through the rest of this pass: nothing ends
        // during it): a message whose due recipients all resolved local last time has
        // nothing to start. Skipped without a copy or an allocation, and the messages are
        // taken a few at a time, not all copied first, so a backlog of hundreds waiting
        // for a local slot costs little at every event (it was a third of dispatch's CPU
        // under 50 sessions).
        let wanted = |d: &Dispatch, id: &String, st: &State| {
            if !local_full(d) {
                return true;
            }
            let kinds = d.kinds.get(id);
            st.recipients.iter().enumerate().any(|(i, r)| {
                r.status == Status::Pending
                    && r.next <= now
                    && kinds.and_then(|k| k.get(i)).copied().flatten() != Some(false)
            })
        };
        let mut kept = std::mem::replace(&mut self.dir, Kept::new(Vec::new()));
        // Opened (or the kept one checked) at the first recipient that needs it: the
        // `&mut` is moved out once, into `dir`.
        let mut to_open = Some(&mut kept);
        let mut dir: Option<Result<&Directory, DirError>> = None;
        let mut failed = false;
        let mut after: Option<String> = None;
        'pass: loop {
            let from = match &after {
                Some(a) => Bound::Excluded(a.as_str()),
                None => Bound::Unbounded,
            };
            let ids: Vec<String> = self
                .msgs
                .range::<str, _>((from, Bound::Unbounded))
                .filter(|(id, st)| wanted(self, id, st))
                .take(START_CHUNK)
                .map(|(id, _)| id.clone())
                .collect();
            let Some(last) = ids.last() else {
                break;
            };
            after = Some(last.clone());
            for id in ids {
                let remote_full = n_gathered >= remote_cap;
                if local_full(self) && (remote_full || !walk_due(self)) {
                    break 'pass;
                }
                let Some(st) = self.msgs.get(&id) else {
                    continue;
                };
                let due: Vec<usize> = st
                    .due(now)
                    .into_iter()
                    .filter(|&i| !self.running.contains(&(id.clone(), i)))
                    .collect();
                let mut changed = false;
                let mut remote: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                for idx in due {
                    // What the last resolution said (true: remote): while that kind of
                    // delivery is at its limit, skip the recipient without asking the directory.
                    match self
                        .kinds
                        .get(&id)
                        .and_then(|k| k.get(idx))
                        .copied()
                        .flatten()
                    {
                        Some(true) if remote_full => continue,
                        Some(true) => {
                            // Its domain's runs are all busy or already gathered full.
                            let domain = self
                                .msgs
                                .get(&id)
                                .and_then(|st| st.recipients.get(idx))
                                .map(|r| plan::domain_of(&r.address))
                                .unwrap_or_default();
                            let busy = self.domain_jobs.get(&domain).copied().unwrap_or(0);
                            let room = self
                                .settings
                                .concurrency_domain
                                .saturating_sub(busy)
                                .saturating_mul(self.settings.remote_batch);
                            if gathered.get(&domain).map_or(0, Vec::len) >= room {
                                continue;
                            }
                        }
                        Some(false) if local_full(self) => continue,
                        _ => {}
                    }
                    let Some(st) = self.msgs.get(&id) else {
                        break;
                    };
                    let rcpt = st.recipients[idx].address.clone();
                    if let Some(k) = to_open.take() {
                        dir = Some(k.get(Directory::open, |d| !d.is_ldap()));
                    }
                    let resolved = match &dir {
                        Some(Ok(d)) => d.resolve(&rcpt),
                        None => Err(DirError::Again("directory not opened".to_owned())),
                        Some(Err(e)) => Err(DirError::Again(e.to_string())),
                    };
                    failed |= resolved.is_err();
                    let action = plan::action(resolved, self.own);
                    let n = st.recipients.len();
                    let kinds = self
                        .kinds
                        .entry(id.clone())
                        .or_insert_with(|| vec![None; n]);
                    if let Some(k) = kinds.get_mut(idx) {
                        *k = Some(matches!(action, Action::Remote));
                    }
                    if !matches!(action, Action::Remote | Action::Settle(_)) && local_full(self) {
                        continue;
                    }
                    let sender = st.sender.clone();
                    let age = now.saturating_sub(st.arrival);
                    let workers = self.settings.local_workers;
                    let spawned = match action {
                        Action::Direct if workers => {
                            self.deliver_local(&id, idx, None, sender, rcpt.clone(), age)
                        }
                        Action::As { uid, gid } if workers => self.deliver_local(
                            &id,
                            idx,
                            Some((uid, gid)),
                            sender,
                            rcpt.clone(),
                            age,
                        ),
                        Action::Direct => {
                            self.spawn(&id, idx, "local-deliver", vec![sender, rcpt.clone()], age)
                        }
                        Action::As { uid, gid } => self.spawn(
                            &id,
                            idx,
                            "deliver-as",
                            vec![uid.to_string(), gid.to_string(), sender, rcpt.clone()],
                            age,
                        ),
                        Action::Settle(o) => Err(o),
                        Action::Remote => {
                            remote.entry(plan::domain_of(&rcpt)).or_default().push(idx);
                            Ok(())
                        }
                    };
                    if let Err(o) = spawned {
                        self.record(&id, idx, o);
                        changed = true;
                    }
                }
                for (domain, idxs) in remote {
                    // At most what this domain's free runs can carry.
                    let free = self
                        .settings
                        .concurrency_domain
                        .saturating_sub(self.domain_jobs.get(&domain).copied().unwrap_or(0));
                    let msgs = gathered.entry(domain).or_default();
                    if n_gathered < remote_cap && msgs.len() < free * self.settings.remote_batch {
                        msgs.push((id.clone(), idxs));
                        n_gathered += 1;
                    }
                }
                if changed {
                    self.dirty.insert(id.clone());
                }
            }
        }
        if local_full(self) && walk_due(self) {
            // This pass went on past the local work for remote work (or reached the end).
            self.last_full_walk = std::time::Instant::now();
        }
        drop(dir);
        self.dir = kept;
        // A lookup that failed is not trusted to the kept directory: opened again next time.
        if failed {
            self.dir.forget();
        }
        for (domain, msgs) in gathered {
            self.start_remote_runs(&domain, msgs);
        }
    }

    /// Start runs for `msgs` (gathered for `domain`, oldest first) while slots are free.
    fn start_remote_runs(&mut self, domain: &str, msgs: Vec<(String, Vec<usize>)>) {
        let free = |d: &Dispatch| {
            let domain_free = d
                .settings
                .concurrency_domain
                .saturating_sub(d.domain_jobs.get(domain).copied().unwrap_or(0));
            domain_free.min(d.settings.concurrency_remote.saturating_sub(d.remote_jobs))
        };
        let size = plan::batch_size(msgs.len(), free(self), self.settings.remote_batch);
        let mut msgs = msgs.into_iter().peekable();
        while free(self) > 0 && msgs.peek().is_some() {
            let mut batch: Vec<(String, Vec<usize>)> = Vec::new();
            while batch.len() < size {
                let Some((id, _)) = msgs.peek() else { break };
                let alone = !self.msgs.get(id).is_none_or(plan::batchable);
                if alone && !batch.is_empty() {
                    break;
                }
                batch.extend(msgs.next());
                if alone {
                    break;
                }
            }
            if let Err((o, failed)) = self.spawn_remote(domain, batch) {
                for (id, idxs) in failed {
                    for idx in idxs {
                        self.record(&id, idx, o.clone());
                    }
                    self.dirty.insert(id);
                }
            }
        }
    }

    /// Spawn `remote-send` for `domain` with the recipients `idxs` of each message of
    /// `batch` ([`plan::remote_argv`]). One message: fd 0 = `mess/ID`; several: fd 0 = a
    /// pipe that a thread fills with the frames (`LENGTH\n` + `mess/ID`). `Err`: the outcome
    /// for the messages that were not started, and which.
    #[allow(clippy::type_complexity)]
    fn spawn_remote(
        &mut self,
        domain: &str,
        batch: Vec<(String, Vec<usize>)>,
    ) -> Result<(), (Outcome, Vec<(String, Vec<usize>)>)> {
        let mut jobs = Vec::with_capacity(batch.len());
        for (id, idxs) in batch {
            if !self.msgs.contains_key(&id) {
                continue;
            }
            // A message file that is gone fails alone, not the whole run.
            if let Err(e) = std::fs::metadata(self.queue.mess(&id)) {
                let o = Outcome::Temporary(format!("cannot open message: {e} (#4.3.0)"));
                for &idx in &idxs {
                    self.record(&id, idx, o.clone());
                }
                self.dirty.insert(id);
                continue;
            }
            jobs.push((id, idxs));
        }
        if jobs.is_empty() {
            return Ok(());
        }
        let argv = {
            let msgs: Vec<(&State, &[usize])> = jobs
                .iter()
                .filter_map(|(id, idxs)| self.msgs.get(id).map(|st| (st, idxs.as_slice())))
                .collect();
            plan::remote_argv(domain, &msgs)
        };
        let stdin = if jobs.len() == 1 {
            match File::open(self.queue.mess(&jobs[0].0)) {
                Ok(f) => Stdio::from(f),
                Err(e) => {
                    let o = Outcome::Temporary(format!("cannot open message: {e} (#4.3.0)"));
                    return Err((o, jobs));
                }
            }
        } else {
            Stdio::piped()
        };
        let program = root::program("remote-send");
        let spawned = Command::new(&program)
            .args(&argv)
            .stdin(stdin)
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let o =
                    Outcome::Temporary(format!("cannot run {}: {e} (#4.3.0)", program.display()));
                return Err((o, jobs));
            }
        };
        let ids: Vec<&str> = jobs.iter().map(|(id, _)| id.as_str()).collect();
        let rcpts: usize = jobs.iter().map(|(_, idxs)| idxs.len()).sum();
        log::info!(
            "starting id={} domain={domain} messages={} recipients={rcpts} program=remote-send pid={}",
            ids.join(","),
            jobs.len(),
            child.id()
        );
        for (id, idxs) in &jobs {
            for &i in idxs {
                self.running.insert((id.clone(), i));
            }
        }
        self.remote_jobs += 1;
        *self.domain_jobs.entry(domain.to_owned()).or_default() += 1;
        if let Some(pipe) = child.stdin.take() {
            let files: Vec<PathBuf> = jobs.iter().map(|(id, _)| self.queue.mess(id)).collect();
            std::thread::spawn(move || write_frames(pipe, &files));
        }
        let limit = MAX_REMOTE_REPORT.max((rcpts + jobs.len()) as u64 * 1100);
        let tx = self.tx.clone();
        let domain = domain.to_owned();
        let stdout = child.stdout.take();
        std::thread::spawn(move || {
            let mut out = Vec::new();
            if let Some(o) = stdout {
                let _ = o.take(limit).read_to_end(&mut out);
            }
            let code = child.wait().ok().map(mailorder_core::exit::pass_up);
            let _ = tx.send(Event::RemoteDone {
                jobs,
                domain,
                code,
                out,
            });
        });
        Ok(())
    }

    fn remote_done(
        &mut self,
        jobs: &[(String, Vec<usize>)],
        domain: &str,
        code: Option<u8>,
        out: &[u8],
    ) {
        self.remote_jobs = self.remote_jobs.saturating_sub(1);
        if let Some(n) = self.domain_jobs.get_mut(domain) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.domain_jobs.remove(domain);
            }
        }
        for (id, idxs) in jobs {
            for &i in idxs {
                self.running.remove(&(id.clone(), i));
            }
        }
        let counts: Vec<usize> = jobs.iter().map(|(_, idxs)| idxs.len()).collect();
        let results = plan::remote_batch_results(out, &counts, code);
        for ((id, idxs), results) in jobs.iter().zip(results) {
            let mut warn = Vec::new();
            let mut relayed = Vec::new();
            for (&i, (o, to_non_dsn)) in idxs.iter().zip(results) {
                if to_non_dsn {
                    relayed.push((i, true));
                }
                if self.record(id, i, o) {
                    warn.push(i);
                }
            }
            if !warn.is_empty() {
                self.warn_delay(id, &warn);
            }
            if !relayed.is_empty() {
                self.report_success(id, &relayed);
            }
            self.store_unless_done(id);
            self.settle(id, date::unix_now());
        }
    }

    /// Spawn one delivery (`control/localworkers` 0); `Err` is the outcome to record when
    /// it cannot even start.
    fn spawn(
        &mut self,
        id: &str,
        idx: usize,
        prog: &str,
        args: Vec<String>,
        age: u64,
    ) -> Result<(), Outcome> {
        let mess = File::open(self.queue.mess(id))
            .map_err(|e| Outcome::Temporary(format!("cannot open message: {e} (#4.3.0)")))?;
        let (r, w) = io::pipe()
            .map_err(|e| Outcome::Temporary(format!("cannot make a pipe: {e} (#4.3.0)")))?;
        let program = root::program(prog);
        let child = {
            let mut cmd = Command::new(&program);
            cmd.args(&args)
                .stdin(mess)
                .stdout(w)
                .env("MAILORDER_QUEUE_AGE", age.to_string());
            cmd.spawn()
        };
        let mut child = child.map_err(|e| {
            Outcome::Temporary(format!("cannot run {}: {e} (#4.3.0)", program.display()))
        })?;
        log::info!(
            "starting id={id} rcpt=<{}> program={prog} pid={}",
            args.last().map_or("", String::as_str),
            child.id()
        );
        self.running.insert((id.to_owned(), idx));
        self.local_jobs += 1;
        let tx = self.tx.clone();
        let id = id.to_owned();
        std::thread::spawn(move || {
            let text = read_result(r);
            let code = child.wait().ok().map(mailorder_core::exit::pass_up);
            let _ = tx.send(Event::Done {
                id,
                idx,
                code,
                text,
            });
        });
        Ok(())
    }

    /// Record an outcome; whether a delay warning is due for this recipient.
    fn record(&mut self, id: &str, idx: usize, o: Outcome) -> bool {
        let now = date::unix_now();
        let policy = self.settings.policy();
        let warn_time = self.settings.warn_time;
        let mut warn = false;
        if let Some(st) = self.msgs.get_mut(id) {
            let rcpt = st
                .recipients
                .get(idx)
                .map(|r| r.address.clone())
                .unwrap_or_default();
            if let Some(r) = st.recipients.get(idx)
                && matches!(o, Outcome::Temporary(_))
            {
                // The previous attempt ended at next − backoff(tries) (see State::record).
                let previous =
                    (r.tries > 0).then(|| r.next.saturating_sub(policy.backoff(r.tries)));
                warn = bounce::delay_warning_due(st.arrival, warn_time, previous, now);
            }
            st.record(idx, o, now, policy);
            warn &= st
                .recipients
                .get(idx)
                .is_some_and(|r| r.status == Status::Pending);
            if let Some(r) = st.recipients.get(idx) {
                log::info!(
                    "delivery id={id} rcpt=<{rcpt}> status={} tries={} result={:?}",
                    r.status.as_str(),
                    r.tries,
                    r.result
                );
            }
        }
        warn
    }

    /// Queue a delay warning (RFC 3464 "delayed") to the sender for recipients `idxs`.
    fn warn_delay(&self, id: &str, idxs: &[usize]) {
        let Some(st) = self.msgs.get(id) else {
            return;
        };
        let original = self.original(id, bounce::MAX_HEADERS as u64 + 2);
        let now = date::unix_now();
        if let Some((env, msg)) = bounce::compose_delay(st, idxs, &self.settings, &original, now) {
            notice(id, "delay warning", &st.sender, idxs.len(), &env, &msg);
        }
    }

    /// The first `limit` bytes of message `id` (empty when it cannot be read: the report
    /// then says less, it is still sent).
    fn original(&self, id: &str, limit: u64) -> Vec<u8> {
        let mut original = Vec::new();
        if let Ok(f) = File::open(self.queue.mess(id)) {
            let _ = f.take(limit).read_to_end(&mut original);
        }
        original
    }

    /// Queue a success report (RFC 3464 "delivered" / "relayed", RFC 3461 NOTIFY=SUCCESS) to
    /// the sender for those of `idxs` (index, relayed to a host without DSN) that asked for
    /// one. Called right after the result is recorded, before the state is written: a crash
    /// in between can send it twice, never lose it.
    fn report_success(&self, id: &str, idxs: &[(usize, bool)]) {
        let Some(st) = self.msgs.get(id) else {
            return;
        };
        let wanted: Vec<(usize, bool)> = idxs
            .iter()
            .copied()
            .filter(|&(i, _)| {
                st.recipients
                    .get(i)
                    .is_some_and(|r| mailorder_smtp_proto::dsn::wants_success(r.notify))
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        let original = self.original(id, bounce::MAX_HEADERS as u64 + 2);
        let now = date::unix_now();
        if let Some((env, msg)) =
            bounce::compose_success(st, &wanted, &self.settings, &original, now)
        {
            notice(id, "success report", &st.sender, wanted.len(), &env, &msg);
        }
    }

    fn done(&mut self, id: &str, idx: usize, code: Option<u8>, text: &str) {
        self.running.remove(&(id.to_owned(), idx));
        self.local_jobs = self.local_jobs.saturating_sub(1);
        let outcome = plan::outcome(code, text);
        let delivered = matches!(outcome, Outcome::Delivered(_));
        if self.record(id, idx, outcome) {
            self.warn_delay(id, &[idx]);
        }
        if delivered {
            self.report_success(id, &[(idx, false)]);
        }
        self.store_unless_done(id);
        self.settle(id, date::unix_now());
    }

    /// Note that `state/ID` must be written after a result. [`Self::store_dirty`] writes it
    /// before dispatch waits again, unless every recipient is final by then: `settle` ends
    /// the message at once, and the write (two fsyncs) would only be undone. A crash in
    /// between redelivers (at-least-once), it never loses.
    fn store_unless_done(&mut self, id: &str) {
        self.dirty.insert(id.to_owned());
    }

    /// Write every changed state that is not finished: the files one by one (each
    /// fsynced), then one fsync of `state/`; only then give up the `todo/` files of the
    /// messages stored for the first time. On failure they stay dirty and are tried again.
    fn store_dirty(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let ids: Vec<String> = self.dirty.drain().collect();
        let states: Vec<State> = ids
            .iter()
            .filter_map(|id| self.msgs.get(id))
            .filter(|st| !st.is_done())
            .cloned()
            .collect();
        if states.is_empty() {
            return;
        }
        if let Err(e) = store_batch(&self.queue, &states) {
            log::error!("{e}");
            self.dirty.extend(states.into_iter().map(|st| st.id));
            return;
        }
        for st in states {
            if self.unstored.remove(&st.id) {
                self.cleaner.cmd(&format!("todo {}", st.id));
            }
        }
    }

    /// Forget message `id` and have its files removed without fsync: `todo/ID` (while it
    /// was the only record) or `state/ID`, then `mess/ID`. A crash before the unlinks reach
    /// the disk leaves a `todo/` or `state/` file without `mess/`, which the next start
    /// treats as finished. `ended` keeps `todo/ID` from being taken again before
    /// queue-clean has removed it.
    fn forget(&mut self, id: &str) -> Result<(), String> {
        if self.unstored.contains(id) {
            self.cleaner.cmd(&format!("todo {id}"));
            self.unstored.remove(id);
        } else {
            match std::fs::remove_file(self.queue.state(id)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove state: {e} (#4.3.0)")),
            }
        }
        self.ended.insert(id.to_owned());
        // Messages taken by name are not listed, so the set is pruned by a listing once it
        // has grown (a listing of the usual short todo/ is cheap; the doubling rule keeps
        // files that queue-clean cannot remove from making every pass list).
        if self.ended.len() >= ENDED_PRUNE.max(2 * self.ended_kept) {
            self.scan_due = true;
        }
        self.kinds.remove(id);
        self.dirty.remove(id);
        self.msgs.remove(id);
        self.cleaner.cmd(&format!("mess {id}"));
        Ok(())
    }

    fn settle_all(&mut self, now: u64) {
        let ids: Vec<String> = self
            .msgs
            .values()
            .filter(|st| {
                (st.needs_bounce() && st.bounce_next <= now)
                    || st.is_done()
                    || (!self.remove_requested.is_empty() && self.remove_requested.contains(&st.id))
            })
            .map(|st| st.id.clone())
            .collect();
        for id in ids {
            self.settle(&id, now);
        }
    }

    /// Bounce if due; remove the message when every recipient is final.
    fn settle(&mut self, id: &str, now: u64) {
        let Some(st) = self.msgs.get(id) else {
            return;
        };
        if self.running.iter().any(|(i, _)| i == id) {
            return;
        }
        if self.remove_requested.contains(id) {
            self.remove_now(id);
            return;
        }
        if st.needs_bounce() && st.bounce_next <= now {
            let to = plan::bounce_to(st, &self.settings);
            let result = match &to {
                BounceTo::Drop => {
                    log::warn!("id={id}: dropping a failed double bounce");
                    Ok(())
                }
                _ => self.inject_bounce(st, &to, now),
            };
            let policy = self.settings.policy();
            let Some(st) = self.msgs.get_mut(id) else {
                return;
            };
            match result {
                Ok(()) => st.mark_bounced(),
                Err((true, e)) => {
                    log::error!("id={id}: bounce refused permanently, dropping it: {e}");
                    st.mark_bounced();
                }
                Err((false, e)) => {
                    log::warn!("id={id}: bounce deferred: {e}");
                    st.bounce_deferred(now, policy);
                }
            }
            self.dirty.insert(id.to_owned());
        }
        let Some(st) = self.msgs.get(id) else {
            return;
        };
        if st.is_done() {
            if let Err(e) = self.forget(id) {
                log::warn!("id={id}: {e}");
                return;
            }
            log::info!("end id={id}");
        }
    }

    /// Compose and queue a bounce. `Err((permanent, text))`.
    fn inject_bounce(&self, st: &State, to: &BounceTo, now: u64) -> Result<(), (bool, String)> {
        // NOTIFY without FAILURE (RFC 3461 §4.1): that recipient's failure is not reported.
        for i in bounce::suppressed(st) {
            let r = &st.recipients[i];
            log::info!(
                "bounce suppressed id={} rcpt=<{}> notify={}",
                st.id,
                r.address,
                r.notify.map(|n| n.as_param()).unwrap_or_default()
            );
        }
        let original = self.original(&st.id, bounce::original_limit(st));
        let Some((mut env, msg)) = bounce::compose(st, to, &self.settings, &original, now) else {
            return Ok(());
        };
        unwrap_srs(&self.control, &mut env.recipients);
        inject(&env, &msg).map_err(|e| (e.is_permanent(), e.to_string()))?;
        log::info!(
            "bounce id={} to=<{}> sender=<{}>",
            st.id,
            env.recipients.join(","),
            env.sender
        );
        Ok(())
    }

    fn flush(&mut self, now: u64) {
        log::info!("flush: retrying everything now");
        match load_settings(&self.control) {
            Ok(s) => self.settings = s,
            Err(e) => log::warn!("keeping old settings: {e}"),
        }
        for st in self.msgs.values_mut() {
            st.flush(now);
        }
        self.scan_todo();
    }

    /// A request from `queue/lock/ctl` (qadmin): `flush`, `flush DOMAIN`, `retry ID`,
    /// `remove ID`.
    fn control_request(&mut self, line: &str, now: u64) {
        let mut words = line.split_ascii_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("flush"), None, None) => self.flush(now),
            (Some("flush"), Some(domain), None) => {
                let domain = domain.to_ascii_lowercase();
                let mut n = 0;
                for st in self.msgs.values_mut() {
                    for r in &mut st.recipients {
                        if r.status == Status::Pending && plan::domain_of(&r.address) == domain {
                            r.next = now;
                            n += 1;
                        }
                    }
                }
                log::info!("flush domain={domain} recipients={n}");
            }
            (Some("retry"), Some(id), None) => match self.msgs.get_mut(id) {
                Some(st) => {
                    st.flush(now);
                    log::info!("retry id={id}");
                }
                None => log::warn!("retry: no message {id:?}"),
            },
            (Some("remove"), Some(id), None) => {
                if !self.msgs.contains_key(id) {
                    log::warn!("remove: no message {id:?}");
                } else if self.running.iter().any(|(i, _)| i == id) {
                    log::info!("remove id={id}: after the running deliveries");
                    self.remove_requested.insert(id.to_owned());
                } else {
                    self.remove_now(id);
                }
            }
            _ => log::warn!("control: unknown request {:?}", clean_line(line)),
        }
    }

    /// Remove a message by request: no bounce, no further delivery.
    fn remove_now(&mut self, id: &str) {
        self.remove_requested.remove(id);
        if let Err(e) = self.forget(id) {
            log::warn!("remove id={id}: {e}");
            return;
        }
        log::info!("removed id={id} (by request, no bounce)");
    }

    /// Remove mess/ files older than 36 h that neither todo/ nor state/ names, and old
    /// intd/ files (queue-clean `clean`).
    fn orphans(&mut self, now: u64) {
        self.last_orphans = now;
        self.cleaner.cmd("clean");
        let Ok(ids) = self.queue.list_mess() else {
            return;
        };
        for id in ids {
            if self.msgs.contains_key(&id)
                || self.queue.todo(&id).exists()
                || self.queue.state(&id).exists()
            {
                continue;
            }
            // The later of mtime and ctime: a spare queue has just taken for a new message
            // keeps its old mtime until it is emptied (queue-format spare::changed).
            let old = std::fs::metadata(self.queue.mess(&id))
                .ok()
                .and_then(|m| spare::changed(&m))
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|a| a.as_secs() > ORPHAN_AGE);
            if old {
                log::info!("removing orphan mess/{id}");
                self.cleaner.cmd(&format!("mess {id}"));
            }
        }
    }

    /// Seconds until something is due (at most [`RESCAN`]).
    fn next_wait(&self, now: u64) -> u64 {
        if self.stop_at.is_some() {
            return 1;
        }
        let mut next = now + RESCAN;
        let busy: HashSet<&str> = self.running.iter().map(|(id, _)| id.as_str()).collect();
        for st in self.msgs.values() {
            let busy = busy.contains(st.id.as_str());
            for (i, r) in st.recipients.iter().enumerate() {
                if r.status == Status::Pending
                    && r.next < next
                    && !(busy && self.running.contains(&(st.id.clone(), i)))
                {
                    next = next.min(r.next);
                }
            }
            if st.needs_bounce() {
                next = next.min(st.bounce_next);
            }
            // Something is due already: the shortest wait; the rest cannot make it shorter
            // (a backlog waiting for free slots is not walked at every event).
            if next <= now {
                break;
            }
        }
        next.saturating_sub(now).clamp(1, RESCAN)
    }
}

/// Feed remote-send the messages of a run as frames: `LENGTH\n` and the bytes of each
/// file, in order. A write error (EPIPE: remote-send died or gave up) ends quietly; a file
/// that cannot be read ends the stream, and remote-send fails that message and the later
/// ones temporarily.
fn write_frames(pipe: impl Write, files: &[PathBuf]) {
    let mut w = io::BufWriter::with_capacity(65536, pipe);
    for path in files {
        let file = File::open(path).and_then(|f| f.metadata().map(|m| (f, m.len())));
        let (file, len) = match file {
            Ok(x) => x,
            Err(e) => {
                log::warn!("cannot read {}: {e}", path.display());
                return;
            }
        };
        if writeln!(w, "{len}").is_err() {
            return;
        }
        match io::copy(&mut file.take(len), &mut w) {
            Ok(n) if n == len => {}
            Ok(_) => {
                log::warn!("{} changed while being sent", path.display());
                return;
            }
            Err(_) => return,
        }
    }
    let _ = w.flush();
}

/// What one read of the trigger FIFO says: the ids that `queue` named (one `ID\n` line
/// each, written whole: shorter than `PIPE_BUF`), and whether `todo/` must be listed
/// anyway: anything that is not such a line (a `t` from a queue binary older than
/// issue #11, a line that is not a valid id, a last line without its newline), or
/// `maybe_lost` (the read took half of the pipe's size or more: writers may have found the
/// pipe full, and their lines are lost).
fn parse_trigger(data: &[u8], maybe_lost: bool) -> (Vec<String>, bool) {
    let mut list = maybe_lost;
    let mut ids = Vec::new();
    let mut lines = data.split(|&b| b == b'\n');
    // The piece after the last newline: empty when the read ended with a whole line.
    let last = lines.next_back().unwrap_or_default();
    list |= !last.is_empty();
    for line in lines {
        match std::str::from_utf8(line) {
            Ok(id) if mailorder_queue_format::valid_id(id) => ids.push(id.to_owned()),
            _ => list = true,
        }
    }
    (ids, list)
}

fn clean_line(s: &str) -> String {
    s.chars()
        .take(100)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Write new state files with one fsync of `state/` for the whole batch
/// ([`State::store_batch`]).
fn store_batch(queue: &Queue, states: &[State]) -> Result<(), String> {
    State::store_batch(queue, states).map_err(|e| e.to_string())
}

/// Queue a notice that may be lost (a delay warning, a success report) and log how it went.
fn notice(id: &str, what: &str, to: &str, recipients: usize, env: &Envelope, msg: &[u8]) {
    match inject(env, msg) {
        Ok(()) => log::info!("{what} id={id} to=<{to}> recipients={recipients}"),
        Err(e) => log::warn!("id={id}: {what} not queued: {e}"),
    }
}

/// `queue/lock/ctl`: the FIFO where qadmin writes requests, one line each.
pub fn ctl_path(queue: &Queue) -> PathBuf {
    queue.lock_dir().join("ctl")
}

/// Queue `msg` with `env` through the one queue client (mailorder-queue-client).
pub fn inject(env: &Envelope, msg: &[u8]) -> Result<(), QueueError> {
    Client::new(root::program("queue")).submit(msg, &envelope::encode(env))
}

/// The first line of a delivery program's output (at most 1000 bytes); the rest is read
/// and discarded so the program never blocks on a full pipe.
fn read_result(mut r: impl Read) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = MAX_RESULT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&kept);
    text.lines().next().unwrap_or("").trim().to_owned()
}

/// A worker's answer `CODE TEXT`: the exit code the one-shot run would have had (`None`
/// if it is not a number: temporary) and the result line, at most `MAX_RESULT` characters.
fn parse_answer(a: &[u8]) -> (Option<u8>, String) {
    let a = String::from_utf8_lossy(a);
    let (c, t) = a.split_once(' ').unwrap_or((&a, ""));
    let t: String = t.trim().chars().take(MAX_RESULT).collect();
    (c.parse::<u8>().ok(), t)
}

/// Catch TERM, INT (stop) and HUP, ALRM (flush) through a self-pipe
/// (`mailorder_core::sys::signal_pipe`): nothing is blocked, so children start with an
/// empty signal mask and std can spawn them without fork's page-table copy.
pub fn catch_signals() -> Result<File, DispatchError> {
    mailorder_core::sys::signal_pipe(&[libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGALRM])
        .map_err(DispatchError::Signals)
}

/// A bounce to one of our own SRS addresses (the sender of a message local-deliver
/// forwarded, issue 14) goes straight to the address it stands for: valid with our
/// secret and not expired. Anything else stays as it is.
fn unwrap_srs(control: &Control, rcpts: &mut [String]) {
    let srs = match mailorder_srs::Srs::from_control(control) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            log::warn!("srs: {e}");
            return;
        }
    };
    for r in rcpts.iter_mut() {
        if let Ok(Some(to)) = srs.reverse(r, mailorder_srs::today())
            && mailorder_queue_format::envelope::valid_address(&to)
        {
            log::info!("srs bounce to=<{r}> now=<{to}>");
            *r = to;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue #11 (the trigger names the message; anything else still means "list")
    #[test]
    fn trigger_lines() {
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_trigger(b"1.2.3\n", false), (ids(&["1.2.3"]), false));
        assert_eq!(
            parse_trigger(b"1.2.3\n44.5.6\n", false),
            (ids(&["1.2.3", "44.5.6"]), false)
        );
        // An older queue's byte, alone or among lines.
        assert_eq!(parse_trigger(b"t", false), (ids(&[]), true));
        assert_eq!(parse_trigger(b"tt", false), (ids(&[]), true));
        assert_eq!(parse_trigger(b"1.2.3\nt", false), (ids(&["1.2.3"]), true));
        assert_eq!(parse_trigger(b"t1.2.3\n", false), (ids(&[]), true));
        // Not an id: never a path.
        assert_eq!(
            parse_trigger(b"../x\n1.2.3\n", false),
            (ids(&["1.2.3"]), true)
        );
        assert_eq!(parse_trigger(b"\n", false), (ids(&[]), true));
        assert_eq!(parse_trigger(b"1.2.3\xff\n", false), (ids(&[]), true));
        // Half a pipe or more read: lines may have been lost to a full pipe.
        assert_eq!(parse_trigger(b"1.2.3\n", true), (ids(&["1.2.3"]), true));
        assert_eq!(parse_trigger(b"", false), (ids(&[]), false));
    }

    #[test]
    fn result_text() {
        assert_eq!(
            read_result(&b"did it (#2.0.0)\nmore\n"[..]),
            "did it (#2.0.0)"
        );
        assert_eq!(read_result(&b""[..]), "");
        let long = "x".repeat(5000);
        assert_eq!(read_result(long.as_bytes()).len(), MAX_RESULT);
    }

    #[test]
    fn worker_answers() {
        assert_eq!(
            parse_answer(b"0 did it (#2.0.0)"),
            (Some(0), "did it (#2.0.0)".to_owned())
        );
        assert_eq!(parse_answer(b"111 "), (Some(111), String::new()));
        assert_eq!(parse_answer(b"x"), (None, String::new()));
        let long = format!("100 {}", "x".repeat(5000));
        assert_eq!(parse_answer(long.as_bytes()).1.len(), MAX_RESULT);
    }

    #[test]
    fn frames_for_remote_send() {
        let d = tempfile::tempdir().unwrap();
        let (a, b, c) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
        std::fs::write(&a, "Subject: a\n\nline\n").unwrap();
        std::fs::write(&b, "").unwrap();
        std::fs::write(&c, "x\n.\n").unwrap();
        let mut out = Vec::new();
        write_frames(&mut out, &[a.clone(), b.clone(), c]);
        assert_eq!(out, b"17\nSubject: a\n\nline\n0\n4\nx\n.\n");
        // A file that cannot be read ends the stream after the frames before it.
        let mut out = Vec::new();
        write_frames(&mut out, &[a, d.path().join("gone"), b]);
        assert_eq!(out, b"17\nSubject: a\n\nline\n");
        // A closed pipe ends it quietly.
        let (r, w) = io::pipe().unwrap();
        drop(r);
        write_frames(w, &[d.path().join("c")]);
    }

    #[test]
    fn settings_from_control() {
        let d = tempfile::tempdir().unwrap();
        let c = Control::new(d.path());
        assert_eq!(
            load_settings(&c).unwrap(),
            Settings {
                me: c.me().unwrap(),
                ..Settings::default()
            }
        );
        std::fs::write(d.path().join("concurrencylocal"), "0\n").unwrap();
        std::fs::write(d.path().join("me"), "mx.test\n").unwrap();
        std::fs::write(d.path().join("remotebatch"), "5000\n").unwrap();
        let s = load_settings(&c).unwrap();
        assert_eq!((s.concurrency, s.me.as_str()), (1, "mx.test"));
        assert_eq!(s.remote_batch, 1000);
        std::fs::write(d.path().join("queuelifetime"), "soon\n").unwrap();
        assert!(load_settings(&c).is_err());
    }
}
