//! The selected mailbox: SELECT/EXAMINE and the untagged updates (EXISTS, EXPUNGE,
//! FETCH FLAGS, RECENT, VANISHED) that follow other sessions' changes.

use super::*;

impl<W: Write> Session<W> {
    pub(super) fn select(&mut self, cmd: &Command) -> R {
        self.saved.clear();
        let mut previous = self.sel.take();
        if previous.is_some() && (self.qresync || self.rev2) {
            self.line("* OK [CLOSED] Previous mailbox closed");
        }
        let name = match self.mbox_arg(&cmd.args[0])? {
            Ok(n) => n,
            Err(r) => return Ok(r),
        };
        // SELECT of the mailbox already selected keeps its Folder (its inotify watch and
        // the state it holds: brought up to date, not read again) and the FETCH cache's
        // line index (which checks the UIDVALIDITY itself).
        if let Some(p) = previous.as_mut().filter(|p| p.name != name) {
            p.leave();
        }
        let (cidx, kept) = match previous.filter(|p| p.name == name) {
            Some(p) => (p.cidx, Some(p.folder)),
            None => (Default::default(), None),
        };
        // (CONDSTORE) or (QRESYNC (uidvalidity modseq [known-uids])) (RFC 7162).
        if cmd.args.len() > 2 {
            return bad("Unknown SELECT parameter");
        }
        let params = match parse_select_params(cmd.args.get(1)) {
            Ok(p) => p,
            Err(e) => return bad(e),
        };
        if params.condstore {
            self.condstore = true;
        }
        if params.qresync.is_some() && !self.qresync {
            return bad("Unknown SELECT parameter");
        }
        let resync = params
            .qresync
            .map(|q| (q.uidvalidity, q.modseq, q.known_uids));
        let mut folder = match kept {
            Some(f) if self.store.exists(&name).unwrap_or(false) => f,
            _ => match self.store.folder(&name) {
                Ok(f) => f,
                Err(e) => return Ok(store_no(&e)),
            },
        };
        let readonly = cmd.name == "EXAMINE";
        // inotify tells what changed from now on: while only sessions change the folder
        // (and log what they did), a command need not read the directories.
        folder.watch();
        let mut st = match folder.sync() {
            Ok(s) => s,
            Err(e) => return Ok(store_no(&e)),
        };
        let recent: std::collections::HashSet<u32> = if self.rev2 {
            Default::default()
        } else {
            let floor = match folder.claim_recent(&st, !readonly) {
                Ok(f) => f,
                Err(e) => return Ok(store_no(&e)),
            };
            st.msgs
                .iter()
                .filter(|m| m.uid >= floor)
                .map(|m| m.uid)
                .collect()
        };
        if !readonly && st.msgs.iter().any(|m| m.sub == mailorder_maildir::Sub::New) {
            let _ = folder.take_new(&st);
            if let Ok(s) = folder.sync() {
                st = s;
            }
        }
        let keywords = folder.keywords();
        let fl = Self::flag_list(&keywords);
        self.line(&format!("* FLAGS ({fl})"));
        if readonly {
            self.line("* OK [PERMANENTFLAGS ()] Read-only mailbox");
        } else {
            self.line(&format!("* OK [PERMANENTFLAGS ({fl} \\*)] Flags permitted"));
        }
        self.line(&format!("* {} EXISTS", st.msgs.len()));
        if self.rev2 {
            // RFC 9051 §6.3.2: the LIST response for the mailbox, no RECENT, no UNSEEN.
            let n = self.name_out(&name);
            self.line(&format!("* LIST () \"/\" {n}"));
        } else {
            self.line(&format!("* {} RECENT", recent.len()));
            if let Some(i) = st.msgs.iter().position(|m| !m.flags.contains('S')) {
                self.line(&format!("* OK [UNSEEN {}] First unseen", i + 1));
            }
        }
        self.line(&format!("* OK [UIDVALIDITY {}] UIDs valid", st.uidvalidity));
        self.line(&format!("* OK [UIDNEXT {}] Predicted next UID", st.uidnext));
        self.line(&format!(
            "* OK [HIGHESTMODSEQ {}] Highest",
            st.highestmodseq
        ));
        if let Some((uv, ms, known)) = resync
            && uv == st.uidvalidity
        {
            let gone = vanished_since(&st, ms, known.as_ref());
            if !gone.is_empty() {
                self.line(&format!("* VANISHED (EARLIER) {gone}"));
            }
            for (i, m) in st.msgs.iter().enumerate() {
                if m.modseq > ms {
                    self.line(&format!(
                        "* {} FETCH (UID {} FLAGS {} MODSEQ ({}))",
                        i + 1,
                        m.uid,
                        Self::flags_text(&m.flags, &keywords, recent.contains(&m.uid)),
                        m.modseq
                    ));
                }
            }
        }
        let generation = folder.generation();
        self.sel = Some(Selected {
            recent,
            generation,
            name,
            folder,
            readonly,
            view: st.msgs,
            uidvalidity: st.uidvalidity,
            uidnext: st.uidnext,
            keywords,
            cidx,
            cache_new: Vec::new(),
        });
        ok(format!(
            "[{}] {} completed",
            if readonly { "READ-ONLY" } else { "READ-WRITE" },
            cmd.name
        ))
    }

