//! The queue as webd sees it: qadmin's output, obtained through `webd-queue` (set-uid
//! mosend, a fixed request on its stdin). webd never reads or writes the queue itself;
//! retry, remove and flush are qadmin's control requests, which dispatch carries out.

use std::io::Write;

/// How a queue request is made: (command, argument) → (exit code, stdout). Tests put a
/// fake here.
pub type Runner = Box<dyn Fn(&str, &str) -> Result<(i32, String), String> + Send + Sync>;

/// Run `webd-queue` with `COMMAND\0ARGUMENT\0` on its stdin.
pub fn webd_queue(cmd: &str, arg: &str) -> Result<(i32, String), String> {
    let prog = mailorder_core::root::program("webd-queue");
    let mut child = std::process::Command::new(&prog)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", prog.display()))?;
    if let Some(mut i) = child.stdin.take() {
        let mut r = Vec::with_capacity(cmd.len() + arg.len() + 2);
        for f in [cmd, arg] {
            r.extend_from_slice(f.as_bytes());
            r.push(0);
        }
        let _ = i.write_all(&r);
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
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
}
