//! dkimkey: the DKIM signing keys of each domain (see CONTRACT.md).

use clap::Parser as _;

fn main() {
    mailorder_core::logger::init("dkimkey", mailorder_core::Exit::Temp.code());
    // It runs no other program: nothing may gain privileges from here on.
    mailorder_core::privs::no_new_privs();
    let cli = mailorder_dkimkey::Cli::parse();
    let control = mailorder_core::control::Control::default();
    let code = mailorder_dkimkey::run(&cli, control.dir(), &mut std::io::stdout().lock());
    mailorder_core::exit::exit(code)
}
