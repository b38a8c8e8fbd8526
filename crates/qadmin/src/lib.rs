//! qadmin: queue tools — `list`, `stat`, `show ID` (read-only), and requests to dispatch:
//! `retry ID`, `remove ID`, `flush [DOMAIN]`.
//!
//! A message is in the queue when `todo/ID` (accepted, not yet taken by dispatch) or
//! `state/ID` (dispatch's per-recipient record) exists; when both exist `state/ID` wins, as
//! it does for dispatch. `mess/ID` gives the size. Files that vanish while being read
//! (dispatch finished the message) are skipped; a file that cannot be parsed is shown with
//! sender `?` and a warning, so one bad file does not hide the rest of the queue.
//!
//! Everything here reads through mailorder-queue-format and writes plain text to a generic
//! `Write`; it never changes the queue itself. Requests are one line written to the FIFO
//! `queue/lock/ctl`, which dispatch reads (dispatch is the only writer of `state/`); they are
//! asynchronous: qadmin returns once dispatch has the request.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::exit::tools::NOT_FOUND,
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

use mailorder_core::Exit;
use mailorder_queue_format::{Notify, Queue, Ret, State, Status, read_envelope, valid_id};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(name = "qadmin", about = "Look at the mailorder queue", version)]
pub struct Cli {
    /// What to show.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// One line per message: ID SIZE AGE-SECONDS SENDER NRCPTS-PENDING (tab-separated).
    List,
    /// One line per pending recipient: ID ADDRESS (tab-separated), oldest message first.
    Rcpts,
    /// Totals: messages, todo, recipients-pending, oldest-seconds.
    Stat,
    /// The envelope and per-recipient status of one message.
    Show {
        /// The queue id (SECONDS.MICROS.PID).
        id: String,
    },
    /// Ask dispatch to retry every pending recipient of one message now.
    Retry {
        /// The queue id.
        id: String,
    },
    /// Ask dispatch to remove one message from the queue, without a bounce.
    Remove {
        /// The queue id.
        id: String,
    },
    /// Ask dispatch to retry now: every pending recipient in DOMAIN, or everything.
    Flush {
        /// The recipient domain (e.g. a backup-MX domain whose primary is back).
        domain: Option<String>,
    },
}

/// Why the queue could not be read.
#[derive(Debug, thiserror::Error)]
pub enum QError {
    /// A queue directory or file could not be read.
    #[error("cannot read {path}: {source} (#4.3.0)")]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Write(#[from] io::Error),
    /// The request could not be handed to dispatch.
    #[error("cannot reach dispatch through {path}: {why} (#4.3.0)")]
    Request {
        /// The FIFO.
        path: PathBuf,
        /// Why (dispatch not running, permissions).
        why: String,
    },
    /// The argument is not acceptable.
    #[error("bad argument {0:?}")]
    Usage(String),
}

impl QError {
    /// Always temporary (111).
    pub fn class(&self) -> Exit {
        match self {
            QError::Usage(_) => Exit::Perm,
            _ => Exit::Temp,
        }
    }
}

/// Where a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// `todo/ID`: accepted, not yet taken by dispatch.
    Todo,
    /// `state/ID`: dispatch is working on it.
    State,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Todo => "todo",
            Stage::State => "state",
        }
    }
}

/// Per-recipient line for `show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rcpt {
    /// Address.
    pub address: String,
    /// Status word (`pending`, `held`, `delivered`, `failed`, `bounced`).
    pub status: String,
    /// Attempts so far.
    pub tries: u32,
    /// Next attempt, unix seconds.
    pub next: u64,
    /// Last result text.
    pub result: String,
    /// Whether more will happen to it (not delivered/bounced).
    pub pending: bool,
    /// DSN `NOTIFY=` (RFC 3461), when given.
    pub notify: Option<Notify>,
    /// DSN `ORCPT=`, as given (`addr-type;xtext`).
    pub orcpt: Option<String>,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The queue id.
    pub id: String,
    /// Size of `mess/ID` in bytes (0 when missing).
    pub size: u64,
    /// Arrival, unix seconds (dispatch's, else the id's seconds).
    pub arrival: u64,
    /// Envelope sender (empty: null sender); `None` when the file could not be parsed.
    pub sender: Option<String>,
    /// Where it is.
    pub stage: Stage,
    /// The recipients.
    pub rcpts: Vec<Rcpt>,
    /// DSN `RET=`, when given.
    pub ret: Option<Ret>,
    /// DSN `ENVID=`, xtext as given.
    pub envid: Option<String>,
}

