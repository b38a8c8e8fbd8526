//! deliver-as UID GID SENDER RECIPIENT: become UID/GID, exec local-deliver.

use mailorder_core::Exit;
use mailorder_core::exit::fail;

fn main() {
    mailorder_core::logger::init("deliver-as", Exit::Temp.code());
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let err = match mailorder_deliver_as::parse(&args) {
        Ok(req) => mailorder_deliver_as::run(&req),
        Err(e) => e,
    };
    fail(err.class(), err)
}
