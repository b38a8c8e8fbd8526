//! mailorder-tests: the end-to-end harness. Tests live in `tests/e2e.rs`.
