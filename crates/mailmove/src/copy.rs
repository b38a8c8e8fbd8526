//! One user's copy: every folder of the source into the Maildir++, incremental and safe
//! against `kill -9` at any point.
//!
//! **The Maildir is the journal.** A message copied from source folder UIDVALIDITY `V`,
//! UID `U` gets the unique name `T.V<V>U<U>.mailmove` (`T` its INTERNALDATE), so a rerun
//! finds what is already there by name, whatever the index says. Each message is written
//! unnamed (or to `tmp/`), `fsync`ed, and named in `cur/` with its flags, then `cur/` is
//! `fsync`ed (sink.rs: on threads of their own, while the next messages arrive); only once
//! the folder's messages are all durable is its index told (`Folder::import`, which writes
//! the index whole via a temporary file and `rename`). A kill leaves at most files in
//! `tmp/` (the next pass removes them: `clean_tmp`) or messages in `cur/` the index does
//! not know yet (the rerun indexes them with their UIDs).
//!
//! **UIDs.** A destination folder that is new (no message) takes the source's
//! UIDVALIDITY, each message its source UID, and UIDNEXT the source's; the file
//! `mailmove-source` (the source UIDVALIDITY) marks the folder as ours for the next
//! passes. A folder that already had mail (an INBOX that received deliveries) keeps its
//! own UIDVALIDITY: the copies get new UIDs there (reported).

use crate::imap::{Arg, Client, Done, Val};
use crate::names::{Mapper, Source};
use crate::sink::{Sink, Written};
use crate::{Job, MoveError};
use mailorder_imap_store::{Folder, Msg, Store};
use mailorder_maildir::name;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, UNIX_EPOCH};

const MARKER: &str = "mailmove-source";
/// Messages fetched per UID FETCH command.
const CHUNK: usize = 250;
/// How many times one folder's copy logs in again after the server ended the session.
const MAX_REOPEN: u32 = 20;

/// What one user's copy did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Folders seen on the source.
    pub folders: u64,
    /// Messages copied in this pass.
    pub copied: u64,
    /// Their bytes (as fetched, CRLF).
    pub bytes: u64,
    /// Messages already there.
    pub present: u64,
    /// Flag changes applied.
    pub flagged: u64,
    /// Messages removed because the source deleted them.
    pub removed: u64,
    /// Things skipped, with the reason (a folder, a message).
    pub skipped: Vec<String>,
    /// Where to tell the admin side how far the copy is (fd 0, a socket; progress.rs).
    pub progress: Option<std::sync::Arc<fs::File>>,
    /// What was told so far (copied, bytes) and when.
    told: (u64, u64, Option<std::time::Instant>),
}

impl Report {
    fn say(&self, line: &str) {
        if let Some(f) = &self.progress {
            // Best effort: a run without a listener (a worker started by hand) goes on.
            let _ = (&**f).write_all(line.as_bytes());
        }
    }

    /// `n` more messages to copy were found.
    fn todo(&self, n: usize) {
        if n > 0 {
            self.say(&crate::progress::todo_line(n as u64));
        }
    }

    /// Tell what was copied since the last time: at once with `now`, else at most
    /// twice a second.
    fn tick(&mut self, now: bool) {
        let due = self
            .told
            .2
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
        if (now || due) && (self.copied, self.bytes) != (self.told.0, self.told.1) {
            self.say(&crate::progress::copied_line(
                self.copied - self.told.0,
                self.bytes - self.told.1,
            ));
            self.told = (self.copied, self.bytes, Some(std::time::Instant::now()));
        }
    }
}

/// Maildir letters and keywords of an IMAP flag list.
fn letters(
    flags: &[String],
    folder: &mut Folder,
    create: bool,
    skipped: &mut Vec<String>,
) -> String {
    let mut out = String::new();
    for f in flags {
        let l = match f.to_ascii_lowercase().as_str() {
            "\\seen" => 'S',
            "\\answered" => 'R',
            "\\flagged" => 'F',
            "\\deleted" => 'T',
            "\\draft" => 'D',
            "$forwarded" => 'P',
            s if s.starts_with('\\') => continue,
            _ => match folder.keyword_letter(f, create) {
                Ok(Some(c)) => c,
                Ok(None) if !create => continue,
                _ => {
                    let why = format!("keyword {f}: no letter left (26 per folder)");
                    if !skipped.contains(&why) {
                        skipped.push(why);
                    }
                    continue;
                }
            },
        };
        out.push(l);
    }
    name::normalize_flags(&out)
}

/// The (UIDVALIDITY, UID) a file name of ours carries.
fn ours(base: &str) -> Option<(u32, u32)> {
    let mut it = base.split('.');
    let _time = it.next()?;
    let vu = it.next()?.strip_prefix('V')?;
    if it.next()? != "mailmove" || it.next().is_some() {
        return None;
    }
    let (v, u) = vu.split_once('U')?;
    Some((v.parse().ok()?, u.parse().ok()?))
}

/// The key a file name of ours carries for a message copied over POP3
/// (`T.P<key>.mailmove`, the key a hash of its UIDL: UIDLs may hold `/` and `:`).
fn ours_pop(base: &str) -> Option<&str> {
    let mut it = base.split('.');
    let _time = it.next()?;
    let key = it.next()?.strip_prefix('P')?;
    (it.next()? == "mailmove" && it.next().is_none() && key.len() == 32).then_some(key)
}

/// The key of a UIDL: 16 bytes of its SHA-256, in hex.
fn uidl_key(uidl: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, uidl.as_bytes()).as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// When a message fetched over POP3 (which has no INTERNALDATE) arrived: the date of its
/// first (newest) `Received:` field, else its `Date:`, else now.
fn arrival(msg: &[u8]) -> i64 {
    let head_end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| msg.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(msg.len());
    let head = String::from_utf8_lossy(&msg[..head_end]);
    // Unfold, then look at each field.
    let unfolded = head
        .replace("\r\n", "\n")
        .replace("\n ", " ")
        .replace("\n\t", " ");
    let field = |name: &str| {
        unfolded.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.to_owned())
        })
    };
    let received = field("Received").and_then(|v| {
        let (_, date) = v.rsplit_once(';')?;
        mailorder_imap_proto::date::parse_rfc5322(date.trim())
    });
    received
        .or_else(|| field("Date").and_then(|d| mailorder_imap_proto::date::parse_rfc5322(d.trim())))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        })
}

