//! setup: lay out a mailorder tree (see CONTRACT.md).

fn main() {
    mailorder_core::logger::init("setup", mailorder_core::Exit::Temp.code());
    // It never execs a set-id program: no exec may gain privileges from here on.
    mailorder_core::privs::no_new_privs();
    let mut o = mailorder_setup::Options::default();
    let mut root = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--demo" => o.demo = true,
            "--owners" => o.owners = true,
            "--me" => o.me = args.next(),
            _ if a.starts_with('-') || root.is_some() => {
                let usage = "usage: setup [--demo] [--owners] [--me HOST] ROOT";
                mailorder_core::exit::fail(mailorder_core::Exit::Perm, usage);
            }
            _ => root = Some(a),
        }
    }
    o.root = root.map_or_else(mailorder_core::root::root, Into::into);
    if let Err(e) = mailorder_setup::run(&o) {
        mailorder_core::exit::fail(mailorder_core::Exit::Temp, format_args!("{e:#}"));
    }
}
