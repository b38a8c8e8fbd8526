//! Removes finished queue files on the scheduler's behalf, as the queue uid