fn unique(internal: i64, uv: u32, uid: u32) -> String {
    format!("{}.V{uv}U{uid}.mailmove", internal.max(0))
}

/// Remove what a killed run of ours left in the folder's `tmp/`: the files named
/// `….mailmove` (no other program writes that name). A message still at the source is
/// written again under the same name anyway; this takes the ones the source deleted or
/// moved since, which no pass would ever overwrite. Other programs' files in `tmp/`
/// (a delivery in progress) are left alone: the Maildir rule (a `tmp/` file older than
/// 36 hours may go) is the reader's (imapd, pop3d) business, not ours.
fn clean_tmp(dir: &Path, label: &str) {
    let Ok(rd) = fs::read_dir(dir.join("tmp")) else {
        return;
    };
    let mut n = 0u32;
    for e in rd.flatten() {
        let ours = e
            .file_name()
            .to_str()
            .is_some_and(|f| f.ends_with(".mailmove"));
        if ours && fs::remove_file(e.path()).is_ok() {
            n += 1;
        }
    }
    if n > 0 {
        log::info!(
            "cleaned user={label} dir={} files={n}: left in tmp/ by a killed run",
            dir.display()
        );
    }
}

/// Copy every folder of the user behind `c` into `store`.
pub fn user(
    c: &mut Client,
    store: Option<&Store>,
    job: &Job,
    rep: &mut Report,
    reopen: &(dyn Fn() -> Result<Client, MoveError> + Sync),
) -> Result<(), MoveError> {
    // The personal namespace (Courier: "INBOX." with "."), when the server tells.
    let mut prefix = String::new();
    if c.has("NAMESPACE") {
        let (_, v) = c.simple(&[Arg::Raw("NAMESPACE")])?;
        for r in v.iter().filter(|r| r.word(0) == "NAMESPACE") {
            if let Some(Val::List(personal)) = r.values()?.get(1)
                && let Some(Val::List(first)) = personal.first()
                && let Some(p) = first.first().and_then(Val::text)
            {
                prefix = p;
            }
        }
    }
    let list = list(c, "LIST")?;
    let subs = list_names(c)?;
    let mapper = Mapper::new(&prefix, &list);
    let mut taken: HashMap<String, String> = HashMap::new();
    for s in &list {
        rep.folders += 1;
        let mut dest = match mapper.ours(s) {
            Ok(d) => d,
            Err(why) => {
                rep.skipped.push(format!("folder {}: {why}", s.name));
                continue;
            }
        };
        if let Some(other) = taken.get(&dest) {
            // Two source folders mapping to one of ours (a special name twice): keep the
            // second under its own name.
            let mut alt = format!("{dest}-{}", rep.folders);
            if other == &s.name {
                alt = dest.clone();
            }
            dest = alt;
        }
        taken.insert(dest.clone(), s.name.clone());
        if !s.selectable() {
            if let Some(st) = store
                && dest != "INBOX"
                && !st.exists(&dest).unwrap_or(true)
            {
                let _ = st.create(&dest);
            }
            continue;
        }
        if let Err(e) = folder(c, store, job, s, &dest, rep, reopen) {
            match e {
                MoveError::Vanished(why) => {
                    rep.skipped.push(format!("folder {}: {why}", s.name));
                    continue;
                }
                e => return Err(e),
            }
        }
        if subs.contains(&s.name)
            && let Some(st) = store
        {
            st.subscribe(&dest, true).map_err(MoveError::Store)?;
        }
    }
    if job.delete
        && let Some(st) = store
    {
        gone_folders(st, &taken, job, rep)?;
    }
    Ok(())
}

/// With `--delete`: the folders of ours copied from the source (a `mailmove-source`
/// marker) that the source no longer lists were deleted there since an earlier pass; each
/// goes too when it holds nothing but copies (a folder that received mail here stays).
fn gone_folders(
    st: &Store,
    listed: &HashMap<String, String>,
    job: &Job,
    rep: &mut Report,
) -> Result<(), MoveError> {
    for e in st.list().map_err(MoveError::Store)? {
        if !e.exists || e.name == "INBOX" || listed.contains_key(&e.name) {
            continue;
        }
        let dir = st.path_of(&e.name).map_err(MoveError::Store)?;
        if !dir.join(MARKER).exists() {
            continue;
        }
        let mut copies = 0u64;
        let mut only_copies = true;
        for sub in ["cur", "new"] {
            let rd = fs::read_dir(dir.join(sub)).map_err(|e| MoveError::Write(dir.clone(), e))?;
            for f in rd.flatten() {
                let n = f.file_name();
                let base = n.to_str().and_then(|n| n.split([':', ',']).next());
                if base.is_some_and(|b| ours(b).is_some()) {
                    copies += 1;
                } else {
                    only_copies = false;
                }
            }
        }
        if only_copies {
            st.delete(&e.name).map_err(MoveError::Store)?;
            rep.removed += copies;
            log::info!(
                "removed user={} folder={} messages={copies}: gone at the source",
                job.label,
                e.name
            );
        } else {
            rep.skipped.push(format!(
                "folder {}: gone at the source, but it holds mail delivered here: kept",
                e.name
            ));
        }
    }
    Ok(())
}

fn list(c: &mut Client, cmd: &'static str) -> Result<Vec<Source>, MoveError> {
    let (d, v) = c.simple(&[Arg::Raw(cmd), Arg::Raw("\"\" \"*\"")])?;
    if !d.ok() {
        return Err(MoveError::Temp(format!("{cmd} refused: {}", d.text)));
    }
    let mut out = Vec::new();
    for r in v.iter().filter(|r| r.word(0) == cmd) {
        let vals = r.values()?;
        let attrs = match vals.get(1) {
            Some(Val::List(a)) => a.iter().filter_map(Val::text).collect(),
            _ => Vec::new(),
        };
        let sep = vals
            .get(2)
            .and_then(Val::text)
            .and_then(|s| s.chars().next());
        let Some(name) = vals.get(3).and_then(Val::text) else {
            continue;
        };
        out.push(Source { name, sep, attrs });
    }
    // INBOX first, then in name order (parents before children).
    out.sort_by(|a, b| {
        (!a.name.eq_ignore_ascii_case("INBOX"), &a.name)
            .cmp(&(!b.name.eq_ignore_ascii_case("INBOX"), &b.name))
    });
    Ok(out)
}

