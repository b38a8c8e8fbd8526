//! queue

fn main() {}
