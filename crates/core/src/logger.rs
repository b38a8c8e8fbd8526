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
        let line = render(self.prog, level, record.args());
        // One write(2) per line (stderr is unbuffered, and `writeln!` would write the text
        // and the newline separately): programs sharing one log pipe never join lines.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// One log line, `prog: level: text` and a newline, every control character of the text
/// written `?` (a line is one line, whatever a value in it holds).
fn render(prog: &str, level: &str, args: &std::fmt::Arguments) -> String {
    let mut line = format!("{prog}: {level}: {args}");
    // Printable ASCII (nearly every line) is kept as it is: no second copy.
    if !line.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        line = line
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
    }
    line.push('\n');
    line
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

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn a_line_is_one_line_of_no_control_characters() {
        assert_eq!(
            render("p", "info", &format_args!("id={} ok", 7)),
            "p: info: id=7 ok\n"
        );
        assert_eq!(
            render("p", "warn", &format_args!("a\nb\rc\td\u{7f}e\u{85}f é")),
            "p: warn: a?b?c?d?e?f é\n"
        );
    }
}
