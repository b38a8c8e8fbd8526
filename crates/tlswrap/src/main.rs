//! tlswrap: TLS in its own process for the login chain (see CONTRACT.md).

use mailorder_core::exit::{exit, fail};

fn main() {
    mailorder_core::logger::init("tlswrap", mailorder_core::Exit::Temp.code());
    // It reads network input: never as root (DESIGN invariant 2).
    mailorder_core::privs::refuse_root("tlswrap");
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let (starttls, prog) = match args.split_first() {
        Some((first, rest)) if first == "-n" => (true, rest),
        _ => (false, &args[..]),
    };
    if prog.is_empty() {
        fail(
            mailorder_core::Exit::Perm,
            "usage: tlswrap [-n] PROG [ARG...]",
        );
    }
    exit(mailorder_tlswrap::run(starttls, prog))
}
