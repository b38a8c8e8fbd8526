//! The folder index file `mailorder-index`, format version 2: binary, header first.
//!
//! Every integer is little-endian. The file is written whole (a temporary file,
//! `fsync`, `rename`: core's `write_atomic`) and only at a compaction; the changes in
//! between go to the text log `mailorder-index.log` (folder.rs). Layout:
//!
//! ```text
//! header, 128 bytes:
//!   0   8  magic "MOIMAPIX"
//!   8   1  format version (2)
//!   9   3  zero
//!   12  4  UIDVALIDITY            16  4  UIDNEXT
//!   20  4  messages (EXISTS)      24  8  HIGHESTMODSEQ
//!   32  8  vanished floor (MODSEQ up to which expunges were forgotten)
//!   40  4  vanished entries       44  4  flag sets
//!   48  4  flag-set bytes         52  8  name bytes
//!   60  4  1 when the directory mtimes below are recorded, else 0
//!   64 32  mtimes of new/ and cur/: seconds, nanoseconds (i64 each)
//!   96  4  sequence number of the first message without \Seen (0: none)
//!   100 4  CRC-32 of the flag sets, vanished entries and records
//!   104 4  CRC-32 of the names
//!   108 16 zero
//!   124 4  CRC-32 of bytes 0..124
//! flag sets: each a u16 length and the flag characters (UTF-8, canonical order:
//!   folder.rs normalize_flags); a folder has a handful of distinct ones
//! vanished entries, 12 bytes each, oldest first: UID u32, MODSEQ u64
//! records, 40 bytes each, in UID order:
//!   0 UID u32, 4 flag set u32, 8 MODSEQ u64, 16 internal date i64 (Unix seconds),
//!   24 RFC 822 size u64, 32 name offset u32 (in the names), 36 name length u16,
//!   38 directory u8 (0 new/, 1 cur/), 39 zero
//! names: the file names, in record order, back to back
//! ```
//!
//! A file whose length, header CRC or section CRCs disagree is torn or damaged and is
//! never trusted (the folder then rebuilds its index with a new UIDVALIDITY). Reading
//! takes the records through a 64 KiB window and the names whole, into the one buffer
//! that the messages' names are slices of, so a 100,000-message index is never held
//! whole in memory beside the state made from it, and its names cost one allocation.
//! Version 1 was text (`mailorder-imap-index 1 …`, one line per message); it is still
//! read, once, and rewritten in this format (folder.rs).

use crate::folder::{Msg, Name, State};
use mailorder_maildir::Sub;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// The first eight bytes of a version-2 index.
pub(crate) const MAGIC: &[u8; 8] = b"MOIMAPIX";
/// The format version byte (offset 8).
pub(crate) const VERSION: u8 = 2;
const HEADER: usize = 128;
const RECORD: usize = 40;
const VANISHED: usize = 12;
/// The window through which a section is read.
const WINDOW: usize = 64 * 1024;

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    u64_at(b, at) as i64
}

