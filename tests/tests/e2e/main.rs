//! End-to-end tests: the real programs, real clients (swaks, Python's smtplib), real
//! launchers (listen, tcpserver, systemd-socket-activate, supervise). One test binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests stop loudly on a failed step"
)]

mod checkpassword_file;
mod contracts;
mod crate_deps;
mod deploy;
mod dispatch_scripted;
mod dsn;
mod faults;
mod filter;
mod frontends;
mod imap;
mod imap_conformance;
mod imap_stress;
mod launchers;
mod ldap;
mod login_timing;
mod mailbox_uids;
mod migrate;
mod pool;
mod pop3;
mod privs;
mod program_timeout;
mod queue;
mod queue_exit;
mod remote;
mod rules;
mod slow_clients;
mod smtp;
mod smtpd_timeouts;
mod web;