fn list_names(c: &mut Client) -> Result<HashSet<String>, MoveError> {
    Ok(list(c, "LSUB")?.into_iter().map(|s| s.name).collect())
}

/// One FETCH item set, parsed.
#[derive(Default)]
struct Fetched {
    uid: u32,
    flags: Option<Vec<String>>,
    internal: Option<i64>,
    body: Option<Vec<u8>>,
}

fn fetched(r: crate::imap::Response) -> Result<Option<Fetched>, MoveError> {
    if r.tag != "*" || r.word(1) != "FETCH" {
        return Ok(None);
    }
    // The body is taken, not copied.
    let mut vals = r.into_values()?;
    if vals.len() < 3 {
        return Ok(None);
    }
    let Val::List(items) = vals.swap_remove(2) else {
        return Ok(None);
    };
    let mut f = Fetched::default();
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let Some(k) = k.text() else { continue };
        match k.to_ascii_uppercase().as_str() {
            "UID" => f.uid = v.num().unwrap_or(0).try_into().unwrap_or(0),
            "FLAGS" => {
                if let Val::List(l) = &v {
                    f.flags = Some(l.iter().filter_map(Val::text).collect());
                }
            }
            "INTERNALDATE" => {
                f.internal = v
                    .text()
                    .and_then(|t| mailorder_imap_proto::date::parse_date_time(&t))
                    .map(|(s, _)| s);
            }
            "BODY[]" | "RFC822" => {
                if let Val::Str(b) = v {
                    f.body = Some(b);
                }
            }
            _ => {}
        }
    }
    Ok(Some(f))
}

/// Messages to fetch from which a folder is fetched over a second session too.
const SECOND_FROM: usize = 1000;

/// What a fetching session hands to the folder's writer: a message, or the end of a
/// batch (time to tell the progress: the log line then says what the admin side knows).
enum Got {
    Msg {
        uid: u32,
        flags: Vec<String>,
        internal: i64,
        body: Vec<u8>,
    },
    Batch,
}

/// What one fetching session leaves to the folder's report.
#[derive(Default)]
struct ShareEnd {
    skipped: Vec<String>,
    incomplete: bool,
}

/// The folder, as its fetching sessions see it.
struct Fetch<'a> {
    s: &'a Source,
    dest: &'a str,
    uv: u32,
    job: &'a Job,
    reopen: &'a (dyn Fn() -> Result<Client, MoveError> + Sync),
}

/// Open the folder again on a new session: its UIDVALIDITY must be the same.
fn examine_again(c: &mut Client, s: &Source, uv: u32) -> Result<(), MoveError> {
    let (d, v) = c.simple(&[Arg::Raw("EXAMINE"), Arg::Str(s.name.as_bytes())])?;
    let again = v.iter().filter_map(|r| r.code()).find_map(|code| {
        let (k, n) = code.split_once(' ')?;
        k.eq_ignore_ascii_case("UIDVALIDITY")
            .then(|| n.parse::<u32>().ok())?
    });
    if !d.ok() || again != Some(uv) {
        return Err(MoveError::Vanished(format!(
            "changed or gone while it was copied: {}",
            d.text
        )));
    }
    Ok(())
}

/// Fetch `batches` over `c`, each message handed to `tx` as it arrives. What a batch did
/// not bring is asked again one message at a time (a server that fails a FETCH on one
/// message may drop the rest of the batch too), so only the messages the source really
/// cannot give are skipped. Ends early, without error, when `tx`'s receiver is gone (the
/// writing failed: its error is the folder's).
fn fetch_share(
    c: &mut Client,
    mut batches: VecDeque<Vec<u32>>,
    f: &Fetch<'_>,
    tx: &mpsc::SyncSender<Got>,
) -> Result<ShareEnd, MoveError> {
    let (label, dest) = (&f.job.label, f.dest);
    let mut end = ShareEnd::default();
    let mut reopened = 0;
    while let Some(chunk) = batches.pop_front() {
        let mut got: HashSet<u32> = HashSet::new();
        let mut gone = false;
        let cmd = format!(
            "UID FETCH {} (UID FLAGS INTERNALDATE BODY.PEEK[])",
            mailorder_imap_proto::seqset::compact(&chunk)
        );
        let d = c.run(&[Arg::Raw(&cmd)], |r| {
            let Some(m) = fetched(r)? else {
                return Ok(());
            };
            let Some(body) = m.body else { return Ok(()) };
            if m.uid == 0 || gone || !got.insert(m.uid) {
                return Ok(());
            }
            let g = Got::Msg {
                uid: m.uid,
                flags: m.flags.unwrap_or_default(),
                internal: m.internal.unwrap_or(0),
                body,
            };
            gone = tx.send(g).is_err();
            Ok(())
        });
        if gone {
            return Ok(end);
        }
        let d = match d {
            Ok(d) => d,
            // The server ended the session in the middle of the FETCH (Dovecot does on a
            // message file it cannot read): log in again, open the folder again and go
            // on; what the batch did not bring is asked one message at a time, and a
            // message that ends the session on its own is skipped.
            Err(e @ (MoveError::Ended(_) | MoveError::Io { .. })) if reopened < MAX_REOPEN => {
                reopened += 1;
                log::warn!(
                    "user={label} folder={dest}: {e}; logging in again ({reopened}/{MAX_REOPEN})"
                );
                *c = (f.reopen)()?;
                examine_again(c, f.s, f.uv)?;
                Done {
                    status: "NO".into(),
                    text: e.to_string(),
                }
            }
            Err(e) => return Err(e),
        };
        let lost: Vec<u32> = chunk.iter().copied().filter(|u| !got.contains(u)).collect();
        if chunk.len() > 1 && !lost.is_empty() {
            for (i, u) in lost.into_iter().enumerate() {
                batches.insert(i, vec![u]);
            }
            continue;
        }
        for u in lost {
            end.incomplete = true;
            end.skipped.push(format!(
                "message {} UID {u}: the server did not give it ({})",
                f.s.name,
                if d.ok() { "no body" } else { d.text.as_str() }
            ));
        }
        if tx.send(Got::Batch).is_err() {
            return Ok(end);
        }
    }
    Ok(end)
}

