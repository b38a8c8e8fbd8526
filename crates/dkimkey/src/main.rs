//! dkimkey: the DKIM signing keys of each domain (see CONTRACT.md).

use clap::Parser as _;

fn main() {
    mailorder_core::logger::init("dkimkey", mailorder_core::Exit::Temp.code());
    // It runs no other program: nothing may gain privileges from here on.
    mailorder_core::privs::no_new_privs();
    // A usage error exits 100 as CONTRACT.md says, not clap's own 2.
    let cli = mailorder_dkimkey::Cli::try_parse().unwrap_or_else(|e| {
        let _ = e.print();
        mailorder_core::exit::args_refused(e.use_stderr())
    });
    let control = mailorder_core::control::Control::default();
    let code = mailorder_dkimkey::run(&cli, control.dir(), &mut std::io::stdout().lock());
    mailorder_core::exit::exit(code)
}
