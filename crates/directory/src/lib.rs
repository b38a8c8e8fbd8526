//! The directory layer: users, aliases, domains, passwords (file back-end)
