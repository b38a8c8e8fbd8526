//! Forwarding with SRS (issue 14): which envelope sender each forward target gets.
//!
//! With `control/srssecret` set, a forward to a domain that is not hosted here (a remote
//! domain, or one we only relay for) carries an SRS address of ours as its envelope sender
//! (mailorder-srs), so the receiver's SPF check sees our host sending for our domain, and
//! a bounce comes back to us: smtpd turns the SRS address back into the original sender.
//! Targets in our local domains, the null sender and senders in our local domains keep the
//! sender as it is. Without a secret nothing is rewritten (as before issue 14).

use mailorder_directory::{Directory, DomainKind};

use crate::{Ctx, DeliverError};

/// The forwards grouped by envelope sender: `(sender, targets)`, in a stable order.
pub(crate) fn groups(ctx: &Ctx, to: &[String]) -> Result<Vec<(String, Vec<String>)>, DeliverError> {
    let sender = &ctx.cfg.sender;
    let srs = mailorder_srs::Srs::from_control(&ctx.cfg.control)?;
    let Some(srs) = srs.filter(|_| !sender.is_empty()) else {
        return Ok(vec![(sender.clone(), to.to_vec())]);
    };
    let dir = Directory::open_at(&ctx.cfg.root)?;
    let ours = |addr: &str| {
        addr.rsplit_once('@')
            .is_some_and(|(_, d)| dir.domain(d) == Some(DomainKind::Local))
    };
    if ours(sender) {
        return Ok(vec![(sender.clone(), to.to_vec())]);
    }
    let (local, remote): (Vec<String>, Vec<String>) = to.iter().cloned().partition(|a| ours(a));
    let user_domain = mailorder_directory::split_address(&ctx.user.address)
        .map(|(_, d)| d)
        .unwrap_or_default();
    let rewritten = srs.forward(sender, user_domain, mailorder_srs::today());
    let mut out = Vec::new();
    if !local.is_empty() {
        out.push((sender.clone(), local));
    }
    if !remote.is_empty() {
        log::info!(
            "srs rcpt={} sender={} srs={}",
            ctx.cfg.recipient,
            mailorder_core::logger::loggable(sender.as_bytes()),
            mailorder_core::logger::loggable(rewritten.as_bytes())
        );
        out.push((rewritten, remote));
    }
    Ok(out)
}
