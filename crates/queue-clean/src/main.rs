//! queue-clean

fn main() {}
