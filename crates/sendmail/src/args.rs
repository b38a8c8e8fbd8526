//! The sendmail command line (docs/CONVENTIONS.md §9): a hand-written getopt-style parser.
//!
//! Options may be clustered (`-ti`), take their argument attached (`-fuser`, `-oi`,
//! `-FCronDaemon`) or in the next word (`-f user`, `-F "Name"`). `--` ends the options; so
//! does the first word that does not start with `-` (POSIX getopt, no permutation).

use mailorder_smtp_proto::dsn::{self, Notify, Ret};
use std::fmt;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `-bm` (the default): read a message on stdin and queue it.
    Deliver,
    /// `-bs`: SMTP on stdin/stdout (exec smtpd).
    Smtp,
    /// `-bp` or argv[0] `mailq`: list the queue (exec `qadmin list`).
    List,
    /// `-bi` or argv[0] `newaliases`: nothing to rebuild; exit 0.
    NewAliases,
}

/// The parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// What to do.
    pub mode: Mode,
    /// `-t`: take recipients from the header.
    pub extract: bool,
    /// A line with a lone `.` ends the input (cleared by `-i`, `-oi`).
    pub dot_ends: bool,
    /// `-f`/`-r`: the envelope sender; `Some("")` is the null sender.
    pub sender: Option<String>,
    /// `-F`: full name for a generated `From:`.
    pub full_name: Option<String>,
    /// Recipients from the command line, each possibly an address list.
    pub recipients: Vec<String>,
    /// `-N`: DSN `NOTIFY` for every recipient (RFC 3461 §4.1).
    pub notify: Option<Notify>,
    /// `-R`: DSN `RET`.
    pub ret: Option<Ret>,
    /// `-V`: DSN `ENVID`, already xtext-encoded.
    pub envid: Option<String>,
    /// Options that were accepted and ignored, for the debug log.
    pub ignored: Vec<String>,
}

/// A usage error (exit 64).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Option letters that take an argument (attached or in the next word).
const WITH_ARG: &str = "fFrobBNRVCXhLpeAOd";
/// Option letters without an argument that are accepted and ignored.
const IGNORED_FLAGS: &str = "vGUxmnIEJs";

/// Parse `args` (without argv[0]); `argv0` selects the `mailq`/`newaliases` aliases.
pub fn parse(argv0: &str, args: &[String]) -> Result<Options, Usage> {
    let base = argv0.rsplit('/').next().unwrap_or(argv0);
    let mut o = Options {
        mode: match base {
            "mailq" => Mode::List,
            "newaliases" => Mode::NewAliases,
            _ => Mode::Deliver,
        },
        extract: false,
        dot_ends: true,
        sender: None,
        full_name: None,
        recipients: Vec::new(),
        notify: None,
        ret: None,
        envid: None,
        ignored: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let word = &args[i];
        i += 1;
        if word == "--" {
            break;
        }
        let Some(cluster) = word.strip_prefix('-') else {
            i -= 1;
            break;
        };
        if cluster.is_empty() {
            // A lone `-` is an operand, as for getopt.
            i -= 1;
            break;
        }
        for (pos, c) in cluster.char_indices() {
            if c == 'q' {
                // `-q`, `-q1h`, `-qIid`: queue-run requests, optional attached argument.
                o.ignored.push(format!("-{}", &cluster[pos..]));
                break;
            }
            if WITH_ARG.contains(c) {
                let attached = &cluster[pos + c.len_utf8()..];
                let arg = if !attached.is_empty() {
                    attached.to_owned()
                } else if let Some(next) = args.get(i) {
                    i += 1;
                    next.clone()
                } else {
                    return Err(Usage(format!("option -{c} requires an argument")));
                };
                apply_with_arg(&mut o, c, arg)?;
                break;
            }
            match c {
                't' => o.extract = true,
                'i' => o.dot_ends = false,
                c if IGNORED_FLAGS.contains(c) => o.ignored.push(format!("-{c}")),
                c => return Err(Usage(format!("unknown option -{c}"))),
            }
        }
    }
    o.recipients = args[i.min(args.len())..].to_vec();
    Ok(o)
}

