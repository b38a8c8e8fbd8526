//! Mailbox commands: LIST/LSUB (LIST-EXTENDED, LIST-STATUS), STATUS, APPEND.

use super::*;
use mailorder_imap_proto::args::{StatusItem, parse_status};
use mailorder_imap_proto::request::{ListArgs, parse_append, parse_list};

impl<W: Write> Session<W> {
    pub(super) fn list(&mut self, cmd: &Command) -> R {
        let lsub = cmd.name == "LSUB";
        // LIST-EXTENDED (RFC 5258): selection options, several patterns, RETURN options.
        let ListArgs {
            special_use: sel_special,
            subscribed: sel_subscribed,
            recursive,
            reference,
            patterns,
            ret_subscribed,
            ret_status,
        } = match parse_list(&cmd.args, lsub) {
            Ok(l) => l,
            Err(e) => return bad(e),
        };
        if patterns.len() == 1 && patterns[0].is_empty() {
            if !lsub {
                self.line("* LIST (\\Noselect) \"/\" \"\"");
            }
            return ok("List completed");
        }
        if patterns.iter().any(|p| p.len() > 512) || reference.len() > 512 || patterns.len() > 64 {
            return bad("Pattern too long");
        }
        let enc = |x: &str| {
            if self.utf8 {
                mutf7::encode(x)
            } else {
                x.to_owned()
            }
        };
        let fulls: Vec<String> = patterns
            .iter()
            .map(|p| format!("{}{}", enc(&reference), enc(p)))
            .collect();
        let matches = |name: &str| {
            fulls.iter().any(|f| {
                list_match(f, name)
                    || (name == "INBOX" && list_match(&f.to_ascii_uppercase(), "INBOX"))
            })
        };
        let entries = match self.store.list() {
            Ok(l) => l,
            Err(e) => return Ok(store_no(&e)),
        };
        let subs = match self.store.subscriptions() {
            Ok(s) => s,
            Err(e) => return Ok(store_no(&e)),
        };
        let mut lines: Vec<(String, String)> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for e in &entries {
            let subscribed = subs.contains(&e.name);
            let mut childinfo = false;
            if (lsub || sel_subscribed) && !subscribed {
                // RECURSIVEMATCH: a parent whose child is subscribed is listed with
                // CHILDINFO; LSUB lists it as \Noselect.
                let pre = format!("{}/", e.name);
                let child_sub = subs
                    .iter()
                    .any(|s| s.starts_with(&pre) && !(lsub && matches(s)));
                if !(child_sub && (recursive || lsub)) {
                    continue;
                }
                childinfo = !lsub;
            }
            if sel_special && e.special.is_none() {
                continue;
            }
            if !matches(&e.name) {
                continue;
            }
            seen.push(e.name.clone());
            let mut attrs: Vec<&str> = Vec::new();
            if !e.exists || (lsub && !subscribed) {
                attrs.push("\\Noselect");
            }
            attrs.push(if e.children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if let Some(s) = e.special {
                attrs.push(s);
            }
            if ret_subscribed && subscribed && !lsub {
                attrs.push("\\Subscribed");
            }
            let ext = if childinfo {
                " (\"CHILDINFO\" (\"SUBSCRIBED\"))"
            } else {
                ""
            };
            lines.push((
                e.name.clone(),
                format!(
                    "* {} ({}) \"/\" {}{ext}",
                    cmd.name,
                    attrs.join(" "),
                    self.name_out(&e.name)
                ),
            ));
        }
        if lsub || sel_subscribed {
            // Subscribed names that do not exist (any more).
            for s in &subs {
                if !seen.contains(s)
                    && !entries.iter().any(|e| &e.name == s)
                    && matches(s)
                    && !sel_special
                {
                    let attrs = if lsub {
                        "\\Noselect"
                    } else {
                        "\\NonExistent \\Subscribed"
                    };
                    lines.push((
                        String::new(),
                        format!("* {} ({attrs}) \"/\" {}", cmd.name, self.name_out(s)),
                    ));
                }
            }
        }
        for (name, l) in lines {
            self.line(&l);
            if let (Some(items), false) = (&ret_status, name.is_empty())
                && let Ok(st) = self.status_line(&name, items)
            {
                self.line(&st);
            }
        }
        ok(format!("{} completed", cmd.name))
    }

    /// `* STATUS name (…)` for `items`, or the reply to send instead.
    pub(super) fn status_line(
        &mut self,
        name: &str,
        items: &[StatusItem],
    ) -> Result<String, Reply> {
        let mut folder = self.store.folder(name).map_err(|e| store_no(&e))?;
        // The state handed over, not copied: the Folder is dropped after the answer.
        let st = folder.sync_take().map_err(|e| store_no(&e))?;
        let mut out = Vec::new();
        for &it in items {
            let v = match it {
                StatusItem::Messages => st.msgs.len() as u64,
                // Recent: not yet claimed by a read-write session (no claim here).
                StatusItem::Recent => {
                    let floor = folder.claim_recent(&st, false).map_err(|e| store_no(&e))?;
                    st.msgs.iter().filter(|m| m.uid >= floor).count() as u64
                }
                StatusItem::Deleted => {
                    st.msgs.iter().filter(|m| m.flags.contains('T')).count() as u64
                }
                StatusItem::UidNext => u64::from(st.uidnext),
                StatusItem::UidValidity => u64::from(st.uidvalidity),
                StatusItem::Unseen => {
                    st.msgs.iter().filter(|m| !m.flags.contains('S')).count() as u64
                }
                StatusItem::HighestModSeq => st.highestmodseq,
                StatusItem::Size => st.msgs.iter().map(|m| m.size).sum(),
            };
            out.push(format!("{} {v}", it.name()));
        }
        Ok(format!(
            "* STATUS {} ({})",
            self.name_out(name),
            out.join(" ")
        ))
    }

    pub(super) fn status(&mut self, cmd: &Command) -> R {
        let args = match parse_status(&cmd.args) {
            Ok(a) => a,
            Err(e) => return bad(e),
        };
        let name = match self.mbox_arg(args.mailbox)? {
            Ok(n) => n,
            Err(r) => return Ok(r),
        };
        match self.status_line(&name, &args.items) {
            Ok(l) => {
                self.line(&l);
                ok("Status completed")
            }
            Err(r) => Ok(r),
        }
    }

    /// Maildir letters for IMAP flags, creating keyword letters in `folder` as needed.
    pub(super) fn letters(
        folder: &mut Folder,
        flags: &[String],
        create: bool,
    ) -> Result<String, StoreError> {
        let mut out = String::new();
        for f in flags {
            if let Some((c, _)) = SYSTEM_FLAGS.iter().find(|(_, n)| n.eq_ignore_ascii_case(f)) {
                out.push(*c);
            } else if f.starts_with('\\') {
                // \Recent and unknown system flags are not stored.
            } else if let Some(c) = folder.keyword_letter(f, create)? {
                out.push(c);
            }
        }
        Ok(mailorder_imap_store::normalize_flags(&out))
    }

    /// APPEND, with MULTIAPPEND (RFC 3502): every message is stored or none is.
    pub(super) fn append(&mut self, cmd: &Command) -> R {
        let name = match self.mbox_arg(&cmd.args[0])? {
            Ok(n) => n,
            Err(r) => return Ok(r),
        };
        let msgs: Vec<(Vec<String>, Option<i64>, &[u8])> =
            match parse_append(&cmd.args[1..], self.utf8) {
                Ok(v) => v
                    .into_iter()
                    .map(|m| (m.flags, m.internal, m.data))
                    .collect(),
                Err(e) => return bad(e),
            };
        if msgs.iter().any(|m| m.2.len() > self.cfg.max_message) {
            return no("[TOOBIG] Message too large");
        }
        let total: u64 = msgs.iter().map(|m| m.2.len() as u64).sum();
        if let Some((def, usage)) = self.store.quota()
            && def.exceeded_by(usage, total, msgs.len() as u64)
        {
            return no("[OVERQUOTA] Quota exceeded");
        }
        // The selected mailbox's own Folder when it is the target: its state is current,
        // and the new message is numbered without reading the directories.
        let mut other = None;
        if self.sel.as_ref().is_none_or(|s| s.name != name) {
            other = Some(match self.store.folder(&name) {
                Ok(f) => f,
                Err(StoreError::NoMailbox) => return no("[TRYCREATE] Mailbox does not exist"),
                Err(e) => return Ok(store_no(&e)),
            });
        }
        let root = self.store.root().to_owned();
        let folder = match (other.as_mut(), self.sel.as_mut()) {
            (Some(f), _) => f,
            (None, Some(s)) => &mut s.folder,
            (None, None) => return no("[TRYCREATE] Mailbox does not exist"),
        };
        let mut items = Vec::with_capacity(msgs.len());
        for (flags, internal, data) in &msgs {
            match Self::letters(folder, flags, true) {
                Ok(l) => items.push((*data, l, *internal)),
                Err(e) => return Ok(store_no(&e)),
            }
        }
        // All or nothing: append_msgs stores every message or none.
        match folder.append_msgs(&items) {
            Ok((uv, uids)) => {
                let _ = mailorder_maildir::quota::append_line(
                    &root,
                    i64::try_from(total).unwrap_or(i64::MAX),
                    i64::try_from(msgs.len()).unwrap_or(0),
                );
                ok(format!(
                    "[APPENDUID {uv} {}] Append completed",
                    join_uids(&uids)
                ))
            }
            Err(e) => Ok(store_no(&e)),
        }
    }
}
