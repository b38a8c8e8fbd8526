//! SMTP commands, replies and DATA/BDAT framing; no I/O
