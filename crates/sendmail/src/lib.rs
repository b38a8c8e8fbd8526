//! sendmail: the sendmail-compatible command line (docs/CONVENTIONS.md §9) in front of `queue`.
//!
//! - [`args`]: the hand-written getopt-style parser;
//! - [`message`]: stdin handling (CRLF → LF, lone-dot rule, header section, address lists);
//! - [`prepare`]: envelope and the header lines sendmail adds (`From:`, `Date:`,
//!   `Message-ID:`), with `Bcc:` removed;
//! - [`run`]: the program: `-bs` execs smtpd, `-bp` execs `qadmin list`, `-bi` does
//!   nothing, otherwise the message goes to `queue` (message on its fd 0, text0 envelope
//!   on its fd 1).
//!
//! Exit codes are sysexits(3) (`mailorder_core::exit::sysexits`).

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::exit::sysexits::USAGE,
    mailorder_core::exit::sysexits::DATAERR,
    mailorder_core::exit::sysexits::IOERR,
    mailorder_core::exit::sysexits::TEMPFAIL,
];

pub mod args;
pub mod message;

use mailorder_core::control::{Control, ControlError};
use mailorder_core::exit::sysexits;
use mailorder_queue_format::envelope::{Envelope, RcptDsn, encode, valid_address};
use message::{Header, InputError, Lines};
use std::io::{self, BufRead, Write};
use std::process::Command;

/// Why sendmail failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Bad command line.
    #[error("usage: {0}")]
    Usage(args::Usage),
    /// Reading the message or writing it to the queue failed, or it is malformed.
    #[error(transparent)]
    Input(#[from] InputError),
    /// No recipient in argv (nor in the header with `-t`).
    #[error("no recipients (#5.1.3)")]
    NoRecipients,
    /// A recipient or sender that cannot be put in an envelope.
    #[error("bad address {0:?} (#5.1.3)")]
    BadAddress(String),
    /// A control file is unreadable.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// smtpd or qadmin (for `-bs`, `-bp`) could not be run.
    #[error("cannot run {prog}: {source} (#4.3.0)")]
    Spawn {
        /// The program.
        prog: String,
        /// Why.
        source: io::Error,
    },
    /// The queue refused the message, failed, or could not be run (mailorder-queue-client's
    /// one rule and exit-code table).
    #[error("queue: {0}")]
    Queue(#[from] mailorder_queue_client::QueueError),
}

impl SendError {
    /// The sysexits code.
    pub fn code(&self) -> u8 {
        match self {
            SendError::Usage(_) => sysexits::USAGE,
            SendError::Input(InputError::Read(_)) => sysexits::IOERR,
            SendError::Input(InputError::Write(_)) => sysexits::TEMPFAIL,
            SendError::Input(InputError::HeaderTooLarge) => sysexits::DATAERR,
            SendError::NoRecipients | SendError::BadAddress(_) => sysexits::DATAERR,
            SendError::Control(_) | SendError::Spawn { .. } => sysexits::TEMPFAIL,
            SendError::Queue(e) if e.is_permanent() => sysexits::DATAERR,
            SendError::Queue(_) => sysexits::TEMPFAIL,
        }
    }

    /// The delivery-style class: data errors and usage are permanent, the rest temporary.
    pub fn class(&self) -> mailorder_core::Exit {
        match self.code() {
            sysexits::USAGE | sysexits::DATAERR => mailorder_core::Exit::Perm,
            _ => mailorder_core::Exit::Temp,
        }
    }
}

/// Facts about the local system that the message needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// `control/me`, else the host name: the right side of `Message-ID:`.
    pub me: String,
    /// `control/defaultdomain`, else `me`: qualifies bare names.
    pub default_domain: String,
    /// The caller's login name: the default sender's local part.
    pub login: String,
    /// Now, unix seconds.
    pub now: u64,
    /// Microseconds within the second, for `Message-ID:`.
    pub micros: u32,
    /// Our pid, for `Message-ID:`.
    pub pid: u32,
}

