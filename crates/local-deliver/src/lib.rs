//! Delivers one message to one local recipient
