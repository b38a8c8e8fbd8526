//! The admin console's pages and actions, and the one-time token login.
//!
//! Admins are the addresses in `control/webadmins`, logged in from a network in
//! `control/webadminnets` when that file lists any. Every admin action is one
//! webd-dirwrite request and one audit line in the log
//! (`audit admin=… action=… target=… result=…`).

use crate::http::{self, escape};
use crate::{App, Request, Response, Session, pages, same, token};
use std::net::IpAddr;
use std::time::Instant;

/// One account in the admin list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The primary address.
    pub address: String,
    /// Disabled.
    pub disabled: bool,
    /// Quota in bytes.
    pub quota: Option<u64>,
    /// Forwarding addresses.
    pub forward: Vec<String>,
    /// Aliases.
    pub aliases: Vec<String>,
}

/// Every account of the directory (files or LDAP), sorted. The file directory is read
/// here (group modir); from LDAP each domain's accounts come through `webd-dirwrite
/// list`, which pages through them as the auth DN: OpenLDAP's default size limit (500)
/// also caps paged searches, the lookup bind webd may use has no room beyond it, and
/// only root reads the auth DN's password (etc/ldap/README.md).
pub fn list_accounts() -> Result<Vec<Row>, String> {
    let mut s = mailorder_directory_admin::Store::open_read(&mailorder_core::root::root())
        .map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    if s.kind() == "ldap" {
        for (d, _) in s.domains().map_err(|e| e.to_string())? {
            let out = crate::dirwrite(&request("list", &d, ""))?;
            rows.extend(out.lines().filter_map(parse_list_line));
        }
        rows.sort_by(|a, b| a.address.cmp(&b.address));
        return Ok(rows);
    }
    for (d, _) in s.domains().map_err(|e| e.to_string())? {
        for a in s.list(&d).map_err(|e| e.to_string())? {
            rows.push(Row {
                address: a.address,
                disabled: a.disabled,
                quota: a.quota_size,
                forward: a.forward,
                aliases: a.aliases,
            });
        }
    }
    rows.sort_by(|a, b| a.address.cmp(&b.address));
    Ok(rows)
}

/// One line of `webd-dirwrite list`: `ADDRESS`, `active|disabled`, quota bytes (empty:
/// none), forwarding and aliases (comma-separated), tab-separated.
/// Empty trailing fields may be missing (the output is trimmed).
pub fn parse_list_line(l: &str) -> Option<Row> {
    let mut f = l.split('\t');
    let address = f.next().filter(|a| a.contains('@'))?;
    let status = f.next().unwrap_or_default();
    let quota = f.next().unwrap_or_default();
    let forward = f.next().unwrap_or_default();
    let aliases = f.next().unwrap_or_default();
    if f.next().is_some() {
        return None;
    }
    let list = |v: &str| -> Vec<String> {
        v.split(',')
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    Some(Row {
        address: address.to_owned(),
        disabled: status == "disabled",
        quota: quota.parse().ok(),
        forward: list(forward),
        aliases: list(aliases),
    })
}

/// Every domain of the directory with its kind (`local`, `relay`), sorted.
pub fn list_domains() -> Result<Vec<(String, String)>, String> {
    let mut s = mailorder_directory_admin::Store::open_read(&mailorder_core::root::root())
        .map_err(|e| e.to_string())?;
    Ok(s.domains()
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|(d, k)| {
            let k = match k {
                mailorder_directory_admin::DomainKind::Local => "local",
                mailorder_directory_admin::DomainKind::Relay => "relay",
            };
            (d, k.to_owned())
        })
        .collect())
}

