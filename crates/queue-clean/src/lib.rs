//! queue-clean: removes queue files owned by the queue uid on dispatch's behalf.
//!
//! dispatch (uid mosend) cannot unlink in `todo/` and `mess/` (owned by moqueue); it runs
//! this set-uid moqueue helper once as a long-lived child and writes one command per line:
//!
//! - `todo ID`: unlink `todo/ID` (dispatch has written `state/ID`, or the message is
//!   finished);
//! - `mess ID`: unlink `mess/ID` (the message is finished); refused while `todo/ID`
//!   exists, so a message that was never taken cannot be removed;
//! - `clean`: unlink `intd/ID` files older than 36 hours (the remains of a crashed
//!   `queue`; `queue` gives up after 24 hours), fsync `intd/`.
//!
//! Each line is answered with `ok` or `error TEXT`. A missing file is `ok`: the command
//! may be repeated after a crash. The `todo` and `mess` unlinks are not fsynced: an
//! unlink lost in a crash brings a file back, which dispatch then treats as finished
//! (`todo/` or `state/` without `mess/`) or as a message to deliver again (at-least-once),
//! or the orphan sweep removes (`mess/` alone); it never loses mail. It must do nothing else: no other paths, no other
//! operations.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

use mailorder_core::Exit;
use mailorder_core::atomic::GroupSync;
use mailorder_queue_format::{Queue, fsync_dir, spare, valid_id};
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Age after which an `intd/` file is garbage.
pub const ORPHAN_AGE: Duration = Duration::from_secs(36 * 3600);

/// Longest command line accepted.
const MAX_LINE: u64 = 200;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CleanError {
    /// Not `todo ID`, `mess ID` or `clean`.
    #[error("unknown command")]
    Unknown,
    /// The id is not a queue id.
    #[error("bad id")]
    BadId,
    /// `mess ID` while `todo/ID` exists.
    #[error("todo/{0} still exists")]
    StillQueued(String),
    /// unlink/fsync failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// Operation.
        op: &'static str,
        /// Path.
        path: String,
        /// errno.
        source: io::Error,
    },
}

impl CleanError {
    /// Always temporary for the caller: the file stays, dispatch retries later.
    pub fn class(&self) -> Exit {
        Exit::Temp
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CleanError {
    let path = path.display().to_string();
    move |source| CleanError::Io { op, path, source }
}

/// Unlink `path` (missing is fine), without fsync (see the module documentation).
fn unlink(path: &Path) -> Result<(), CleanError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("unlink", path)(e)),
    }
}

/// Finished files kept for reuse instead of unlinked (mailorder-queue-format `spare`,
/// issue #11): `todo ID` and `mess ID` rename the file straight into its lane (the lane of
/// the queue process that wrote the message: mailorder-queue-format `spare::LANES`) under
/// the next sequence number, `spare/LANE/p.SEQ.PID.t` / `.m`; it becomes usable when the
/// watermark (`queue/lock/spare.mark`, `spare::Mark`) reaches SEQ, which queue-clean writes
/// once an `fsync` of the directory each move left (and every earlier one's) has started
/// after the move: one of queue's shared fsyncs (the group-commit records
/// `lock/sync.todo`, `lock/sync.mess`), or queue-clean's own when [`MAX_PENDING`] are
/// waiting, at `clean` and at the end. Without `spare/`, while another queue-clean holds
/// the watermark's lock, with [`spare::MAX_SPARES`] kept, or for a file larger than
/// [`spare::MAX_SPARE_LEN`], it unlinks as before.
pub struct Recycler {
    state: std::sync::Mutex<Recycling>,
}

/// Spares [`Recycler::fill`] keeps ready: about the backlog of a burst at fifty sessions
/// (a few hundred messages, two files each), well under [`spare::MAX_SPARES`] so that
/// finished files still find room.
pub const FILL: usize = 1024;

/// Give a new spare what a file queue creates in `mess/` has: mode 0640 and `mess/`'s group
/// (dispatch reads the queue through that group; a rename does not change a file's group,
/// and queue-clean's own group is its caller's).
fn like_mess(f: &std::fs::File, gid: u32) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    f.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    if f.metadata()?.gid() != gid {
        std::os::unix::fs::fchown(f, None, Some(gid))?;
    }
    Ok(())
}

/// Pending spares beyond which queue-clean runs the directory fsyncs itself.
pub const MAX_PENDING: usize = 64;

/// Removals between two counts of the spares while the pool looks full (queue takes spares
/// without telling).
const RECOUNT: usize = 128;

/// The spares in every lane, and the highest sequence number among the moved ones.
fn count_spares_and_seq(q: &Queue) -> (usize, u64) {
    let (mut count, mut top) = (0, 0);
    for l in 0..spare::LANES {
        let Ok(dir) = std::fs::read_dir(spare::lane_dir(q, l)) else {
            continue;
        };
        for e in dir.filter_map(Result::ok) {
            count += 1;
            if let Some(seq) = e.file_name().to_str().and_then(spare::seq_of) {
                top = top.max(seq);
            }
        }
    }
    (count, top)
}

/// How often at most the group-commit records are read for moves not yet covered (a
/// `pread` each; read at every command they were two per message): a few milliseconds more
/// before a spare becomes usable cost nothing, the pool holds a thousand.
const RECHECK: Duration = Duration::from_millis(2);

/// How long a queue-clean that found the watermark's lock held waits before it tries again
/// (unlinking meanwhile).
const RETRY_LOCK: Duration = Duration::from_secs(1);

