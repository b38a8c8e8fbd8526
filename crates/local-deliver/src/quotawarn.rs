//! Quota warnings (issue 14): when a delivery leaves a Maildir++ quota at or above
//! `control/quotawarnpercent` per cent (90) of its bytes or of its messages, one warning
//! message goes straight into that Maildir (it is not counted against the quota, so a
//! full mailbox still gets it) — at most one per day, remembered as the day number in the
//! Maildir's `quotawarn` file (beside `maildirsize`; replaced with `write_atomic`). The text
//! is `control/quotawarning` (lines, as is), else a short default. A warning that cannot be
//! written is logged: the message it follows is delivered already.

use mailorder_maildir::Maildir;
use mailorder_maildir::quota::{Quota, QuotaDef, Usage};

use crate::Ctx;

/// Default for `control/quotawarnpercent`.
pub const DEFAULT_PERCENT: u64 = 90;
/// The file in the Maildir that holds the day of the last warning.
pub const STAMP: &str = "quotawarn";

/// The fuller of the two limits, in per cent (None: no limit).
pub fn percent(def: &QuotaDef, usage: Usage) -> Option<u64> {
    let pc = |used: i64, limit: Option<u64>| {
        limit
            .filter(|l| *l > 0)
            .map(|l| u64::try_from(used.max(0)).unwrap_or(0).saturating_mul(100) / l)
    };
    match (pc(usage.bytes, def.bytes), pc(usage.count, def.count)) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
    }
}

/// After a delivery into `md` with quota `q`: warn when due.
pub(crate) fn check(ctx: &Ctx, md: &Maildir, q: &Quota) {
    if let Err(e) = warn(ctx, md, q) {
        log::warn!("quota warning failed rcpt={}: {e}", ctx.cfg.recipient);
    }
}

fn warn(ctx: &Ctx, md: &Maildir, q: &Quota) -> Result<(), Box<dyn std::error::Error>> {
    let limit = ctx
        .cfg
        .control
        .number("quotawarnpercent", DEFAULT_PERCENT)?;
    let Some(pc) = percent(&q.def, q.usage) else {
        return Ok(());
    };
    if limit == 0 || pc < limit {
        return Ok(());
    }
    let now = mailorder_queue_format::date::unix_now();
    let today = now / 86400;
    let stamp = md.path().join(STAMP);
    let last = std::fs::read_to_string(&stamp)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if last == Some(today) {
        return Ok(());
    }
    // Remember first: a stamp that cannot be written must not mean a warning per message.
    let opts = mailorder_core::atomic::Options::new(mailorder_core::atomic::Durability::Durable);
    mailorder_core::atomic::write_atomic(&stamp, format!("{today}\n").as_bytes(), &opts)?;
    let text = match ctx.cfg.control.lines("quotawarning")? {
        Some(lines) if !lines.is_empty() => lines.join("\n"),
        _ => "Your mailbox is almost full. Please delete or archive some messages;\n\
              when it is full, new mail waits and is finally returned to its senders."
            .to_owned(),
    };
    let me = ctx.cfg.control.me()?;
    let to = &ctx.user.address;
    let mut m = String::new();
    m.push_str(&format!("From: MAILER-DAEMON@{me}\n"));
    m.push_str(&format!("To: <{to}>\n"));
    m.push_str(&format!("Subject: Your mailbox is {pc}% full\n"));
    m.push_str(&format!(
        "Date: {}\n",
        mailorder_queue_format::date::rfc5322(now)
    ));
    m.push_str(&format!(
        "Message-ID: <{now}.{}.quotawarn@{me}>\n",
        std::process::id()
    ));
    m.push_str("Auto-Submitted: auto-generated\n");
    m.push_str("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n");
    m.push_str("Content-Transfer-Encoding: 8bit\n\n");
    m.push_str(&text);
    m.push('\n');
    let path = md.deliver(m.as_bytes())?;
    log::info!(
        "quota warning rcpt={} percent={pc} maildir={}",
        ctx.cfg.recipient,
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fuller_limit_counts() {
        let q = |def: &str, bytes, count| {
            percent(&QuotaDef::parse(def).unwrap(), Usage { bytes, count })
        };
        assert_eq!(q("1000S", 900, 1), Some(90));
        assert_eq!(q("1000S,10C", 100, 9), Some(90));
        assert_eq!(q("1000S", -5, 0), Some(0));
        assert_eq!(q("0S", 5, 5), None);
    }
}
