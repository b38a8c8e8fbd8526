//! What changed in a folder's `new/` and `cur/` since a session last looked, from inotify:
//! the names created, renamed or removed there. A session that holds a [`Watch`] checks
//! those names against the index (after replaying the change log) instead of listing
//! 10,000 names per command: when every name agrees with the index (the changes were made
//! by sessions that logged them), nothing needs reading; otherwise the folder is scanned as
//! without a watch. A lost event (queue overflow, the directory itself removed or renamed)
//! also means a scan.

use crate::folder::Msg;
use mailorder_maildir::{Sub, name};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::HashMap;
use std::path::Path;

/// An inotify instance on a folder's `new/` and `cur/`.
#[derive(Debug)]
pub(crate) struct Watch {
    ino: Inotify,
    new: WatchDescriptor,
    cur: WatchDescriptor,
}

/// The net effect of the events read so far: per (directory, name), whether the name
/// exists after the last event about it; `lost` when events were lost.
#[derive(Debug, Default)]
pub(crate) struct Events {
    names: HashMap<(Sub, String), bool>,
    lost: bool,
}

impl Events {
    /// Nothing happened.
    pub(crate) fn is_empty(&self) -> bool {
        self.names.is_empty() && !self.lost
    }

    /// Forget everything (after a scan that read the directories).
    pub(crate) fn clear(&mut self) {
        self.names.clear();
        self.lost = false;
    }

    /// Whether every name agrees with `msgs` (the index after its log): a name that exists
    /// is the file of the message with its unique part, in that directory; a name that is
    /// gone is no message's file there. Names a scan would skip are ignored.
    pub(crate) fn agree(&self, msgs: &[Msg], bases: &mut BaseMap) -> bool {
        if self.lost {
            return false;
        }
        for ((sub, n), exists) in &self.names {
            if !name::is_message_name(n) || n.contains('\n') || n.ends_with(' ') {
                continue;
            }
            let base = name::unique_part(name::split_info(n).0);
            let is_file = bases
                .find(msgs, base)
                .is_some_and(|m| m.sub == *sub && *m.file == **n);
            if is_file != *exists {
                return false;
            }
        }
        true
    }
}

/// Unique names to UIDs, kept across syncs: a message keeps its unique name and its UID,
/// so an entry stays right until the message is expunged (then the UID is not found) or
/// the UIDVALIDITY changes (then the map starts again). New messages are added from the
/// end of the list (UIDs ascend), so a lookup costs O(1) plus the messages new since the
/// last one.
#[derive(Debug, Default)]
pub(crate) struct BaseMap {
    uidvalidity: Option<u32>,
    map: HashMap<Box<str>, u32>,
    upto: u32,
}

impl BaseMap {
    /// The message of `msgs` (sorted by UID, of folder state `uv`) whose unique name is
    /// `base`.
    fn find<'a>(&mut self, msgs: &'a [Msg], base: &str) -> Option<&'a Msg> {
        let at = |u: u32| -> Option<&'a Msg> {
            let i = msgs.binary_search_by_key(&u, |m| m.uid).ok()?;
            Some(&msgs[i]).filter(|m| m.base() == base)
        };
        if let Some(&u) = self.map.get(base) {
            if let Some(m) = at(u) {
                return Some(m);
            }
            // Expunged (or the name came back with another UID): look once.
            self.map.remove(base);
            let m = msgs.iter().find(|m| m.base() == base)?;
            self.map.insert(base.into(), m.uid);
            return Some(m);
        }
        let start = msgs.partition_point(|m| m.uid <= self.upto);
        if start < msgs.len() {
            for m in &msgs[start..] {
                self.map.insert(m.base().into(), m.uid);
            }
            self.upto = msgs[msgs.len() - 1].uid;
        }
        self.map.get(base).and_then(|&u| at(u))
    }

    /// Start again when the folder's UIDVALIDITY is not the one the map was made for.
    pub(crate) fn check(&mut self, uidvalidity: u32) {
        if self.uidvalidity != Some(uidvalidity) {
            self.uidvalidity = Some(uidvalidity);
            self.map.clear();
            self.upto = 0;
        }
    }
}

impl Watch {
    /// Watch `dir`'s `new/` and `cur/`; `None` when inotify is not available (out of
    /// instances or watches: `fs.inotify.max_user_instances`).
    pub(crate) fn new(dir: &Path) -> Option<Watch> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_DONT_FOLLOW
            | AddWatchFlags::IN_ONLYDIR;
        let new = ino.add_watch(&dir.join("new"), mask).ok()?;
        let cur = ino.add_watch(&dir.join("cur"), mask).ok()?;
        Some(Watch { ino, new, cur })
    }

    /// Read the pending events into `ev`. Returns `false` when the watch is no longer
    /// valid (a directory removed or renamed: drop it).
    pub(crate) fn drain(&self, ev: &mut Events) -> bool {
        let mut valid = true;
        loop {
            let batch = match self.ino.read_events() {
                Ok(b) if !b.is_empty() => b,
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => return valid,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => {
                    ev.lost = true;
                    return false;
                }
            };
            for e in batch {
                if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    ev.lost = true;
                    continue;
                }
                if e.mask.intersects(
                    AddWatchFlags::IN_IGNORED
                        | AddWatchFlags::IN_DELETE_SELF
                        | AddWatchFlags::IN_MOVE_SELF
                        | AddWatchFlags::IN_UNMOUNT,
                ) {
                    ev.lost = true;
                    valid = false;
                    continue;
                }
                let sub = if e.wd == self.new {
                    Sub::New
                } else if e.wd == self.cur {
                    Sub::Cur
                } else {
                    continue;
                };
                let Some(n) = e.name.and_then(|n| n.into_string().ok()) else {
                    continue;
                };
                let exists = e
                    .mask
                    .intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO);
                ev.names.insert((sub, n), exists);
            }
        }
    }
}
