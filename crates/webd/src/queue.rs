//! The queue as webd sees it: qadmin's output, obtained through `webd-queue` (set-uid
//! mosend, a fixed request on its stdin). webd never reads or writes the queue itself;
//! retry, remove and flush are qadmin's control requests, which dispatch carries out.

use crate::{Request, Response, Session, http};

/// How a queue request is made: (command, argument) → (exit code, stdout). Tests put a
/// fake here.
pub type Runner = Box<dyn Fn(&str, &str) -> Result<(i32, String), String> + Send + Sync>;

/// Run `webd-queue` with `COMMAND\0ARGUMENT\0` on its stdin.
pub fn webd_queue(cmd: &str, arg: &str) -> Result<(i32, String), String> {
    let mut r = Vec::with_capacity(cmd.len() + arg.len() + 2);
    for f in [cmd, arg] {
        r.extend_from_slice(f.as_bytes());
        r.push(0);
    }
    let out = crate::run_helper("webd-queue", &r)?;
    Ok((
        out.status.code().unwrap_or(111),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

/// One message of `qadmin list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The queue id.
    pub id: String,
    /// Bytes.
    pub size: u64,
    /// Seconds since arrival.
    pub age: u64,
    /// The sender (`<>` for the null sender).
    pub sender: String,
    /// Recipients still pending.
    pub pending: u64,
    /// Their addresses (`qadmin rcpts`), when read.
    pub rcpts: Vec<String>,
}

/// `qadmin list`: `ID SIZE AGE SENDER PENDING`, tab-separated.
pub fn parse_list(text: &str) -> Vec<Entry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            if f.len() != 5 {
                return None;
            }
            Some(Entry {
                id: f[0].to_owned(),
                size: f[1].parse().ok()?,
                age: f[2].parse().ok()?,
                sender: f[3].to_owned(),
                pending: f[4].parse().ok()?,
                rcpts: Vec::new(),
            })
        })
        .collect()
}

/// `qadmin stat`: (messages, oldest-seconds).
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix(' ')?.trim().parse().ok())
    };
    Some((get("messages")?, get("oldest-seconds")?))
}

/// One recipient of `qadmin show`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rcpt {
    /// `pending`, `held`, `delivered`, `failed`, `bounced`.
    pub status: String,
    /// Attempts so far.
    pub tries: String,
    /// Unix seconds of the next attempt.
    pub next: String,
    /// The address.
    pub address: String,
    /// The last attempt's result.
    pub result: String,
    /// DSN NOTIFY and ORCPT, when given.
    pub dsn: Option<(String, String)>,
}

/// One message of `qadmin show`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Detail {
    /// The `key value` lines before the recipients (id, stage, size, arrival, age,
    /// sender, ret, envid), in order.
    pub fields: Vec<(String, String)>,
    /// The recipients in envelope order.
    pub rcpts: Vec<Rcpt>,
}

/// Parse `qadmin show`'s output.
pub fn parse_show(text: &str) -> Detail {
    let mut d = Detail::default();
    for l in text.lines() {
        let f: Vec<&str> = l.split('\t').collect();
        match f.as_slice() {
            ["rcpt", status, tries, next, address, result @ ..] => d.rcpts.push(Rcpt {
                status: (*status).to_owned(),
                tries: (*tries).to_owned(),
                next: (*next).to_owned(),
                address: (*address).to_owned(),
                result: result.join("\t"),
                dsn: None,
            }),
            ["rdsn", notify, orcpt] => {
                if let Some(r) = d.rcpts.last_mut() {
                    r.dsn = Some(((*notify).to_owned(), (*orcpt).to_owned()));
                }
            }
            [k, v] => d.fields.push(((*k).to_owned(), (*v).to_owned())),
            _ => {}
        }
    }
    d
}

