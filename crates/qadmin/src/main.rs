//! qadmin: look at the queue (CONTRACT.md).

use clap::Parser;

fn main() {
    mailorder_core::logger::init("qadmin", mailorder_core::Exit::Temp.code());
    // It never execs a set-id program: no exec may gain privileges from here on.
    mailorder_core::privs::no_new_privs();
    let cli = match mailorder_qadmin::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            mailorder_core::exit::args_refused(e.use_stderr())
        }
    };
    let queue = mailorder_queue_format::Queue::new(mailorder_core::root::queue_dir());
    let mut out = std::io::stdout().lock();
    let code = mailorder_qadmin::run(&cli.command, &queue, &mut out);
    drop(out);
    mailorder_core::exit::exit(code)
}