/// The webd-dirwrite request that sets `address`'s autoresponder from a form
/// (`subject`, `start`, `end`, `anyrcpt`, `body`; an empty body turns it off), and
/// whether it is on.
pub fn reply_request(address: &str, form: &[(String, String)]) -> Result<(Vec<u8>, bool), String> {
    let opt = |n: &str| {
        http::field(form, n)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let body = http::field(form, "body")
        .unwrap_or_default()
        .replace('\r', "");
    if body.trim().is_empty() {
        return Ok((request("reply", address, ""), false));
    }
    if body.len() > 4000 {
        return Err("The autoresponder text is longer than 4000 bytes.".into());
    }
    let text = mailorder_directory_admin::Reply {
        subject: opt("subject"),
        start: opt("start"),
        end: opt("end"),
        any_recipient: http::field(form, "anyrcpt") == Some("on"),
        body,
    }
    .text()
    .map_err(|e| format!("Autoresponder: {e}."))?;
    Ok((request("reply", address, &text), true))
}

/// Whether `ip` is in `net` (`ADDR` or `ADDR/BITS`, IPv4 or IPv6).
pub fn in_net(ip: &str, net: &str) -> bool {
    let (addr, bits) = match net.trim().split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (net.trim(), None),
    };
    let (Ok(ip), Ok(addr)) = (ip.parse::<IpAddr>(), addr.parse::<IpAddr>()) else {
        return false;
    };
    // An IPv4 client of a socket bound to `[::]` shows as `::ffff:a.b.c.d`.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let (a, b, width) = match (ip, addr) {
        (IpAddr::V4(x), IpAddr::V4(y)) => (u128::from(x.to_bits()), u128::from(y.to_bits()), 32),
        (IpAddr::V6(x), IpAddr::V6(y)) => (x.to_bits(), y.to_bits(), 128),
        _ => return false,
    };
    let bits = bits.unwrap_or(width).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

/// One webd-dirwrite request: `CMD\0ADDR\0VALUE\0`.
pub fn request(cmd: &str, addr: &str, value: &str) -> Vec<u8> {
    let mut r = Vec::new();
    for f in [cmd, addr, value] {
        r.extend_from_slice(f.as_bytes());
        r.push(0);
    }
    r
}

impl App {
    /// The admin's session, or the page to answer with instead.
    pub(crate) fn admin_session(&self, req: &Request, client: &str) -> Result<Session, Response> {
        match self.session(req) {
            Some((_, s)) if s.admin && self.admin_net(client) => Ok(s),
            Some((_, s)) => {
                log::warn!("admin page refused address={} ip={client}", s.address);
                Err(Response::html(
                    403,
                    pages::page("Refused", "<p>This page is for administrators.</p>", None),
                ))
            }
            None => Err(Response::redirect("/login")),
        }
    }

    pub(crate) fn render_admin(
        &self,
        s: &Session,
        req: &Request,
        note: Option<Result<String, String>>,
        status: u16,
    ) -> Response {
        let (search, page) = crate::listing(req);
        let rows = match (self.lister)() {
            Ok(r) => r,
            Err(e) => {
                log::error!("cannot list accounts: {e}");
                return Response::unavailable("The directory is not available");
            }
        };
        let matching: Vec<&Row> = rows
            .iter()
            .filter(|r| {
                search.is_empty()
                    || r.address.contains(&search)
                    || r.aliases.iter().any(|a| a.contains(&search))
                    || r.forward.iter().any(|a| a.contains(&search))
            })
            .collect();
        let (shown, page, pages_n) = crate::page_of(&matching, page);
        Response::html(
            status,
            pages::admin(
                s,
                &search,
                page,
                pages_n,
                matching.len(),
                shown,
                note.as_ref(),
            ),
        )
    }

