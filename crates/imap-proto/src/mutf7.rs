//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3): printable ASCII stands for itself
//! (`&` is written `&-`), everything else is UTF-16 in base64 with `,` for `/`, between
//! `&` and `-`. Decoding is strict: no padding bits, no encoded printable ASCII, no
//! empty or unterminated shifts.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// Encode a UTF-8 name in modified UTF-7.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            let chars = chunk.len() + 1;
            for i in 0..chars {
                let idx = (n >> (18 - 6 * i)) & 63;
                out.push(char::from(ALPHABET[idx as usize]));
            }
        }
        out.push('-');
        pending.clear();
    };
    for c in s.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Why a modified UTF-7 name is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadUtf7(pub &'static str);

impl std::fmt::Display for BadUtf7 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid modified UTF-7 mailbox name: {}", self.0)
    }
}

/// Decode a modified UTF-7 name to UTF-8, strictly.
pub fn decode(s: &str) -> Result<String, BadUtf7> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !(0x20..=0x7e).contains(&c) {
            return Err(BadUtf7("8-bit or control character"));
        }
        if c != b'&' {
            out.push(char::from(c));
            i += 1;
            continue;
        }
        let start = i + 1;
        let Some(len) = b[start..].iter().position(|&x| x == b'-') else {
            return Err(BadUtf7("unterminated shift"));
        };
        let enc = &b[start..start + len];
        i = start + len + 1;
        if enc.is_empty() {
            out.push('&');
            continue;
        }
        let mut bits: u32 = 0;
        let mut nbits = 0u32;
        let mut units: Vec<u16> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        for &e in enc {
            let Some(v) = ALPHABET.iter().position(|&a| a == e) else {
                return Err(BadUtf7("bad base64 character"));
            };
            bits = (bits << 6) | v as u32;
            nbits += 6;
            if nbits >= 8 {
                nbits -= 8;
                bytes.push((bits >> nbits) as u8);
                bits &= (1 << nbits) - 1;
            }
        }
        if bits != 0 || nbits >= 6 {
            return Err(BadUtf7("bad padding"));
        }
        if !bytes.len().is_multiple_of(2) {
            return Err(BadUtf7("odd number of bytes"));
        }
        for p in bytes.chunks(2) {
            units.push(u16::from_be_bytes([p[0], p[1]]));
        }
        let mut any = false;
        for r in char::decode_utf16(units.iter().copied()) {
            let ch = r.map_err(|_| BadUtf7("bad UTF-16"))?;
            if (' '..='~').contains(&ch) {
                return Err(BadUtf7("encoded printable ASCII"));
            }
            any = true;
            out.push(ch);
        }
        if !any {
            return Err(BadUtf7("empty shift"));
        }
        if b.get(i) == Some(&b'&') && b.get(i + 1) != Some(&b'-') {
            return Err(BadUtf7("adjacent shifts"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (utf8, m) in [
            ("INBOX", "INBOX"),
            ("Résumé", "R&AOk-sum&AOk-"),
            ("a&b", "a&-b"),
            ("日本語", "&ZeVnLIqe-"),
            ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
            ("😀", "&2D3eAA-"),
            ("", ""),
        ] {
            assert_eq!(encode(utf8), m, "{utf8}");
            assert_eq!(decode(m).unwrap(), utf8, "{m}");
        }
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "&",
            "&AOk",
            "&AOk-&AOk-",
            "&AGE-",
            "&A-",
            "&AO!-",
            "caf\u{e9}",
            "a\tb",
            "&2D0-",
            "&AOl-",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }
}