/// The index file of `s`.
pub(crate) fn encode(s: &State) -> Vec<u8> {
    let mut sets: HashMap<&str, u32> = HashMap::new();
    let mut set_bytes = Vec::new();
    let mut set_of = Vec::with_capacity(s.msgs.len());
    for m in &s.msgs {
        let next = sets.len() as u32;
        let i = *sets.entry(&m.flags).or_insert_with(|| {
            // INVARIANT: flags are at most a few dozen characters (1,024 keywords at
            // most, 3 bytes each): the length fits a u16.
            set_bytes.extend_from_slice(&(m.flags.len() as u16).to_le_bytes());
            set_bytes.extend_from_slice(m.flags.as_bytes());
            next
        });
        set_of.push(i);
    }
    let names_len: usize = s.msgs.iter().map(|m| m.file.len()).sum();
    let mut out = Vec::with_capacity(
        HEADER + set_bytes.len() + VANISHED * s.vanished.len() + RECORD * s.msgs.len() + names_len,
    );
    out.resize(HEADER, 0);
    out.extend_from_slice(&set_bytes);
    for (u, m) in &s.vanished {
        out.extend_from_slice(&u.to_le_bytes());
        out.extend_from_slice(&m.to_le_bytes());
    }
    let mut off = 0u32;
    for (m, set) in s.msgs.iter().zip(set_of) {
        out.extend_from_slice(&m.uid.to_le_bytes());
        out.extend_from_slice(&set.to_le_bytes());
        out.extend_from_slice(&m.modseq.to_le_bytes());
        out.extend_from_slice(&m.internal.to_le_bytes());
        out.extend_from_slice(&m.size.to_le_bytes());
        out.extend_from_slice(&off.to_le_bytes());
        // Maildir file names are far below 64 KiB (NAME_MAX is 255).
        out.extend_from_slice(&(m.file.len() as u16).to_le_bytes());
        out.push(match m.sub {
            Sub::New => 0,
            Sub::Cur => 1,
        });
        out.push(0);
        off = off.wrapping_add(m.file.len() as u32);
    }
    let body_crc = crc32fast::hash(&out[HEADER..]);
    let names_at = out.len();
    for m in &s.msgs {
        out.extend_from_slice(m.file.as_bytes());
    }
    let names_crc = crc32fast::hash(&out[names_at..]);
    let first_unseen = s
        .msgs
        .iter()
        .position(|m| !m.flags.contains('S'))
        .map_or(0, |i| i as u32 + 1);
    let h = &mut out[..HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8] = VERSION;
    h[12..16].copy_from_slice(&s.uidvalidity.to_le_bytes());
    h[16..20].copy_from_slice(&s.uidnext.to_le_bytes());
    h[20..24].copy_from_slice(&(s.msgs.len() as u32).to_le_bytes());
    h[24..32].copy_from_slice(&s.highestmodseq.to_le_bytes());
    h[32..40].copy_from_slice(&s.vanished_floor.to_le_bytes());
    h[40..44].copy_from_slice(&(s.vanished.len() as u32).to_le_bytes());
    h[44..48].copy_from_slice(&(sets.len() as u32).to_le_bytes());
    h[48..52].copy_from_slice(&(set_bytes.len() as u32).to_le_bytes());
    h[52..60].copy_from_slice(&(names_len as u64).to_le_bytes());
    if let Some(d) = s.dirs {
        h[60..64].copy_from_slice(&1u32.to_le_bytes());
        for (i, (sec, ns)) in d.iter().enumerate() {
            h[64 + 16 * i..72 + 16 * i].copy_from_slice(&sec.to_le_bytes());
            h[72 + 16 * i..80 + 16 * i].copy_from_slice(&ns.to_le_bytes());
        }
    }
    h[96..100].copy_from_slice(&first_unseen.to_le_bytes());
    h[100..104].copy_from_slice(&body_crc.to_le_bytes());
    h[104..108].copy_from_slice(&names_crc.to_le_bytes());
    let head_crc = crc32fast::hash(&h[..124]);
    h[124..128].copy_from_slice(&head_crc.to_le_bytes());
    out
}

/// The header's fields that a reader checks before anything else.
struct Header {
    uidvalidity: u32,
    uidnext: u32,
    count: usize,
    highestmodseq: u64,
    vanished_floor: u64,
    vanished: usize,
    sets: usize,
    set_bytes: usize,
    names: u64,
    dirs: Option<[(i64, i64); 2]>,
    body_crc: u32,
    names_crc: u32,
}

fn header(h: &[u8]) -> Option<Header> {
    if h.len() < HEADER || &h[..8] != MAGIC || h[8] != VERSION {
        return None;
    }
    if crc32fast::hash(&h[..124]) != u32_at(h, 124) {
        return None;
    }
    Some(Header {
        uidvalidity: u32_at(h, 12),
        uidnext: u32_at(h, 16),
        count: u32_at(h, 20) as usize,
        highestmodseq: u64_at(h, 24),
        vanished_floor: u64_at(h, 32),
        vanished: u32_at(h, 40) as usize,
        sets: u32_at(h, 44) as usize,
        set_bytes: u32_at(h, 48) as usize,
        names: u64_at(h, 52),
        dirs: (u32_at(h, 60) == 1).then(|| {
            [
                (i64_at(h, 64), i64_at(h, 72)),
                (i64_at(h, 80), i64_at(h, 88)),
            ]
        }),
        body_crc: u32_at(h, 100),
        names_crc: u32_at(h, 104),
    })
}

/// The UIDVALIDITY in the first bytes of a version-2 index, even a torn one (so that a
/// rebuilt index never hands out the same one again).
pub(crate) fn peek_uidvalidity(first: &[u8]) -> Option<u32> {
    (first.len() >= 16 && &first[..8] == MAGIC).then(|| u32_at(first, 12))
}