struct Recycling {
    /// `spare/` exists (and its lanes could be made).
    pool: bool,
    /// Keeping spares: `pool`, the watermark's lock held and the start done ([`start`]).
    on: bool,
    /// The watermark record (held locked while `on`), and when its lock was last tried.
    mark: Option<spare::Mark>,
    tried: Option<std::time::Instant>,
    /// The sequence number of the next move, and the watermark as last written.
    next: u64,
    mark_at: u64,
    /// When the group-commit records were last read for moves not yet covered
    /// ([`RECHECK`]).
    checked: Option<std::time::Instant>,
    /// Moves not yet under the watermark, in order: sequence number, whether it left
    /// `todo/` (else `mess/`), and when ([`GroupSync::stamp`], taken after the move).
    pending: std::collections::VecDeque<(u64, bool, u64)>,
    /// Spares in `spare/` as last counted, plus the moves since: at least as many as there
    /// are (queue's takes are not seen).
    count: usize,
    /// Removals (kept or unlinked) since the recycler started, and their number at the last
    /// count: while `count` says the pool is full, `spare/` is counted again every
    /// [`RECOUNT`] removals.
    moves: usize,
    counted: usize,
    todo: Option<GroupSync>,
    mess: Option<GroupSync>,
}

impl Recycling {
    /// Nothing kept, counted or numbered yet (not started: [`Recycling::try_start`]).
    fn idle(pool: bool, todo: Option<GroupSync>, mess: Option<GroupSync>) -> Recycling {
        Recycling {
            pool,
            on: false,
            mark: None,
            tried: None,
            next: 0,
            mark_at: 0,
            checked: None,
            pending: std::collections::VecDeque::new(),
            count: 0,
            moves: 0,
            counted: 0,
            todo,
            mess,
        }
    }
}

impl Recycler {
    /// Recycling into `q`'s `spare/` when it exists (its lane directories are made if
    /// missing). Names an older queue-clean left in `spare/` itself are dealt with: its
    /// pending ones (`p.ID.t`: their move may not be durable) are dropped, unlinking a name
    /// being always safe, and its usable ones are moved into their lanes. Then it takes the
    /// watermark's lock and starts numbering ([`Recycling::start`]); while another
    /// queue-clean holds the lock, finished files are unlinked and the lock is tried again
    /// every [`RETRY_LOCK`].
    pub fn new(q: &Queue) -> Recycler {
        let dir = q.spare_dir();
        let mut pool = dir.is_dir();
        if pool && let Err(e) = spare::make_lanes(q) {
            log::warn!("{}: {e}: finished files are unlinked", dir.display());
            pool = false;
        }
        if pool && let Ok(names) = std::fs::read_dir(&dir) {
            for e in names.filter_map(Result::ok) {
                let Ok(name) = e.file_name().into_string() else {
                    continue;
                };
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if name.starts_with(spare::PENDING) {
                    let _ = std::fs::remove_file(dir.join(&name));
                } else {
                    let id = name.rsplit_once('.').map_or(name.as_str(), |(id, _)| id);
                    let to = spare::lane_dir(q, spare::lane_of(id)).join(&name);
                    if std::fs::rename(dir.join(&name), to).is_err() {
                        let _ = std::fs::remove_file(dir.join(&name));
                    }
                }
            }
        }
        let sync = |d: &Path, r: &str| GroupSync::open(d, &q.lock_dir().join(r)).ok();
        let mut st = Recycling::idle(
            pool,
            sync(&q.todo_dir(), "sync.todo"),
            sync(&q.mess_dir(), "sync.mess"),
        );
        st.try_start(q);
        Recycler {
            state: std::sync::Mutex::new(st),
        }
    }

