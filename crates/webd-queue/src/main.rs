//! webd-queue: one fixed qadmin request per run, for webd (CONTRACT.md).

fn main() {
    mailorder_core::logger::init("webd-queue", mailorder_core::Exit::Temp.code());
    // The tree and qadmin are found while still set-id (the environment is then ignored).
    let root = mailorder_core::root::root();
    let qadmin = mailorder_core::root::program("qadmin");
    // Installed set-uid root (4750 root:moweb): become mosend wholly, its groups too
    // (queue/ is moqueue:mosend 0750, queue/state mosend's 0700), before reading anything.
    // A set-uid mosend copy could not: it keeps webd's groups, and an exec under
    // no-new-privileges with real and effective uids apart runs the child as the caller.
    if mailorder_core::sys::is_setid()
        && let Err(e) = mailorder_core::privs::become_user("mosend")
    {
        mailorder_core::exit::fail(mailorder_core::Exit::Temp, e);
    }
    // It execs only qadmin, which is not set-id: no exec may gain privileges.
    mailorder_core::privs::no_new_privs();
    mailorder_core::exit::exit(mailorder_webd_queue::run(
        &root,
        &qadmin,
        std::io::stdin().lock(),
    ))
}
