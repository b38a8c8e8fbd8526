//! `.qmail` delivery instructions (docs/CONVENTIONS.md §7, dot-qmail(5)): which file applies to an
//! extension, and what its lines say. Pure functions, no I/O.

/// One delivery instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `|command`: run `sh -c command`.
    Program(String),
    /// `&addr` or a line starting with a letter or digit: forward.
    Forward(String),
    /// `/path/` or `./path/`: a Maildir.
    Maildir(String),
    /// `/path` or `./path` not ending in `/`: an mbox.
    Mbox(String),
}

/// Why a line is not an instruction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A forward address with spaces, `<>`, quotes or comments.
    #[error("bad forward address {0:?} in .qmail (#5.1.3)")]
    BadForward(String),
    /// Something unrecognised.
    #[error("unrecognised .qmail line {0:?} (#4.7.0)")]
    Unknown(String),
}

/// Parse the text of a `.qmail` file. Comments and blank lines are skipped, trailing spaces
/// and tabs removed. Forward addresses without `@` are qualified with `domain`.
pub fn parse(text: &str, domain: &str) -> Result<Vec<Instruction>, LineError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim_end_matches([' ', '\t', '\r']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let ins = if let Some(cmd) = line.strip_prefix('|') {
            Instruction::Program(cmd.to_owned())
        } else if line.starts_with('/') || line.starts_with("./") {
            if line.ends_with('/') {
                Instruction::Maildir(line.to_owned())
            } else {
                Instruction::Mbox(line.to_owned())
            }
        } else if let Some(addr) = line.strip_prefix('&') {
            Instruction::Forward(forward_address(addr, domain)?)
        } else if line.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            Instruction::Forward(forward_address(line, domain)?)
        } else {
            return Err(LineError::Unknown(line.to_owned()));
        };
        out.push(ins);
    }
    Ok(out)
}

fn forward_address(addr: &str, domain: &str) -> Result<String, LineError> {
    let addr = addr.trim();
    if addr.is_empty()
        || addr.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '(' | ')' | '"' | ',')
        })
    {
        return Err(LineError::BadForward(addr.to_owned()));
    }
    if addr.contains('@') {
        Ok(addr.to_owned())
    } else {
        Ok(format!("{addr}@{domain}"))
    }
}

/// The extension as used in file names: lower case, `.` written as `:` (so it can never
/// name `..`), `/` refused by the caller's directory lookup but also written as `:` here.
pub fn file_ext(ext: &str) -> String {
    ext.to_lowercase()
        .chars()
        .map(|c| if c == '.' || c == '/' { ':' } else { c })
        .collect()
}

/// The `.qmail` file names to try for extension `ext` (already through [`file_ext`]), in
/// order, each with the `DEFAULT` part it matched: `.qmail-EXT`, then
/// `.qmail-PREFIX-default` for every dash prefix from the longest, then `.qmail-default`.
pub fn candidates(ext: &str) -> Vec<(String, Option<String>)> {
    let mut out = vec![(format!(".qmail-{ext}"), None)];
    for (i, _) in ext.char_indices().rev().filter(|(_, c)| *c == '-') {
        out.push((
            format!(".qmail-{}-default", &ext[..i]),
            Some(ext[i + 1..].to_owned()),
        ));
    }
    out.push((".qmail-default".to_owned(), Some(ext.to_owned())));
    out
}

/// `EXT2`, `EXT3`, `EXT4`: the extension after the 1st, 2nd, 3rd dash.
pub fn ext_parts(ext: &str) -> [Option<&str>; 3] {
    let mut out = [None; 3];
    let mut rest = ext;
    for slot in &mut out {
        match rest.split_once('-') {
            Some((_, r)) => {
                *slot = Some(r);
                rest = r;
            }
            None => break,
        }
    }
    out
}

/// `HOST2`, `HOST3`, `HOST4`: the domain without its last 1, 2, 3 components.
pub fn host_parts(host: &str) -> [Option<&str>; 3] {
    let mut out = [None; 3];
    let mut rest = host;
    for slot in &mut out {
        match rest.rsplit_once('.') {
            Some((r, _)) => {
                *slot = Some(r);
                rest = r;
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Instruction::*;

    #[test]
    fn lines() {
        let text = "# comment\n\n|/usr/bin/filter -x  \n&joe@example.org\nbob\n./Maildir/\n/var/mail/x\n/abs/md/\t\n./mbox\n";
        assert_eq!(
            parse(text, "d.test").unwrap(),
            vec![
                Program("/usr/bin/filter -x".into()),
                Forward("joe@example.org".into()),
                Forward("bob@d.test".into()),
                Maildir("./Maildir/".into()),
                Mbox("/var/mail/x".into()),
                Maildir("/abs/md/".into()),
                Mbox("./mbox".into()),
            ]
        );
        assert_eq!(parse("", "d").unwrap(), vec![]);
        assert_eq!(parse("#\n", "d").unwrap(), vec![]);
        assert_eq!(parse("& a@b \n", "d").unwrap(), vec![Forward("a@b".into())]);
        for bad in ["&a b@c\n", "&<a@b>\n", "&\n", "a@b (x)\n"] {
            assert!(
                matches!(parse(bad, "d"), Err(LineError::BadForward(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(parse("-x\n", "d"), Err(LineError::Unknown(_))));
        assert!(matches!(parse("~/x\n", "d"), Err(LineError::Unknown(_))));
    }

    #[test]
    fn extension_files() {
        assert_eq!(file_ext("Foo.Bar"), "foo:bar");
        assert_eq!(file_ext(".."), "::");
        assert_eq!(
            candidates("list-rust-dev"),
            vec![
                (".qmail-list-rust-dev".to_owned(), None),
                (
                    ".qmail-list-rust-default".to_owned(),
                    Some("dev".to_owned())
                ),
                (
                    ".qmail-list-default".to_owned(),
                    Some("rust-dev".to_owned())
                ),
                (
                    ".qmail-default".to_owned(),
                    Some("list-rust-dev".to_owned())
                ),
            ]
        );
        assert_eq!(
            candidates("x"),
            vec![
                (".qmail-x".to_owned(), None),
                (".qmail-default".to_owned(), Some("x".to_owned()))
            ]
        );
        assert_eq!(
            ext_parts("a-b-c-d-e"),
            [Some("b-c-d-e"), Some("c-d-e"), Some("d-e")]
        );
        assert_eq!(ext_parts("a"), [None, None, None]);
        assert_eq!(
            host_parts("mx.a.example.org"),
            [Some("mx.a.example"), Some("mx.a"), Some("mx")]
        );
        assert_eq!(host_parts("localhost"), [None, None, None]);
    }
}
