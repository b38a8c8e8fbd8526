//! checkpassword-file

fn main() {}
