//! webd-dirwrite: one fixed directory change per run, for webd (CONTRACT.md).

fn main() {
    mailorder_core::logger::init("webd-dirwrite", mailorder_core::Exit::Temp.code());
    // It execs nothing: no exec may gain privileges from here on.
    mailorder_core::privs::no_new_privs();
    let root = mailorder_core::root::root();
    let code = mailorder_webd_dirwrite::run(
        &root,
        std::io::stdin().lock(),
        &mut std::io::stdout().lock(),
    );
    mailorder_core::exit::exit(code)
}
