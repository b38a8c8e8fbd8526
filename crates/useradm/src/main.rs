//! useradm: user administration for the file and LDAP directories (CONTRACT.md).

use clap::Parser as _;

fn main() {
    mailorder_core::logger::init("useradm", mailorder_core::Exit::Temp.code());
    // It never execs a set-id program: no exec may gain privileges from here on.
    mailorder_core::privs::no_new_privs();
    let cli = match mailorder_useradm::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            mailorder_core::exit::args_refused(e.use_stderr())
        }
    };
    let root = mailorder_core::root::root();
    let mut out = std::io::stdout().lock();
    let mut input = std::io::stdin().lock();
    let code = mailorder_useradm::run(&cli, &root, &mut input, &mut out);
    mailorder_core::exit::exit(code)
}