    pub(crate) fn admin_action(&self, req: &Request, client: &str) -> Response {
        let (s, form) = match self.post(req, client, true) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let action = req.path.trim_start_matches("/admin/");
        if ["domain", "undomain", "alias", "unalias"].contains(&action) {
            return self.domains_action(&s, &form, action, req, client);
        }
        let target = http::field(&form, "address").unwrap_or_default().trim();
        let target = match mailorder_directory_admin::valid_address(target) {
            Ok(a) => a,
            Err(_) => {
                return self.render_admin(
                    &s,
                    req,
                    Some(Err("Enter a valid mail address.".into())),
                    400,
                );
            }
        };
        let (req_bytes, ok_text) = match action {
            "add" => {
                let pw = http::field(&form, "password").unwrap_or_default();
                if !pw.is_empty()
                    && let Err(why) = crate::policy::check(&target, pw)
                {
                    return self.render_admin(&s, req, Some(Err(why.into())), 400);
                }
                // Without a password the account gets a random one nobody knows, and
                // a set-password link follows.
                let pw = if pw.is_empty() {
                    token(24)
                } else {
                    pw.to_owned()
                };
                (request("add", &target, &pw), format!("{target} was added."))
            }
            "disable" => {
                let v = if http::field(&form, "value") == Some("no") {
                    "no"
                } else {
                    "yes"
                };
                (
                    request("disable", &target, v),
                    format!(
                        "{target} was {}.",
                        if v == "yes" { "disabled" } else { "enabled" }
                    ),
                )
            }
            "quota" => {
                let mb: u64 = match http::field(&form, "megabytes")
                    .unwrap_or("0")
                    .trim()
                    .parse()
                {
                    Ok(n) if n <= 10_000_000 => n,
                    _ => {
                        return self.render_admin(
                            &s,
                            req,
                            Some(Err("The quota is a number of megabytes.".into())),
                            400,
                        );
                    }
                };
                (
                    request("quota", &target, &(mb * 1024 * 1024).to_string()),
                    format!("The quota of {target} was set."),
                )
            }
            "token" => (request("token", &target, "72"), String::new()),
            "forward" => {
                match crate::forward_list(
                    http::field(&form, "forward").unwrap_or_default(),
                    &target,
                ) {
                    Ok(list) if list.is_empty() => (
                        request("forward", &target, ""),
                        format!("{target} no longer forwards."),
                    ),
                    Ok(list) => (
                        request("forward", &target, &list.join(",")),
                        format!("{target} now forwards to {}.", list.join(", ")),
                    ),
                    Err(why) => return self.render_admin(&s, req, Some(Err(why.into())), 400),
                }
            }
            "password" => {
                // An admin's reset: the same policy as the user's own change.
                let pw = http::field(&form, "password").unwrap_or_default();
                if let Err(why) = crate::policy::check(&target, pw) {
                    return self.render_admin(&s, req, Some(Err(why.into())), 400);
                }
                (
                    request("password", &target, pw),
                    format!("The password of {target} was set."),
                )
            }
            "reply" => match reply_request(&target, &form) {
                Ok((r, on)) => (
                    r,
                    format!(
                        "The autoresponder of {target} is {}.",
                        if on { "on" } else { "off" }
                    ),
                ),
                Err(why) => return self.render_admin(&s, req, Some(Err(why)), 400),
            },
            _ => {
                return Response::html(
                    404,
                    pages::page("Not found", "<p>No such action.</p>", None),
                );
            }
        };
        let result = (self.writer)(&req_bytes);
        self.audit(&s, action, &target, result.is_ok(), client);
        // A disabled account, or one whose password an admin reset, is logged out of the
        // console everywhere.
        let ends_sessions = (action == "disable" && http::field(&form, "value") != Some("no"))
            || action == "password";
        if result.is_ok() && ends_sessions {
            self.state().sessions.retain(|_, x| x.address != target);
        }
        match result {
            Ok(out)
                if action == "token"
                    || (action == "add"
                        && http::field(&form, "password")
                            .unwrap_or_default()
                            .is_empty()) =>
            {
                let token = if action == "token" {
                    out
                } else {
                    match (self.writer)(&request("token", &target, "72")) {
                        Ok(t) => t,
                        Err(e) => return self.render_admin(&s, req, Some(Err(e)), 503),
                    }
                };
                let host = req.header("host").unwrap_or("localhost");
                let link = format!("https://{host}/login/token?t={token}");
                self.render_admin(
                    &s,
                    req,
                    Some(Ok(format!(
                        "One-time set-password link for {target} (valid 72 hours, shown once): {link}"
                    ))),
                    200,
                )
            }
            Ok(_) => self.render_admin(&s, req, Some(Ok(ok_text)), 200),
            Err(e) => self.render_admin(&s, req, Some(Err(e)), 400),
        }
    }