/// A duration in the largest whole unit: `42 s`, `5 min`, `3 h`, `2 d`.
pub fn age(s: u64) -> String {
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..172_800 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC` (H. Hinnant's days-to-civil algorithm).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl crate::App {
    /// Run one queue request; a failure to run webd-queue is logged and `None`.
    fn queue_request(&self, cmd: &str, arg: &str) -> Option<(i32, String)> {
        match (self.queue)(cmd, arg) {
            Ok(r) => Some(r),
            Err(e) => {
                log::error!("queue request {cmd} failed: {e}");
                None
            }
        }
    }

    /// `GET /admin/queue?q=SEARCH&page=N`: the queued messages, oldest first, filtered
    /// by a substring of the id, the sender or a pending recipient.
    pub(crate) fn render_queue(
        &self,
        s: &Session,
        req: &Request,
        note: Option<Result<String, String>>,
        status: u16,
    ) -> Response {
        let (search, page) = crate::listing(req);
        let mut all = match self.queue_request("list", "") {
            Some((0, out)) => parse_list(&out),
            _ => return unavailable(),
        };
        // The pending recipients (a message may have gone between the two reads: it has
        // none then).
        if let Some((0, out)) = self.queue_request("rcpts", "") {
            let mut by_id: std::collections::HashMap<&str, Vec<String>> = Default::default();
            for (id, a) in out.lines().filter_map(|l| l.split_once('\t')) {
                by_id.entry(id).or_default().push(a.to_owned());
            }
            for e in &mut all {
                e.rcpts = by_id.remove(e.id.as_str()).unwrap_or_default();
            }
        }
        let matching: Vec<&Entry> = all
            .iter()
            .filter(|e| {
                search.is_empty()
                    || e.id.contains(&search)
                    || e.sender.to_lowercase().contains(&search)
                    || e.rcpts.iter().any(|r| r.to_lowercase().contains(&search))
            })
            .collect();
        let (shown, page, pages_n) = crate::page_of(&matching, page);
        Response::html(
            status,
            crate::pages::queue_list(
                s,
                &search,
                (page, pages_n, matching.len()),
                shown,
                note.as_ref(),
            ),
        )
    }

    /// `GET /admin/queue/show?id=ID`: one message's envelope and recipients.
    pub(crate) fn render_show(
        &self,
        s: &Session,
        id: &str,
        note: Option<Result<String, String>>,
        status: u16,
    ) -> Response {
        if !valid_id(id) {
            return not_queued(s, id);
        }
        match self.queue_request("show", id) {
            Some((0, out)) => Response::html(
                status,
                crate::pages::queue_show(s, id, &parse_show(&out), note.as_ref()),
            ),
            Some((1, _)) => not_queued(s, id),
            _ => unavailable(),
        }
    }

    /// `POST /admin/queue/retry|remove` (`id`) and `/admin/queue/flush` (`domain`):
    /// qadmin's control requests through webd-queue, one audit line each.
    pub(crate) fn queue_action(&self, req: &Request, client: &str) -> Response {
        let (s, form) = match self.post(req, client, true) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let action = req.path.trim_start_matches("/admin/queue/");
        let arg = match action {
            "retry" | "remove" => http::field(&form, "id").unwrap_or_default().trim(),
            "flush" => http::field(&form, "domain").unwrap_or_default().trim(),
            _ => {
                return Response::html(
                    404,
                    crate::pages::page("Not found", "<p>No such action.</p>", None),
                );
            }
        }
        .to_lowercase();
        let valid = if action == "flush" {
            valid_domain(&arg)
        } else {
            valid_id(&arg)
        };
        if !valid {
            let why = if action == "flush" {
                "Enter a domain (letters, digits, dots, hyphens), or nothing for every message."
            } else {
                "That is not a queue id."
            };
            return self.render_queue(&s, req, Some(Err(why.into())), 400);
        }
        let r = self.queue_request(action, &arg);
        self.audit(
            &s,
            &format!("queue-{action}"),
            &arg,
            matches!(r, Some((0, _))),
            client,
        );
        let target = if arg.is_empty() {
            "every message"
        } else {
            arg.as_str()
        };
        let (note, status) = match r {
            Some((0, _)) => (
                Ok(match action {
                    "retry" => format!(
                        "Retry of {target} requested: dispatch delivers its pending recipients now."
                    ),
                    "remove" => format!(
                        "Removal of {target} requested: dispatch deletes it without a bounce."
                    ),
                    _ => format!(
                        "Flush of {target} requested: every pending recipient there is due now."
                    ),
                }),
                200,
            ),
            Some((1, _)) => (Err(format!("No message {target} in the queue.")), 404),
            _ => (
                Err(
                    "The queue did not take the request (is dispatch running?); try again later."
                        .into(),
                ),
                503,
            ),
        };
        if action == "retry" && status == 200 {
            return self.render_show(&s, &arg, Some(note), status);
        }
        self.render_queue(&s, req, Some(note), status)
    }
}

/// A queue id as webd-queue takes it (digits and dots).
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A domain as webd-queue's flush takes it; empty means every message.
pub fn valid_domain(s: &str) -> bool {
    s.len() <= 255
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn unavailable() -> Response {
    Response::unavailable("The queue cannot be read now")
}

fn not_queued(s: &Session, id: &str) -> Response {
    Response::html(
        404,
        crate::pages::page_in(
            "wide",
            "Not in the queue",
            &format!(
                "{}<div class=\"note bad\" role=\"alert\" id=\"note\">No message {} in the queue \
                 (delivered, removed or never there).</div><p><a href=\"/admin/queue\">Back to the queue</a></p>",
                crate::pages::admin_nav("/admin/queue"),
                http::escape(id)
            ),
            Some((&s.address, &s.csrf)),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qadmin_output() {
        let l = parse_list("1.2.3\t120\t5\t<>\t1\n4.5.6\t9\t700\ta@b.test\t2\nbad line\n");
        assert_eq!(l.len(), 2);
        assert_eq!(l[1].sender, "a@b.test");
        assert_eq!(l[1].age, 700);
        assert_eq!(
            parse_stat("messages 3\ntodo 0\nrecipients-pending 4\noldest-seconds 61\n"),
            Some((3, 61))
        );
        assert_eq!(parse_stat("junk\n"), None);
        let d = parse_show(
            "id\t1.2.3\nstage\tstate\nsize\t10\narrival\t1700000000\nage\t5\nsender\ta@b\n\
             rcpt\tpending\t2\t1700000100\tx@y.test\t421 try later\n\
             rdsn\tSUCCESS,FAILURE\trfc822;x@y.test\n\
             rcpt\tdelivered\t1\t0\tz@y.test\t\n",
        );
        assert_eq!(d.fields[0], ("id".into(), "1.2.3".into()));
        assert_eq!(d.fields.len(), 6);
        assert_eq!(d.rcpts.len(), 2);
        assert_eq!(d.rcpts[0].result, "421 try later");
        assert_eq!(
            d.rcpts[0].dsn,
            Some(("SUCCESS,FAILURE".into(), "rfc822;x@y.test".into()))
        );
        assert_eq!(d.rcpts[1].status, "delivered");
    }

    #[test]
    fn times() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(age(59), "59 s");
        assert_eq!(age(3600), "1 h");
        assert_eq!(age(200_000), "2 d");
    }
}
