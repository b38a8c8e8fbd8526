//! The operator's view of a run: users, messages, bytes, rate and ETA, as a bar redrawn
//! in place on a terminal or as plain log lines otherwise.
//!
//! Workers tell the admin side what they do over their fd 0 (a socket: the job goes in,
//! these lines come back), one short line per event: `t N` (N more messages to copy,
//! found in a folder) and `c N B` (N messages, B bytes copied). The admin side reads
//! them with [`Tally::feed`], which takes only those two shapes of digits and drops
//! anything else: it parses nothing else a worker could send.

use std::time::Duration;

/// The longest line [`Tally::feed`] accepts.
const MAX_LINE: usize = 48;

/// The run's totals so far.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Users in the run.
    pub users: u64,
    /// Users started.
    pub started: u64,
    /// Users finished.
    pub done: u64,
    /// Messages found to copy (of the users started).
    pub todo: u64,
    /// Messages copied.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// What a worker says: `t N` or `c N B`, one line (see the module docs).
pub fn todo_line(n: u64) -> String {
    format!("t {n}\n")
}

/// What a worker says after copying `n` messages of `bytes` bytes.
pub fn copied_line(n: u64, bytes: u64) -> String {
    format!("c {n} {bytes}\n")
}

impl Tally {
    /// Take the complete lines at the start of `buf` (a worker's unread bytes) and
    /// remove them; a partial line stays. A line too long or not of the two shapes is
    /// dropped.
    pub fn feed(&mut self, buf: &mut Vec<u8>) {
        while let Some(end) = buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let line = &line[..line.len() - 1];
            if line.len() > MAX_LINE {
                continue;
            }
            let Ok(text) = std::str::from_utf8(line) else {
                continue;
            };
            let mut w = text.split(' ');
            let num = |s: Option<&str>| -> Option<u64> {
                let s = s?;
                if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                s.parse().ok()
            };
            match w.next() {
                Some("t") => {
                    if let (Some(n), None) = (num(w.next()), w.next()) {
                        self.todo = self.todo.saturating_add(n);
                    }
                }
                Some("c") => {
                    if let (Some(n), Some(b), None) = (num(w.next()), num(w.next()), w.next()) {
                        self.messages = self.messages.saturating_add(n);
                        self.bytes = self.bytes.saturating_add(b);
                    }
                }
                _ => {}
            }
        }
        if buf.len() > MAX_LINE {
            buf.clear();
        }
    }

    /// The estimated time left after `elapsed`: the messages still to copy (those of
    /// the users not started yet estimated from the average of the others) at the rate
    /// so far. `None` until there is a rate.
    pub fn eta(&self, elapsed: Duration) -> Option<Duration> {
        let secs = elapsed.as_secs_f64();
        if self.messages == 0 || secs <= 0.0 || self.started == 0 {
            return None;
        }
        let rate = self.messages as f64 / secs;
        let per_user = self.todo as f64 / self.started as f64;
        let total = self.todo as f64 + per_user * self.users.saturating_sub(self.started) as f64;
        let left = (total - self.messages as f64).max(0.0);
        Some(Duration::from_secs_f64(left / rate))
    }

    /// One line: `users=D/N messages=M/T bytes=B rate=R/s mb_rate=X eta=S` (the log
    /// form) or the same for people (`tty`).
    pub fn line(&self, elapsed: Duration, tty: bool) -> String {
        let secs = elapsed.as_secs_f64().max(0.001);
        let rate = self.messages as f64 / secs;
        let brate = self.bytes as f64 / secs;
        let eta = self.eta(elapsed);
        if tty {
            let eta = eta.map_or_else(|| "--:--:--".to_owned(), |d| clock(d.as_secs()));
            format!(
                "users {}/{} | messages {}/{} | {} | {:.0} msg/s {}/s | ETA {eta}",
                self.done,
                self.users,
                self.messages,
                self.todo,
                human(self.bytes as f64),
                rate,
                human(brate)
            )
        } else {
            format!(
                "progress users={}/{} messages={}/{} bytes={} rate={:.1}msg/s bytes_rate={:.0}B/s eta={}",
                self.done,
                self.users,
                self.messages,
                self.todo,
                self.bytes,
                rate,
                brate,
                eta.map_or_else(|| "-".to_owned(), |d| format!("{}s", d.as_secs()))
            )
        }
    }

    /// A bar of `width` cells for the messages done (users when nothing is known yet).
    pub fn bar(&self, width: usize) -> String {
        let frac = if self.todo > 0 {
            self.messages as f64 / self.todo as f64
        } else if self.users > 0 {
            self.done as f64 / self.users as f64
        } else {
            0.0
        };
        let full = ((frac.clamp(0.0, 1.0)) * width as f64).round() as usize;
        format!("[{}{}]", "#".repeat(full), "-".repeat(width - full))
    }
}

fn clock(s: u64) -> String {
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Bytes for people: `3.2 MB`.
pub fn human(b: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_takes_only_the_two_shapes() {
        let mut t = Tally {
            users: 4,
            ..Tally::default()
        };
        let mut buf = b"t 100\nc 10 2000\nc 5\nx 1\nt -3\nt 1 2\nc 1 1".to_vec();
        t.feed(&mut buf);
        assert_eq!((t.todo, t.messages, t.bytes), (100, 10, 2000));
        assert_eq!(buf, b"c 1 1", "the partial line waits");
        buf.extend_from_slice(b"0\n");
        t.feed(&mut buf);
        assert_eq!((t.messages, t.bytes), (11, 2010));
        let mut junk = vec![b'9'; 100];
        t.feed(&mut junk);
        assert!(junk.is_empty());
        assert_eq!(t.todo, 100);
    }

    #[test]
    fn lines_and_eta() {
        let t = Tally {
            users: 4,
            started: 2,
            done: 1,
            todo: 200,
            messages: 100,
            bytes: 5_000_000,
        };
        // 100 messages in 10 s; 200 known + 2 users not started at 100 each: 300 left.
        let e = Duration::from_secs(10);
        assert_eq!(t.eta(e), Some(Duration::from_secs(30)));
        assert_eq!(
            t.line(e, false),
            "progress users=1/4 messages=100/200 bytes=5000000 rate=10.0msg/s bytes_rate=500000B/s eta=30s"
        );
        assert_eq!(
            t.line(e, true),
            "users 1/4 | messages 100/200 | 5.0 MB | 10 msg/s 500.0 KB/s | ETA 0:00:30"
        );
        assert_eq!(t.bar(10), "[#####-----]");
        assert_eq!(Tally::default().eta(e), None);
    }
}