impl Context {
    /// Read the control files and the caller's identity. `env` reads environment variables.
    pub fn load(
        control: &Control,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Context, SendError> {
        let me = control.me()?;
        let default_domain = control.line("defaultdomain")?.unwrap_or_else(|| me.clone());
        let passwd_name = || {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.name)
        };
        let login = env("USER")
            .filter(|l| safe_login(l))
            .or_else(|| env("LOGNAME").filter(|l| safe_login(l)))
            .or_else(|| passwd_name().filter(|l| safe_login(l)))
            .unwrap_or_else(|| format!("uid{}", nix::unistd::getuid()));
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Context {
            me,
            default_domain,
            login,
            now: t.as_secs(),
            micros: t.subsec_micros(),
            pid: std::process::id(),
        })
    }

    /// `addr` with `@default_domain` added when it has no `@`.
    pub fn qualify(&self, addr: &str) -> String {
        if addr.contains('@') {
            addr.to_owned()
        } else {
            format!("{addr}@{}", self.default_domain)
        }
    }
}

/// A login name usable as a local part: letters, digits and `._-+=`.
fn safe_login(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 64
        && l.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '='))
}

/// The envelope sender: `-f` (qualified unless null), else `login@defaultdomain`.
pub fn sender(opts: &args::Options, ctx: &Context) -> Result<String, SendError> {
    let s = match &opts.sender {
        Some(s) if s.is_empty() => String::new(),
        Some(s) => ctx.qualify(s),
        None => format!("{}@{}", ctx.login, ctx.default_domain),
    };
    if !valid_address(&s) || s.contains(char::is_whitespace) {
        return Err(SendError::BadAddress(s));
    }
    Ok(s)
}

/// The recipients: argv's (each an address list), plus with `-t` those of `Resent-To:`,
/// `Resent-Cc:`, `Resent-Bcc:` when any `Resent-` recipient field exists, else `To:`, `Cc:`,
/// `Bcc:`. Bare names are qualified; duplicates are dropped (first one kept).
pub fn recipients(
    opts: &args::Options,
    header: &Header,
    ctx: &Context,
) -> Result<Vec<String>, SendError> {
    let mut lists: Vec<String> = opts.recipients.clone();
    if opts.extract {
        let resent = header
            .fields
            .iter()
            .any(|f| f.is("Resent-To") || f.is("Resent-Cc") || f.is("Resent-Bcc"));
        let names: &[&str] = if resent {
            &["Resent-To", "Resent-Cc", "Resent-Bcc"]
        } else {
            &["To", "Cc", "Bcc"]
        };
        lists.extend(
            header
                .fields
                .iter()
                .filter(|f| names.iter().any(|n| f.is(n)))
                .map(message::Field::value),
        );
    }
    let mut out: Vec<String> = Vec::new();
    for list in &lists {
        for a in message::addresses(list) {
            let a = ctx.qualify(&a);
            if !valid_address(&a) || a.starts_with('@') || a.ends_with('@') {
                return Err(SendError::BadAddress(a));
            }
            if !out.iter().any(|o| o.eq_ignore_ascii_case(&a)) {
                out.push(a);
            }
        }
    }
    if out.is_empty() {
        return Err(SendError::NoRecipients);
    }
    Ok(out)
}

