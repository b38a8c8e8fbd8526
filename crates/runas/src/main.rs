//! runas USER PROGRAM [ARG...]: become USER with all its groups, exec PROGRAM (CONTRACT.md).

fn main() {
    mailorder_core::logger::init("runas", mailorder_core::Exit::Temp.code());
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let err = mailorder_runas::run(&args);
    mailorder_core::exit::fail(err.class(), err)
}