    /// One that never keeps a file: every removal is an unlink.
    pub fn off() -> Recycler {
        Recycler {
            state: std::sync::Mutex::new(Recycling::idle(false, None, None)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recycling> {
        match self.state.lock() {
            Ok(s) => s,
            Err(e) => e.into_inner(),
        }
    }

    /// Keep `from` (`todo/ID` when `todo`, else `mess/ID`) in `spare/` when it may be kept
    /// ([`Keep::Done`]; a missing file is fine), else say it must be unlinked
    /// ([`Keep::Unlink`], which may wait on the disk: [`serve_with`] hands it to a worker).
    fn keep(&self, q: &Queue, from: &Path, id: &str, todo: bool) -> Keep {
        let mut st = self.lock();
        if !st.on {
            st.try_start(q);
            if !st.on {
                return Keep::Unlink;
            }
        }
        // Every removal counts towards the next recount, kept or not: queue takes spares
        // without telling, so a pool once counted full must be counted again, or it would
        // stay "full" (every removal an unlink) however many spares queue took since. Only
        // then: `count` is an upper bound, so below the limit it needs no listing (counting
        // every 128 removals listed all sixteen lanes, half a getdents64 per message).
        st.moves += 1;
        if st.count >= spare::MAX_SPARES && st.moves - st.counted >= RECOUNT {
            st.count = count_spares_and_seq(q).0;
            st.counted = st.moves;
        }
        if st.count >= spare::MAX_SPARES {
            return Keep::Unlink;
        }
        match from.symlink_metadata() {
            Ok(m) if m.len() > spare::MAX_SPARE_LEN => return Keep::Unlink,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Keep::Done(Ok(())),
            _ => {}
        }
        // A number above the watermark, never used before (a move that fails wastes it).
        let seq = st.next;
        st.next += 1;
        let name = spare::moved_name(seq, id, if todo { 't' } else { 'm' });
        let to = spare::lane_dir(q, spare::lane_of(id)).join(name);
        match spare::move_to(from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Keep::Done(Ok(())),
            Err(e) => {
                log::debug!("keeping {}: {e}", from.display());
                return Keep::Unlink;
            }
        }
        let stamp = GroupSync::stamp().unwrap_or(u64::MAX);
        st.pending.push_back((seq, todo, stamp));
        st.count += 1;
        let force = st.pending.len() >= MAX_PENDING;
        st.promote(q, force);
        Keep::Done(Ok(()))
    }

    /// Make every pending spare usable, running the directory fsyncs if need be (`clean`,
    /// and at the end of the commands).
    pub fn flush(&self, q: &Queue) {
        self.lock().promote(q, true);
    }

    /// Create empty spares, for messages and envelopes in turn, spread over the lanes,
    /// until [`FILL`] are kept (`clean`, which dispatch sends when it starts: so a burst
    /// of mail finds the pool ready instead of creating its files). Returns how many
    /// were made. An empty file is rewritten without cutting anything, and holds no mail:
    /// queue makes it durable like any file it takes.
    pub fn fill(&self, q: &Queue) -> usize {
        use std::os::unix::fs::MetadataExt;
        let Ok(mess_gid) = q.mess_dir().metadata().map(|m| m.gid()) else {
            return 0;
        };
        {
            // Counted afresh: the count kept is an upper bound (queue's takes are not seen).
            let mut st = self.lock();
            if !st.on {
                return 0;
            }
            st.count = count_spares_and_seq(q).0;
            st.counted = st.moves;
        }
        let mut made = 0;
        let mut n: u64 = 0;
        loop {
            {
                let mut st = self.lock();
                if !st.on || st.count >= FILL {
                    return made;
                }
                st.count += 1;
            }
            let created = loop {
                n += 1;
                let kind = if n.is_multiple_of(2) { 't' } else { 'm' };
                let lane = usize::try_from(n / 2).unwrap_or(0) % spare::LANES;
                let path = spare::lane_dir(q, lane).join(format!(
                    "{}{}.{n}.{kind}",
                    spare::FRESH,
                    std::process::id()
                ));
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o640)
                    .open(&path)
                {
                    Ok(f) => match like_mess(&f, mess_gid) {
                        Ok(()) => break true,
                        Err(e) => {
                            log::warn!("spare {}: {e}: not creating spares", path.display());
                            let _ = std::fs::remove_file(&path);
                            break false;
                        }
                    },
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1 << 20 => {}
                    Err(e) => {
                        log::warn!("creating spare {}: {e}", path.display());
                        break false;
                    }
                }
            };
            if !created {
                self.lock().count -= 1;
                return made;
            }
            made += 1;
        }
    }
}

impl Recycling {
    /// Take the watermark's lock (at most every [`RETRY_LOCK`] after a failure) and start
    /// keeping spares: `fsync` `todo/` and `mess/` (every move an earlier queue-clean made
    /// is then durable), count the pool, number the moves from above the watermark, above
    /// every moved name in the lanes and above the clock in microseconds, and record the
    /// number below the first as the watermark (never lower than the one on record). See
    /// mailorder-queue-format `spare`, "The watermark never covers a move that is not
    /// durable".
    fn try_start(&mut self, q: &Queue) {
        if self.on || !self.pool || self.tried.is_some_and(|t| t.elapsed() < RETRY_LOCK) {
            return;
        }
        self.tried = Some(std::time::Instant::now());
        if self.mark.is_none() {
            match spare::Mark::create(q) {
                Ok(m) => self.mark = Some(m),
                Err(e) => {
                    log::warn!(
                        "{}: {e}: finished files are unlinked",
                        spare::Mark::path(q).display()
                    );
                    return;
                }
            }
        }
        let Some(mark) = &self.mark else { return };
        if !mark.try_lock() {
            log::info!("another queue-clean keeps the spares: finished files are unlinked");
            return;
        }
        for (slot, dir) in [
            (&mut self.todo, q.todo_dir()),
            (&mut self.mess, q.mess_dir()),
        ] {
            let res = match slot {
                Some(g) => g.sync().map(drop),
                None => fsync_dir(&dir),
            };
            if let Err(e) = res {
                log::warn!("fsync {}: {e}: finished files are unlinked", dir.display());
                // The lock stays held (another start would need the same fsync).
                return;
            }
        }
        let (count, top) = count_spares_and_seq(q);
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        let recorded = mark.read();
        let first = recorded
            .unwrap_or(0)
            .max(top)
            .max(now.saturating_sub(1))
            .saturating_add(1);
        let w = first - 1;
        if let Err(e) = mark.write(w) {
            log::warn!(
                "{}: {e}: finished files are unlinked",
                spare::Mark::path(q).display()
            );
            return;
        }
        self.next = first;
        self.mark_at = w;
        self.count = count;
        self.counted = self.moves;
        self.on = true;
    }

    /// Raise the watermark over the pending moves whose `fsync` has started since (in
    /// order: it stops at the first that is not covered); with `force`, first fsync the
    /// directories they left (shared with queue's fsyncs).
    fn promote(&mut self, q: &Queue, force: bool) {
        if self.pending.is_empty() || !force && self.checked.is_some_and(|t| t.elapsed() < RECHECK)
        {
            return;
        }
        self.checked = Some(std::time::Instant::now());
        let (mut todo_ok, mut mess_ok) = (None, None);
        if force {
            for (from_todo, slot, ok) in [
                (true, &mut self.todo, &mut todo_ok),
                (false, &mut self.mess, &mut mess_ok),
            ] {
                let Some(latest) = self
                    .pending
                    .iter()
                    .filter(|p| p.1 == from_todo)
                    .map(|p| p.2)
                    .max()
                else {
                    continue;
                };
                let dir = if from_todo {
                    q.todo_dir()
                } else {
                    q.mess_dir()
                };
                let res = match slot {
                    Some(g) => g.sync_since(latest).map(|_| ()),
                    None => fsync_dir(&dir),
                };
                match res {
                    Ok(()) => *ok = Some(latest),
                    Err(e) => log::warn!("fsync {}: {e} (spares stay pending)", dir.display()),
                }
            }
        }
        // Each record is read at most once, and only when a move from its directory is
        // next in line.
        let (mut todo_last, mut mess_last) = (None, None);
        let mut w = self.mark_at;
        while let Some(&(seq, from_todo, stamp)) = self.pending.front() {
            let (forced, last, g) = if from_todo {
                (todo_ok, &mut todo_last, &self.todo)
            } else {
                (mess_ok, &mut mess_last, &self.mess)
            };
            let last = *last.get_or_insert_with(|| g.as_ref().and_then(GroupSync::last_started));
            let durable = forced.is_some_and(|t| stamp <= t) || last.is_some_and(|t| t > stamp);
            if !durable {
                break;
            }
            w = seq;
            self.pending.pop_front();
        }
        if w > self.mark_at
            && let Some(mark) = &self.mark
        {
            match mark.write(w) {
                Ok(()) => self.mark_at = w,
                Err(e) => log::warn!(
                    "{}: {e} (spares stay pending)",
                    spare::Mark::path(q).display()
                ),
            }
        }
    }
}

/// What [`Recycler::keep`] did with a finished file.
enum Keep {
    /// Kept as a spare (or already gone), or failed: the answer.
    Done(Result<(), CleanError>),
    /// Not kept: it must be unlinked.
    Unlink,
}

/// How a command line is run: [`plan`] does the quick part (checks, a rename into the
/// pool) at once, and says what is left.
enum Plan {
    /// Done: the answer.
    Done(Result<(), CleanError>),
    /// Unlink this file (it may wait on the disk).
    Unlink(PathBuf),
    /// `clean`: [`clean`] (unlinks, fsyncs, file creations).
    Clean,
}

/// Parse `line` and run what is quick: the checks, and the rename of a finished file into
/// the pool; an unlink or `clean` is left to the caller.
fn plan(q: &Queue, rec: &Recycler, line: &str) -> Plan {
    let mut words = line.split(' ');
    let (cmd, id) = (words.next(), words.next());
    if words.next().is_some() {
        return Plan::Done(Err(CleanError::Unknown));
    }
    let todo = match (cmd, id) {
        (Some("todo"), Some(_)) => true,
        (Some("mess"), Some(_)) => false,
        (Some("clean"), None) => return Plan::Clean,
        _ => return Plan::Done(Err(CleanError::Unknown)),
    };
    let id = id.unwrap_or_default();
    if !valid_id(id) {
        return Plan::Done(Err(CleanError::BadId));
    }
    if !todo && q.todo(id).symlink_metadata().is_ok() {
        return Plan::Done(Err(CleanError::StillQueued(id.to_owned())));
    }
    let from = if todo { q.todo(id) } else { q.mess(id) };
    match rec.keep(q, &from, id, todo) {
        Keep::Done(r) => Plan::Done(r),
        Keep::Unlink => Plan::Unlink(from),
    }
}

/// Run one command line.
pub fn handle(q: &Queue, rec: &Recycler, line: &str, now: SystemTime) -> Result<(), CleanError> {
    match plan(q, rec, line) {
        Plan::Done(r) => r,
        Plan::Unlink(path) => unlink(&path),
        Plan::Clean => clean(q, rec, now),
    }
}

/// `clean`: unlink stale `intd/` files, fsync `intd/`, make the pending spares usable and
/// fill the pool.
fn clean(q: &Queue, rec: &Recycler, now: SystemTime) -> Result<(), CleanError> {
    let dir = q.intd_dir();
    for id in Queue::list(&dir).map_err(io_err("list", &dir))? {
        let p = q.intd(&id);
        // The later of mtime and ctime: a spare queue has just moved here keeps
        // its old mtime until it is emptied (spare::changed).
        let old = p
            .symlink_metadata()
            .ok()
            .and_then(|m| spare::changed(&m))
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > ORPHAN_AGE);
        if old {
            log::info!("removing stale intd/{id}");
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("unlink", &p)(e)),
            }
        }
    }
    fsync_dir(&dir).map_err(io_err("fsync", &dir))?;
    rec.flush(q);
    let made = rec.fill(q);
    if made > 0 {
        log::info!("created {made} spare queue files");
    }
    Ok(())
}