    /// Report what changed in the selected folder since the session last looked:
    /// EXPUNGE (when allowed), flag changes, EXISTS.
    pub(super) fn updates(&mut self, allow_expunge: bool) -> Result<(), ImapError> {
        let condstore = self.condstore;
        let qresync = self.qresync;
        let rev2 = self.rev2;
        let Some(sel) = self.sel.as_mut() else {
            return Ok(());
        };
        match sel.folder.refresh() {
            // Nothing changed since the session last reported: the common case, O(1).
            Ok(_) if sel.folder.generation() == sel.generation => return Ok(()),
            Ok(_) => {}
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                // The folder was deleted by another session.
                self.sel = None;
                self.closing = true;
                self.line("* BYE [UNAVAILABLE] Selected mailbox was deleted");
                return Ok(());
            }
            Err(e) => {
                log::warn!("sync: {e}");
                return Ok(());
            }
        };
        let empty = mailorder_imap_store::State::default();
        let st = sel.folder.state().unwrap_or(&empty);
        if st.uidvalidity != sel.uidvalidity {
            self.sel = None;
            self.closing = true;
            self.line("* BYE [UNAVAILABLE] UIDVALIDITY changed, please reconnect");
            return Ok(());
        }
        let mut lines = Vec::new();
        // Both lists ascend by UID: one walk finds what went (no map of 100,000 UIDs).
        let mut gone_at: Vec<usize> = Vec::new();
        if !sel.view.shares(&st.msgs) {
            let mut j = 0;
            for (i, m) in sel.view.iter().enumerate() {
                while j < st.msgs.len() && st.msgs[j].uid < m.uid {
                    j += 1;
                }
                if j >= st.msgs.len() || st.msgs[j].uid != m.uid {
                    gone_at.push(i);
                }
            }
        }
        // Expunges that may not be reported now keep the check open for the next time.
        if allow_expunge || gone_at.is_empty() {
            sel.generation = sel.folder.generation();
        }
        if allow_expunge {
            let mut gone = Vec::new();
            for &i in gone_at.iter().rev() {
                let uid = sel.view.remove(i).uid;
                sel.recent.remove(&uid);
                gone.push(uid);
                if !qresync {
                    lines.push(format!("* {} EXPUNGE", i + 1));
                }
            }
            if qresync && !gone.is_empty() {
                gone.sort_unstable();
                lines.push(format!("* VANISHED {}", compact(&gone)));
            }
        }
        let kw = sel.folder.keywords();
        let st = sel.folder.state().unwrap_or(&empty);
        let kw_changed = kw != sel.keywords;
        if kw_changed {
            sel.keywords = kw;
            lines.push(format!("* FLAGS ({})", Self::flag_list(&sel.keywords)));
        }
        // Still the folder's own list (shared since SELECT, copied by the first change to
        // either): no message changed. (A mutable walk would copy it for nothing.)
        if !sel.view.shares(&st.msgs) {
            let mut j = 0;
            for (i, m) in sel.view.iter_mut().enumerate() {
                while j < st.msgs.len() && st.msgs[j].uid < m.uid {
                    j += 1;
                }
                let Some(n) = st.msgs.get(j).filter(|n| n.uid == m.uid) else {
                    continue;
                };
                if n.flags != m.flags {
                    let ms = if condstore {
                        format!(" MODSEQ ({})", n.modseq)
                    } else {
                        String::new()
                    };
                    lines.push(format!(
                        "* {} FETCH (UID {} FLAGS {}{ms})",
                        i + 1,
                        m.uid,
                        Self::flags_text(&n.flags, &sel.keywords, sel.recent.contains(&m.uid))
                    ));
                }
                if n != m {
                    *m = n.clone();
                }
            }
        }
        let last = sel.view.last().map_or(0, |m| m.uid);
        let before = sel.view.len();
        let from = st.msgs.partition_point(|m| m.uid <= last);
        if from < st.msgs.len() {
            sel.view.extend_from_slice(&st.msgs[from..]);
        }
        let (uidnext, uidvalidity) = (st.uidnext, st.uidvalidity);
        if sel.view.len() != before {
            if !rev2 {
                // Recent to this session: the ones no read-write session was told about
                // (claimed now when this one may write); those still in new/ go to cur/.
                let part = mailorder_imap_store::State {
                    uidvalidity,
                    uidnext,
                    msgs: sel.view[before..].to_vec().into(),
                    ..Default::default()
                };
                let floor = match sel.folder.claim_recent(&part, !sel.readonly) {
                    Ok(f) => f,
                    Err(e) => {
                        log::warn!("recent: {e}");
                        u32::MAX
                    }
                };
                sel.recent.extend(
                    sel.view[before..]
                        .iter()
                        .map(|m| m.uid)
                        .filter(|&u| u >= floor),
                );
                let in_new = part
                    .msgs
                    .iter()
                    .any(|m| m.sub == mailorder_maildir::Sub::New);
                if !sel.readonly && in_new {
                    let _ = sel.folder.take_new(&part);
                }
            }
            lines.push(format!("* {} EXISTS", sel.view.len()));
            if !rev2 {
                lines.push(format!("* {} RECENT", sel.recent.len()));
            }
        }
        sel.uidnext = uidnext;
        for l in lines {
            self.line(&l);
        }
        Ok(())
    }
}

