//! sendmail-compatible command line
