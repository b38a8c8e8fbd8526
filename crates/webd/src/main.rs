//! webd: the web console (CONTRACT.md).

fn main() {
    mailorder_core::logger::init("webd", mailorder_core::Exit::Temp.code());
    mailorder_core::privs::refuse_root("webd");
    // webd execs checkpassword-file, which is set-uid root in an installation, and
    // webd-dirwrite: no no-new-privileges here (they would lose their set-id bit).
    let root = mailorder_core::root::root();
    mailorder_core::exit::exit(mailorder_webd::run(&root))
}
