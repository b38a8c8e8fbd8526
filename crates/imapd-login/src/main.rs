//! imapd-login: the pre-auth IMAP front end (see CONTRACT.md).

use mailorder_core::exit::{exit, fail};

fn main() {
    mailorder_core::logger::init("imapd-login", mailorder_core::Exit::Temp.code());
    // It reads network input: never as root (DESIGN invariant 2).
    mailorder_core::privs::refuse_root("imapd-login");
    // Take tlswrap's descriptors before anything could open a file on those numbers.
    let stls =
        mailorder_login_common::StartTls::from_env(std::env::var("TLSCTLFD").ok().as_deref());
    let argv: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if argv.len() < 2 {
        fail(
            mailorder_core::Exit::Perm,
            "usage: imapd-login CHECKPASSWORD PROG [ARG...]",
        );
    }
    exit(mailorder_imapd_login::serve(argv, stls))
}
