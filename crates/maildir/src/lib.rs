//! Maildir++ delivery, unique names, maildirsize quota, listing
