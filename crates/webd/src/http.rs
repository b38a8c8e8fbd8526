//! HTTP/1.1 request framing and the form and cookie grammars: no I/O.
//!
//! The request head is parsed by `httparse` (hyper's parser: maintained, fuzzed, no
//! dependencies, sans-IO, which fits blocking std I/O and one thread per connection).
//! This module adds what httparse leaves to its caller: the limits, the body by
//! `Content-Length` (chunked request bodies are refused with 411: no browser sends
//! them for a form), `application/x-www-form-urlencoded` decoding (WHATWG URL §5.1) and
//! the `Cookie` header (RFC 6265 §5.4). [`Framer`] takes bytes in any split and yields a
//! request once it is complete.

/// The largest request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// The largest request body (forms only).
pub const MAX_BODY: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;

/// A decoded form or query: (name, value) pairs in order.
pub type Form = Vec<(String, String)>;

/// A complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string (after `?`), undecoded.
    pub query: String,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of cookie `name`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n == "cookie")
            .flat_map(|(_, v)| cookies(v))
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The body as a urlencoded form.
    pub fn form(&self) -> Vec<(String, String)> {
        form(&self.body)
    }
}

/// Why a request was refused; each maps to one status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// Malformed head (400).
    #[error("bad request: {0}")]
    Bad(String),
    /// Head or body too large (431 / 413).
    #[error("request too large")]
    TooLarge(u16),
    /// A body without Content-Length (411).
    #[error("length required")]
    LengthRequired,
}

impl HttpError {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::Bad(_) => 400,
            HttpError::TooLarge(s) => *s,
            HttpError::LengthRequired => 411,
        }
    }
}

/// Accumulates bytes and yields the request once complete.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
}

impl Framer {
    /// A fresh framer.
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Add bytes; `Ok(Some)` when a whole request is there (bytes after it are kept).
    pub fn push(&mut self, data: &[u8]) -> Result<Option<Request>, HttpError> {
        self.buf.extend_from_slice(data);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let head_len = match req.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if self.buf.len() > MAX_HEAD {
                    return Err(HttpError::TooLarge(431));
                }
                return Ok(None);
            }
            Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooLarge(431)),
            Err(e) => return Err(HttpError::Bad(e.to_string())),
        };
        if head_len > MAX_HEAD {
            return Err(HttpError::TooLarge(431));
        }
        let method = req.method.unwrap_or_default().to_owned();
        let target = req.path.unwrap_or_default();
        if !target.starts_with('/') {
            return Err(HttpError::Bad("request target not in origin form".into()));
        }
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let (path, query) = (path.to_owned(), query.to_owned());
        let mut hs = Vec::with_capacity(req.headers.len());
        let mut length: Option<usize> = None;
        for h in req.headers.iter() {
            let name = h.name.to_ascii_lowercase();
            let value = std::str::from_utf8(h.value)
                .map_err(|_| HttpError::Bad("header value not UTF-8".into()))?
                .trim()
                .to_owned();
            if name == "transfer-encoding" {
                return Err(HttpError::LengthRequired);
            }
            if name == "content-length" {
                let n: usize = value
                    .parse()
                    .map_err(|_| HttpError::Bad("bad Content-Length".into()))?;
                if length.is_some_and(|l| l != n) {
                    return Err(HttpError::Bad("conflicting Content-Length".into()));
                }
                length = Some(n);
            }
            hs.push((name, value));
        }
        let length = length.unwrap_or(0);
        if length > MAX_BODY {
            return Err(HttpError::TooLarge(413));
        }
        if self.buf.len() < head_len + length {
            return Ok(None);
        }
        let body = self.buf[head_len..head_len + length].to_vec();
        self.buf.drain(..head_len + length);
        Ok(Some(Request {
            method,
            path,
            query,
            headers: hs,
            body,
        }))
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decode (with `+` as space), lossy UTF-8.
pub fn decode(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    s.get(i + 1).and_then(|b| hex(*b)),
                    s.get(i + 2).and_then(|b| hex(*b)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `application/x-www-form-urlencoded` pairs.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    body.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|b| *b == b'=') {
            Some(i) => (decode(&p[..i]), decode(&p[i + 1..])),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// The value of field `name` in a form.
pub fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The pairs of a `Cookie` header.
pub fn cookies(header: &str) -> Vec<(String, String)> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

/// Escape text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const POST: &[u8] = b"POST /login?x=1 HTTP/1.1\r\nHost: a\r\nCookie: s=abc; t=\"q\"\r\n\
Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 31\r\n\r\n\
user=a%40b.test&pass=p+w%26%zz!GET / HTTP/1.1\r\n\r\n";

    #[test]
    fn every_chunk_split_gives_the_same_requests() {
        let whole = {
            let mut f = Framer::new();
            let a = f.push(POST).unwrap().unwrap();
            let b = f.push(b"").unwrap().unwrap();
            (a, b)
        };
        assert_eq!(whole.0.method, "POST");
        assert_eq!(whole.0.path, "/login");
        assert_eq!(whole.0.query, "x=1");
        assert_eq!(whole.0.cookie("t").as_deref(), Some("q"));
        assert_eq!(whole.0.cookie("s").as_deref(), Some("abc"));
        let f = whole.0.form();
        assert_eq!(field(&f, "user"), Some("a@b.test"));
        assert_eq!(field(&f, "pass"), Some("p w&%zz!"));
        assert_eq!(whole.1.path, "/");
        for i in 0..POST.len() {
            for j in i..POST.len() {
                let mut f = Framer::new();
                let mut got = Vec::new();
                for part in [&POST[..i], &POST[i..j], &POST[j..]] {
                    if let Some(r) = f.push(part).unwrap() {
                        got.push(r);
                    }
                }
                while let Some(r) = f.push(b"").unwrap() {
                    got.push(r);
                }
                assert_eq!(got, vec![whole.0.clone(), whole.1.clone()], "split {i} {j}");
            }
        }
    }

    #[test]
    fn limits_and_refusals() {
        let mut f = Framer::new();
        assert_eq!(
            f.push(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(HttpError::LengthRequired)
        );
        let mut f = Framer::new();
        assert_eq!(
            f.push(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n"),
            Err(HttpError::TooLarge(413))
        );
        let mut f = Framer::new();
        assert_eq!(
            f.push(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .map_err(|e| e.status()),
            Err(400)
        );
        let mut f = Framer::new();
        assert_eq!(
            f.push(&vec![b'a'; MAX_HEAD + 1]).map_err(|e| e.status()),
            Err(431)
        );
        let mut f = Framer::new();
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.extend(vec![b'a'; MAX_HEAD]);
        assert_eq!(f.push(&long).map_err(|e| e.status()), Err(431));
        let mut f = Framer::new();
        assert_eq!(
            f.push(b"GET http://x/ HTTP/1.1\r\n\r\n")
                .map_err(|e| e.status()),
            Err(400)
        );
    }

    #[test]
    fn decoding() {
        assert_eq!(decode(b"a%41%4"), "aA%4");
        assert_eq!(decode(b"%"), "%");
        assert_eq!(decode(b"%e2%82%ac+x"), "\u{20ac} x");
        assert_eq!(
            escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;&lt;/a&gt;"
        );
    }
}
