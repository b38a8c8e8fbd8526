//! mailmove: copy mailboxes from an old IMAP server (CONTRACT.md).

use clap::Parser;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let worker = args.first().is_some_and(|a| a == "--worker");
    // A worker's fd 3 may be the text report (the job says): taken before anything opens.
    let report = if worker {
        mailorder_core::sys::take_fd(3)
    } else {
        None
    };
    mailorder_core::logger::init("mailmove", mailorder_core::Exit::Temp.code());
    if worker {
        // The per-user worker: it switches to the mailbox owner before reading anything.
        mailorder_core::exit::exit(mailorder_mailmove::worker(&args, report))
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
