//! imapd: the authenticated IMAP server, run as the user (by checkpassword, or directly
//! for PREAUTH). See CONTRACT.md.

use mailorder_core::{Exit, control::Control, exit};
use std::path::PathBuf;

fn main() {
    mailorder_core::logger::init("imapd", Exit::Temp.code());
    // It reads network input: never as root (DESIGN invariant 2).
    mailorder_core::privs::refuse_root("imapd");
    // It never execs a set-id program: no exec may gain privileges from here on.
    mailorder_core::privs::no_new_privs();
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let Some(maildir) = env("MAILDIR")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join("Maildir")))
    else {
        exit::fail(Exit::Temp, "neither MAILDIR nor HOME is set (#4.3.5)");
    };
    let mut cfg =
        mailorder_imapd::Config::new(maildir, env("USER").unwrap_or_else(|| "unknown".into()));
    cfg.login_tag = env("IMAPLOGINTAG").filter(|t| mailorder_imapd::valid_tag(t));
    cfg.tls = env("TLS").as_deref() == Some("1");
    let control = Control::default();
    let num = |name: &str, default: u64| match control.number(name, default) {
        Ok(v) => v,
        Err(e) => exit::fail(Exit::Temp, e),
    };
    cfg.max_message =
        usize::try_from(num("imapappendlimit", 50 * 1024 * 1024)).unwrap_or(usize::MAX);
    cfg.timeout = std::time::Duration::from_secs(num("timeoutimap", 1800));
    mailorder_imapd::tune_output(
        &std::io::stdout(),
        std::time::Duration::from_secs(num("timeoutimapwrite", 600)),
    );
    match mailorder_imapd::run(&cfg, std::io::stdin(), std::io::stdout()) {
        Ok(()) => exit::exit(Exit::Ok.code()),
        Err(e) => {
            log::warn!("{e} user={}", cfg.user);
            exit::exit(e.class().code());
        }
    }
}
