//! webd's counters and the Prometheus text exposition (format 0.0.4) served on the
//! separate metrics address (`control/webmetricsaddr`, plain HTTP on loopback).

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds (seconds) of the request-latency histogram's buckets.
pub const BUCKETS: [f64; 8] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// The login results counted.
pub const LOGIN_RESULTS: [&str; 6] = [
    "ok",
    "failed",
    "limited",
    "temp",
    "token_ok",
    "token_failed",
];

/// Counters shared by every connection thread.
#[derive(Debug, Default)]
pub struct Metrics {
    logins: [AtomicU64; 6],
    status: [AtomicU64; 5],
    buckets: [AtomicU64; 8],
    count: AtomicU64,
    sum_micros: AtomicU64,
    admin_actions: AtomicU64,
    connections: AtomicU64,
}

impl Metrics {
    /// Count one login with `result` (one of [`LOGIN_RESULTS`]).
    pub fn login(&self, result: &str) {
        if let Some(i) = LOGIN_RESULTS.iter().position(|r| *r == result) {
            self.logins[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Count one admin action.
    pub fn admin_action(&self) {
        self.admin_actions.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one accepted connection.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Count one answered request: its status and how long it took.
    pub fn request(&self, status: u16, secs: f64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.status[class].fetch_add(1, Ordering::Relaxed);
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((secs * 1e6) as u64, Ordering::Relaxed);
    }

    /// The exposition; `sessions` is the number of live sessions.
    pub fn render(&self, sessions: usize) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut o = String::new();
        o.push_str("# HELP mailorder_web_logins_total Web console logins by result.\n");
        o.push_str("# TYPE mailorder_web_logins_total counter\n");
        for (i, r) in LOGIN_RESULTS.iter().enumerate() {
            o.push_str(&format!(
                "mailorder_web_logins_total{{result=\"{r}\"}} {}\n",
                g(&self.logins[i])
            ));
        }
        o.push_str("# HELP mailorder_web_requests_total Web console requests by status class.\n");
        o.push_str("# TYPE mailorder_web_requests_total counter\n");
        for (i, c) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            o.push_str(&format!(
                "mailorder_web_requests_total{{code=\"{c}\"}} {}\n",
                g(&self.status[i])
            ));
        }
        o.push_str("# HELP mailorder_web_request_duration_seconds Time to answer a request.\n");
        o.push_str("# TYPE mailorder_web_request_duration_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            o.push_str(&format!(
                "mailorder_web_request_duration_seconds_bucket{{le=\"{b}\"}} {}\n",
                g(&self.buckets[i])
            ));
        }
        let count = g(&self.count);
        o.push_str(&format!(
            "mailorder_web_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        o.push_str(&format!(
            "mailorder_web_request_duration_seconds_sum {}\n",
            g(&self.sum_micros) as f64 / 1e6
        ));
        o.push_str(&format!(
            "mailorder_web_request_duration_seconds_count {count}\n"
        ));
        o.push_str("# HELP mailorder_web_connections_total TLS connections accepted.\n");
        o.push_str("# TYPE mailorder_web_connections_total counter\n");
        o.push_str(&format!(
            "mailorder_web_connections_total {}\n",
            g(&self.connections)
        ));
        o.push_str(
            "# HELP mailorder_web_admin_actions_total Admin actions (each also an audit line).\n",
        );
        o.push_str("# TYPE mailorder_web_admin_actions_total counter\n");
        o.push_str(&format!(
            "mailorder_web_admin_actions_total {}\n",
            g(&self.admin_actions)
        ));
        o.push_str("# HELP mailorder_web_sessions Live sessions.\n");
        o.push_str("# TYPE mailorder_web_sessions gauge\n");
        o.push_str(&format!("mailorder_web_sessions {sessions}\n"));
        o
    }
}

/// The mail system's figures (from [`crate::activity`]): counters since webd started,
/// connections and the queue as gauges.
pub fn render_mail(s: &crate::activity::Snapshot) -> String {
    use crate::activity::kind;
    let mut o = String::new();
    let mut family = |name: &str, kind_: &str, help: &str, samples: &[(String, u64)]| {
        o.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind_}\n"));
        for (labels, v) in samples {
            o.push_str(&format!("{name}{labels} {v}\n"));
        }
    };
    let t = |k: usize| s.totals[k];
    family(
        "mailorder_messages_accepted_total",
        "counter",
        "Messages smtpd accepted (250 to the final dot), from its log.",
        &[(String::new(), t(kind::ACCEPTED))],
    );
    family(
        "mailorder_deliveries_total",
        "counter",
        "Delivery attempts per recipient by result, from dispatch's log.",
        &[
            ("{result=\"delivered\"}".into(), t(kind::DELIVERED)),
            ("{result=\"deferred\"}".into(), t(kind::DEFERRED)),
            ("{result=\"bounced\"}".into(), t(kind::BOUNCED)),
        ],
    );
    family(
        "mailorder_logins_total",
        "counter",
        "Logins of every service by result, from the checkpassword programs' logs.",
        &[
            ("{result=\"ok\"}".into(), t(kind::LOGIN_OK)),
            ("{result=\"failed\"}".into(), t(kind::LOGIN_FAILED)),
        ],
    );
    family(
        "mailorder_rejections_total",
        "counter",
        "Messages the filter refused, by reason.",
        &[
            ("{reason=\"spam\"}".into(), t(kind::SPAM)),
            ("{reason=\"virus\"}".into(), t(kind::VIRUS)),
        ],
    );
    let conns: Vec<(String, u64)> = s
        .connections
        .iter()
        .map(|(n, c)| {
            let n: String = n
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                .collect();
            (format!("{{service=\"{n}\"}}"), *c as u64)
        })
        .collect();
    family(
        "mailorder_connections",
        "gauge",
        "Open connections per service (established sockets on its port).",
        &conns,
    );
    if let Some((m, oldest)) = s.queue {
        family(
            "mailorder_queue_messages",
            "gauge",
            "Messages in the queue.",
            &[(String::new(), m)],
        );
        family(
            "mailorder_queue_oldest_seconds",
            "gauge",
            "Age of the oldest message in the queue.",
            &[(String::new(), oldest)],
        );
    }
    o.push_str(
        "# HELP mailorder_delivery_seconds Seconds from a message's arrival in the queue to a recipient's delivery, from dispatch's log.\n\
         # TYPE mailorder_delivery_seconds histogram\n",
    );
    for (b, le) in s
        .delivery
        .buckets
        .iter()
        .zip(crate::activity::DELAY_BUCKETS)
    {
        o.push_str(&format!(
            "mailorder_delivery_seconds_bucket{{le=\"{le}\"}} {b}\n"
        ));
    }
    o.push_str(&format!(
        "mailorder_delivery_seconds_bucket{{le=\"+Inf\"}} {c}\nmailorder_delivery_seconds_sum {}\nmailorder_delivery_seconds_count {c}\n",
        s.delivery.sum_micros as f64 / 1e6,
        c = s.delivery.count
    ));
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition() {
        let m = Metrics::default();
        m.login("ok");
        m.login("failed");
        m.login("failed");
        m.request(200, 0.003);
        m.request(403, 0.3);
        let t = m.render(1);
        assert!(t.contains("mailorder_web_logins_total{result=\"failed\"} 2\n"));
        assert!(t.contains("mailorder_web_request_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(t.contains("mailorder_web_request_duration_seconds_bucket{le=\"0.5\"} 2\n"));
        assert!(t.contains("mailorder_web_request_duration_seconds_count 2\n"));
        assert!(t.contains("mailorder_web_requests_total{code=\"4xx\"} 1\n"));
    }
}
