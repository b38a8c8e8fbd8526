//! STORE, COPY, MOVE and EXPUNGE.

use super::*;
use mailorder_imap_proto::request::StoreArgs;

impl<W: Write> Session<W> {
    pub(super) fn store_cmd(&mut self, set: &Tok, args: &[Tok], uid: bool) -> R {
        let set = match self.set_arg(set, uid) {
            Ok(s) => s,
            Err(e) => return bad(e),
        };
        let StoreArgs {
            mode,
            silent,
            flags,
            unchanged_since: unchanged,
        } = match parse_store(args) {
            Ok(a) => a,
            Err(e) => return bad(e),
        };
        if unchanged.is_some() {
            self.condstore = true;
        }
        let targets = match self.targets(&set, uid) {
            Ok(t) => t,
            Err(e) => return bad(e),
        };
        let condstore = self.condstore;
        let Some(sel) = self.sel.as_mut() else {
            return bad("No mailbox selected");
        };
        if sel.readonly {
            return no("[READ-ONLY] Mailbox is read-only");
        }
        let letters = match Self::letters(&mut sel.folder, &flags, mode != StoreMode::Remove) {
            Ok(l) => l,
            Err(e) => return Ok(store_no(&e)),
        };
        let mut failed: Vec<u32> = Vec::new();
        let mut touched = Vec::new();
        let mut changes: Vec<(u32, String)> = Vec::new();
        for (seq, m) in &targets {
            if unchanged.is_some_and(|u| m.modseq > u) {
                failed.push(if uid { m.uid } else { *seq as u32 });
                continue;
            }
            let nf = match mode {
                StoreMode::Set => letters.clone(),
                StoreMode::Add => {
                    mailorder_imap_store::normalize_flags(&format!("{}{letters}", m.flags))
                }
                StoreMode::Remove => m.flags.chars().filter(|c| !letters.contains(*c)).collect(),
            };
            if *nf != *m.flags {
                changes.push((m.uid, nf));
            }
            touched.push((*seq, m.uid));
        }
        // One batch under the folder lock: the files renamed and the changes logged.
        let done = if changes.is_empty() {
            sel.folder.refresh().map(|_| ())
        } else {
            sel.folder.store_flags(&changes)
        };
        if let Err(e) = done {
            return Ok(store_no(&e));
        }
        sel.keywords = sel.folder.keywords();
        let now = sel.folder.state().map_or(&[][..], |s| &s.msgs[..]);
        let mut lines = Vec::new();
        for (seq, u) in touched {
            let Some(n) = now
                .binary_search_by_key(&u, |x| x.uid)
                .ok()
                .map(|i| &now[i])
            else {
                continue;
            };
            if let Ok(i) = sel.view.binary_search_by_key(&u, |x| x.uid) {
                sel.view[i] = n.clone();
            }
            if !silent || unchanged.is_some() {
                let mut items = Vec::new();
                if uid {
                    items.push(format!("UID {u}"));
                }
                if !silent {
                    items.push(format!(
                        "FLAGS {}",
                        Self::flags_text(&n.flags, &sel.keywords, sel.recent.contains(&u))
                    ));
                }
                if condstore {
                    items.push(format!("MODSEQ ({})", n.modseq));
                }
                lines.push(format!("* {seq} FETCH ({})", items.join(" ")));
            }
        }
        for l in lines {
            self.line(&l);
        }
        if !failed.is_empty() {
            return ok(format!(
                "[MODIFIED {}] Conditional STORE failed",
                compact(&failed)
            ));
        }
        ok("Store completed")
    }

