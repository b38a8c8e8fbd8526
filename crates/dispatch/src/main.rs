//! dispatch: the scheduler, in the foreground under supervise, logging to stderr.

use mailorder_core::Exit;
use mailorder_core::exit::exit;

fn main() {
    mailorder_core::logger::init("dispatch", Exit::Temp.code());
    // It reads message content (bounces, DSN reports) and what local users queue: never
    // as root (DESIGN invariant 2; issue #10 item 1). deliver-as holds the one uid switch.
    mailorder_core::privs::refuse_root("dispatch");
    if std::env::args_os().len() > 1 {
        log::error!("usage: dispatch (no arguments)");
        exit(Exit::Perm.code());
    }
    let res = mailorder_dispatch::catch_signals()
        .and_then(|set| mailorder_dispatch::Dispatch::new()?.run(set));
    match res {
        Ok(()) => exit(Exit::Ok.code()),
        Err(e) => {
            log::error!("{e}");
            exit(e.class().code())
        }
    }
}