fn folder(
    c: &mut Client,
    store: Option<&Store>,
    job: &Job,
    s: &Source,
    dest: &str,
    rep: &mut Report,
    reopen: &(dyn Fn() -> Result<Client, MoveError> + Sync),
) -> Result<(), MoveError> {
    // CONDSTORE (RFC 7162): the folder's HIGHESTMODSEQ tells whether anything changed.
    let condstore = c.has("CONDSTORE");
    let mut cmd = vec![Arg::Raw("EXAMINE"), Arg::Str(s.name.as_bytes())];
    if condstore {
        cmd.push(Arg::Raw("(CONDSTORE)"));
    }
    let (d, v) = c.simple(&cmd)?;
    if !d.ok() {
        // Deleted at the source between its LIST and now (a user at work on the old
        // server)? The server's words for it vary (RFC 5530's NONEXISTENT or not): ask
        // LIST again.
        let (l, v) = c.simple(&[Arg::Raw("LIST \"\""), Arg::Str(s.name.as_bytes())])?;
        if l.ok() && !v.iter().any(|r| r.word(0) == "LIST") {
            return Err(MoveError::Vanished(format!(
                "deleted at the source since it was listed (EXAMINE: {})",
                d.text
            )));
        }
        return Err(MoveError::Vanished(format!("EXAMINE refused: {}", d.text)));
    }
    let mut uv = 0u32;
    let mut uidnext = 0u32;
    let mut exists = 0u64;
    let mut modseq = 0u64;
    for r in &v {
        if let Some(code) = r.code() {
            let mut w = code.split(' ');
            match (w.next().map(str::to_ascii_uppercase).as_deref(), w.next()) {
                (Some("UIDVALIDITY"), Some(n)) => uv = n.parse().unwrap_or(0),
                (Some("UIDNEXT"), Some(n)) => uidnext = n.parse().unwrap_or(0),
                (Some("HIGHESTMODSEQ"), Some(n)) => modseq = n.parse().unwrap_or(0),
                _ => {}
            }
        }
        if r.word(1) == "EXISTS" {
            exists = r.word(0).parse().unwrap_or(0);
        }
    }
    if uv == 0 {
        return Err(MoveError::Vanished("the server gave no UIDVALIDITY".into()));
    }
    if uidnext == 0 {
        // Courier's SELECT and EXAMINE say no UIDNEXT: STATUS does.
        let (d, v) = c.simple(&[
            Arg::Raw("STATUS"),
            Arg::Str(s.name.as_bytes()),
            Arg::Raw("(UIDNEXT)"),
        ])?;
        if d.ok() {
            uidnext = v
                .iter()
                .filter(|r| r.word(0) == "STATUS")
                .find_map(|r| {
                    // The attribute list comes last, after the folder name.
                    let t = r.rest().to_ascii_uppercase();
                    let after = &t[t.rfind("UIDNEXT ")? + 8..];
                    after
                        .split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
        }
    }
    let now = PassState {
        uv,
        uidnext,
        exists,
        modseq,
        ours: 0,
    };
    // What the last complete pass of this folder saw (none in a dry run).
    let prev = match store {
        Some(st) => st
            .path_of(dest)
            .ok()
            .and_then(|p| PassState::read(&p))
            .filter(|p| p.uv == uv && modseq > 0 && p.modseq > 0 && p.uidnext > 0),
        None => None,
    };
    if let Some(p) = &prev
        && p.same_source(&now)
        && (!job.delete || p.ours == exists)
    {
        // Nothing changed at the source since the last pass: the quick last pass.
        log::info!("unchanged user={} folder={dest}", job.label);
        rep.present += exists;
        return Ok(());
    }
    // The source's messages and flags: all of them, or (CONDSTORE, after a complete pass)
    // only those changed since it plus the new ones, and the list of UIDs only when some
    // may have been expunged.
    let mut src: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut all: Option<HashSet<u32>> = None;
    let fetch = match &prev {
        Some(p) => format!("UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE {})", p.modseq),
        None => "UID FETCH 1:* (UID FLAGS)".to_owned(),
    };
    if exists > 0 {
        let d = c.run(&[Arg::Raw(&fetch)], |r| {
            if let Some(f) = fetched(r)?
                && f.uid > 0
            {
                src.insert(f.uid, f.flags.unwrap_or_default());
            }
            Ok(())
        })?;
        if !d.ok() {
            return Err(MoveError::Vanished(format!(
                "UID FETCH refused: {}",
                d.text
            )));
        }
    }
    if let Some(p) = &prev {
        let new = src.range(p.uidnext..).count() as u64;
        if p.exists + new != exists || (job.delete && p.ours != p.exists) {
            let mut uids = HashSet::new();
            let d = c.run(&[Arg::Raw("UID SEARCH ALL")], |r| {
                if r.tag == "*" && r.word(0) == "SEARCH" {
                    uids.extend(
                        r.rest()
                            .split(' ')
                            .skip(1)
                            .filter_map(|u| u.parse::<u32>().ok()),
                    );
                }
                Ok(())
            })?;
            if !d.ok() {
                return Err(MoveError::Vanished(format!(
                    "UID SEARCH refused: {}",
                    d.text
                )));
            }
            all = Some(uids);
        }
    } else {
        all = Some(src.keys().copied().collect());
    }
    let max_uid = src.keys().next_back().copied().unwrap_or(0);
    let uidnext = uidnext.max(max_uid + 1).max(1);
    let Some(store) = store else {
        // Dry run: count only.
        rep.copied += src.len() as u64;
        log::info!(
            "dry-run user={} folder={dest} messages={}",
            job.label,
            src.len()
        );
        return Ok(());
    };
    if dest != "INBOX" && !store.exists(dest).map_err(MoveError::Store)? {
        store.create(dest).map_err(MoveError::Store)?;
    }
    let mut fo = store.folder(dest).map_err(MoveError::Store)?;
    let dir = fo.dir().to_owned();
    clean_tmp(&dir, &job.label);
    let marker = fs::read_to_string(dir.join(MARKER))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok());
    // What is already here: our files by (UIDVALIDITY, UID), read from the directories
    // (not from the index, which may lag behind after a kill).
    let md = mailorder_maildir::Maildir::open(&dir).map_err(|e| MoveError::Store(e.into()))?;
    let scan = md.scan().map_err(|e| MoveError::Store(e.into()))?;
    let mut here: HashMap<u32, String> = HashMap::new();
    let mut others = 0usize;
    for e in &scan {
        match ours(&e.base) {
            Some((v, u)) if v == uv => {
                here.insert(u, e.base.clone());
            }
            _ => others += 1,
        }
    }
    let keep = match marker {
        // Mail delivered here since (after the cut-over): its UIDs stay; copies of new
        // source messages are numbered after it.
        Some(m) if m == uv && others > 0 => {
            if src.keys().any(|u| !here.contains_key(u)) {
                rep.skipped.push(format!(
                    "folder {}: {dest} received mail here: new copies get new UIDs",
                    s.name
                ));
            }
            false
        }
        Some(m) if m == uv => true,
        Some(_) => {
            return Err(MoveError::Vanished(
                "the source's UIDVALIDITY changed since the last pass: not copied again".into(),
            ));
        }
        None if others == 0 && here.is_empty() => {
            mailorder_core::atomic::write_atomic(
                &dir.join(MARKER),
                format!("{uv}\n").as_bytes(),
                &mailorder_core::atomic::Options::new(mailorder_core::atomic::Durability::File),
            )
            .map_err(|e| {
                MoveError::Store(mailorder_imap_store::StoreError::io(
                    e.op, &e.path, e.source,
                ))
            })?;
            fo.import(uv, uidnext, &[]).map_err(MoveError::Store)?;
            true
        }
        None => {
            if !src.is_empty() {
                rep.skipped.push(format!(
                    "folder {}: {dest} already had mail here: UIDs not kept",
                    s.name
                ));
            }
            false
        }
    };
    let missing: Vec<u32> = src
        .keys()
        .copied()
        .filter(|u| !here.contains_key(u))
        .collect();
    let listed = all.as_ref().map_or(exists, |a| a.len() as u64);
    rep.present += listed.saturating_sub(missing.len() as u64);
    rep.todo(missing.len());
    let mut copied_here = 0u64;
    // Batches of CHUNK, fetched over one session, or two for a big folder (the source
    // works on two at once); the messages go to disk on the sink's threads while the next
    // ones arrive, and what the sink reports is durable in cur/ (sink.rs).
    let chunks: Vec<Vec<u32>> = missing.chunks(CHUNK).map(<[u32]>::to_vec).collect();
    let mut second = None;
    if job.connections > 1 && missing.len() >= SECOND_FROM {
        match reopen().and_then(|mut c2| examine_again(&mut c2, s, uv).map(|()| c2)) {
            Ok(c2) => second = Some(c2),
            Err(e) => log::info!(
                "user={} folder={dest}: one session only (a second: {e})",
                job.label
            ),
        }
    }
    let (b1, b2): (VecDeque<Vec<u32>>, VecDeque<Vec<u32>>) = if second.is_some() {
        // Alternate batches: both sessions go through the UIDs in order.
        let (a, b): (Vec<_>, Vec<_>) = chunks
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i % 2 == 0);
        (
            a.into_iter().map(|(_, c)| c).collect(),
            b.into_iter().map(|(_, c)| c).collect(),
        )
    } else {
        (chunks.into_iter().collect(), VecDeque::new())
    };
    let mut sink: Sink<(u32, String)> =
        Sink::new(&dir).map_err(|e| MoveError::Write(dir.clone(), e))?;
    let ctx = Fetch {
        s,
        dest,
        uv,
        job,
        reopen,
    };
    let (tx, rx) = mpsc::sync_channel::<Got>(8);
    let (r1, r2, failure) = std::thread::scope(|sc| {
        let ctx = &ctx;
        let h2 = second.as_mut().map(|c2| {
            let tx = tx.clone();
            sc.spawn(move || fetch_share(c2, b2, ctx, &tx))
        });
        let h1 = sc.spawn(move || fetch_share(c, b1, ctx, &tx));
        let mut failure = None;
        for g in &rx {
            let r = match g {
                Got::Msg {
                    uid,
                    flags,
                    internal,
                    body,
                } => {
                    let flags = letters(&flags, &mut fo, true, &mut rep.skipped);
                    let u = unique(internal, uv, uid);
                    sink.put((uid, u.clone()), &u, body, &flags, internal)
                        .and_then(|()| sink.done())
                }
                Got::Batch => {
                    let r = sink.done();
                    if let Ok(ws) = r {
                        landed(ws, &mut here, rep, &mut copied_here);
                        rep.tick(true);
                        log::info!(
                            "progress user={} folder={dest} copied={copied_here}/{} bytes={}",
                            job.label,
                            missing.len(),
                            rep.bytes
                        );
                        continue;
                    }
                    r
                }
            };
            match r {
                Ok(ws) => landed(ws, &mut here, rep, &mut copied_here),
                Err(e) => {
                    failure = Some(MoveError::Write(dir.clone(), e));
                    break;
                }
            }
        }
        // The sessions stop at their next message when the writing failed.
        drop(rx);
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<ShareEnd, MoveError>>| {
            h.join()
                .unwrap_or_else(|_| Err(MoveError::Temp("a fetching thread panicked".into())))
        };
        (join(h1), h2.map(join), failure)
    });
    if let Some(mut c2) = second {
        let _ = c2.simple(&[Arg::Raw("LOGOUT")]);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let mut incomplete = false;
    for end in std::iter::once(r1).chain(r2) {
        let end = end?;
        incomplete |= end.incomplete;
        rep.skipped.extend(end.skipped);
    }
    // Everything fetched is durable in cur/ before the index is told.
    let ws = sink
        .finish()
        .map_err(|e| MoveError::Write(dir.clone(), e))?;
    landed(ws, &mut here, rep, &mut copied_here);
    rep.tick(true);
    // Index: ours with their source UIDs (a new folder), or numbered after what is here.
    let state = if keep {
        let uids: Vec<(String, u32)> = here.iter().map(|(u, b)| (b.clone(), *u)).collect();
        let st = fo.sync().map_err(MoveError::Store)?;
        let indexed: HashMap<&str, u32> = st.msgs.iter().map(|m| (m.base(), m.uid)).collect();
        let in_order = st.uidvalidity == uv
            && st.uidnext == uidnext
            && uids.iter().all(|(b, u)| indexed.get(b.as_str()) == Some(u))
            && st.msgs.len() == uids.len();
        if in_order {
            st
        } else {
            fo.import(uv, uidnext.max(st.uidnext.min(uidnext)), &uids)
                .map_err(MoveError::Store)?
        }
    } else {
        fo.sync().map_err(MoveError::Store)?
    };
    // Flags changed on the source since the copy; messages the source deleted.
    let removed_before = rep.removed;
    let by_base: HashMap<&str, &Msg> = state.msgs.iter().map(|m| (m.base(), m)).collect();
    let mut changed = false;
    for (uid, base) in &here {
        let Some(m) = by_base.get(base.as_str()) else {
            continue;
        };
        match src.get(uid) {
            Some(flags) => {
                let want = letters(flags, &mut fo, true, &mut rep.skipped);
                if *want != *m.flags {
                    fo.set_flags(m, &want).map_err(MoveError::Store)?;
                    rep.flagged += 1;
                    changed = true;
                }
            }
            // Not in a CHANGEDSINCE answer: unchanged, unless the UID list lacks it.
            None if job.delete && all.as_ref().is_some_and(|a| !a.contains(uid)) => {
                fo.remove(m).map_err(MoveError::Store)?;
                rep.removed += 1;
                changed = true;
            }
            None => {}
        }
    }
    if changed {
        fo.sync().map_err(MoveError::Store)?;
    }
    // A complete pass: the next one may skip this folder if nothing changes at the source.
    if modseq > 0 && !incomplete {
        let done = PassState {
            ours: here.len() as u64 - (rep.removed - removed_before),
            ..now
        };
        done.write(&dir)?;
    }
    Ok(())
}

/// Count the messages the sink reports durable in cur/ and remember their names.
fn landed(
    ws: Vec<Written<(u32, String)>>,
    here: &mut HashMap<u32, String>,
    rep: &mut Report,
    copied_here: &mut u64,
) {
    for w in ws {
        let (uid, u) = w.tag;
        rep.bytes += w.bytes;
        rep.copied += 1;
        *copied_here += 1;
        here.insert(uid, u);
    }
    rep.tick(false);
}

/// What a complete pass of a folder saw at the source (RFC 7162 CONDSTORE), and how many
/// copies of ours it left: `mailmove-state` in the folder, one line
/// `UIDVALIDITY UIDNEXT EXISTS HIGHESTMODSEQ OURS`. A later pass that finds the same
/// UIDVALIDITY, UIDNEXT, EXISTS and HIGHESTMODSEQ skips the folder: the quick last pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PassState {
    uv: u32,
    uidnext: u32,
    exists: u64,
    modseq: u64,
    ours: u64,
}

