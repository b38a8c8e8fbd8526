//! Root launcher: switch to a mailbox owner's uid and exec local-deliver
