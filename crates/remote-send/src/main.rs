//! remote-send [-R RET] [-V ENVID] DOMAIN SENDER [[-N NOTIFY] [-O ORCPT] RCPT]…: deliver
//! the message on fd 0 (CONTRACT.md).

use mailorder_core::Exit;
use mailorder_core::exit::exit;
use std::io::{Read, Seek};

fn main() {
    mailorder_core::logger::init("remote-send", Exit::Temp.code());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match mailorder_remote_send::Args::parse(&args) {
        Ok(a) => a,
        Err(e) => {
            log::error!(
                "{e}; usage: remote-send [-R FULL|HDRS] [-V ENVID] DOMAIN SENDER [[-N NOTIFY] [-O ORCPT] RCPT]..."
            );
            exit(Exit::Perm.code());
        }
    };
    let mut file = mailorder_core::sys::take_fd(0).map(std::fs::File::from);
    let mut mem = std::io::Cursor::new(Vec::new());
    let seekable = file.as_mut().is_some_and(|f| f.rewind().is_ok());
    let message: &mut dyn mailorder_remote_send::smtp::ReadSeek = match file.as_mut() {
        Some(f) if seekable => f,
        Some(f) => {
            // A pipe: keep the message in memory so that it can be sent again.
            let _ = f.read_to_end(mem.get_mut());
            &mut mem
        }
        None => &mut mem,
    };
    let control = mailorder_core::control::Control::default();
    let mut out = std::io::stdout().lock();
    let res = mailorder_remote_send::run(&control, &args, message, &mut out);
    if let Err(e) = res {
        log::error!("cannot write the report: {e}");
    }
    exit(Exit::Ok.code())
}
