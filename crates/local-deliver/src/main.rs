//! local-deliver SENDER RECIPIENT: deliver the message on fd 0 to one local recipient.

use std::fs::File;
use std::os::fd::AsFd;

use mailorder_core::{Exit, exit, root};
use mailorder_local_deliver::{Config, Outcome, run};

use std::io::Write;

fn main() {
    mailorder_core::logger::init("local-deliver", mailorder_core::Exit::Temp.code());
    // It parses message content and files the mailbox owner writes (`.qmail`, the
    // autoresponder): never as root, checked before any of it is read (DESIGN invariant 2;
    // issue #10 item 1).
    mailorder_core::privs::refuse_root("local-deliver");
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Long-lived for one mailbox owner, fed by dispatch (worker.rs).
    if args.is_empty()
        && let Some(fd) = std::env::var(mailorder_core::handoff::POOL_FD_VAR)
            .ok()
            .and_then(|v| v.parse().ok())
        && let Some(sock) = mailorder_core::sys::take_fd(fd)
    {
        exit::exit(mailorder_local_deliver::worker::serve(&sock));
    }
    let outcome = match args.as_slice() {
        [sender, recipient] => deliver(sender, recipient),
        _ => Outcome {
            exit: Exit::Perm,
            text: "usage: local-deliver SENDER RECIPIENT (#5.3.5)".to_owned(),
        },
    };
    // The scheduler may be gone (killed): the exit code still says what happened, so a
    // report that cannot be written is not a reason to panic.
    let _ = writeln!(std::io::stdout(), "{}", outcome.text);
    exit::exit(outcome.exit.code());
}

fn deliver(sender: &str, recipient: &str) -> Outcome {
    let cfg = Config {
        sender: sender.to_owned(),
        recipient: recipient.to_owned(),
        root: root::root(),
        control: mailorder_core::control::Control::default(),
        queue_age: std::env::var("MAILORDER_QUEUE_AGE")
            .ok()
            .and_then(|v| v.parse().ok()),
        queue: root::program("queue"),
        euid: mailorder_core::sys::ids().1,
        maxhops: None,
    };
    let mut msg = match std::io::stdin().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(e) => {
            return Outcome {
                exit: Exit::Temp,
                text: format!("cannot use fd 0: {e} (#4.3.0)"),
            };
        }
    };
    let resolved = mailorder_directory::Directory::open().and_then(|d| d.resolve(recipient));
    run(&cfg, resolved, &mut msg)
}
