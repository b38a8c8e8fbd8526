//! The stderr logger: one line per event, `prog: level: message`, no timestamps
//! (multilog or the journal add them). The level comes from `MAILORDER_LOG`
//! (`error`, `warn`, `info`, `debug`, `trace`; default `info`).
//!
//! Also installs the panic hook: one log line, then exit with the program's
//! "internal error" code (111, or 81 for `queue`), never Rust's 101.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct StderrLogger {
    prog: &'static str,
}

impl Log for StderrLogger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        let line = format!("{}: {}: {}", self.prog, level, record.args());
        let mut line: String = line
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        line.push('\n');
        // One write(2) per line (stderr is unbuffered, and `writeln!` would write the text
        // and the newline separately): programs sharing one log pipe never join lines.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// An attacker-supplied name (a login, a server's reply) fit for a log line: printable
/// ASCII only, at most 100 characters; the logs never carry control characters from it.
pub fn loggable(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(100)
        .collect()
}

/// Install the logger and the panic hook for program `prog`; `panic_code` is the exit
/// status after a panic (111, or 81 for `queue`).
pub fn init(prog: &'static str, panic_code: u8) {
    let level = match std::env::var("MAILORDER_LOG").ok().as_deref() {
        Some("error") => LevelFilter::Error,
        Some("warn") => LevelFilter::Warn,
        Some("debug") => LevelFilter::Debug,
        Some("trace") => LevelFilter::Trace,
        Some("off") => LevelFilter::Off,
        _ => LevelFilter::Info,
    };
    let _ = log::set_boxed_logger(Box::new(StderrLogger { prog }));
    log::set_max_level(level);
    std::panic::set_hook(Box::new(move |info| {
        let line = format!("{prog}: fatal: internal error: {info}")
            .replace(|c: char| c.is_control(), "?")
            + "\n";
        let _ = std::io::stderr().write_all(line.as_bytes());
        crate::exit::exit(panic_code);
    }));
}