/// The UIDs expunged after MODSEQ `since` (within `known` when given), as a set; when
/// the index no longer remembers that far back, every UID below UIDNEXT that does not
/// exist (RFC 7162 §3.2.5.2 allows reporting more).
pub(super) fn vanished_since(
    st: &mailorder_imap_store::State,
    since: u64,
    known: Option<&SeqSet>,
) -> String {
    let max = st.uidnext.saturating_sub(1);
    if since >= st.vanished_floor {
        let mut v: Vec<u32> = st
            .vanished
            .iter()
            .filter(|(u, m)| *m > since && known.is_none_or(|k| k.contains(*u, max)))
            .map(|(u, _)| *u)
            .collect();
        v.sort_unstable();
        v.dedup();
        return compact(&v);
    }
    let ranges = known.map_or_else(|| vec![(1, max)], |k| k.ranges(max));
    let mut out: Vec<String> = Vec::new();
    for (lo, hi) in ranges {
        let mut next = lo;
        let start = st.msgs.partition_point(|m| m.uid < lo);
        for m in st.msgs[start..].iter().take_while(|m| m.uid <= hi) {
            if m.uid > next {
                out.push(if m.uid - 1 == next {
                    next.to_string()
                } else {
                    format!("{next}:{}", m.uid - 1)
                });
            }
            next = m.uid.saturating_add(1);
        }
        if next <= hi && hi > 0 {
            out.push(if next == hi {
                next.to_string()
            } else {
                format!("{next}:{hi}")
            });
        }
    }
    out.join(",")
}
