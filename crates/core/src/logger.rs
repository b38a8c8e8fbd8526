//! The stderr logger: one line per event, `prog: level: message`, no timestamps
//! (multilog or the journal add them). The level comes from `MAILORDER_LOG`
//! (`error`, `warn`, `info`, `debug`, `trace`; default `info`).
//!
//! Also installs the panic hook: one log line, then exit with the program's
//! "internal error" code (111, or 81 for `queue`), never Rust's 101.
//!
//! A busy event loop may [`hold`] its thread's `info` and `debug` lines and write them
//! with one `write(2)` per [`HELD_MAX`] octets at [`release`] (dispatch: four lines per
//! message, one write per pass of its loop). A `warn` or `error` line is never held: it
//! releases what is held, then is written at once, so the order of the lines stays.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::cell::RefCell;
use std::io::Write;

/// Most octets written by one `write(2)` of held lines: `PIPE_BUF`, so that the lines of
/// programs sharing one log pipe never join (a write up to it is atomic on a pipe).
pub const HELD_MAX: usize = 4096;

thread_local! {
    /// This thread's held lines, while [`hold`] is in force.
    static HELD: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Hold this thread's `info`/`debug`/`trace` lines until [`release`] (see the module
/// documentation). Lines held when the process is killed are lost: hold only around work
/// that does not wait, and release before waiting.
pub fn hold() {
    HELD.with_borrow_mut(|h| {
        if h.is_none() {
            *h = Some(Vec::new());
        }
    });
}

/// Write the lines held on this thread and stop holding.
pub fn release() {
    if let Some(b) = HELD.with_borrow_mut(Option::take) {
        write_lines(&b);
    }
}

/// Write whole lines to stderr, at most [`HELD_MAX`] octets per write (a longer line
/// alone).
fn write_lines(b: &[u8]) {
    write_chunks(&mut std::io::stderr().lock(), b);
}

/// [`write_lines`] to `err`: one `write_all` per chunk.
fn write_chunks(err: &mut impl Write, b: &[u8]) {
    let mut rest = b;
    while !rest.is_empty() {
        let mut end = rest.len().min(HELD_MAX);
        if end < rest.len() {
            // Cut after the last newline that fits, or after the first one.
            end = match rest[..end].iter().rposition(|&c| c == b'\n') {
                Some(i) => i + 1,
                None => rest
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(rest.len(), |i| i + 1),
            };
        }
        let _ = err.write_all(&rest[..end]);
        rest = &rest[end..];
    }
}

/// Keep `line` when this thread holds its lines (writing the held ones first when it
/// would make them more than [`HELD_MAX`]); `false` when it does not hold.
fn held(line: &str) -> bool {
    with_held(|b| {
        if !b.is_empty() && b.len() + line.len() > HELD_MAX {
            write_lines(b);
            b.clear();
        }
        b.extend_from_slice(line.as_bytes());
    })
}

/// Run `f` on this thread's held lines; `false` when it holds none (or its thread-local
/// storage is gone or busy: the line is then written at once, never lost to a panic).
fn with_held(f: impl FnOnce(&mut Vec<u8>)) -> bool {
    HELD.try_with(|h| match h.try_borrow_mut() {
        Ok(mut h) => match h.as_mut() {
            Some(b) => {
                f(b);
                true
            }
            None => false,
        },
        Err(_) => false,
    })
    .unwrap_or(false)
}

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
        if record.level() >= Level::Info {
            if held(&line) {
                return;
            }
        } else {
            // A warning or an error goes out at once, after the lines held before it.
            with_held(|b| {
                write_lines(b);
                b.clear();
            });
        }
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
        // The lines this thread held come before the panic's.
        let _ = HELD.try_with(|h| {
            if let Ok(mut h) = h.try_borrow_mut()
                && let Some(b) = h.take()
            {
                write_lines(&b);
            }
        });
        let line = format!("{prog}: fatal: internal error: {info}")
            .replace(|c: char| c.is_control(), "?")
            + "\n";
        let _ = std::io::stderr().write_all(line.as_bytes());
        crate::exit::exit(panic_code);
    }));
}

#[cfg(test)]
mod tests {
    use super::{HELD, HELD_MAX, held, hold, render, write_chunks};

    // See: issue #11
    #[test]
    fn a_thread_holds_its_lines_until_it_stops_holding() {
        assert!(!held("not held\n"), "nothing is held before hold()");
        hold();
        assert!(held("a\n"));
        assert!(held("b\n"));
        // Taken here instead of release(), which would write them to the test's stderr.
        let got = HELD.with_borrow_mut(Option::take);
        assert_eq!(got.as_deref(), Some(&b"a\nb\n"[..]));
        assert!(!held("c\n"), "not held once taken");
        // Another thread holds nothing.
        hold();
        assert!(std::thread::spawn(|| !held("d\n")).join().unwrap());
        HELD.with_borrow_mut(Option::take);
    }

    // See: issue #11 (held lines go out in writes of whole lines, none over PIPE_BUF)
    #[test]
    fn held_lines_are_written_whole_in_chunks_of_at_most_pipe_buf() {
        struct Rec(Vec<Vec<u8>>);
        impl std::io::Write for Rec {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.push(b.to_vec());
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let line = |n: usize| {
            let mut l = vec![b'x'; n - 1];
            l.push(b'\n');
            l
        };
        let mut all = Vec::new();
        for _ in 0..100 {
            all.extend(line(100));
        }
        all.extend(line(HELD_MAX + 10));
        all.extend(line(30));
        let mut r = Rec(Vec::new());
        write_chunks(&mut r, &all);
        assert_eq!(r.0.concat(), all);
        for w in &r.0 {
            assert!(w.ends_with(b"\n"));
            assert!(w.len() <= HELD_MAX || !w[..w.len() - 1].contains(&b'\n'));
        }
        // 100 lines of 100: 40 per write; then the long line alone, then the last.
        let sizes: Vec<usize> = r.0.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![4000, 4000, 2000, HELD_MAX + 10, 30]);
        let mut r = Rec(Vec::new());
        write_chunks(&mut r, b"");
        assert!(r.0.is_empty());
    }

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