const STATE: &str = "mailmove-state";

impl PassState {
    fn read(dir: &Path) -> Option<PassState> {
        let t = fs::read_to_string(dir.join(STATE)).ok()?;
        let mut w = t.split_whitespace();
        let mut n = || w.next()?.parse::<u64>().ok();
        Some(PassState {
            uv: u32::try_from(n()?).ok()?,
            uidnext: u32::try_from(n()?).ok()?,
            exists: n()?,
            modseq: n()?,
            ours: n()?,
        })
    }

    fn write(&self, dir: &Path) -> Result<(), MoveError> {
        let text = format!(
            "{} {} {} {} {}\n",
            self.uv, self.uidnext, self.exists, self.modseq, self.ours
        );
        mailorder_core::atomic::write_atomic(
            &dir.join(STATE),
            text.as_bytes(),
            &mailorder_core::atomic::Options::new(mailorder_core::atomic::Durability::File),
        )
        .map_err(|e| MoveError::Write(dir.to_owned(), e.source))
    }

    /// The source looks the same as when `self` was written.
    fn same_source(&self, now: &PassState) -> bool {
        (self.uv, self.uidnext, self.exists, self.modseq)
            == (now.uv, now.uidnext, now.exists, now.modseq)
    }
}

/// Copy the INBOX of the POP3 account behind `p` into `store`, keeping each message's
/// UIDL for pop3d (`pop3d.uidl`, mailorder-maildir's `uidl`). Messages are matched by
/// their UIDL on later passes; POP3 has no flags, folders or dates (the date is the
/// message's newest `Received:`, see [`arrival`]).
pub fn pop3_inbox(
    p: &mut crate::pop3::Pop3,
    store: Option<&Store>,
    job: &Job,
    rep: &mut Report,
) -> Result<(), MoveError> {
    let list = p.uidl()?;
    rep.folders = 1;
    let Some(store) = store else {
        rep.copied += list.len() as u64;
        log::info!(
            "dry-run user={} folder=INBOX messages={}",
            job.label,
            list.len()
        );
        return Ok(());
    };
    let mut fo = store.folder("INBOX").map_err(MoveError::Store)?;
    let dir = fo.dir().to_owned();
    clean_tmp(&dir, &job.label);
    let md = mailorder_maildir::Maildir::open(&dir).map_err(|e| MoveError::Store(e.into()))?;
    // What is here already, by UIDL key (the directories, not the index: module docs).
    let mut here: HashMap<String, String> = HashMap::new();
    for e in md.scan().map_err(|e| MoveError::Store(e.into()))? {
        if let Some(k) = ours_pop(&e.base) {
            here.insert(k.to_owned(), e.base.clone());
        }
    }
    let mut kept =
        mailorder_maildir::uidl::load(&dir).map_err(|e| MoveError::Write(dir.clone(), e))?;
    let mut seen = HashSet::new();
    let missing: Vec<&(u32, String)> = list
        .iter()
        .filter(|(_, u)| !here.contains_key(&uidl_key(u)))
        .collect();
    rep.present += (list.len() - missing.len()) as u64;
    rep.todo(missing.len());
    let before = rep.copied;
    // As for IMAP: to disk on the sink's thread, counted once durable in cur/.
    let mut sink: Sink<(String, String)> =
        Sink::new(&dir).map_err(|e| MoveError::Write(dir.clone(), e))?;
    let mut landed = |ws: Vec<Written<(String, String)>>, rep: &mut Report| {
        for w in ws {
            rep.bytes += w.bytes;
            rep.copied += 1;
            here.insert(w.tag.0, w.tag.1);
        }
        rep.tick(false);
    };
    for chunk in missing.chunks(CHUNK) {
        for (n, u) in chunk {
            if !mailorder_maildir::uidl::valid(u) || !seen.insert(u.as_str()) {
                rep.skipped
                    .push(format!("message {n}: bad or repeated UIDL {u:.80}"));
                continue;
            }
            let body = match p.retr(*n)? {
                Ok(b) => b,
                Err(e) => {
                    rep.skipped.push(format!(
                        "message {n} UIDL {u}: the server did not give it ({e})"
                    ));
                    continue;
                }
            };
            let internal = arrival(&body);
            let key = uidl_key(u);
            let base = format!("{}.P{key}.mailmove", internal.max(0));
            let ws = sink
                .put((key, base.clone()), &base, body, "", internal)
                .and_then(|()| sink.done())
                .map_err(|e| MoveError::Write(dir.clone(), e))?;
            landed(ws, rep);
        }
        let ws = sink.done().map_err(|e| MoveError::Write(dir.clone(), e))?;
        landed(ws, rep);
        rep.tick(true);
        log::info!(
            "progress user={} folder=INBOX copied={}/{} bytes={}",
            job.label,
            rep.copied - before,
            missing.len(),
            rep.bytes
        );
    }
    let ws = sink
        .finish()
        .map_err(|e| MoveError::Write(dir.clone(), e))?;
    landed(ws, rep);
    rep.tick(true);
    // The UIDLs for pop3d: the source's for what it still has, the earlier map's for
    // what it deleted (kept here without --delete); nothing for files that are gone.
    let by_key: HashMap<String, &str> = list
        .iter()
        .map(|(_, u)| (uidl_key(u), u.as_str()))
        .collect();
    let mut map: Vec<(String, String)> = Vec::new();
    let mut gone = Vec::new();
    for (k, base) in &here {
        match by_key.get(k) {
            Some(u) => map.push((base.clone(), (*u).to_owned())),
            None if job.delete => gone.push(base.clone()),
            None => {
                if let Some(u) = kept.remove(base) {
                    map.push((base.clone(), u));
                }
            }
        }
    }
    mailorder_maildir::uidl::store(&dir, map.iter().map(|(b, u)| (b.as_str(), u.as_str())))
        .map_err(|e| MoveError::Store(e.into()))?;
    let state = fo.sync().map_err(MoveError::Store)?;
    if !gone.is_empty() {
        let gone: HashSet<&str> = gone.iter().map(String::as_str).collect();
        for m in state.msgs.iter().filter(|m| gone.contains(m.base())) {
            fo.remove(m).map_err(MoveError::Store)?;
            rep.removed += 1;
        }
        fo.sync().map_err(MoveError::Store)?;
    }
    Ok(())
}