/// The answer line (without its newline) for a command's result; a failure is logged.
fn reply(res: Result<(), CleanError>, line: &str) -> String {
    match res {
        Ok(()) => "ok".to_owned(),
        Err(e) => {
            log::warn!("{}: {e}", line.escape_debug());
            format!("error {e}")
        }
    }
}

/// Threads that run the commands that may wait on the disk (unlinks, `clean`): an unlink
/// waits on the disk (with online discard, half a millisecond or more), and dispatch sends
/// two per finished message when no spares are kept.
pub const WORKERS: usize = 8;

/// Serve commands from `input` until EOF, one answer line per command, with up to
/// [`WORKERS`] unlinks running at once. An output error ends the loop (dispatch went
/// away).
pub fn serve(q: &Queue, input: impl Read, output: impl Write + Send) -> io::Result<()> {
    serve_with(q, input, output, WORKERS)
}

/// A command for a worker thread.
enum Job {
    /// A line that is not a command: its answer.
    Answer(&'static str),
    /// A command line, run whole ([`handle`]).
    Line(String),
    /// A command line whose file [`plan`] found must be unlinked.
    Unlink(String, PathBuf),
    /// `clean`.
    Clean,
}

/// [`serve`] with `workers` threads for the commands that may wait on the disk.
///
/// While no worker is busy, the reading thread runs each command itself: the usual one, a
/// rename into the pool, takes a few microseconds, and handing it to a thread cost two
/// wake-ups (a third of queue-clean's system calls). An unlink or `clean` goes to a worker;
/// while any worker is busy, every command goes to one, chosen by its id (the second word),
/// so the commands for one message still run in order (`todo ID` before `mess ID`).
/// Answers to commands for different ids may come in another order; with one worker the
/// answers are in command order. The reading thread writes its answers in one go before it
/// waits for more input or hands a command to a worker.
pub fn serve_with(
    q: &Queue,
    input: impl Read,
    output: impl Write + Send,
    workers: usize,
) -> io::Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let mut input = io::BufReader::new(input);
    let rec = Recycler::new(q);
    let rec = &rec;
    let output = std::sync::Mutex::new(output);
    let failed = AtomicBool::new(false);
    // Commands handed to a worker and not answered yet.
    let busy = AtomicUsize::new(0);
    let write = |text: &str| -> io::Result<()> {
        let mut out = output
            .lock()
            .map_err(|_| io::Error::other("answer writer poisoned"))?;
        out.write_all(text.as_bytes())?;
        out.flush()
    };
    std::thread::scope(|scope| -> io::Result<()> {
        let mut queues = Vec::new();
        for _ in 0..workers.max(1) {
            let (tx, rx) = std::sync::mpsc::channel::<Job>();
            queues.push(tx);
            let (write, failed, busy) = (&write, &failed, &busy);
            scope.spawn(move || {
                for job in rx {
                    let mut text = match job {
                        Job::Answer(a) => a.to_owned(),
                        Job::Line(line) => reply(handle(q, rec, &line, SystemTime::now()), &line),
                        Job::Unlink(line, path) => reply(unlink(&path), &line),
                        Job::Clean => reply(clean(q, rec, SystemTime::now()), "clean"),
                    };
                    text.push('\n');
                    if write(&text).is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    // After the answer: a command of the same id run by the reading thread
                    // from now on is answered after this one.
                    busy.fetch_sub(1, Ordering::Release);
                }
            });
        }
        // Answers of the commands run here, not written yet.
        let mut answers = String::new();
        let mut line = Vec::new();
        loop {
            if failed.load(Ordering::Relaxed) {
                return Err(io::Error::other("cannot write answers"));
            }
            if !answers.is_empty() && !input.buffer().contains(&b'\n') {
                write(&answers)?;
                answers.clear();
            }
            line.clear();
            let n = Read::take(&mut input, MAX_LINE).read_until(b'\n', &mut line)?;
            if n == 0 {
                return write(&answers);
            }
            let text = if line.last() != Some(&b'\n') {
                if n as u64 == MAX_LINE {
                    // Skip the rest of an overlong line.
                    let mut rest = Vec::new();
                    input.read_until(b'\n', &mut rest)?;
                }
                Err("error line too long or unterminated")
            } else {
                Ok(String::from_utf8_lossy(&line[..line.len() - 1])
                    .trim_end_matches('\r')
                    .to_owned())
            };
            let job = if busy.load(Ordering::Acquire) > 0 {
                match text {
                    Err(a) => Job::Answer(a),
                    Ok(t) => Job::Line(t),
                }
            } else {
                match text {
                    Err(a) => {
                        answers.push_str(a);
                        answers.push('\n');
                        continue;
                    }
                    Ok(t) => match plan(q, rec, &t) {
                        Plan::Done(res) => {
                            answers.push_str(&reply(res, &t));
                            answers.push('\n');
                            continue;
                        }
                        Plan::Unlink(path) => Job::Unlink(t, path),
                        Plan::Clean => Job::Clean,
                    },
                }
            };
            // The answers so far go first (with one worker, answers keep command order).
            if !answers.is_empty() {
                write(&answers)?;
                answers.clear();
            }
            let worker = match &job {
                Job::Line(t) | Job::Unlink(t, _) => worker_for(t, queues.len()),
                Job::Answer(_) | Job::Clean => 0,
            };
            busy.fetch_add(1, Ordering::Relaxed);
            if queues[worker].send(job).is_err() {
                return Err(io::Error::other("queue-clean worker gone"));
            }
        }
    })?;
    // The last moves become usable now rather than at the next start.
    rec.flush(q);
    if failed.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(io::Error::other("cannot write answers"));
    }
    Ok(())
}