fn apply_with_arg(o: &mut Options, c: char, arg: String) -> Result<(), Usage> {
    match c {
        'f' | 'r' => {
            let s = arg.trim();
            let s = s
                .strip_prefix('<')
                .and_then(|s| s.strip_suffix('>'))
                .unwrap_or(s);
            o.sender = Some(s.to_owned());
        }
        'F' => o.full_name = Some(arg),
        'b' => {
            o.mode = match arg.as_str() {
                "m" => Mode::Deliver,
                "s" => Mode::Smtp,
                "p" => Mode::List,
                "i" => Mode::NewAliases,
                "d" | "D" => return Err(Usage("daemon mode (-bd) is not supported".to_owned())),
                other => return Err(Usage(format!("mode -b{other} is not supported"))),
            }
        }
        'o' => {
            if arg == "i" {
                o.dot_ends = false;
            } else {
                // -oem -oee -oep -oeq -oew, -odb -odi -odq -odd, -om, -oA…, -oQ…, others.
                o.ignored.push(format!("-o{arg}"));
            }
        }
        // DSN (RFC 3461), as Sendmail 8: -N never|success,failure,delay, -R full|hdrs,
        // -V envid (plain text; we xtext-encode it).
        'N' => {
            o.notify = Some(Notify::parse(&arg).ok_or_else(|| {
                Usage(format!(
                    "bad -N {arg:?}: never, or a list of success,failure,delay"
                ))
            })?);
        }
        'R' => {
            o.ret = Some(
                Ret::parse(&arg).ok_or_else(|| Usage(format!("bad -R {arg:?}: full or hdrs")))?,
            );
        }
        'V' => {
            let x = dsn::xtext::encode(&arg);
            if !dsn::valid_envid(&x) {
                return Err(Usage(format!(
                    "bad -V {arg:?}: 1 to {} characters once xtext-encoded",
                    dsn::MAX_ENVID
                )));
            }
            o.envid = Some(x);
        }
        // -B body type, -C/-X (never honoured: config and log-file injection), -h hop
        // count, -L tag, -p protocol, -e error mode, -A, -O, -d.
        _ => o.ignored.push(format!("-{c} {arg}")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(argv0: &str, args: &[&str]) -> Result<Options, Usage> {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        parse(argv0, &args)
    }

    fn ok(args: &[&str]) -> Options {
        p("sendmail", args).unwrap()
    }

    #[test]
    fn plain_recipients() {
        let o = ok(&["alice@example.org", "bob"]);
        assert_eq!(o.mode, Mode::Deliver);
        assert!(o.dot_ends && !o.extract);
        assert_eq!(o.recipients, ["alice@example.org", "bob"]);
        assert_eq!(o.sender, None);
    }

    #[test]
    fn real_world_invocations() {
        // cronie
        let o = ok(&[
            "-FCronDaemon",
            "-i",
            "-odi",
            "-oem",
            "-oi",
            "-t",
            "-f",
            "root",
        ]);
        assert_eq!(o.full_name.as_deref(), Some("CronDaemon"));
        assert!(!o.dot_ends && o.extract);
        assert_eq!(o.sender.as_deref(), Some("root"));
        assert!(o.recipients.is_empty());
        // Debian cron
        let o = ok(&["-i", "-FCronDaemon", "-B8BITMIME", "-oem", "user"]);
        assert!(!o.dot_ends && !o.extract);
        assert_eq!(o.recipients, ["user"]);
        // mutt default, and with DSN options and --
        let o = ok(&["-oem", "-oi", "a@b.test"]);
        assert!(!o.dot_ends);
        assert_eq!(o.recipients, ["a@b.test"]);
        let o = ok(&[
            "-oem",
            "-oi",
            "-N",
            "failure,delay",
            "-R",
            "full",
            "-f",
            "me@x.test",
            "--",
            "a@b.test",
            "-c@d.test",
        ]);
        assert_eq!(o.sender.as_deref(), Some("me@x.test"));
        assert_eq!(o.recipients, ["a@b.test", "-c@d.test"]);
        // PHP
        let o = ok(&["-t", "-i"]);
        assert!(o.extract && !o.dot_ends);
        // git send-email, msmtp style
        let o = ok(&["-i", "-f", "me@x.test", "a@b.test"]);
        assert_eq!(o.recipients, ["a@b.test"]);
    }

    #[test]
    fn clusters_and_attached_arguments() {
        let o = ok(&["-tif", "me@x.test"]);
        assert!(o.extract && !o.dot_ends);
        assert_eq!(o.sender.as_deref(), Some("me@x.test"));
        let o = ok(&["-tifme@x.test"]);
        assert_eq!(o.sender.as_deref(), Some("me@x.test"));
        let o = ok(&["-F", "Full Name", "-fme@x.test", "x@y.test"]);
        assert_eq!(o.full_name.as_deref(), Some("Full Name"));
        let o = ok(&["-r", "old@x.test"]);
        assert_eq!(o.sender.as_deref(), Some("old@x.test"));
        assert_eq!(
            p("sendmail", &["-f"]),
            Err(Usage("option -f requires an argument".into()))
        );
    }

    #[test]
    fn null_sender() {
        assert_eq!(ok(&["-f", ""]).sender.as_deref(), Some(""));
        assert_eq!(ok(&["-f", "<>"]).sender.as_deref(), Some(""));
        assert_eq!(ok(&["-f<>"]).sender.as_deref(), Some(""));
        assert_eq!(
            ok(&["-f", "<a@b.test>"]).sender.as_deref(),
            Some("a@b.test")
        );
    }

    #[test]
    fn modes_and_aliases() {
        assert_eq!(ok(&["-bs"]).mode, Mode::Smtp);
        assert_eq!(ok(&["-b", "s"]).mode, Mode::Smtp);
        assert_eq!(ok(&["-bp"]).mode, Mode::List);
        assert_eq!(ok(&["-bi"]).mode, Mode::NewAliases);
        assert_eq!(ok(&["-bm", "a@b.test"]).mode, Mode::Deliver);
        assert_eq!(p("/usr/bin/mailq", &[]).unwrap().mode, Mode::List);
        assert_eq!(p("newaliases", &[]).unwrap().mode, Mode::NewAliases);
        assert!(p("sendmail", &["-bd"]).is_err());
        assert!(p("sendmail", &["-bD"]).is_err());
        assert!(p("sendmail", &["-bt"]).is_err());
    }

    #[test]
    fn ignored_options() {
        let o = ok(&[
            "-oem",
            "-oee",
            "-oep",
            "-oeq",
            "-oew",
            "-odb",
            "-odi",
            "-odq",
            "-odd",
            "-om",
            "-oAfile",
            "-oQ/tmp",
            "-O",
            "a=b",
            "-B",
            "7BIT",
            "-v",
            "-h",
            "5",
            "-L",
            "tag",
            "-G",
            "-U",
            "-x",
            "-m",
            "-n",
            "-A",
            "c",
            "-em",
            "-p",
            "smtp",
            "-q",
            "-q1h",
            "-I",
            "-C",
            "/etc/evil.cf",
            "-X",
            "/tmp/log",
            "rcpt",
        ]);
        assert_eq!(o.recipients, ["rcpt"]);
        assert!(o.dot_ends);
        assert!(o.ignored.contains(&"-C /etc/evil.cf".to_owned()));
        assert!(o.ignored.contains(&"-X /tmp/log".to_owned()));
    }

    #[test]
    fn options_end_at_first_operand_or_double_dash() {
        let o = ok(&["a@b.test", "-t"]);
        assert!(!o.extract);
        assert_eq!(o.recipients, ["a@b.test", "-t"]);
        let o = ok(&["-t", "--", "-i"]);
        assert!(o.dot_ends);
        assert_eq!(o.recipients, ["-i"]);
        let o = ok(&["-", "x"]);
        assert_eq!(o.recipients, ["-", "x"]);
    }

    #[test]
    fn dsn_options() {
        let o = ok(&[
            "-N",
            "success,DELAY",
            "-Rhdrs",
            "-V",
            "id 1+x=y",
            "a@b.test",
        ]);
        assert_eq!(
            o.notify,
            Some(Notify {
                success: true,
                failure: false,
                delay: true
            })
        );
        assert_eq!(o.ret, Some(Ret::Hdrs));
        assert_eq!(o.envid.as_deref(), Some("id+201+2Bx+3Dy"));
        assert_eq!(o.recipients, ["a@b.test"]);
        assert!(o.ignored.is_empty());
        let o = ok(&["-Nnever", "-R", "FULL"]);
        assert_eq!(o.notify, Some(Notify::default()));
        assert_eq!(o.ret, Some(Ret::Full));
        let o = ok(&["a@b.test"]);
        assert_eq!((o.notify, o.ret, o.envid), (None, None, None));
        assert!(ok(&["-V", &"v".repeat(100)]).envid.is_some());
        for bad in [
            &["-N", "sometimes"][..],
            &["-N", "never,success"],
            &["-N", ""],
            &["-R", "all"],
            &["-V", ""],
            &["-V", &"v".repeat(101)],
            &["-V", &"+".repeat(34)],
        ] {
            assert!(p("sendmail", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_options_are_usage_errors() {
        assert!(p("sendmail", &["-k"]).is_err());
        assert!(p("sendmail", &["-tk"]).is_err());
        assert!(p("sendmail", &["-Z"]).is_err());
    }
}