    /// `GET /admin/domains?q=SEARCH`: the domains, and the aliases filtered by a
    /// substring of the alias or its owner.
    pub(crate) fn render_domains(
        &self,
        s: &Session,
        req: &Request,
        note: Option<Result<String, String>>,
        status: u16,
    ) -> Response {
        let (search, _) = crate::listing(req);
        let (rows, domains) = match ((self.lister)(), (self.domains)()) {
            (Ok(r), Ok(d)) => (r, d),
            (Err(e), _) | (_, Err(e)) => {
                log::error!("cannot read the directory: {e}");
                return Response::unavailable("The directory is not available");
            }
        };
        let mut counts = std::collections::HashMap::new();
        for r in &rows {
            if let Some((_, d)) = r.address.rsplit_once('@') {
                *counts.entry(d.to_owned()).or_insert(0usize) += 1;
            }
        }
        let domains: Vec<(String, String, usize)> = domains
            .into_iter()
            .map(|(d, k)| {
                let n = counts.get(&d).copied().unwrap_or(0);
                (d, k, n)
            })
            .collect();
        let aliases: Vec<(String, String)> = rows
            .iter()
            .flat_map(|r| r.aliases.iter().map(|a| (a.clone(), r.address.clone())))
            .filter(|(a, o)| search.is_empty() || a.contains(&search) || o.contains(&search))
            .take(500)
            .collect();
        Response::html(
            status,
            pages::domains(s, &search, &domains, &aliases, note.as_ref()),
        )
    }

    /// `POST /admin/domain` (`domain`, `kind`), `/admin/alias` and `/admin/unalias`
    /// (`address`: the owner, `alias`): one webd-dirwrite request and one audit line.
    fn domains_action(
        &self,
        s: &Session,
        form: &[(String, String)],
        action: &str,
        req: &Request,
        client: &str,
    ) -> Response {
        let field = |n: &str| http::field(form, n).unwrap_or_default().trim().to_owned();
        let (bytes, target, ok_text) = if action == "undomain" {
            let Ok(d) = mailorder_directory_admin::valid_domain(&field("domain")) else {
                return self.render_domains(
                    s,
                    req,
                    Some(Err("Enter a valid domain name.".into())),
                    400,
                );
            };
            (
                request("undomain", &d, ""),
                d.clone(),
                format!("{d} is no longer served here."),
            )
        } else if action == "domain" {
            let Ok(d) = mailorder_directory_admin::valid_domain(&field("domain")) else {
                return self.render_domains(
                    s,
                    req,
                    Some(Err("Enter a valid domain name.".into())),
                    400,
                );
            };
            let kind = if field("kind") == "relay" {
                "relay"
            } else {
                "local"
            };
            (
                request("domain", &d, kind),
                d.clone(),
                format!("{d} is served here ({kind})."),
            )
        } else {
            let (Ok(owner), Ok(alias)) = (
                mailorder_directory_admin::valid_address(&field("address")),
                mailorder_directory_admin::valid_address(&field("alias")),
            ) else {
                return self.render_domains(
                    s,
                    req,
                    Some(Err(
                        "Enter a valid alias and the address it belongs to.".into()
                    )),
                    400,
                );
            };
            let text = if action == "alias" {
                format!("{alias} now delivers to {owner}.")
            } else {
                format!("{alias} was removed from {owner}.")
            };
            (request(action, &owner, &alias), alias, text)
        };
        let result = (self.writer)(&bytes);
        self.audit(s, action, &target, result.is_ok(), client);
        match result {
            Ok(_) => self.render_domains(s, req, Some(Ok(ok_text)), 200),
            Err(e) => self.render_domains(s, req, Some(Err(e)), 400),
        }
    }

    /// One admin action done: its audit line and its count.
    pub(crate) fn audit(&self, s: &Session, action: &str, target: &str, ok: bool, client: &str) {
        self.metrics.admin_action();
        log::info!(
            "audit admin={} action={action} target={target} result={} ip={client}",
            s.address,
            if ok { "ok" } else { "failed" }
        );
    }

