//! webd-queue: one fixed qadmin request per run, for webd (CONTRACT.md).

fn main() {
    mailorder_core::logger::init("webd-queue", mailorder_core::Exit::Temp.code());
    // It execs only qadmin, which is not set-id: no exec may gain privileges.
    mailorder_core::privs::no_new_privs();
    let root = mailorder_core::root::root();
    let qadmin = mailorder_core::root::program("qadmin");
    mailorder_core::exit::exit(mailorder_webd_queue::run(
        &root,
        &qadmin,
        std::io::stdin().lock(),
    ))
}
