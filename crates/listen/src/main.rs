//! listen: accept TCP connections and run a program per connection (see CONTRACT.md).

fn main() {
    mailorder_core::logger::init("listen", mailorder_core::Exit::Temp.code());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match mailorder_listen::parse_args(&args) {
        Ok(c) => c,
        Err(e) => mailorder_core::exit::fail(mailorder_core::Exit::Perm, e),
    };
    if let Err(e) = mailorder_listen::serve(&cfg) {
        let what = format_args!("cannot listen on {}: {e}", cfg.addr);
        mailorder_core::exit::fail(mailorder_core::Exit::Temp, what);
    }
}