    pub(crate) fn token_login(&self, req: &Request, client: &str) -> Response {
        let form = req.form();
        let t = http::field(&form, "token")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let pre_ok = crate::prelogin_ok(req, &form);
        let again = |status: u16, why: &str| {
            let pre = token(16);
            Response::html(status, pages::token_login(&pre, &t, Some(why)))
                .with("Set-Cookie", &crate::prelogin_cookie(&pre))
        };
        if !pre_ok {
            return again(403, "The form was stale. Please try again.");
        }
        let now = Instant::now();
        if self.state().by_client.blocked(client, now) {
            return again(
                429,
                "Too many failed attempts. Wait 15 minutes and try again.",
            );
        }
        let digest = mailorder_webd_digest(&t);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let found = (self.tokens)().lines().find_map(|l| {
            let mut w = l.split_whitespace();
            let (h, a, e) = (w.next()?, w.next()?, w.next()?.parse::<u64>().ok()?);
            (same(h, &digest) && e > unix).then(|| a.to_owned())
        });
        let used = found.filter(|a| (self.writer)(&request("usetoken", a, &digest)).is_ok());
        match used {
            Some(address) => {
                log::info!("token login ok address={address} ip={client}");
                self.metrics.login("token_ok");
                self.start_session(&address, client, now)
            }
            None => {
                self.state().by_client.fail(client, now);
                log::warn!("token login failed ip={client}");
                self.metrics.login("token_failed");
                again(
                    403,
                    "This link is not valid (used, expired or mistyped). Ask for a new one.",
                )
            }
        }
    }
}

/// The SHA-256 of a token in lower-case hex, as webd-dirwrite stores it.
pub fn mailorder_webd_digest(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// HTML of one account row.
pub fn row_html(r: &Row, csrf: &str) -> String {
    let a = escape(&r.address);
    let c = escape(csrf);
    format!(
        "<tr><td>{a}{aliases}</td><td>{status}</td><td>{quota}</td><td>{fwd}</td><td class=\"actions\">\
         <form method=\"post\" action=\"/admin/disable\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
         <input type=\"hidden\" name=\"address\" value=\"{a}\"><input type=\"hidden\" name=\"value\" value=\"{v}\">\
         <button type=\"submit\" class=\"small\">{verb}</button></form>\
         <form method=\"post\" action=\"/admin/token\"><input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
         <input type=\"hidden\" name=\"address\" value=\"{a}\">\
         <button type=\"submit\" class=\"small\">Set-password link</button></form></td></tr>",
        aliases = if r.aliases.is_empty() {
            String::new()
        } else {
            format!(
                "<br><span class=\"hint\">{}</span>",
                escape(&r.aliases.join(", "))
            )
        },
        status = if r.disabled { "disabled" } else { "active" },
        quota = r
            .quota
            .map_or_else(|| "—".to_owned(), |q| format!("{} MB", q / (1024 * 1024))),
        fwd = escape(&r.forward.join(", ")),
        v = if r.disabled { "no" } else { "yes" },
        verb = if r.disabled { "Enable" } else { "Disable" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue #15
    #[test]
    fn list_lines() {
        assert_eq!(
            parse_list_line("a@x.test\tdisabled\t1048576\tb@y.test,c@y.test\tal@x.test"),
            Some(Row {
                address: "a@x.test".into(),
                disabled: true,
                quota: Some(1_048_576),
                forward: vec!["b@y.test".into(), "c@y.test".into()],
                aliases: vec!["al@x.test".into()],
            })
        );
        assert_eq!(
            parse_list_line("a@x.test\tactive\t\t\t"),
            Some(Row {
                address: "a@x.test".into(),
                disabled: false,
                quota: None,
                forward: vec![],
                aliases: vec![],
            })
        );
        // The last line of a trimmed output.
        assert_eq!(
            parse_list_line("a@x.test\tactive"),
            parse_list_line("a@x.test\tactive\t\t\t")
        );
        assert_eq!(parse_list_line(""), None);
        assert_eq!(parse_list_line("a@x.test\tactive\t\t\t\textra"), None);
    }

    #[test]
    fn networks() {
        assert!(in_net("127.0.0.1", "127.0.0.0/8"));
        assert!(in_net("10.1.2.3", "10.1.2.3"));
        assert!(!in_net("10.1.2.4", "10.1.2.3"));
        assert!(!in_net("192.168.1.1", "10.0.0.0/8"));
        assert!(in_net("::1", "::1/128"));
        assert!(!in_net("::1", "127.0.0.0/8"));
        assert!(in_net("1.2.3.4", "0.0.0.0/0"));
        assert!(!in_net("junk", "0.0.0.0/0"));
        assert!(in_net("::ffff:10.1.2.3", "10.0.0.0/8"));
        assert!(!in_net("::ffff:10.1.2.3", "127.0.0.0/8"));
    }
}
