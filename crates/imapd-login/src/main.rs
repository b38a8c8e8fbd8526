//! imapd-login: the pre-auth IMAP front end (see CONTRACT.md).

fn main() {
    let (argv, stls) = mailorder_login_common::start("imapd-login");
    mailorder_core::exit::exit(mailorder_imapd_login::serve(argv, stls))
}
