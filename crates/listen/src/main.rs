//! listen

fn main() {}
