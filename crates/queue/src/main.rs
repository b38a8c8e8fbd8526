//! queue: qmail-queue's contract. Message on fd 0, envelope on fd 1; exit code only.

use mailorder_core::exit::{exit, queue as code};
use mailorder_queue::{Config, Fd1, run, run_framed};

fn main() {
    mailorder_core::logger::init("queue", code::BUG);
    // It never execs a set-id program: no exec may gain privileges from here on.
    mailorder_core::privs::no_new_privs();
    // Files are created 0640 whatever the caller's umask.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o027));
    let cfg = match Config::from_system(|| -> ! { exit(code::TIMEOUT) }) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            exit(e.code())
        }
    };
    // `queue framed`: many messages over fd 0 (frames) and fd 1 (one answer each).
    if std::env::args_os().nth(1).is_some_and(|a| a == "framed") {
        let input = std::io::BufReader::with_capacity(64 * 1024, std::io::stdin().lock());
        match run_framed(&cfg, input, std::io::stdout().lock()) {
            Ok(n) => {
                log::debug!("framed: {n} messages queued");
                exit(code::OK)
            }
            Err(e) => {
                log::warn!("{e}");
                exit(code::READ)
            }
        }
    }
    match run(&cfg, std::io::stdin().lock(), Fd1) {
        Ok(id) => {
            log::debug!("queued id={id} uid={}", cfg.uid);
            exit(code::OK)
        }
        Err(e) => {
            log::warn!("not queued: {e} code={}", e.code());
            exit(e.code())
        }
    }
}