/// Keep the POP3 UIDLs of an INBOX copied over IMAP: the source's POP3 listing (`p`) and
/// its IMAP INBOX (`c`) are paired message by message, in order (a POP3 maildrop is the
/// INBOX in sequence order, on Dovecot, Courier and Cyrus), and only when both have as
/// many messages and every pair the same size; then each copy of ours gets its UIDL in
/// `pop3d.uidl`. Anything else is skipped and reported (pop3d then answers its own
/// UIDLs, and POP3 clients download the INBOX once more).
pub fn imap_uidls(
    c: &mut Client,
    p: &mut crate::pop3::Pop3,
    store: &Store,
    rep: &mut Report,
) -> Result<(), MoveError> {
    let skip = |rep: &mut Report, why: &str| rep.skipped.push(format!("POP3 UIDLs: {why}"));
    let uidls = match p.uidl() {
        Ok(u) => u,
        Err(MoveError::Vanished(why)) => {
            skip(rep, &why);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let sizes = p.list()?;
    let (d, v) = c.simple(&[Arg::Raw("EXAMINE INBOX")])?;
    if !d.ok() {
        skip(rep, "EXAMINE INBOX refused");
        return Ok(());
    }
    let uv = v
        .iter()
        .filter_map(|r| r.code())
        .find_map(|code| {
            let (k, n) = code.split_once(' ')?;
            k.eq_ignore_ascii_case("UIDVALIDITY")
                .then(|| n.parse::<u32>().ok())?
        })
        .unwrap_or(0);
    // Sequence number → (UID, size).
    let mut imap: BTreeMap<u64, (u32, u64)> = BTreeMap::new();
    let d = c.run(&[Arg::Raw("FETCH 1:* (UID RFC822.SIZE)")], |r| {
        if r.tag != "*" || r.word(1) != "FETCH" {
            return Ok(());
        }
        let Ok(n) = r.word(0).parse::<u64>() else {
            return Ok(());
        };
        let vals = r.values()?;
        let Some(Val::List(items)) = vals.get(2) else {
            return Ok(());
        };
        let (mut uid, mut size) = (0u32, 0u64);
        for kv in items.chunks(2) {
            match (
                kv[0].text().map(|k| k.to_ascii_uppercase()).as_deref(),
                kv.get(1),
            ) {
                (Some("UID"), Some(v)) => {
                    uid = v.num().and_then(|n| n.try_into().ok()).unwrap_or(0)
                }
                (Some("RFC822.SIZE"), Some(v)) => size = v.num().unwrap_or(0),
                _ => {}
            }
        }
        imap.insert(n, (uid, size));
        Ok(())
    })?;
    if !d.ok() && !imap.is_empty() {
        skip(rep, "FETCH refused");
        return Ok(());
    }
    let pop_sizes: HashMap<u32, u64> = sizes.into_iter().collect();
    let differ = "the POP3 and IMAP listings of the INBOX differ: not kept";
    if uidls.len() != imap.len() {
        skip(
            rep,
            &format!("{differ} ({} and {} messages)", uidls.len(), imap.len()),
        );
        return Ok(());
    }
    // Each POP3 message is paired with the IMAP message of its size, and where several
    // have that size, of its header too: servers list POP3 messages in an order of their
    // own (Courier's pop3d by date, not by UID).
    let mut by_size: HashMap<u64, Vec<u32>> = HashMap::new();
    for (uid, size) in imap.values() {
        by_size.entry(*size).or_default().push(*uid);
    }
    let mut headers: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut uid_uidl: HashMap<u32, &str> = HashMap::new();
    for (n, u) in &uidls {
        let size = pop_sizes.get(n).copied().unwrap_or(u64::MAX);
        let Some(cands) = by_size.get_mut(&size).filter(|c| !c.is_empty()) else {
            skip(
                rep,
                &format!("{differ} (POP3 message {n}: no IMAP message of its size)"),
            );
            return Ok(());
        };
        let pick = if cands.len() == 1 {
            0
        } else {
            if cands.iter().any(|uid| !headers.contains_key(uid)) {
                imap_headers(c, cands, &mut headers)?;
            }
            let found = match p.header(*n)? {
                Ok(h) => cands.iter().position(|uid| headers.get(uid) == Some(&h)),
                Err(_) => None,
            };
            let Some(i) = found else {
                skip(
                    rep,
                    &format!("{differ} (POP3 message {n}: no IMAP message of its size and header)"),
                );
                return Ok(());
            };
            i
        };
        uid_uidl.insert(cands.remove(pick), u.as_str());
    }
    let fo = store.folder("INBOX").map_err(MoveError::Store)?;
    let dir = fo.dir().to_owned();
    let md = mailorder_maildir::Maildir::open(&dir).map_err(|e| MoveError::Store(e.into()))?;
    let mut kept =
        mailorder_maildir::uidl::load(&dir).map_err(|e| MoveError::Write(dir.clone(), e))?;
    let mut map: Vec<(String, String)> = Vec::new();
    for e in md.scan().map_err(|e| MoveError::Store(e.into()))? {
        let from_source = ours(&e.base)
            .filter(|(v, _)| *v == uv)
            .and_then(|(_, u)| uid_uidl.get(&u));
        match from_source {
            Some(u) if mailorder_maildir::uidl::valid(u) => {
                map.push((e.base.clone(), (*u).to_owned()))
            }
            _ => {
                if let Some(u) = kept.remove(&e.base) {
                    map.push((e.base.clone(), u));
                }
            }
        }
    }
    mailorder_maildir::uidl::store(&dir, map.iter().map(|(b, u)| (b.as_str(), u.as_str())))
        .map_err(|e| MoveError::Store(e.into()))
}

/// The headers of the INBOX messages `uids` (one UID FETCH) into `out`.
fn imap_headers(
    c: &mut Client,
    uids: &[u32],
    out: &mut HashMap<u32, Vec<u8>>,
) -> Result<(), MoveError> {
    let cmd = format!(
        "UID FETCH {} (UID BODY.PEEK[HEADER])",
        mailorder_imap_proto::seqset::compact(uids)
    );
    c.run(&[Arg::Raw(&cmd)], |r| {
        if r.tag != "*" || r.word(1) != "FETCH" {
            return Ok(());
        }
        let vals = r.values()?;
        let Some(Val::List(items)) = vals.get(2) else {
            return Ok(());
        };
        let (mut uid, mut header) = (0u32, None);
        for kv in items.chunks(2) {
            match (kv[0].text().map(|k| k.to_ascii_uppercase()), kv.get(1)) {
                (Some(k), Some(v)) if k == "UID" => {
                    uid = v.num().and_then(|n| n.try_into().ok()).unwrap_or(0)
                }
                (Some(k), Some(Val::Str(b))) if k == "BODY[HEADER]" => header = Some(b.clone()),
                _ => {}
            }
        }
        if let (true, Some(h)) = (uid > 0, header) {
            out.insert(uid, h);
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sets() {
        assert_eq!(ours(&unique(1_000_000, 42, 7)), Some((42, 7)));
        assert_eq!(ours("1.M2P3_4.host"), None);
        assert_eq!(ours("1.V2U3.other"), None);
        let k = uidl_key("000000017a3b/x:y");
        assert_eq!(k.len(), 32);
        assert_eq!(ours_pop(&format!("5.P{k}.mailmove")), Some(k.as_str()));
        assert_eq!(ours_pop("5.Pabc.mailmove"), None);
        assert_eq!(ours(&format!("5.P{k}.mailmove")), None);
    }

    #[test]
    fn arrival_from_received_then_date() {
        let m = b"Received: from a\r\n\tby b; Tue, 1 Jul 2003 10:52:37 +0200\r\n\
                  Received: from c; Mon, 30 Jun 2003 10:00:00 +0000\r\n\
                  Date: Sun, 29 Jun 2003 10:00:00 +0000\r\n\r\nReceived: body; x\r\n";
        assert_eq!(arrival(m), 1057049557);
        assert_eq!(
            arrival(b"Date: Sun, 29 Jun 2003 10:00:00 +0000\n\nx\n"),
            1056880800
        );
        assert!(arrival(b"X: y\n\n") > 1_700_000_000);
    }

    // See: issue #16
    #[test]
    fn leftovers_of_a_killed_run_are_cleaned_from_tmp_others_kept() {
        let d = tempfile::tempdir().unwrap();
        let st = Store::open(d.path().join("Maildir")).unwrap();
        let dir = st.root().to_owned();
        // A copy of a message the source deleted since: no pass writes that name again.
        fs::write(dir.join("tmp").join("5.V1U9.mailmove"), b"torn").unwrap();
        fs::write(dir.join("tmp").join("7.P0123.mailmove"), b"torn").unwrap();
        // A delivery in progress: not ours.
        fs::write(dir.join("tmp").join("1700000000.M1P2.host"), b"arriving").unwrap();
        clean_tmp(&dir, "x>y");
        let left: Vec<_> = fs::read_dir(dir.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, ["1700000000.M1P2.host"]);
    }
}