impl Entry {
    /// Recipients still to be handled.
    pub fn pending(&self) -> usize {
        self.rcpts.iter().filter(|r| r.pending).count()
    }

    /// Seconds since arrival.
    pub fn age(&self, now: u64) -> u64 {
        now.saturating_sub(self.arrival)
    }

    /// The sender as printed: `<>` for the null sender, `?` when unknown.
    pub fn sender_text(&self) -> &str {
        match self.sender.as_deref() {
            None => "?",
            Some("") => "<>",
            Some(s) => s,
        }
    }
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> QError + '_ {
    move |source| QError::Read {
        path: path.to_owned(),
        source,
    }
}

/// The seconds part of an id.
fn id_seconds(id: &str) -> u64 {
    id.split('.')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Read one message; `Ok(None)` when it is not (or no longer) queued.
pub fn load(queue: &Queue, id: &str) -> Result<Option<Entry>, QError> {
    if !valid_id(id) {
        return Ok(None);
    }
    let mess = queue.mess(id);
    let size = match std::fs::metadata(&mess) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
        Err(e) => return Err(read_err(&mess)(e)),
    };
    let state_path = queue.state(id);
    match std::fs::read(&state_path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let mut e = Entry {
                id: id.to_owned(),
                size,
                arrival: id_seconds(id),
                sender: None,
                stage: Stage::State,
                rcpts: Vec::new(),
                ret: None,
                envid: None,
            };
            match State::parse(id, &text, &state_path) {
                Ok(st) => {
                    e.arrival = st.arrival;
                    e.sender = Some(st.sender);
                    e.ret = st.ret;
                    e.envid = st.envid;
                    e.rcpts = st
                        .recipients
                        .into_iter()
                        .map(|r| Rcpt {
                            pending: !r.status.is_final(),
                            address: r.address,
                            status: r.status.as_str().to_owned(),
                            tries: r.tries,
                            next: r.next,
                            result: r.result,
                            notify: r.notify,
                            orcpt: r.orcpt,
                        })
                        .collect();
                }
                Err(err) => log::warn!("{err}"),
            }
            return Ok(Some(e));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(read_err(&state_path)(e)),
    }
    let todo_path = queue.todo(id);
    let file = match std::fs::File::open(&todo_path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(&todo_path)(e)),
    };
    let arrival = id_seconds(id);
    let mut e = Entry {
        id: id.to_owned(),
        size,
        arrival,
        sender: None,
        stage: Stage::Todo,
        rcpts: Vec::new(),
        ret: None,
        envid: None,
    };
    match read_envelope(file, mailorder_queue_format::envelope::MAX_ENVELOPE) {
        Ok(env) => {
            e.rcpts = env
                .recipients
                .iter()
                .enumerate()
                .map(|(i, address)| {
                    let d = env.rcpt_dsn(i);
                    Rcpt {
                        address: address.clone(),
                        status: Status::Pending.as_str().to_owned(),
                        tries: 0,
                        next: arrival,
                        result: String::new(),
                        pending: true,
                        notify: d.notify,
                        orcpt: d.orcpt,
                    }
                })
                .collect();
            e.sender = Some(env.sender);
            e.ret = env.ret;
            e.envid = env.envid;
        }
        Err(err) => log::warn!("{}: {err}", todo_path.display()),
    }
    Ok(Some(e))
}