/// A full name safe inside a header: no control characters; quoted when it holds specials.
fn display_name(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    if clean.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                ' ' | '!'
                    | '#'
                    | '$'
                    | '%'
                    | '&'
                    | '\''
                    | '*'
                    | '+'
                    | '-'
                    | '/'
                    | '='
                    | '?'
                    | '^'
                    | '_'
                    | '`'
                    | '{'
                    | '|'
                    | '}'
                    | '~'
            )
    }) {
        clean.to_owned()
    } else {
        let escaped: String = clean
            .chars()
            .flat_map(|c| match c {
                '"' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        format!("\"{escaped}\"")
    }
}

/// The header section to queue: the original fields without `Bcc:`/`Resent-Bcc:`, then
/// `From:`, `Date:` and `Message-ID:` where missing, then the empty separator line (and
/// the first body line when the input had no separator).
pub fn prepare(opts: &args::Options, header: &Header, sender: &str, ctx: &Context) -> Vec<u8> {
    let mut out = Vec::new();
    for f in &header.fields {
        if f.is("Bcc") || f.is("Resent-Bcc") {
            continue;
        }
        out.extend_from_slice(&f.raw);
    }
    if !header.has("From") {
        let addr = if sender.is_empty() {
            format!("{}@{}", ctx.login, ctx.default_domain)
        } else {
            sender.to_owned()
        };
        match opts.full_name.as_deref().map(display_name) {
            Some(name) if !name.is_empty() => {
                out.extend_from_slice(format!("From: {name} <{addr}>\n").as_bytes());
            }
            _ => out.extend_from_slice(format!("From: {addr}\n").as_bytes()),
        }
    }
    if !header.has("Date") {
        let date = mailorder_queue_format::date::rfc5322(ctx.now);
        out.extend_from_slice(format!("Date: {date}\n").as_bytes());
    }
    if !header.has("Message-ID") {
        out.extend_from_slice(
            format!(
                "Message-ID: <{}.{:06}.{}@{}>\n",
                ctx.now, ctx.micros, ctx.pid, ctx.me
            )
            .as_bytes(),
        );
    }
    out.push(b'\n');
    if let Some(line) = &header.first_body_line {
        out.extend_from_slice(line);
    }
    out
}

/// Read the message from `input` and hand it with its envelope to the program `queue`.
/// Returns the envelope that was queued.
pub fn submit<R: BufRead>(
    opts: &args::Options,
    ctx: &Context,
    input: R,
    queue: &std::path::Path,
) -> Result<Envelope, SendError> {
    let mut lines = Lines::new(input, opts.dot_ends);
    let header = message::read_header(&mut lines)?;
    let env = Envelope {
        sender: sender(opts, ctx)?,
        recipients: recipients(opts, &header, ctx)?,
        ret: opts.ret,
        envid: opts.envid.clone(),
        dsn: Vec::new(),
    };
    // `-N` applies to every recipient (`-t` ones included).
    let env = match opts.notify {
        Some(n) => Envelope {
            dsn: vec![
                RcptDsn {
                    notify: Some(n),
                    orcpt: None
                };
                env.recipients.len()
            ],
            ..env
        },
        None => env,
    };
    let head = prepare(opts, &header, &env.sender, ctx);
    let mut client = mailorder_queue_client::Client::new(queue);
    let mut sub = client.start()?;
    // The submission never fails a write (it remembers it for the verdict), so an error
    // here is a read error: abort, nothing is queued.
    let mut w = io::BufWriter::new(&mut sub);
    let read = w
        .write_all(&head)
        .map_err(InputError::Write)
        .and_then(|()| message::copy_body(&mut lines, &mut w))
        .and_then(|_| w.flush().map_err(InputError::Write));
    drop(w);
    if let Err(e) = read {
        client.abort(sub);
        return Err(e.into());
    }
    client.commit(sub, &encode(&env))?;
    Ok(env)
}

/// Exec `prog` (for `-bs`/`-bp`); returns only on failure.
fn exec(mut cmd: Command) -> SendError {
    use std::os::unix::process::CommandExt;
    let prog = cmd.get_program().to_string_lossy().into_owned();
    let source = cmd.exec();
    SendError::Spawn { prog, source }
}

/// The command for `-bs`: smtpd with the local environment qmail's sendmail sets.
pub fn smtp_command(env: impl Fn(&str) -> Option<String>) -> Command {
    let mut cmd = Command::new(mailorder_core::root::program("smtpd"));
    cmd.env_clear()
        .env("PROTO", "TCP")
        .env("TCPREMOTEIP", "127.0.0.1")
        .env("TCPREMOTEINFO", "sendmail-bs")
        .env("RELAYCLIENT", "");
    for k in ["MAILORDER_ROOT", "MAILORDER_BIN_DIR", "MAILORDER_LOG"] {
        if let Some(v) = env(k) {
            cmd.env(k, v);
        }
    }
    cmd
}

/// The whole program. `args` excludes argv[0].
pub fn run(argv0: &str, args: &[String]) -> u8 {
    match run_inner(argv0, args) {
        Ok(()) => mailorder_core::Exit::Ok.code(),
        Err(e) => {
            match &e {
                SendError::Usage(_) => {
                    log::error!("{e}");
                    log::error!(
                        "usage: sendmail [-t] [-i] [-f sender] [-F name] [-N dsn] [-R ret] [-V envid] [-bm|-bs|-bp|-bi] [--] [recipient ...]"
                    );
                }
                _ => log::error!("{e}"),
            }
            e.code()
        }
    }
}

fn run_inner(argv0: &str, args: &[String]) -> Result<(), SendError> {
    let opts = args::parse(argv0, args).map_err(SendError::Usage)?;
    if !opts.ignored.is_empty() {
        log::debug!("ignored options: {}", opts.ignored.join(" "));
    }
    let env = |k: &str| std::env::var(k).ok();
    match opts.mode {
        args::Mode::NewAliases => Ok(()),
        args::Mode::Smtp => Err(exec(smtp_command(env))),
        args::Mode::List => {
            let mut cmd = Command::new(mailorder_core::root::program("qadmin"));
            cmd.arg("list");
            Err(exec(cmd))
        }
        args::Mode::Deliver => {
            let control = Control::default();
            let ctx = Context::load(&control, env)?;
            let stdin = io::stdin().lock();
            // With the content filter on (control/filter, as smtpd reads it), local mail
            // goes through it too: its one-shot form is a qmail-queue program, and it
            // DKIM-signs mail from the local domains (issue 13).
            let filter = control
                .line("filter")
                .map_err(SendError::from)?
                .is_some_and(|v| v != "0");
            let queue = mailorder_core::root::program(if filter { "filter" } else { "queue" });
            let e = submit(&opts, &ctx, stdin, &queue)?;
            let by_f = if opts.sender.is_some() {
                " set-by=-f"
            } else {
                ""
            };
            log::info!(
                "queued sender=<{}>{by_f} uid={} rcpts={}",
                e.sender,
                nix::unistd::getuid(),
                e.recipients.len()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        Context {
            me: "mx.example.org".into(),
            default_domain: "example.org".into(),
            login: "joe".into(),
            now: 0,
            micros: 42,
            pid: 7,
        }
    }

    fn opts(a: &[&str]) -> args::Options {
        let a: Vec<String> = a.iter().map(|s| (*s).to_owned()).collect();
        args::parse("sendmail", &a).unwrap()
    }

    fn header(text: &[u8]) -> Header {
        message::read_header(&mut Lines::new(text, true)).unwrap()
    }

    #[test]
    fn default_and_explicit_senders() {
        let c = ctx();
        assert_eq!(sender(&opts(&["x"]), &c).unwrap(), "joe@example.org");
        assert_eq!(
            sender(&opts(&["-f", "root", "x"]), &c).unwrap(),
            "root@example.org"
        );
        assert_eq!(
            sender(&opts(&["-f", "a@b.test", "x"]), &c).unwrap(),
            "a@b.test"
        );
        assert_eq!(sender(&opts(&["-f", "<>", "x"]), &c).unwrap(), "");
        assert!(sender(&opts(&["-f", "a b@c", "x"]), &c).is_err());
        assert!(sender(&opts(&["-f", "a\nb@c", "x"]), &c).is_err());
    }

    #[test]
    fn recipients_from_argv_and_header() {
        let c = ctx();
        let h = header(b"To: A <a@x.test>, b\nCc: c@x.test\nBcc: secret@x.test\nSubject: s\n\n");
        let r = |a: &[&str]| recipients(&opts(a), &h, &c);
        assert_eq!(
            r(&["root", "z@y.test, w@y.test"]).unwrap(),
            ["root@example.org", "z@y.test", "w@y.test"]
        );
        // -t: header recipients, argv recipients added (Postfix behaviour).
        assert_eq!(
            r(&["-t"]).unwrap(),
            ["a@x.test", "b@example.org", "c@x.test", "secret@x.test"]
        );
        assert_eq!(
            r(&["-t", "extra@y.test", "A@x.test"]).unwrap(),
            [
                "extra@y.test",
                "A@x.test",
                "b@example.org",
                "c@x.test",
                "secret@x.test"
            ]
        );
        assert!(matches!(r(&[]), Err(SendError::NoRecipients)));
        let empty = header(b"Subject: none\n\n");
        assert!(matches!(
            recipients(&opts(&["-t"]), &empty, &c),
            Err(SendError::NoRecipients)
        ));
        assert_eq!(SendError::NoRecipients.code(), 65);
    }

    #[test]
    fn resent_headers_win_with_t() {
        let c = ctx();
        let h = header(b"To: orig@x.test\nResent-To: new@x.test\nResent-Bcc: hidden@x.test\n\n");
        assert_eq!(
            recipients(&opts(&["-t"]), &h, &c).unwrap(),
            ["new@x.test", "hidden@x.test"]
        );
    }

    #[test]
    fn prepared_header() {
        let c = ctx();
        let h = header(b"To: a@x.test\nBcc: secret@x.test\n  folded@x.test\nSubject: hi\n\n");
        let out = prepare(&opts(&["-t"]), &h, "joe@example.org", &c);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "To: a@x.test\nSubject: hi\nFrom: joe@example.org\nDate: Thu, 1 Jan 1970 00:00:00 +0000\nMessage-ID: <0.000042.7@mx.example.org>\n\n"
        );
        let h = header(b"From: me@x.test\nDate: yesterday\nMessage-ID: <x@y>\n\n");
        let out = prepare(&opts(&["-t"]), &h, "", &c);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "From: me@x.test\nDate: yesterday\nMessage-ID: <x@y>\n\n"
        );
    }

    #[test]
    fn generated_from_with_full_name() {
        let c = ctx();
        let h = header(b"To: a@x.test\n\n");
        let from = |a: &[&str], s: &str| {
            let out = String::from_utf8(prepare(&opts(a), &h, s, &c)).unwrap();
            out.lines()
                .find(|l| l.starts_with("From:"))
                .unwrap()
                .to_owned()
        };
        assert_eq!(
            from(&["-FCronDaemon"], "root@example.org"),
            "From: CronDaemon <root@example.org>"
        );
        assert_eq!(
            from(&["-F", "Doe, John"], "j@x.test"),
            "From: \"Doe, John\" <j@x.test>"
        );
        assert_eq!(
            from(&["-F", "Evil\r\nBcc: x@y"], "j@x.test"),
            "From: \"EvilBcc: x@y\" <j@x.test>"
        );
        assert_eq!(
            from(&["-F", "a\"b"], "j@x.test"),
            "From: \"a\\\"b\" <j@x.test>"
        );
        assert_eq!(from(&[], ""), "From: joe@example.org");
    }

    #[test]
    fn header_without_separator_keeps_the_first_body_line() {
        let c = ctx();
        let h = header(b"Subject: x\nthis is body\n");
        let out = String::from_utf8(prepare(&opts(&["a@b"]), &h, "s@x", &c)).unwrap();
        assert!(out.starts_with("Subject: x\nFrom: s@x\n"));
        assert!(out.ends_with(">\n\nthis is body\n"));
    }

    #[test]
    fn qualify_and_logins() {
        let c = ctx();
        assert_eq!(c.qualify("x"), "x@example.org");
        assert_eq!(c.qualify("x@y"), "x@y");
        assert!(safe_login("joe.doe-1"));
        assert!(!safe_login("joe doe"));
        assert!(!safe_login("a@b"));
        assert!(!safe_login(""));
    }

    #[test]
    fn context_from_control_files() {
        let d = tempfile::tempdir().unwrap();
        let control = Control::new(d.path());
        let env = |k: &str| (k == "USER").then(|| "alice".to_owned());
        let c = Context::load(&control, env).unwrap();
        assert_eq!(c.login, "alice");
        assert_eq!(c.default_domain, c.me);
        std::fs::write(d.path().join("me"), "mx.example.org\n").unwrap();
        let c = Context::load(&control, env).unwrap();
        assert_eq!(
            (c.me.as_str(), c.default_domain.as_str()),
            ("mx.example.org", "mx.example.org")
        );
        std::fs::write(d.path().join("defaultdomain"), "example.org\n").unwrap();
        let c = Context::load(&control, |_: &str| Some("bad user".to_owned())).unwrap();
        assert_eq!(c.default_domain, "example.org");
        assert_ne!(c.login, "bad user");
    }

    /// A fake queue: a shell script that saves fd 0 and fd 1 and exits with `code`.
    fn fake_queue(dir: &std::path::Path, code: u8) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("queue");
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\ncat > {0}/mess\ncat <&1 > {0}/env\nexit {code}\n",
                dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn submit_writes_message_then_envelope() {
        let d = tempfile::tempdir().unwrap();
        let q = fake_queue(d.path(), 0);
        let input = &b"To: a@x.test\r\nBcc: b@x.test\r\n\r\nhello\r\n.\r\nnot this\r\n"[..];
        let env = submit(&opts(&["-t", "-f", "me@x.test"]), &ctx(), input, &q).unwrap();
        assert_eq!(env.recipients, ["a@x.test", "b@x.test"]);
        let mess = std::fs::read_to_string(d.path().join("mess")).unwrap();
        assert!(
            mess.starts_with("To: a@x.test\nFrom: me@x.test\nDate: "),
            "{mess}"
        );
        assert!(mess.ends_with("\n\nhello\n"), "{mess}");
        assert!(!mess.contains("Bcc") && !mess.contains('\r'));
        let env = std::fs::read(d.path().join("env")).unwrap();
        assert_eq!(env, b"Fme@x.test\0Ta@x.test\0Tb@x.test\0\0");
    }

    #[test]
    fn submit_passes_dsn_options() {
        let d = tempfile::tempdir().unwrap();
        let q = fake_queue(d.path(), 0);
        let input = &b"To: a@x.test\n\nhello\n"[..];
        let o = opts(&[
            "-t",
            "-f",
            "me@x.test",
            "-N",
            "success,failure",
            "-R",
            "hdrs",
        ]);
        let o = args::Options {
            recipients: vec!["c@x.test".into()],
            ..o
        };
        submit(&o, &ctx(), input, &q).unwrap();
        let env = std::fs::read(d.path().join("env")).unwrap();
        assert_eq!(
            env,
            b"Fme@x.test\0ERET=HDRS\0Tc@x.test\0NNOTIFY=SUCCESS,FAILURE\0\
              Ta@x.test\0NNOTIFY=SUCCESS,FAILURE\0\0"
        );
        submit(&opts(&["-V", "my id", "b@x.test"]), &ctx(), input, &q).unwrap();
        let env = std::fs::read(d.path().join("env")).unwrap();
        assert_eq!(env, b"Fjoe@example.org\0EENVID=my+20id\0Tb@x.test\0\0");
    }

    #[test]
    fn queue_failures_map_to_sysexits() {
        let d = tempfile::tempdir().unwrap();
        for (code, want) in [(53u8, 75u8), (31, 65), (11, 65), (81, 75)] {
            let q = fake_queue(d.path(), code);
            let e = submit(&opts(&["a@x.test"]), &ctx(), &b"hi\n"[..], &q).unwrap_err();
            assert_eq!(e.code(), want, "queue exit {code}");
        }
        let e = submit(
            &opts(&["a@x.test"]),
            &ctx(),
            &b"hi\n"[..],
            &d.path().join("none"),
        )
        .unwrap_err();
        assert_eq!(e.code(), 75);
    }
}
