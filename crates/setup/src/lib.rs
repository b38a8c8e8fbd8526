//! Creates a mailorder tree: directories, control files, certificate, demo user
