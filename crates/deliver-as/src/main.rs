//! deliver-as

fn main() {}
