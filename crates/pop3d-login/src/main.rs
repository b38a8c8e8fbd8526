//! pop3d-login: the pre-auth POP3 front end (see CONTRACT.md).

fn main() {
    let (argv, stls) = mailorder_login_common::start("pop3d-login");
    mailorder_core::exit::exit(mailorder_pop3d_login::serve(argv, stls))
}
