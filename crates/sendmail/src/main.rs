//! sendmail: the sendmail-compatible command line (CONTRACT.md).

fn main() {
    // A panic is a temporary failure for sendmail's callers (sysexits EX_TEMPFAIL).
    mailorder_core::logger::init("sendmail", mailorder_core::exit::sysexits::TEMPFAIL);
    let mut argv = std::env::args_os();
    let argv0 = argv
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sendmail".to_owned());
    let mut args = Vec::new();
    for a in argv {
        match a.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                let what = format!("usage: argument is not UTF-8: {}", a.to_string_lossy());
                mailorder_core::exit::fail(mailorder_core::exit::sysexits::USAGE, what);
            }
        }
    }
    mailorder_core::exit::exit(mailorder_sendmail::run(&argv0, &args))
}
