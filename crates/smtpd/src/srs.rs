//! Bounces to SRS addresses (issue 14): a recipient `SRS0=…@` / `SRS1=…@` one of our local
//! domains is one of the envelope senders local-deliver wrote when it forwarded mail
//! (mailorder-srs). A valid one is accepted and routed back to the address it stands for;
//! a forged, damaged or expired one is refused with 550. Without `control/srssecret` SRS is
//! off and such an address is an ordinary (unknown) recipient.

use mailorder_core::control::Control;
use mailorder_directory::{Directory, DomainKind};
use std::path::Path;

/// What to do with a recipient.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not an SRS address of ours: the ordinary checks decide.
    NotSrs,
    /// Ours and valid: deliver to this address instead.
    Route(String),
    /// Ours and invalid: 550 with this text.
    Refuse(String),
    /// The SRS settings cannot be read: 451.
    Temp(String),
}

/// Check recipient `local@domain`.
pub(crate) fn check(root: &Path, dir: Option<&Directory>, local: &str, domain: &str) -> Verdict {
    if mailorder_srs::grammar::parse(local).is_none() {
        return Verdict::NotSrs;
    }
    let Some(dir) = dir else {
        return Verdict::Temp("directory unavailable".to_owned());
    };
    if dir.domain(domain) != Some(DomainKind::Local) {
        return Verdict::NotSrs;
    }
    let srs = match mailorder_srs::Srs::from_control(&Control::new(root.join("control"))) {
        Ok(Some(s)) => s,
        Ok(None) => return Verdict::NotSrs,
        Err(e) => return Verdict::Temp(e.to_string()),
    };
    match srs.reverse(&format!("{local}@{domain}"), mailorder_srs::today()) {
        Ok(Some(to)) if mailorder_queue_format::envelope::valid_address(&to) => Verdict::Route(to),
        Ok(Some(_)) => Verdict::Refuse("SRS address names a bad address (#5.1.1)".to_owned()),
        Ok(None) => Verdict::NotSrs,
        Err(e) => Verdict::Refuse(e.to_string()),
    }
}
