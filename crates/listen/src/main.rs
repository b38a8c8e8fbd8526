//! listen: accept TCP connections and run a program per connection (see CONTRACT.md).

fn main() {
    mailorder_core::logger::init("listen", mailorder_core::Exit::Temp.code());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match mailorder_listen::parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            mailorder_core::exit::exit(mailorder_core::Exit::Perm.code());
        }
    };
    if let Err(e) = mailorder_listen::serve(&cfg) {
        log::error!("cannot listen on {}: {e}", cfg.addr);
        mailorder_core::exit::exit(mailorder_core::Exit::Temp.code());
    }
}