/// Every queued message, oldest id first.
pub fn scan(queue: &Queue) -> Result<Vec<Entry>, QError> {
    let state = Queue::list(&queue.state_dir()).map_err(read_err(&queue.state_dir()))?;
    let todo = Queue::list(&queue.todo_dir()).map_err(read_err(&queue.todo_dir()))?;
    let mut ids: Vec<String> = state;
    for id in todo {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids.sort_by_key(|id| {
        id.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(e) = load(queue, &id)? {
            out.push(e);
        }
    }
    Ok(out)
}

/// `list`: `ID\tSIZE\tAGE\tSENDER\tPENDING` per message.
pub fn list<W: Write>(queue: &Queue, now: u64, out: &mut W) -> Result<(), QError> {
    for e in scan(queue)? {
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}",
            e.id,
            e.size,
            e.age(now),
            e.sender_text(),
            e.pending()
        )?;
    }
    Ok(())
}

/// `rcpts`: one `ID\tADDRESS` line per pending recipient, in `list` order.
pub fn rcpts<W: Write>(queue: &Queue, out: &mut W) -> Result<(), QError> {
    for e in scan(queue)? {
        for r in e.rcpts.iter().filter(|r| r.pending) {
            writeln!(out, "{}\t{}", e.id, r.address)?;
        }
    }
    Ok(())
}

/// `stat`: four `name N` lines.
pub fn stat<W: Write>(queue: &Queue, now: u64, out: &mut W) -> Result<(), QError> {
    let all = scan(queue)?;
    let todo = Queue::list(&queue.todo_dir())
        .map_err(read_err(&queue.todo_dir()))?
        .len();
    let pending: usize = all.iter().map(Entry::pending).sum();
    let oldest = all.iter().map(|e| e.age(now)).max().unwrap_or(0);
    writeln!(out, "messages {}", all.len())?;
    writeln!(out, "todo {todo}")?;
    writeln!(out, "recipients-pending {pending}")?;
    writeln!(out, "oldest-seconds {oldest}")?;
    Ok(())
}

/// `show ID`: `key\tvalue` lines, then one `rcpt` line per recipient. `Ok(false)` when
/// there is no such message.
pub fn show<W: Write>(queue: &Queue, id: &str, now: u64, out: &mut W) -> Result<bool, QError> {
    let Some(e) = load(queue, id)? else {
        return Ok(false);
    };
    writeln!(out, "id\t{}", e.id)?;
    writeln!(out, "stage\t{}", e.stage.as_str())?;
    writeln!(out, "size\t{}", e.size)?;
    writeln!(out, "arrival\t{}", e.arrival)?;
    writeln!(out, "age\t{}", e.age(now))?;
    writeln!(out, "sender\t{}", e.sender_text())?;
    // DSN (RFC 3461) lines only when there is something to say: the rest stays as it was.
    if let Some(r) = e.ret {
        writeln!(out, "ret\t{}", r.as_str())?;
    }
    if let Some(v) = &e.envid {
        writeln!(out, "envid\t{v}")?;
    }
    for r in &e.rcpts {
        writeln!(
            out,
            "rcpt\t{}\t{}\t{}\t{}\t{}",
            r.status, r.tries, r.next, r.address, r.result
        )?;
        if r.notify.is_some() || r.orcpt.is_some() {
            writeln!(
                out,
                "rdsn\t{}\t{}",
                r.notify.map(|n| n.as_param()).unwrap_or_default(),
                r.orcpt.as_deref().unwrap_or_default()
            )?;
        }
    }
    Ok(true)
}

/// `queue/lock/ctl`, where dispatch reads requests.
pub fn ctl_path(queue: &Queue) -> PathBuf {
    queue.lock_dir().join("ctl")
}

/// Write one request line to dispatch. Opening without blocking: no reader (dispatch not
/// running) is an error, not a hang.
pub fn request(queue: &Queue, line: &str) -> Result<(), QError> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = ctl_path(queue);
    let err = |why: String| QError::Request {
        path: path.clone(),
        why,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc_nonblock())
        .open(&path)
        .map_err(|e| match e.raw_os_error() {
            Some(c) if c == nix::errno::Errno::ENXIO as i32 => {
                err("dispatch is not running".into())
            }
            _ if e.kind() == io::ErrorKind::NotFound => err("dispatch is not running".into()),
            _ => err(e.to_string()),
        })?;
    // One write of less than PIPE_BUF bytes: atomic, never mixed with another request.
    f.write_all(format!("{line}\n").as_bytes())
        .map_err(|e| err(e.to_string()))
}

