//! smtpd

fn main() {}
