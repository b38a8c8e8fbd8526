//! The scheduler: watches the queue, runs deliveries, retries, bounces
