//! The activity page's live side: the collector thread that feeds [`crate::activity`],
//! and the server-sent event stream (`GET /admin/events`, `text/event-stream`, HTML
//! Living Standard §9.2) that pushes its figures and new log lines to the page.

use crate::activity::{self, Tail};
use crate::{App, Request, Response};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The most event streams open at once (each holds a connection thread).
pub const MAX_STREAMS: usize = 16;
/// A stream ends after this long; the browser reconnects (`retry`), and the session is
/// checked again.
pub const STREAM_LIFE: Duration = Duration::from_secs(600);
/// How often a stream pushes.
pub const PUSH_EVERY: Duration = Duration::from_secs(1);
/// Log lines sent when a stream starts.
pub const FIRST_LINES: usize = 200;

impl App {
    /// Follow the logs, count connections and (while someone watches) read the queue's
    /// figures, forever. Run in its own thread.
    pub fn collect(&self) {
        let services = activity::services(&self.cfg.services);
        let mut tails: HashMap<PathBuf, Tail> = HashMap::new();
        let mut queue_read: Option<Instant> = None;
        for tick in 0u64.. {
            if tick % 10 == 0 {
                for (name, path) in activity::log_sources(&self.cfg.root, &self.cfg.logs) {
                    tails
                        .entry(path.clone())
                        .or_insert_with(|| Tail::new(&name, &path));
                }
            }
            for t in tails.values_mut() {
                let (lines, first) = t.poll();
                if !lines.is_empty() {
                    self.activity.lines(&t.name, lines, first);
                }
            }
            if tick % 2 == 0 {
                self.activity
                    .set_connections(activity::connections(&services));
            }
            let watched = self.watchers.load(Ordering::SeqCst) > 0;
            if watched && queue_read.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                self.activity.set_queue(self.queue_stat());
                queue_read = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// `qadmin stat` through webd-queue: (messages, oldest age), or `None`.
    pub fn queue_stat(&self) -> Option<(u64, u64)> {
        match (self.queue)("stat", "") {
            Ok((0, out)) => crate::queue::parse_stat(&out),
            Ok((code, _)) => {
                log::warn!("queue figures unavailable: webd-queue exited {code}");
                None
            }
            Err(e) => {
                log::warn!("queue figures unavailable: {e}");
                None
            }
        }
    }

    /// `GET /admin/events`: write the stream to `out` until the session ends, the stream
    /// has lived [`STREAM_LIFE`] or the browser goes away.
    pub(crate) fn events(
        &self,
        req: &Request,
        client: &str,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        let s = match self.admin_session(req, client) {
            Ok(s) => s,
            Err(r) => return out.write_all(&r.to_bytes()),
        };
        if self.watchers.fetch_add(1, Ordering::SeqCst) >= MAX_STREAMS {
            self.watchers.fetch_sub(1, Ordering::SeqCst);
            return out.write_all(
                &Response::text(503, "too many live pages open\n")
                    .with("Retry-After", "30")
                    .to_bytes(),
            );
        }
        let r = self.stream(req, &s.csrf, out);
        self.watchers.fetch_sub(1, Ordering::SeqCst);
        r
    }

    fn stream(&self, req: &Request, csrf: &str, out: &mut impl Write) -> std::io::Result<()> {
        let head = Response {
            status: 200,
            headers: vec![("Content-Type".into(), "text/event-stream".into())],
            body: Vec::new(),
        }
        .head(None);
        out.write_all(&head)?;
        out.write_all(b"retry: 3000\n\n")?;
        let id = req.cookie(crate::SESSION_COOKIE).unwrap_or_default();
        let started = Instant::now();
        let mut seq = 0;
        let mut first = true;
        while started.elapsed() < STREAM_LIFE && self.session_alive(&id, csrf) {
            let mut ev = format!(
                "event: stats\ndata: {}\n\n",
                self.activity.snapshot().json()
            );
            let lines = self
                .activity
                .lines_after(seq, if first { FIRST_LINES } else { 500 });
            first = false;
            for l in lines {
                seq = l.seq;
                ev.push_str(&format!("event: log\ndata: {}\n\n", l.json()));
            }
            out.write_all(ev.as_bytes())?;
            out.flush()?;
            std::thread::sleep(PUSH_EVERY);
        }
        Ok(())
    }
}