/// One section of the file read in order through a window, with its CRC.
struct Section<'a> {
    f: &'a fs::File,
    /// The file offset of the next byte to read into the window.
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
    crc: crc32fast::Hasher,
}

impl<'a> Section<'a> {
    fn new(f: &'a fs::File, pos: u64, end: u64) -> Section<'a> {
        Section {
            f,
            pos,
            end,
            buf: Vec::new(),
            at: 0,
            crc: crc32fast::Hasher::new(),
        }
    }

    /// The next `n` bytes of the section; `None` past its end or on a read error.
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.buf.len() - self.at < n {
            self.buf.drain(..self.at);
            self.at = 0;
            let want = (n.max(WINDOW) - self.buf.len()) as u64;
            let want = want.min(self.end - self.pos) as usize;
            let have = self.buf.len();
            self.buf.resize(have + want, 0);
            self.f.read_exact_at(&mut self.buf[have..], self.pos).ok()?;
            self.crc.update(&self.buf[have..]);
            self.pos += want as u64;
            if self.buf.len() < n {
                return None;
            }
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Some(s)
    }

    /// Whether the whole section was read and its CRC is `crc`.
    fn done(self, crc: u32) -> bool {
        self.pos == self.end && self.at == self.buf.len() && self.crc.finalize() == crc
    }
}

/// Read a version-2 index (the caller has seen its magic). `None` when it is torn or
/// damaged.
pub(crate) fn read(f: &fs::File) -> Option<State> {
    let len = f.metadata().ok()?.len();
    let mut head = [0u8; HEADER];
    f.read_exact_at(&mut head, 0).ok()?;
    let h = header(&head)?;
    let body = h.set_bytes as u64 + (VANISHED * h.vanished) as u64 + (RECORD * h.count) as u64;
    // Every count is bounded by the file's length before anything is allocated for it.
    if (HEADER as u64).checked_add(body)?.checked_add(h.names)? != len
        || h.uidvalidity == 0
        || h.sets > h.set_bytes / 2
    {
        return None;
    }
    let names_at = HEADER as u64 + body;
    let mut a = Section::new(f, HEADER as u64, names_at);
    // The names are read whole into the one buffer that the messages' names are slices of
    // (one allocation, not one per message).
    let mut names = vec![0u8; usize::try_from(h.names).ok()?];
    f.read_exact_at(&mut names, names_at).ok()?;
    if crc32fast::hash(&names) != h.names_crc {
        return None;
    }
    let names = Arc::new(String::from_utf8(names).ok()?);
    let mut sets: Vec<Arc<str>> = Vec::with_capacity(h.sets);
    for _ in 0..h.sets {
        let n = u16::from_le_bytes(a.take(2)?.try_into().ok()?) as usize;
        sets.push(std::str::from_utf8(a.take(n)?).ok()?.into());
    }
    let mut vanished = Vec::with_capacity(h.vanished);
    for _ in 0..h.vanished {
        let v = a.take(VANISHED)?;
        vanished.push((u32_at(v, 0), u64_at(v, 4)));
    }
    let mut msgs = Vec::with_capacity(h.count);
    let (mut last, mut off) = (0u32, 0u64);
    for _ in 0..h.count {
        let r = a.take(RECORD)?;
        let uid = u32_at(r, 0);
        let set = sets.get(u32_at(r, 4) as usize)?.clone();
        let modseq = u64_at(r, 8);
        let internal = i64_at(r, 16);
        let size = u64_at(r, 24);
        let name_off = u32_at(r, 32) as u64;
        let name_len = u16::from_le_bytes([r[36], r[37]]) as usize;
        let sub = match r[38] {
            0 => Sub::New,
            1 => Sub::Cur,
            _ => return None,
        };
        if uid <= last || uid >= h.uidnext || modseq > h.highestmodseq {
            return None;
        }
        if name_off != off & 0xffff_ffff {
            return None;
        }
        let file = Name::slice(&names, usize::try_from(off).ok()?, name_len)?;
        off += name_len as u64;
        last = uid;
        msgs.push(Msg {
            uid,
            modseq,
            internal,
            size,
            sub,
            file,
            flags: set,
        });
    }
    if !a.done(h.body_crc) || off != h.names {
        return None;
    }
    Some(State {
        uidvalidity: h.uidvalidity,
        uidnext: h.uidnext,
        highestmodseq: h.highestmodseq,
        msgs: msgs.into(),
        vanished,
        vanished_floor: h.vanished_floor,
        dirs: h.dirs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let msg = |uid, flags: &str, sub, file: &str| Msg {
            uid,
            modseq: u64::from(uid) + 1,
            internal: 1_700_000_000 + i64::from(uid),
            size: 100 * u64::from(uid),
            sub,
            file: file.into(),
            flags: flags.into(),
        };
        State {
            uidvalidity: 1234,
            uidnext: 10,
            highestmodseq: 20,
            msgs: vec![
                msg(1, "S", Sub::Cur, "1.M1P1.h,S=1,W=2:2,S"),
                msg(3, "", Sub::New, "3.M3P1.h"),
                msg(7, "FSa\u{11a}", Sub::Cur, "7.M7P1.h:2,FSa"),
                msg(9, "S", Sub::Cur, "9.M9P1.h:2,S"),
            ]
            .into(),
            vanished: vec![(2, 5), (4, 6)],
            vanished_floor: 3,
            dirs: Some([(1, 2), (3, 4)]),
        }
    }

    #[test]
    fn round_trip_and_header() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("i");
        for s in [
            sample(),
            State {
                uidvalidity: 5,
                uidnext: 1,
                highestmodseq: 1,
                ..State::default()
            },
        ] {
            let bytes = encode(&s);
            assert_eq!(&bytes[..8], MAGIC);
            assert_eq!(bytes[8], VERSION);
            assert_eq!(peek_uidvalidity(&bytes), Some(s.uidvalidity));
            fs::write(&p, &bytes).unwrap();
            assert_eq!(read(&fs::File::open(&p).unwrap()), Some(s.clone()));
        }
        // The first unseen message's sequence number is in the header.
        assert_eq!(u32_at(&encode(&sample()), 96), 2);
        // The same flags share one allocation.
        fs::write(&p, encode(&sample())).unwrap();
        let s = read(&fs::File::open(&p).unwrap()).unwrap();
        assert!(Arc::ptr_eq(&s.msgs[0].flags, &s.msgs[3].flags));
        // See: issue #12: the names are slices of one buffer, not one allocation each.
        assert!(s.msgs[0].file.same_buffer(&s.msgs[3].file));
        assert_eq!(&*s.msgs[2].file, "7.M7P1.h:2,FSa");
    }

    #[test]
    fn many_messages_cross_the_window() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("i");
        let mut s = sample();
        s.msgs.clear();
        for uid in 1..5000u32 {
            s.msgs.push(Msg {
                uid,
                modseq: 1,
                internal: 0,
                size: 1,
                sub: Sub::Cur,
                file: format!("{uid}.M{uid}P1.host.example,S=1,W=1:2,S").into(),
                flags: if uid % 3 == 0 { "" } else { "S" }.into(),
            });
        }
        s.uidnext = 5000;
        fs::write(&p, encode(&s)).unwrap();
        assert_eq!(read(&fs::File::open(&p).unwrap()), Some(s));
    }

    // See: issue #12: a torn or damaged index is never trusted.
    #[test]
    fn torn_or_damaged_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("i");
        let bytes = encode(&sample());
        let open = |b: &[u8]| {
            fs::write(&p, b).unwrap();
            read(&fs::File::open(&p).unwrap())
        };
        for cut in [0, 10, HEADER - 1, HEADER, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(open(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(open(&longer), None);
        for at in [9, 13, 100, HEADER + 1, bytes.len() - 3, bytes.len() - 40] {
            let mut b = bytes.clone();
            b[at] ^= 0x20;
            assert_eq!(open(&b), None, "flipped at {at}");
        }
        // Counts that do not fit the file, even with a header CRC that matches: refused
        // before anything is allocated for them.
        for at in [20, 40, 44] {
            let mut b = bytes.clone();
            b[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            let crc = crc32fast::hash(&b[..124]);
            b[124..128].copy_from_slice(&crc.to_le_bytes());
            assert_eq!(open(&b), None, "count at {at}");
        }
        // Version 1 (text) is not this format.
        assert_eq!(open(b"mailorder-imap-index 1 5 1 1 0\nend 0\n"), None);
    }
}