    pub(super) fn copy(&mut self, set: &Tok, dest: &Tok, uid: bool, is_move: bool) -> R {
        let set = match self.set_arg(set, uid) {
            Ok(s) => s,
            Err(e) => return bad(e),
        };
        let name = match self.mbox_arg(dest)? {
            Ok(n) => n,
            Err(r) => return Ok(r),
        };
        let targets = match self.targets(&set, uid) {
            Ok(t) => t,
            Err(e) => return bad(e),
        };
        let mut dst = match self.store.folder(&name) {
            Ok(f) => f,
            Err(StoreError::NoMailbox) => return no("[TRYCREATE] Mailbox does not exist"),
            Err(e) => return Ok(store_no(&e)),
        };
        let Some(sel) = self.sel.as_mut() else {
            return bad("No mailbox selected");
        };
        if is_move && sel.readonly {
            return no("[READ-ONLY] Mailbox is read-only");
        }
        let mut src_uids = Vec::new();
        let mut bases: Vec<String> = Vec::new();
        let (dst_uv, dst_uids);
        let (mut bytes, mut count) = (0i64, 0i64);
        for (_, m) in &targets {
            let names: Vec<String> = m
                .flags
                .chars()
                .filter_map(mailorder_imap_store::keyword_index)
                .filter_map(|i| sel.keywords.get(i).cloned())
                .collect();
            let mut letters: String = m.flags.chars().filter(|c| c.is_ascii_uppercase()).collect();
            for k in names {
                if let Ok(Some(c)) = dst.keyword_letter(&k, true) {
                    letters.push(c);
                }
            }
            let letters = mailorder_imap_store::normalize_flags(&letters);
            // A hard link when possible (same file system): no bytes copied.
            let src = sel.folder.msg_path(m);
            let stored = mailorder_maildir::name::size_tag(&m.file)
                .or_else(|| std::fs::metadata(&src).ok().map(|x| x.len()))
                .unwrap_or(m.size);
            let added = match dst.add_link(&src, &letters) {
                Ok(Some(base)) => Ok(base),
                Ok(None) | Err(_) => match sel.folder.read(m) {
                    Ok(Some(data)) => dst.add(&data, &letters, Some(m.internal)),
                    Ok(None) => continue,
                    Err(e) => Err(e),
                },
            };
            match added {
                Ok(base) => {
                    src_uids.push(m.uid);
                    bases.push(base);
                    bytes += i64::try_from(stored).unwrap_or(0);
                    count += 1;
                }
                Err(e) => return Ok(store_no(&e)),
            }
        }
        // Maildir++ quota: Trash is not counted; a MOVE takes the messages off the source.
        let trash = |n: &str| n.eq_ignore_ascii_case("Trash");
        let root = self.store.root().to_owned();
        let mut delta = (0, 0);
        if !trash(&name) {
            delta = (bytes, count);
        }
        if is_move && !trash(&sel.name) {
            delta = (delta.0 - bytes, delta.1 - count);
        }
        if delta != (0, 0) {
            let _ = mailorder_maildir::quota::append_line(&root, delta.0, delta.1);
        }
        match dst.uids_of(&bases) {
            Ok((uv, u)) => {
                dst_uv = uv;
                dst_uids = u;
            }
            Err(e) => return Ok(store_no(&e)),
        }
        let code = if src_uids.is_empty() {
            String::new()
        } else {
            format!(
                "[COPYUID {dst_uv} {} {}] ",
                compact(&src_uids),
                join_uids(&dst_uids)
            )
        };
        if !is_move {
            return ok(format!("{code}Copy completed"));
        }
        for (_, m) in &targets {
            if src_uids.contains(&m.uid) {
                let _ = sel.folder.remove(m);
            }
        }
        if !code.is_empty() {
            self.line(&format!("* OK {}", code.trim_end()));
        }
        ok("Move completed")
    }

    pub(super) fn expunge_deleted(&mut self, only: Option<&SeqSet>) -> Result<(), ImapError> {
        let Some(sel) = self.sel.as_mut() else {
            return Ok(());
        };
        if sel.readonly {
            return Ok(());
        }
        let max = sel.view.last().map_or(0, |m| m.uid);
        let uids: Vec<u32> = sel
            .view
            .iter()
            .filter(|m| m.flags.contains('T') && only.is_none_or(|s| s.contains(m.uid, max)))
            .map(|m| m.uid)
            .collect();
        if uids.is_empty() {
            return Ok(());
        }
        let (mut bytes, mut count) = (0i64, 0i64);
        match sel.folder.expunge_uids(&uids) {
            Ok(gone) => {
                for m in gone {
                    let stored = mailorder_maildir::name::size_tag(&m.file).unwrap_or(m.size);
                    bytes += i64::try_from(stored).unwrap_or(0);
                    count += 1;
                }
            }
            Err(e) => log::warn!("expunge: {e}"),
        }
        // Maildir++ quota (Trash is not counted).
        if count > 0 && !sel.name.eq_ignore_ascii_case("Trash") {
            let _ = mailorder_maildir::quota::append_line(self.store.root(), -bytes, -count);
        }
        Ok(())
    }

    pub(super) fn expunge(&mut self, only: Option<SeqSet>) -> R {
        if self.sel.as_ref().is_some_and(|s| s.readonly) {
            return no("[READ-ONLY] Mailbox is read-only");
        }
        self.expunge_deleted(only.as_ref())?;
        ok("Expunge completed")
    }
}
