//! Sequence sets (RFC 3501 §9 `sequence-set`): `1:4,7,*`, `*:1` (a range in either
//! order), numbers 1..=4294967295; `$` (SEARCHRES) is not supported.

/// One end of a range: a number or `*` (the largest number in use).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    /// A number, never 0.
    Num(u32),
    /// `*`.
    Star,
}

impl SeqNum {
    fn resolve(self, max: u32) -> u32 {
        match self {
            SeqNum::Num(n) => n,
            SeqNum::Star => max,
        }
    }
}

/// A parsed sequence set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqSet(pub Vec<(SeqNum, SeqNum)>);

/// Why a sequence set is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSeqSet(pub &'static str);

impl std::fmt::Display for BadSeqSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid sequence set: {}", self.0)
    }
}

fn num(s: &str) -> Result<SeqNum, BadSeqSet> {
    if s == "*" {
        return Ok(SeqNum::Star);
    }
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadSeqSet("not a number"));
    }
    if s.starts_with('0') {
        return Err(BadSeqSet("zero or leading zero"));
    }
    match s.parse::<u64>() {
        Ok(n) if n <= u64::from(u32::MAX) => Ok(SeqNum::Num(n as u32)),
        _ => Err(BadSeqSet("number out of range")),
    }
}

impl SeqSet {
    /// Parse `set`; at most 10,000 ranges.
    pub fn parse(set: &str) -> Result<SeqSet, BadSeqSet> {
        let mut out = Vec::new();
        for part in set.split(',') {
            if out.len() >= 10_000 {
                return Err(BadSeqSet("too many ranges"));
            }
            match part.split_once(':') {
                Some((a, b)) => out.push((num(a)?, num(b)?)),
                None => {
                    let n = num(part)?;
                    out.push((n, n));
                }
            }
        }
        Ok(SeqSet(out))
    }

    /// Whether `n` is in the set when `*` means `max`.
    pub fn contains(&self, n: u32, max: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let (a, b) = (a.resolve(max), b.resolve(max));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            (lo..=hi).contains(&n)
        })
    }

    /// The ranges with `*` resolved, each as (low, high).
    pub fn ranges(&self, max: u32) -> Vec<(u32, u32)> {
        self.0
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (a.resolve(max), b.resolve(max));
                if a <= b { (a, b) } else { (b, a) }
            })
            .collect()
    }
}

/// Render a sorted list of numbers compactly: `1:3,5`.
pub fn compact(nums: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < nums.len() {
        let start = nums[i];
        let mut end = start;
        while i + 1 < nums.len() && nums[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = nums[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let s = SeqSet::parse("1:3,7,*").unwrap();
        assert!(s.contains(2, 10) && s.contains(7, 10) && s.contains(10, 10));
        assert!(!s.contains(5, 10));
        let r = SeqSet::parse("*:4").unwrap();
        assert_eq!(r.ranges(9), vec![(4, 9)]);
        assert!(r.contains(5, 9));
        assert_eq!(
            SeqSet::parse("4294967295").unwrap().ranges(1),
            vec![(4294967295, 4294967295)]
        );
    }

    #[test]
    fn rejects_bad_sets() {
        for bad in [
            "",
            "0",
            "1:0",
            "4294967296",
            "1,,2",
            "a",
            "1:",
            ":1",
            "01",
            "1:2:3",
            "-1",
            "99999999999",
        ] {
            assert!(SeqSet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn compacts() {
        assert_eq!(compact(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(compact(&[]), "");
    }
}
