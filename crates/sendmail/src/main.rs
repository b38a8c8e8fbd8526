//! sendmail

fn main() {}
