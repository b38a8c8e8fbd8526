//! The only writer of new mail into the queue (qmail-queue contract)
