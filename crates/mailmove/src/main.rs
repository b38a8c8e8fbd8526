//! mailmove: copy mailboxes from an old IMAP server (CONTRACT.md).

use clap::Parser;

fn main() {
    mailorder_core::logger::init("mailmove", mailorder_core::Exit::Temp.code());
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--worker") {
        // The per-user worker: it switches to the mailbox owner before reading anything.
        mailorder_core::exit::exit(mailorder_mailmove::worker(&args))
    }
    let cli = match mailorder_mailmove::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                mailorder_core::Exit::Perm.code()
            } else {
                mailorder_core::Exit::Ok.code()
            };
            let _ = e.print();
            mailorder_core::exit::exit(code)
        }
    };
    mailorder_core::exit::exit(mailorder_mailmove::run(&cli))
}
