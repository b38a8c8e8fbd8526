//! setup

fn main() {}
