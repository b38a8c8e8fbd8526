//! qadmin

fn main() {}
