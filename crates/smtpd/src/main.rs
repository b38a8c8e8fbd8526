//! smtpd: ESMTP receiver on fd 0/1 (see CONTRACT.md).

use mailorder_core::control::Control;
use mailorder_core::exit::exit;
use mailorder_core::ucspi::Peer;
use mailorder_smtpd::{Config, FdReader, FdWriter};

fn main() {
    mailorder_core::logger::init("smtpd", mailorder_core::Exit::Temp.code());
    // It reads network input, pooled or not: never as root (DESIGN invariant 2).
    mailorder_core::privs::refuse_root("smtpd");
    // Under `listen -p`: a pooled process, connections come over the hand-off socket.
    if let Some(fd) = std::env::var(mailorder_core::handoff::POOL_FD_VAR)
        .ok()
        .and_then(|v| v.parse().ok())
        && let Some(sock) = mailorder_core::sys::take_fd(fd)
    {
        exit(mailorder_smtpd::pool::serve(sock));
    }
    let env = |k: &str| std::env::var(k).ok();
    let peer = Peer::from_process();
    // Replies are written whole (a multi-line one in one write); Nagle would only hold
    // a reply behind the client's delayed ACK (issue #12).
    mailorder_core::fdio::tcp_nodelay(&std::io::stdout());
    let cfg = match Config::load(&Control::default(), &env, peer) {
        Ok(c) => c,
        Err(e) => exit(mailorder_smtpd::refuse(
            FdWriter::new(std::io::stdout(), mailorder_smtpd::config::DEFAULT_TIMEOUT),
            &e,
        )),
    };
    let reader =
        FdReader::buffered(std::io::stdin(), cfg.timeout).with_deadline(cfg.deadline.clone());
    let writer = FdWriter::new(std::io::stdout(), cfg.timeout);
    exit(mailorder_smtpd::run(cfg, reader, writer))
}
