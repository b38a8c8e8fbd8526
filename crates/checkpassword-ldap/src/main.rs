//! checkpassword-ldap: the checkpassword interface over the LDAP directory (CONTRACT.md).

fn main() {
    mailorder_core::logger::init("checkpassword-ldap", mailorder_core::Exit::Temp.code());
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let env = mailorder_checkpassword_ldap::Env::from_process();
    mailorder_core::exit::exit(mailorder_checkpassword_ldap::run(&args, &env))
}
