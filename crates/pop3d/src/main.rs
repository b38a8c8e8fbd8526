//! pop3d: the authenticated POP3 server (see CONTRACT.md).

use mailorder_core::exit::exit;

fn main() {
    mailorder_core::logger::init("pop3d", mailorder_core::Exit::Temp.code());
    // It reads network input: never as root (DESIGN invariant 2).
    mailorder_core::privs::refuse_root("pop3d");
    // It never execs a set-id program: no exec may gain privileges from here on.
    mailorder_core::privs::no_new_privs();
    let maildir = std::env::var_os("MAILDIR")
        .filter(|m| !m.is_empty())
        .map_or_else(|| std::path::PathBuf::from("./Maildir"), Into::into);
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    exit(mailorder_pop3d::serve(maildir, user))
}