/// `O_NONBLOCK` (the same value on every Linux architecture mailorder builds for).
fn libc_nonblock() -> i32 {
    nix::fcntl::OFlag::O_NONBLOCK.bits()
}

fn check_domain(d: &str) -> Result<String, QError> {
    let ok = !d.is_empty()
        && d.len() <= 255
        && d.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(d.to_lowercase())
    } else {
        Err(QError::Usage(mailorder_core::ucspi::safe_name(d)))
    }
}

/// Hand a request about message `id` to dispatch; `Ok(false)`: no such message.
fn id_request(queue: &Queue, verb: &str, id: &str) -> Result<bool, QError> {
    if !valid_id(id) || load(queue, id)?.is_none() {
        return Ok(false);
    }
    request(queue, &format!("{verb} {id}"))?;
    Ok(true)
}

/// Run `cmd` and return the exit code: 0, 1 (no such message), 100 (bad argument), 111.
pub fn run<W: Write>(cmd: &Command, queue: &Queue, out: &mut W) -> u8 {
    let now = mailorder_queue_format::date::unix_now();
    let r = match cmd {
        Command::List => list(queue, now, out).map(|()| true),
        Command::Rcpts => rcpts(queue, out).map(|()| true),
        Command::Stat => stat(queue, now, out).map(|()| true),
        Command::Show { id } => show(queue, id, now, out),
        Command::Retry { id } => id_request(queue, "retry", id),
        Command::Remove { id } => id_request(queue, "remove", id),
        Command::Flush { domain: None } => request(queue, "flush").map(|()| true),
        Command::Flush { domain: Some(d) } => {
            check_domain(d).and_then(|d| request(queue, &format!("flush {d}")).map(|()| true))
        }
    };
    let r = r.and_then(|found| out.flush().map(|()| found).map_err(QError::from));
    match r {
        Ok(true) => mailorder_core::Exit::Ok.code(),
        Ok(false) => {
            if let Command::Show { id } | Command::Retry { id } | Command::Remove { id } = cmd {
                log::error!("no such message {}", mailorder_core::ucspi::safe_name(id));
            }
            mailorder_core::exit::tools::NOT_FOUND
        }
        Err(e) => mailorder_core::exit::failed(e.class(), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailorder_queue_format::{Envelope, encode};

    fn queue() -> (tempfile::TempDir, Queue) {
        let t = tempfile::tempdir().unwrap();
        let q = Queue::new(t.path().join("queue"));
        q.create_dirs().unwrap();
        (t, q)
    }

    fn put_todo(q: &Queue, id: &str, sender: &str, rcpts: &[&str], body: &str) {
        let env = Envelope {
            sender: sender.to_owned(),
            recipients: rcpts.iter().map(|r| (*r).to_owned()).collect(),
            ..Default::default()
        };
        std::fs::write(q.mess(id), body).unwrap();
        std::fs::write(q.todo(id), encode(&env)).unwrap();
    }

    fn text(f: impl FnOnce(&mut Vec<u8>) -> Result<(), QError>) -> String {
        let mut v = Vec::new();
        f(&mut v).unwrap();
        String::from_utf8(v).unwrap()
    }

    fn sample() -> (tempfile::TempDir, Queue) {
        let (t, q) = queue();
        put_todo(
            &q,
            "1000.000001.10",
            "a@x.test",
            &["b@y.test", "c@y.test"],
            "hello\n",
        );
        put_todo(&q, "990.000001.11", "", &["postmaster@x.test"], "bounce!\n");
        // Taken by dispatch: state wins over the leftover todo file.
        let id = "995.000002.12";
        put_todo(&q, id, "old@x.test", &["d@y.test", "e@y.test"], "12345");
        let env = Envelope {
            sender: "s@x.test".into(),
            recipients: vec!["d@y.test".into(), "e@y.test".into(), "f@y.test".into()],
            ..Default::default()
        };
        let mut st = State::new(id, &env, 996);
        st.recipients[0].status = Status::Delivered;
        st.recipients[1].status = Status::Pending;
        st.recipients[1].tries = 2;
        st.recipients[1].result = "mailbox busy (#4.2.1)".into();
        st.recipients[2].status = Status::Held;
        State::store(&q, &st).unwrap();
        (t, q)
    }

    #[test]
    fn list_lines() {
        let (_t, q) = sample();
        let out = text(|w| list(&q, 1100, w));
        assert_eq!(
            out,
            "990.000001.11\t8\t110\t<>\t1\n\
             995.000002.12\t5\t104\ts@x.test\t2\n\
             1000.000001.10\t6\t100\ta@x.test\t2\n"
        );
    }

    // See: issue #15
    #[test]
    fn rcpts_lines() {
        let (_t, q) = sample();
        let out = text(|w| rcpts(&q, w));
        assert_eq!(out.lines().count(), 5, "{out}");
        assert!(out.lines().all(|l| l.split('\t').count() == 2), "{out}");
        assert!(out.starts_with("990.000001.11\t"), "{out}");
    }

    #[test]
    fn stat_lines() {
        let (_t, q) = sample();
        assert_eq!(
            text(|w| stat(&q, 1100, w)),
            "messages 3\ntodo 3\nrecipients-pending 5\noldest-seconds 110\n"
        );
        let (_t, q) = queue();
        assert_eq!(
            text(|w| stat(&q, 1100, w)),
            "messages 0\ntodo 0\nrecipients-pending 0\noldest-seconds 0\n"
        );
    }

    #[test]
    fn show_message() {
        let (_t, q) = sample();
        let mut v = Vec::new();
        assert!(show(&q, "995.000002.12", 1000, &mut v).unwrap());
        assert_eq!(
            String::from_utf8(v).unwrap(),
            "id\t995.000002.12\nstage\tstate\nsize\t5\narrival\t996\nage\t4\nsender\ts@x.test\n\
             rcpt\tdelivered\t0\t996\td@y.test\t\n\
             rcpt\tpending\t2\t996\te@y.test\tmailbox busy (#4.2.1)\n\
             rcpt\theld\t0\t996\tf@y.test\t\n"
        );
        let mut v = Vec::new();
        assert!(show(&q, "1000.000001.10", 1000, &mut v).unwrap());
        let s = String::from_utf8(v).unwrap();
        assert!(
            s.contains("stage\ttodo\n") && s.contains("rcpt\tpending\t0\t1000\tc@y.test\t\n"),
            "{s}"
        );
        for id in ["1.2.3", "../etc/passwd", "", "abc"] {
            assert!(!show(&q, id, 1000, &mut Vec::new()).unwrap(), "{id}");
        }
        assert_eq!(
            run(&Command::Show { id: "7.7.7".into() }, &q, &mut Vec::new()),
            1
        );
        assert_eq!(run(&Command::List, &q, &mut Vec::new()), 0);
    }

    #[test]
    fn show_dsn_values() {
        let (_t, q) = queue();
        let env = Envelope {
            sender: "a@x.test".into(),
            recipients: vec!["b@y.test".into(), "c@y.test".into()],
            ret: Some(Ret::Full),
            envid: Some("abc+2Bdef".into()),
            dsn: vec![
                mailorder_queue_format::RcptDsn {
                    notify: Notify::parse("SUCCESS,DELAY"),
                    orcpt: Some("rfc822;b@y.test".into()),
                },
                mailorder_queue_format::RcptDsn::default(),
            ],
        };
        std::fs::write(q.mess("1000.000001.10"), "x").unwrap();
        std::fs::write(q.todo("1000.000001.10"), encode(&env)).unwrap();
        let want = "id\t1000.000001.10\nstage\tSTAGE\nsize\t1\narrival\t1000\nage\t0\n\
                    sender\ta@x.test\nret\tFULL\nenvid\tabc+2Bdef\n\
                    rcpt\tpending\t0\t1000\tb@y.test\t\n\
                    rdsn\tSUCCESS,DELAY\trfc822;b@y.test\n\
                    rcpt\tpending\t0\t1000\tc@y.test\t\n";
        let got = text(|w| show(&q, "1000.000001.10", 1000, w).map(|_| ()));
        assert_eq!(got, want.replace("STAGE", "todo"));
        // The same from dispatch's state file.
        State::store(&q, &State::new("1000.000001.10", &env, 1000)).unwrap();
        let got = text(|w| show(&q, "1000.000001.10", 1000, w).map(|_| ()));
        assert_eq!(got, want.replace("STAGE", "state"));
        // Only NOTIFY=NEVER on the second recipient, nothing for the message.
        let env = Envelope {
            ret: None,
            envid: None,
            dsn: vec![
                mailorder_queue_format::RcptDsn::default(),
                mailorder_queue_format::RcptDsn {
                    notify: Notify::parse("NEVER"),
                    orcpt: None,
                },
            ],
            ..env
        };
        State::store(&q, &State::new("1000.000001.10", &env, 1000)).unwrap();
        let got = text(|w| show(&q, "1000.000001.10", 1000, w).map(|_| ()));
        assert!(
            got.ends_with(
                "sender\ta@x.test\nrcpt\tpending\t0\t1000\tb@y.test\t\n\
                 rcpt\tpending\t0\t1000\tc@y.test\t\nrdsn\tNEVER\t\n"
            ),
            "{got}"
        );
    }

    #[test]
    fn corrupt_files_are_listed_not_fatal() {
        let (_t, q) = queue();
        std::fs::write(q.todo("5.1.1"), b"Xbad\0").unwrap();
        std::fs::write(q.state("6.1.1"), b"V9\n").unwrap();
        let out = text(|w| list(&q, 10, w));
        assert_eq!(out, "5.1.1\t0\t5\t?\t0\n6.1.1\t0\t4\t?\t0\n");
    }

    #[test]
    fn unreadable_queue_is_111() {
        let t = tempfile::tempdir().unwrap();
        let q = Queue::new(t.path().join("missing"));
        assert_eq!(run(&Command::Stat, &q, &mut Vec::new()), 111);
        assert_eq!(run(&Command::List, &q, &mut Vec::new()), 111);
    }

    #[test]
    fn requests_reach_the_fifo_or_fail_cleanly() {
        let (_d, q) = sample();
        std::fs::create_dir_all(q.lock_dir()).unwrap();
        // No FIFO, then a FIFO without a reader: dispatch is not running (111).
        let mut out = Vec::new();
        assert_eq!(run(&Command::Flush { domain: None }, &q, &mut out), 111);
        nix::unistd::mkfifo(
            &ctl_path(&q),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        assert_eq!(run(&Command::Flush { domain: None }, &q, &mut out), 111);
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(ctl_path(&q))
            .unwrap();
        let flush = Command::Flush {
            domain: Some("Backup.TEST".into()),
        };
        assert_eq!(run(&flush, &q, &mut out), 0);
        let bad = Command::Flush {
            domain: Some("x\ny".into()),
        };
        assert_eq!(run(&bad, &q, &mut out), 100);
        let id = scan(&q).unwrap()[0].id.clone();
        assert_eq!(run(&Command::Retry { id: id.clone() }, &q, &mut out), 0);
        assert_eq!(
            run(&Command::Remove { id: "9.9.9".into() }, &q, &mut out),
            1
        );
        let mut got = vec![0u8; 100];
        let n = std::io::Read::read(&mut &reader, &mut got).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got[..n]),
            format!("flush backup.test\nretry {id}\n")
        );
    }

    #[test]
    fn cli_parses() {
        use clap::Parser;
        let c = Cli::try_parse_from(["qadmin", "show", "1.2.3"]).unwrap();
        assert_eq!(c.command, Command::Show { id: "1.2.3".into() });
        assert!(Cli::try_parse_from(["qadmin"]).is_err());
        assert!(Cli::try_parse_from(["qadmin", "list", "x"]).is_err());
    }
}
