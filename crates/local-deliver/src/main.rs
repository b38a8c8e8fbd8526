//! local-deliver

fn main() {}
