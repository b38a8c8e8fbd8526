//! FETCH: sequence sets to messages, and the rendering of each FETCH response.

use super::*;

impl<W: Write> Session<W> {
    /// The (sequence number, message) pairs a set names, in order, each once. Costs
    /// O(ranges · log n + result), never O(n) for a small set.
    pub(super) fn targets(&self, set: &SeqSet, uid: bool) -> Result<Vec<(usize, Msg)>, String> {
        let Some(sel) = &self.sel else {
            return Err("No mailbox selected".into());
        };
        let max = if uid {
            sel.view.last().map_or(0, |m| m.uid)
        } else {
            sel.view.len() as u32
        };
        let mut ranges = set.ranges(max);
        if !uid && ranges.iter().any(|&(_, b)| b > max || b == 0) {
            return Err("Invalid message sequence number".into());
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(l) if a <= l.1.saturating_add(1) => l.1 = l.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let mut out: Vec<(usize, Msg)> = Vec::new();
        for (lo, hi) in merged {
            // Index range of the view that the range covers.
            let (from, to) = if uid {
                (
                    sel.view.partition_point(|m| m.uid < lo),
                    sel.view.partition_point(|m| m.uid <= hi),
                )
            } else {
                ((lo - 1) as usize, hi as usize)
            };
            for i in from..to.min(sel.view.len()) {
                out.push((i + 1, sel.view[i].clone()));
            }
        }
        Ok(out)
    }

    /// A sequence set argument; `$` is the saved search result (SEARCHRES), as UIDs or
    /// as the sequence numbers of those UIDs still in the view.
    pub(super) fn set_arg(&self, t: &Tok, uid: bool) -> Result<SeqSet, String> {
        if !matches!(t, Tok::Atom(a) if a == "$") {
            return seqset_arg(t);
        }
        let nums: Vec<u32> = match (&self.sel, uid) {
            (Some(_), true) => self.saved.clone(),
            (Some(sel), false) => self
                .saved
                .iter()
                .filter_map(|u| sel.view.binary_search_by_key(u, |m| m.uid).ok())
                .map(|i| i as u32 + 1)
                .collect(),
            (None, _) => Vec::new(),
        };
        Ok(SeqSet(
            nums.into_iter()
                .map(|n| (SeqNum::Num(n), SeqNum::Num(n)))
                .collect(),
        ))
    }

    pub(super) fn fetch(&mut self, set: &Tok, items: &[Tok], uid: bool) -> R {
        let set = match self.set_arg(set, uid) {
            Ok(s) => s,
            Err(e) => return bad(e),
        };
        let mut atts = match parse_fetch(&items[0]) {
            Ok(a) => a,
            Err(e) => return bad(e),
        };
        if items.len() > 2 {
            return bad("Bad FETCH arguments");
        }
        let mods = match parse_fetch_mods(items.get(1)) {
            Ok(m) => m,
            Err(e) => return bad(e),
        };
        if mods.vanished && !(uid && self.qresync) {
            return bad("Bad FETCH modifier");
        }
        let (changedsince, want_vanished) = (mods.changed_since, mods.vanished);
        if changedsince.is_some() {
            self.condstore = true;
            atts.push(FetchAtt::ModSeq);
        }
        if atts.contains(&FetchAtt::ModSeq) {
            self.condstore = true;
        }
        if uid && !atts.contains(&FetchAtt::Uid) {
            atts.insert(0, FetchAtt::Uid);
        }
        let targets = match self.targets(&set, uid) {
            Ok(t) => t,
            Err(e) => return bad(e),
        };
        if want_vanished
            && let (Some(since), Some(sel)) = (changedsince, self.sel.as_mut())
            && let Ok(st) = sel.folder.sync()
        {
            let gone = super::select::vanished_since(&st, since, Some(&set));
            if !gone.is_empty() {
                self.line(&format!("* VANISHED (EARLIER) {gone}"));
            }
        }
        let mut gone = false;
        for (seq, m) in targets {
            if changedsince.is_some_and(|c| m.modseq <= c) {
                continue;
            }
            match self.fetch_one(seq, &m, &atts)? {
                true => {}
                false => gone = true,
            }
            // Stream large answers: memory stays bounded by one message, not the set.
            if self.buf.len() > OUT_CHUNK {
                self.flush()?;
            }
            if let Some(sel) = self.sel.as_mut()
                && sel.cache_new.len() >= 256
            {
                let new = std::mem::take(&mut sel.cache_new);
                sel.folder.cache_add(sel.uidvalidity, &new);
            }
        }
        if let Some(sel) = self.sel.as_mut() {
            if !sel.cache_new.is_empty() {
                let new = std::mem::take(&mut sel.cache_new);
                sel.folder.cache_add(sel.uidvalidity, &new);
            }
            // Expunged messages' lines are dropped once they are most of the file.
            let live = sel.view.iter().map(|m| m.uid);
            sel.cidx
                .compact(&sel.folder, sel.uidvalidity, live, sel.view.len());
        }
        if std::mem::take(&mut self.unknown_cte) {
            return no("[UNKNOWN-CTE] Unknown Content-Transfer-Encoding");
        }
        if gone {
            // Another session expunged some of them: the client gets what still exists
            // and an OK (as Dovecot answers); the EXPUNGE follows when it may be sent.
            return ok("Fetch completed (some messages were expunged meanwhile)");
        }
        ok("Fetch completed")
    }

    /// One FETCH response; `false` when the message has gone.
    pub(super) fn fetch_one(
        &mut self,
        seq: usize,
        m: &Msg,
        atts: &[FetchAtt],
    ) -> Result<bool, ImapError> {
        let Some(sel) = self.sel.as_mut() else {
            return Ok(true);
        };
        let needs_data = atts.iter().any(|a| {
            matches!(
                a,
                FetchAtt::Section { .. }
                    | FetchAtt::Binary { .. }
                    | FetchAtt::BinarySize(_)
                    | FetchAtt::Rfc822
                    | FetchAtt::Rfc822Header
                    | FetchAtt::Rfc822Text
            )
        });
        let needs_struct = atts.iter().any(|a| {
            matches!(
                a,
                FetchAtt::Envelope | FetchAtt::Body | FetchAtt::BodyStructure
            )
        });
        let cached = if !needs_struct {
            None
        } else {
            sel.cidx.get(&sel.folder, sel.uidvalidity, m.uid)
        };
        // The MIME structure only when something needs it (not for BODY[] or RFC822).
        let needs_parse = (needs_struct && cached.is_none())
            || atts.iter().any(|a| match a {
                FetchAtt::Section { section, .. } => {
                    !section.part.is_empty() || section.text != SectionText::Full
                }
                FetchAtt::Binary { part, .. } | FetchAtt::BinarySize(part) => !part.is_empty(),
                FetchAtt::Rfc822Header | FetchAtt::Rfc822Text => true,
                _ => false,
            });
        // Only whole-message literals (BODY[], BODY.PEEK[], RFC822: what mbsync and
        // every downloading client ask): the stored bytes go from the read buffer into
        // the output, CRLF made on the way, without a converted copy per message.
        let direct = !needs_parse
            && atts.iter().all(|a| match a {
                FetchAtt::Section {
                    section, partial, ..
                } => {
                    section.part.is_empty()
                        && section.text == SectionText::Full
                        && partial.is_none()
                }
                FetchAtt::Binary { .. } | FetchAtt::BinarySize(_) => false,
                _ => true,
            });
        let mut data: Option<Vec<u8>> = None;
        if needs_data || (needs_struct && cached.is_none()) {
            if self
                .dirs
                .as_ref()
                .is_none_or(|(p, _)| p != sel.folder.dir())
            {
                self.dirs = sel
                    .folder
                    .msg_dirs()
                    .ok()
                    .map(|d| (sel.folder.dir().to_owned(), d));
            }
            let dirs = self.dirs.as_ref().map(|(_, d)| d);
            match sel.folder.read_into(m, dirs, &mut self.raw) {
                Ok(true) if direct => {}
                Ok(true) => {
                    let mut d = Vec::new();
                    mime::extend_crlf(&mut d, &self.raw);
                    data = Some(d);
                }
                Ok(false) => return Ok(false),
                Err(e) => {
                    log::warn!("read: {e}");
                    return Ok(false);
                }
            }
        }
        let raw = &self.raw;
        let whole = |d: &Vec<u8>| mime::Part {
            header: 0..0,
            body: 0..d.len(),
            ctype: (String::new(), String::new()),
            params: Vec::new(),
            children: Vec::new(),
            message: None,
        };
        let parsed = data.as_ref().map(|d| {
            if needs_parse {
                mime::parse(d)
            } else {
                whole(d)
            }
        });
        let structs = match (&cached, &data, &parsed) {
            (Some(c), _, _) => Some(c.clone()),
            (None, Some(d), Some(p)) if needs_struct => {
                let mut env = Vec::new();
                mime::envelope(d, p, &mut env);
                let mut bs = Vec::new();
                p.structure(d, true, &mut bs);
                let mut b = Vec::new();
                p.structure(d, false, &mut b);
                let v = Rendered {
                    envelope: String::from_utf8_lossy(&env).into_owned(),
                    bodystructure: String::from_utf8_lossy(&bs).into_owned(),
                    body: String::from_utf8_lossy(&b).into_owned(),
                };
                sel.cache_new.push((m.uid, v.clone()));
                Some(v)
            }
            _ => None,
        };
        let mut set_seen = false;
        let mut unknown_cte = false;
        // Written straight into the session's output (no copy of a body per message).
        let out = &mut self.buf;
        out.extend(format!("* {seq} FETCH (").as_bytes());
        let mut first = true;
        let mut flags_sent = false;
        for a in atts {
            if !first {
                out.push(b' ');
            }
            first = false;
            match a {
                FetchAtt::Uid => out.extend(format!("UID {}", m.uid).as_bytes()),
                FetchAtt::Flags => {
                    flags_sent = true;
                    out.extend(b"FLAGS ");
                    out.extend(
                        Self::flags_text(&m.flags, &sel.keywords, sel.recent.contains(&m.uid))
                            .as_bytes(),
                    );
                }
                FetchAtt::ModSeq => out.extend(format!("MODSEQ ({})", m.modseq).as_bytes()),
                FetchAtt::InternalDate => {
                    out.extend(
                        format!("INTERNALDATE \"{}\"", date::format_date_time(m.internal, 0))
                            .as_bytes(),
                    );
                }
                FetchAtt::Rfc822Size => out.extend(format!("RFC822.SIZE {}", m.size).as_bytes()),
                FetchAtt::Envelope | FetchAtt::BodyStructure | FetchAtt::Body => {
                    let (name, text) = match (a, &structs) {
                        (FetchAtt::Envelope, s) => ("ENVELOPE", s.as_ref().map(|s| &s.envelope)),
                        (FetchAtt::BodyStructure, s) => {
                            ("BODYSTRUCTURE", s.as_ref().map(|s| &s.bodystructure))
                        }
                        (_, s) => ("BODY", s.as_ref().map(|s| &s.body)),
                    };
                    out.extend(format!("{name} ").as_bytes());
                    out.extend(text.map_or("NIL", String::as_str).as_bytes());
                }
                FetchAtt::Rfc822 if direct => {
                    set_seen = true;
                    raw_literal(out, "RFC822", raw);
                }
                FetchAtt::Section { peek, .. } if direct => {
                    if !peek {
                        set_seen = true;
                    }
                    raw_literal(out, "BODY[]", raw);
                }
                FetchAtt::Rfc822 | FetchAtt::Rfc822Header | FetchAtt::Rfc822Text => {
                    let (Some(d), Some(p)) = (&data, &parsed) else {
                        continue;
                    };
                    let (name, bytes) = match a {
                        FetchAtt::Rfc822 => ("RFC822", &d[..]),
                        FetchAtt::Rfc822Header => ("RFC822.HEADER", &d[p.header.clone()]),
                        _ => ("RFC822.TEXT", &d[p.body.clone()]),
                    };
                    if !matches!(a, FetchAtt::Rfc822Header) {
                        set_seen = true;
                    }
                    literal(out, name, bytes);
                }
                FetchAtt::Binary {
                    peek,
                    part,
                    partial,
                } => {
                    let (Some(d), Some(p)) = (&data, &parsed) else {
                        continue;
                    };
                    if !peek {
                        set_seen = true;
                    }
                    let content = if part.is_empty() {
                        Some(d.clone())
                    } else {
                        p.find(part).and_then(|x| mime::decoded(d, x))
                    };
                    let Some(content) = content else {
                        unknown_cte = true;
                        out.extend(format!("BINARY[{}] NIL", join_part(part)).as_bytes());
                        continue;
                    };
                    let name = format!("BINARY[{}]", join_part(part));
                    partial_literal(out, &name, &content, *partial);
                }
                FetchAtt::BinarySize(part) => {
                    let (Some(d), Some(p)) = (&data, &parsed) else {
                        continue;
                    };
                    let n = if part.is_empty() {
                        Some(d.len())
                    } else {
                        p.find(part)
                            .and_then(|x| mime::decoded(d, x))
                            .map(|c| c.len())
                    };
                    match n {
                        Some(n) => {
                            out.extend(format!("BINARY.SIZE[{}] {n}", join_part(part)).as_bytes())
                        }
                        None => {
                            unknown_cte = true;
                            out.extend(format!("BINARY.SIZE[{}] NIL", join_part(part)).as_bytes());
                        }
                    }
                }
                FetchAtt::Section {
                    peek,
                    section,
                    partial,
                } => {
                    let (Some(d), Some(p)) = (&data, &parsed) else {
                        continue;
                    };
                    if !peek {
                        set_seen = true;
                    }
                    use std::borrow::Cow;
                    let empty: &[u8] = &[];
                    let content: Cow<[u8]> = match p.find(&section.part) {
                        None => Cow::Borrowed(empty),
                        Some(part) => {
                            let msg = if section.part.is_empty() {
                                Some(p)
                            } else {
                                part.message.as_deref()
                            };
                            let slice = |r: std::ops::Range<usize>| Cow::Borrowed(&d[r]);
                            match &section.text {
                                SectionText::Full if section.part.is_empty() => slice(0..d.len()),
                                SectionText::Full => slice(part.body.clone()),
                                SectionText::Mime => slice(part.header.clone()),
                                SectionText::Header => {
                                    msg.map_or(Cow::Borrowed(empty), |x| slice(x.header.clone()))
                                }
                                SectionText::Text => {
                                    msg.map_or(Cow::Borrowed(empty), |x| slice(x.body.clone()))
                                }
                                SectionText::Fields { not, fields } => {
                                    msg.map_or(Cow::Borrowed(empty), |x| {
                                        Cow::Owned(mime::header_fields(
                                            &d[x.header.clone()],
                                            fields,
                                            *not,
                                        ))
                                    })
                                }
                            }
                        }
                    };
                    let name = format!("BODY[{}]", section.render());
                    partial_literal(out, &name, &content, *partial);
                }
            }
        }
        if set_seen && !sel.readonly && !m.flags.contains('S') {
            let nf = mailorder_imap_store::normalize_flags(&format!("{}S", m.flags));
            if let Ok(Some(file)) = sel.folder.set_flags(m, &nf) {
                // The view follows at once; MODSEQ comes with the next sync (one per
                // command, not one per message).
                if let Ok(i) = sel.view.binary_search_by_key(&m.uid, |x| x.uid) {
                    let v = &mut sel.view[i];
                    v.flags = nf.as_str().into();
                    v.file = file.into();
                    v.sub = mailorder_maildir::Sub::Cur;
                }
                if !flags_sent {
                    out.extend(b" FLAGS ");
                    out.extend(
                        Self::flags_text(&nf, &sel.keywords, sel.recent.contains(&m.uid))
                            .as_bytes(),
                    );
                }
            }
        }
        self.buf.extend(b")\r\n");
        self.unknown_cte |= unknown_cte;
        Ok(true)
    }
}

/// `NAME {n}` and the message as stored with its bare LFs made CRLF (`n` counts them).
fn raw_literal(out: &mut Vec<u8>, name: &str, stored: &[u8]) {
    let _ = write!(out, "{name} {{{}}}\r\n", mime::crlf_len(stored));
    mime::extend_crlf(out, stored);
}

/// `NAME {n}` and the octets (`~{n}` when they hold NUL: a BINARY literal, RFC 3516
/// §4.2; BODY[] of a message with NUL is sent as stored, as Dovecot does).
fn literal(out: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    let tilde = if name.starts_with("BINARY") && bytes.contains(&0) {
        "~"
    } else {
        ""
    };
    out.extend(format!("{name} {tilde}{{{}}}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
}

/// [`literal`] of `content` cut to `<origin.count>` when asked (`NAME<origin>`; an
/// origin past the end gives an empty string, RFC 3501 §6.4.5).
fn partial_literal(out: &mut Vec<u8>, name: &str, content: &[u8], partial: Option<(u32, u32)>) {
    match partial {
        Some((o, c)) => {
            let o = (o as usize).min(content.len());
            let e = o.saturating_add(c as usize).min(content.len());
            literal(out, &format!("{name}<{o}>"), &content[o..e]);
        }
        None => literal(out, name, content),
    }
}
