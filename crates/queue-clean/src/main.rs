//! queue-clean: unlink todo/ and mess/ files for dispatch, one command per line on stdin.

use mailorder_core::Exit;
use mailorder_core::exit::{exit, fail};
use mailorder_queue_format::Queue;

fn main() {
    mailorder_core::logger::init("queue-clean", Exit::Temp.code());
    // It never execs a set-id program: no exec may gain privileges from here on.
    mailorder_core::privs::no_new_privs();
    if std::env::args_os().len() > 1 {
        fail(Exit::Perm, "usage: queue-clean (no arguments)");
    }
    let q = Queue::new(mailorder_core::root::queue_dir());
    let stdin = std::io::stdin().lock();
    match mailorder_queue_clean::serve(&q, stdin, std::io::stdout()) {
        Ok(()) => exit(Exit::Ok.code()),
        Err(e) => fail(Exit::Temp, format_args!("{e} (#4.3.0)")),
    }
}
