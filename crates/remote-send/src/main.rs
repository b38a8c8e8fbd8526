//! remote-send [-R RET] [-V ENVID] DOMAIN SENDER [[-N NOTIFY] [-O ORCPT] RCPT]…
//! [+ [-R RET] [-V ENVID] SENDER [[-N NOTIFY] [-O ORCPT] RCPT]…]…: deliver the message on
//! fd 0, or the framed messages (CONTRACT.md).

use mailorder_core::Exit;
use mailorder_core::exit::{exit, fail};

fn main() {
    mailorder_core::logger::init("remote-send", Exit::Temp.code());
    // It reads network input: never as root (DESIGN invariant 2).
    mailorder_core::privs::refuse_root("remote-send");
    // It never execs a set-id program: no exec may gain privileges from here on.
    mailorder_core::privs::no_new_privs();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let batch = match mailorder_remote_send::Batch::parse(&args) {
        Ok(b) => b,
        Err(e) => {
            let usage = "usage: remote-send [-R FULL|HDRS] [-V ENVID] DOMAIN SENDER [[-N NOTIFY] [-O ORCPT] RCPT]... [+ [-R FULL|HDRS] [-V ENVID] SENDER [[-N NOTIFY] [-O ORCPT] RCPT]...]...";
            fail(Exit::Perm, format_args!("{e}; {usage}"));
        }
    };
    let fd0 = mailorder_core::sys::take_fd(0).map(std::fs::File::from);
    let control = mailorder_core::control::Control::default();
    let mut out = std::io::stdout().lock();
    if let Err(e) = mailorder_remote_send::run_fd0(&control, &batch, fd0, &mut out) {
        log::error!("cannot write the report: {e}");
    }
    exit(Exit::Ok.code())
}