/// The worker for a command: by its id (the second word), so that the commands for one
/// message run in order.
fn worker_for(text: &str, workers: usize) -> usize {
    let id = text.split(' ').nth(1).unwrap_or("");
    let h = id.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    h % workers.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Queue) {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_dirs().unwrap();
        (d, q)
    }

    /// The spares that were queue files and a taker may take now (a moved name at or below
    /// the watermark, or one an older queue-clean left usable), by inode, in every lane.
    fn usable(q: &Queue) -> Vec<u64> {
        let w = spare::Mark::open(q).ok().and_then(|m| m.read());
        lane_files(q)
            .into_iter()
            .filter(|(n, _)| !n.starts_with(spare::FRESH))
            .filter(|(n, _)| spare::seq_of(n).is_none_or(|s| w.is_some_and(|w| s <= w)))
            .map(|(_, ino)| ino)
            .collect()
    }

    /// The moved spares a taker may not take yet (above the watermark), by inode.
    fn pending(q: &Queue) -> Vec<u64> {
        let w = spare::Mark::open(q).ok().and_then(|m| m.read());
        let mut v: Vec<u64> = lane_files(q)
            .into_iter()
            .filter(|(n, _)| spare::seq_of(n).is_some_and(|s| w.is_none_or(|w| s > w)))
            .map(|(_, ino)| ino)
            .collect();
        v.sort_unstable();
        v
    }

    /// Every file in the lanes, with its inode.
    fn lane_files(q: &Queue) -> Vec<(String, u64)> {
        use std::os::unix::fs::MetadataExt;
        let mut v = Vec::new();
        for l in 0..spare::LANES {
            for e in std::fs::read_dir(spare::lane_dir(q, l)).unwrap() {
                let e = e.unwrap();
                let ino = e.metadata().unwrap().ino();
                v.push((e.file_name().into_string().unwrap(), ino));
            }
        }
        v
    }

    fn sorted(mut v: Vec<u64>) -> Vec<u64> {
        v.sort_unstable();
        v
    }

    /// Every usable spare, those [`Recycler::fill`] made included.
    fn all_spares(q: &Queue) -> Vec<String> {
        let mut names = Vec::new();
        for l in 0..spare::LANES {
            for e in std::fs::read_dir(spare::lane_dir(q, l)).unwrap() {
                let n = e.unwrap().file_name().into_string().unwrap();
                let id = n.rsplit_once('.').unwrap().0;
                if !n.starts_with(spare::FRESH) {
                    assert_eq!(spare::lane_of(id), l, "{n} in lane {l}");
                }
                names.push(n);
            }
        }
        names.sort();
        names
    }

    #[test]
    fn commands() {
        let (_d, q) = setup();
        std::fs::write(q.todo("1.2.3"), "x").unwrap();
        std::fs::write(q.mess("1.2.3"), "x").unwrap();
        std::fs::write(q.mess("4.5.6"), "x").unwrap();
        let input = b"mess 1.2.3\ntodo 1.2.3\nmess 1.2.3\ntodo 1.2.3\nmess ../x\nrm 1\ntodo\nclean\nmess 4.5.6 x\nmess 4.5.6";
        let mut out = Vec::new();
        serve_with(&q, &input[..], &mut out, 1).unwrap();
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "error todo/1.2.3 still exists",
                "ok",
                "ok",
                "ok",
                "error bad id",
                "error unknown command",
                "error unknown command",
                "ok",
                "error unknown command",
                "error line too long or unterminated",
            ]
        );
        assert!(!q.todo("1.2.3").exists() && !q.mess("1.2.3").exists());
        assert!(q.mess("4.5.6").exists());
    }

    // See: issue #11
    #[test]
    fn finished_files_become_spares_once_their_move_is_durable() {
        use std::os::unix::fs::MetadataExt;
        let (_d, q) = setup();
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        let spare = |n: &str| q.spare_dir().join(n);
        std::fs::write(q.todo("1.2.3"), "F\0\0").unwrap();
        std::fs::write(q.mess("1.2.3"), "m").unwrap();
        std::fs::write(q.todo("4.5.6"), "x").unwrap();
        let (t_ino, m_ino) = (ino(&q.todo("1.2.3")), ino(&q.mess("1.2.3")));
        let t2_ino = ino(&q.todo("4.5.6"));
        let rec = Recycler::new(&q);
        let now = SystemTime::now();
        handle(&q, &rec, "todo 1.2.3", now).unwrap();
        handle(&q, &rec, "mess 1.2.3", now).unwrap();
        assert!(!q.todo("1.2.3").exists() && !q.mess("1.2.3").exists());
        // Moved straight into lane 3 (the pid of the queue process that wrote 1.2.3), not
        // usable yet.
        assert_eq!(pending(&q), sorted(vec![t_ino, m_ino]));
        assert!(usable(&q).is_empty());
        assert!(
            lane_files(&q)
                .iter()
                .all(|(n, _)| spare::lane_of(n.rsplit_once('.').unwrap().0) == 3)
        );
        // A queue's shared fsync of todo/, started after the move, covers the todo/ move
        // only: that spare becomes usable at the next command, the mess/ one waits (and so
        // does every later move: the watermark covers a prefix).
        let mut g = GroupSync::open(&q.todo_dir(), &q.lock_dir().join("sync.todo")).unwrap();
        g.sync().unwrap();
        // (The records are read again RECHECK after the last read: as if that time passed.)
        rec.lock().checked = None;
        handle(&q, &rec, "todo 4.5.6", now).unwrap();
        assert_eq!(usable(&q), [t_ino], "covered: usable");
        assert_eq!(
            pending(&q),
            sorted(vec![m_ino, t2_ino]),
            "mess/ not synced since"
        );
        // clean runs the fsyncs itself: every spare is usable.
        handle(&q, &rec, "clean", now).unwrap();
        assert_eq!(sorted(usable(&q)), sorted(vec![t_ino, m_ino, t2_ino]));
        assert!(pending(&q).is_empty());
        // A restart drops the pending names an older queue-clean's crash left in spare/,
        // and moves the usable spares it left in spare/ itself into their lanes.
        std::fs::write(spare("p.7.7.7.m"), "").unwrap();
        std::fs::write(spare("8.8.18.m"), "").unwrap();
        let old = ino(&spare("8.8.18.m"));
        drop(rec);
        drop(Recycler::new(&q));
        assert!(!spare("p.7.7.7.m").exists() && !spare("8.8.18.m").exists());
        assert_eq!(sorted(usable(&q)), sorted(vec![t_ino, m_ino, t2_ino, old]));
        // Without recycling (no spare/, or off), files are unlinked.
        let off = Recycler::off();
        std::fs::write(q.mess("8.8.8"), "m").unwrap();
        handle(&q, &off, "mess 8.8.8", now).unwrap();
        assert!(!q.mess("8.8.8").exists());
        let kept = lane_files(&q);
        assert_eq!(
            kept.iter()
                .filter(|(n, _)| !n.starts_with(spare::FRESH))
                .count(),
            4
        );
    }

    // See: issue #11 (one rename per finished file: the watermark must never cover a move
    // whose fsync has not started after it, nor go backwards across a restart)
    #[test]
    fn the_watermark_covers_only_durable_moves_and_never_goes_backwards() {
        let (_d, q) = setup();
        let mark = || spare::Mark::open(&q).unwrap().read().unwrap();
        let rec = Recycler::new(&q);
        let w0 = mark();
        let now = SystemTime::now();
        std::fs::write(q.todo("1.1.1"), "F\0\0").unwrap();
        handle(&q, &rec, "todo 1.1.1", now).unwrap();
        // No fsync of todo/ since the move: the watermark stays below its number.
        let (name, _) = lane_files(&q).pop().unwrap();
        let seq = spare::seq_of(&name).unwrap();
        assert!(seq > w0 && mark() < seq, "{name} w={}", mark());
        // queue-clean killed here (its lock dropped without a flush), a new one starts: it
        // makes the earlier moves durable and numbers its own above them and the record.
        drop(rec);
        let rec = Recycler::new(&q);
        let w1 = mark();
        assert!(w1 >= seq, "the left-over move is durable now: {w1} < {seq}");
        std::fs::write(q.mess("1.1.1"), "m").unwrap();
        handle(&q, &rec, "mess 1.1.1", now).unwrap();
        let seq2 = lane_files(&q)
            .iter()
            .filter_map(|(n, _)| spare::seq_of(n))
            .max()
            .unwrap();
        assert!(
            seq2 > w1,
            "a new number is above the watermark: {seq2} <= {w1}"
        );
        assert_eq!(mark(), w1, "not durable yet");
        drop(rec);
        // A record far ahead (a clock stepped back since): the next run starts above it.
        let far = w1 + (1 << 40);
        spare::Mark::create(&q).unwrap().write(far).unwrap();
        let rec = Recycler::new(&q);
        assert!(mark() >= far, "never backwards");
        std::fs::write(q.todo("2.2.2"), "F\0\0").unwrap();
        handle(&q, &rec, "todo 2.2.2", now).unwrap();
        let top = lane_files(&q)
            .iter()
            .filter_map(|(n, _)| spare::seq_of(n))
            .max()
            .unwrap();
        assert!(top > far);
        // While one queue-clean holds the watermark, another keeps nothing: it unlinks.
        let second = Recycler::new(&q);
        std::fs::write(q.mess("2.2.2"), "m").unwrap();
        let before = lane_files(&q).len();
        handle(&q, &second, "mess 2.2.2", now).unwrap();
        assert!(!q.mess("2.2.2").exists());
        assert_eq!(lane_files(&q).len(), before, "unlinked, not kept");
    }

    // See: issue #11
    #[test]
    fn at_most_max_spares_are_kept() {
        let (_d, q) = setup();
        let rec = Recycler::new(&q);
        let now = SystemTime::now();
        for i in 0..spare::MAX_SPARES + 10 {
            let id = format!("1.{i}.1");
            std::fs::write(q.mess(&id), "m").unwrap();
            handle(&q, &rec, &format!("mess {id}"), now).unwrap();
            assert!(!q.mess(&id).exists());
        }
        // Pending ones count too: the pool never holds more than MAX_SPARES.
        rec.flush(&q);
        assert_eq!(usable(&q).len(), spare::MAX_SPARES);
    }

    // See: issue #11 (a pool once full was never counted again: after queue had taken
    // every spare, each finished file was still unlinked and each new message allocated an
    // inode, about 1.8 of each per message in a bench run)
    #[test]
    fn a_full_pool_that_queue_emptied_is_refilled() {
        let (_d, q) = setup();
        spare::make_lanes(&q).unwrap();
        for i in 0..spare::MAX_SPARES {
            std::fs::write(spare::lane_dir(&q, 9).join(format!("9.{i}.9.m")), "m").unwrap();
        }
        let rec = Recycler::new(&q);
        let now = SystemTime::now();
        // queue takes every spare (without telling queue-clean).
        for e in std::fs::read_dir(spare::lane_dir(&q, 9)).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        for i in 0..2 * RECOUNT {
            let id = format!("1.{i}.1");
            std::fs::write(q.mess(&id), "m").unwrap();
            handle(&q, &rec, &format!("mess {id}"), now).unwrap();
            assert!(!q.mess(&id).exists());
        }
        rec.flush(&q);
        let kept = usable(&q).len();
        assert!(kept >= RECOUNT, "only {kept} kept after the pool emptied");
    }

    // See: issue #11 (a large message does not keep its blocks in the pool)
    #[test]
    fn a_large_file_is_unlinked_not_kept() {
        let (_d, q) = setup();
        let rec = Recycler::new(&q);
        let now = SystemTime::now();
        let big = usize::try_from(spare::MAX_SPARE_LEN).unwrap() + 1;
        std::fs::write(q.mess("1.1.1"), vec![b'x'; big]).unwrap();
        std::fs::write(q.mess("1.1.2"), vec![b'x'; big - 1]).unwrap();
        handle(&q, &rec, "mess 1.1.1", now).unwrap();
        handle(&q, &rec, "mess 1.1.2", now).unwrap();
        assert!(!q.mess("1.1.1").exists() && !q.mess("1.1.2").exists());
        let kept = lane_files(&q);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert_eq!(
            std::fs::metadata(spare::lane_dir(&q, 2).join(&kept[0].0))
                .unwrap()
                .len(),
            spare::MAX_SPARE_LEN,
            "{kept:?}"
        );
    }

    #[test]
    fn long_line_is_skipped() {
        let (_d, q) = setup();
        let mut input = "x".repeat(500).into_bytes();
        input.extend_from_slice(b"\nclean\n");
        let mut out = Vec::new();
        serve_with(&q, &input[..], &mut out, 1).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "error line too long or unterminated\nok\n"
        );
    }

    #[test]
    fn workers_keep_the_order_of_one_id() {
        let (_d, q) = setup();
        let mut input = String::new();
        for i in 0..200 {
            std::fs::write(q.todo(&format!("1.{i}.1")), "x").unwrap();
            std::fs::write(q.mess(&format!("1.{i}.1")), "x").unwrap();
            input.push_str(&format!("todo 1.{i}.1\nmess 1.{i}.1\n"));
        }
        let mut out = Vec::new();
        serve(&q, input.as_bytes(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.lines().count(), 400);
        assert!(out.lines().all(|l| l == "ok"), "{out}");
        assert!(q.list_todo().unwrap().is_empty() && q.list_mess().unwrap().is_empty());
    }

    // See: issue #11 (renames into the pool run on the reading thread, unlinks on the
    // workers: the commands of one id still run in order)
    #[test]
    fn unlinks_on_workers_and_renames_inline_keep_the_order_of_one_id() {
        let (_d, q) = setup();
        let big = vec![b'x'; usize::try_from(spare::MAX_SPARE_LEN).unwrap() + 1];
        let mut input = String::new();
        for i in 0..40 {
            let id = format!("1.{i}.1");
            // Every other envelope too large to keep: unlinked by a worker, and the `mess`
            // after it must wait for that unlink (or it would be refused).
            std::fs::write(q.todo(&id), if i % 2 == 0 { &big[..] } else { b"F\0\0" }).unwrap();
            std::fs::write(q.mess(&id), "m").unwrap();
            input.push_str(&format!("todo {id}\nmess {id}\n"));
        }
        input.push_str("bogus\n");
        let mut out = Vec::new();
        serve(&q, input.as_bytes(), &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.lines().count(), 81, "{out}");
        assert_eq!(out.lines().filter(|l| *l == "ok").count(), 80, "{out}");
        assert!(out.lines().any(|l| l == "error unknown command"), "{out}");
        assert!(q.list_todo().unwrap().is_empty() && q.list_mess().unwrap().is_empty());
    }

    #[test]
    fn clean_removes_only_old_intd() {
        let (_d, q) = setup();
        std::fs::write(q.intd("1.1.1"), "x").unwrap();
        let now = SystemTime::now();
        let rec = Recycler::off();
        handle(&q, &rec, "clean", now).unwrap();
        assert!(q.intd("1.1.1").exists());
        handle(
            &q,
            &rec,
            "clean",
            now + ORPHAN_AGE + Duration::from_secs(60),
        )
        .unwrap();
        assert!(!q.intd("1.1.1").exists());
    }

    // See: issue #11 (the pool is filled ahead of a burst: a burst at fifty sessions held
    // a few hundred messages in the queue, each file beyond the pool created on the hot
    // path)
    #[test]
    fn clean_fills_the_pool_with_empty_spares_up_to_fill() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let (_d, q) = setup();
        let rec = Recycler::new(&q);
        handle(&q, &rec, "clean", SystemTime::now()).unwrap();
        let names = all_spares(&q);
        assert_eq!(names.len(), FILL);
        let m = names.iter().filter(|n| n.ends_with(".m")).count();
        assert_eq!((m, names.len() - m), (FILL / 2, FILL / 2));
        let mess_gid = q.mess_dir().metadata().unwrap().gid();
        for l in 0..spare::LANES {
            let files: Vec<_> = std::fs::read_dir(spare::lane_dir(&q, l))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            assert!(!files.is_empty(), "lane {l} has spares");
            for f in files {
                let meta = f.metadata().unwrap();
                assert_eq!(meta.len(), 0);
                assert_eq!(meta.permissions().mode() & 0o777, 0o640);
                assert_eq!(meta.gid(), mess_gid);
            }
        }
        // Filled already: nothing more; finished files still find room up to MAX_SPARES.
        assert_eq!(rec.fill(&q), 0);
        std::fs::write(q.mess("1.1.1"), "m").unwrap();
        let ino = std::fs::metadata(q.mess("1.1.1")).unwrap().ino();
        handle(&q, &rec, "mess 1.1.1", SystemTime::now()).unwrap();
        assert!(!q.mess("1.1.1").exists());
        assert_eq!(pending(&q), [ino], "kept");
    }
}
