//! The loop check: scan the message header for `Delivered-To:` lines equal to ours and
//! count `Received:` + `Delivered-To:` fields (docs/CONVENTIONS.md §7, qmail-local).

use std::io::{self, BufRead};

/// What the header says about loops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hops {
    /// `Received:` plus `Delivered-To:` fields.
    pub count: u64,
    /// An identical `Delivered-To:` (case-insensitive, white space trimmed) is present.
    pub looped: bool,
    /// The first `X-Spam-Flag:` says `YES`: the content filter (issue 13) marked it spam.
    /// Only the first counts: the filter puts its own first and removes the sender's.
    pub spam: bool,
    /// The first `X-Spam-Score:`, in tenths (`5.3` is 53), when it is a number.
    pub score: Option<i32>,
}

/// Scan header fields up to the first empty line (or EOF). `delivered_to` is the address
/// this delivery would add. Lines may end in LF or CRLF; continuation lines are skipped.
pub fn scan<R: BufRead>(mut r: R, delivered_to: &str) -> io::Result<Hops> {
    let mut hops = Hops::default();
    let mut spam_seen = false;
    let mut score_seen = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        // Bound each line so a header without newlines cannot exhaust memory.
        let n = io::Read::take(&mut r, 64 * 1024).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        let body = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(&line);
        if body.is_empty() {
            break;
        }
        if body[0] == b' ' || body[0] == b'\t' {
            continue;
        }
        let Some(colon) = body.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &body[..colon];
        if name.eq_ignore_ascii_case(b"received") {
            hops.count += 1;
        } else if name.eq_ignore_ascii_case(b"delivered-to") {
            hops.count += 1;
            let value = String::from_utf8_lossy(&body[colon + 1..]);
            if value.trim().eq_ignore_ascii_case(delivered_to) {
                hops.looped = true;
            }
        } else if name.eq_ignore_ascii_case(b"x-spam-score") && !score_seen {
            score_seen = true;
            hops.score = String::from_utf8_lossy(&body[colon + 1..])
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && f.abs() < 1e6)
                .map(|f| (f * 10.0).round() as i32);
        } else if name.eq_ignore_ascii_case(b"x-spam-flag") && !spam_seen {
            spam_seen = true;
            hops.spam = String::from_utf8_lossy(&body[colon + 1..])
                .trim()
                .eq_ignore_ascii_case("yes");
        }
    }
    Ok(hops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    /// Hands out at most `n` bytes per read.
    struct Chunked<'a>(&'a [u8], usize);
    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let k = self.1.min(buf.len()).min(self.0.len());
            buf[..k].copy_from_slice(&self.0[..k]);
            self.0 = &self.0[k..];
            Ok(k)
        }
    }

    #[test]
    fn table_whole_and_chunked() {
        let me = "joe@example.org";
        let cases: &[(&str, u64, bool)] = &[
            ("Subject: x\n\nbody\n", 0, false),
            ("Received: a\nReceived: b\n\tcont\nSubject: x\n\n", 2, false),
            ("Delivered-To: other@example.org\n\n", 1, false),
            ("Delivered-To: joe@example.org\n\n", 1, true),
            ("delivered-to:   JOE@Example.ORG  \r\n\r\n", 1, true),
            ("Subject: x\n\nDelivered-To: joe@example.org\n", 0, false),
            ("Subject: x\n Delivered-To: joe@example.org\n\n", 0, false),
            ("Received: x\r\nDelivered-To: joe@example.org\r\n", 2, true),
            ("", 0, false),
            ("no colon here\nReceived: y", 1, false),
        ];
        for (text, count, looped) in cases {
            let want = Hops {
                count: *count,
                looped: *looped,
                spam: false,
                score: None,
            };
            assert_eq!(scan(text.as_bytes(), me).unwrap(), want, "{text:?}");
            for n in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512] {
                let r = BufReader::with_capacity(n, Chunked(text.as_bytes(), n));
                assert_eq!(scan(r, me).unwrap(), want, "{text:?} chunks of {n}");
            }
        }
    }

    // See: issue #13
    #[test]
    fn the_first_spam_flag_counts() {
        let spam = |t: &str| scan(t.as_bytes(), "a@b").unwrap().spam;
        assert!(spam("X-Spam-Flag: YES\nX-Spam-Flag: NO\n\n"));
        assert!(spam("x-spam-flag:yes\r\n\r\n"));
        assert!(!spam("X-Spam-Flag: NO\nX-Spam-Flag: YES\n\n"));
        assert!(!spam("Subject: x\n\nX-Spam-Flag: YES\n"));
        let score = |t: &str| scan(t.as_bytes(), "a@b").unwrap().score;
        assert_eq!(
            score("X-Spam-Score: 1003.7\nX-Spam-Score: 1\n\n"),
            Some(10037)
        );
        assert_eq!(score("x-spam-score: -0.1\r\n\r\n"), Some(-1));
        assert_eq!(score("X-Spam-Score: lots\n\n"), None);
        assert_eq!(score("Subject: x\n\n"), None);
    }

    #[test]
    fn many_hops() {
        let text = "Received: x\n".repeat(150) + "\nbody";
        assert_eq!(scan(text.as_bytes(), "a@b").unwrap().count, 150);
    }
}
