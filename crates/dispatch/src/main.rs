//! dispatch

fn main() {}
