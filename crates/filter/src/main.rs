//! filter: content filter between smtpd and the queue (see CONTRACT.md).

use mailorder_core::control::Control;
use mailorder_core::exit::{exit, fail, queue as code};
use mailorder_filter::Config;
use mailorder_queue_client::Client;

fn main() {
    mailorder_core::logger::init("filter", code::BUG);
    // It reads message content: never as root (DESIGN invariant 2). It runs the set-uid
    // queue, so no no_new_privs here.
    mailorder_core::privs::refuse_root("filter");
    let control = Control::default();
    let cfg = match Config::load(&control) {
        Ok(c) => c,
        Err(e) => fail(code::CONFIG, e),
    };
    let queue = mailorder_core::root::program("queue");
    if std::env::args_os().nth(1).is_some_and(|a| a == "framed") {
        let input = std::io::BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
        let mut q = Client::framed(queue);
        match mailorder_filter::run_framed(&control, &mut q, input, std::io::stdout().lock()) {
            Ok(n) => {
                log::debug!("framed: {n} messages answered");
                exit(code::OK)
            }
            Err(e) => {
                log::warn!("{e}");
                exit(code::READ)
            }
        }
    }
    let Some(fd1) = mailorder_core::sys::take_fd(1) else {
        exit(code::READ)
    };
    let mut q = Client::new(queue);
    exit(mailorder_filter::run_oneshot(
        &cfg,
        &mut q,
        std::io::stdin().lock(),
        std::fs::File::from(fd1),
    ))
}
