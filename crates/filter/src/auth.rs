//! Sender authentication (issue 13): SPF on MAIL FROM and HELO, DKIM, ARC and DMARC with
//! the mail-auth crate, and the one `Authentication-Results` header (RFC 8601) with this
//! host's authserv-id. mail-auth's verification is async (hickory's resolver); the tokio
//! runtime stays inside this module, current-thread, made once per filter process.

use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// What smtpd said about the client (the `i` frame).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// `I`: the remote address.
    pub ip: Option<IpAddr>,
    /// `H`: the HELO/EHLO argument.
    pub helo: String,
    /// `S`: MAIL FROM (empty: the null sender).
    pub sender: String,
    /// `A`: the authenticated user, if any.
    pub auth_user: Option<String>,
    /// `R`: relaying allowed (client networks, RELAYCLIENT).
    pub relay: bool,
}

impl ClientInfo {
    /// Parse text0 records (`I…\0H…\0S…\0A…\0R\0`); unknown tags are ignored.
    pub fn parse(data: &[u8]) -> ClientInfo {
        let mut c = ClientInfo::default();
        for rec in data.split(|&b| b == 0).filter(|r| !r.is_empty()) {
            let val = String::from_utf8_lossy(&rec[1..]).into_owned();
            match rec[0] {
                b'I' => c.ip = val.parse().ok(),
                b'H' => c.helo = val,
                b'S' => c.sender = val,
                b'A' => c.auth_user = Some(val),
                b'R' => c.relay = true,
                _ => {}
            }
        }
        c
    }

    /// Whether sender checks apply: a stranger's mail (not AUTH, not a client network).
    pub fn is_inbound(&self) -> bool {
        self.auth_user.is_none() && !self.relay && self.ip.is_some()
    }
}

/// What the checks decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Pass the message with this `Authentication-Results:` header (LF-terminated);
    /// `quarantine`: the sender's DMARC policy asks for it (filed as spam).
    Pass {
        /// The header line(s).
        header: String,
        /// DMARC `p=quarantine` failed.
        quarantine: bool,
    },
    /// DMARC `p=reject` failed (and the domain is not in `dmarcoverride`): the domain.
    Reject(String),
}

/// The authenticator with its resolver and runtime.
pub struct Auth {
    rt: tokio::runtime::Runtime,
    auth: MessageAuthenticator,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Auth")
    }
}

impl Auth {
    /// A resolver asking `servers` (`control/dnsserver`, as remote-send reads it), or the
    /// system's when empty; `timeout` per query attempt.
    pub fn new(servers: &[SocketAddr], timeout: Duration) -> Result<Auth, String> {
        let (rt, resolver) = mailorder_resolver::build(servers, timeout, 256)?;
        Ok(Auth {
            rt,
            auth: MessageAuthenticator(resolver),
        })
    }

    /// SPF (HELO and MAIL FROM), DKIM, ARC, DMARC for `message` from `client`; `me` is
    /// the authserv-id; `overrides` are domains whose DMARC reject is not enforced;
    /// `enforce` false: no failed policy is enforced (a recipient's domain said
    /// `dmarc=no`), the result is only reported.
    pub fn check(
        &self,
        me: &str,
        client: &ClientInfo,
        message: &[u8],
        overrides: &[String],
        enforce: bool,
    ) -> Outcome {
        let Some(ip) = client.ip else {
            return Outcome::Pass {
                header: String::new(),
                quarantine: false,
            };
        };
        let Some(msg) = AuthenticatedMessage::parse(message) else {
            // Not a parseable message: nothing to authenticate, say so.
            return Outcome::Pass {
                header: format!("Authentication-Results: {me}; none\n"),
                quarantine: false,
            };
        };
        let helo = if client.helo.is_empty() {
            "unknown"
        } else {
            client.helo.as_str()
        };
        let sender = if client.sender.is_empty() {
            format!("postmaster@{helo}")
        } else {
            client.sender.clone()
        };
        let a = &self.auth;
        self.rt.block_on(async {
            let spf_helo = a.verify_spf(SpfParameters::verify_ehlo(ip, helo, me)).await;
            let spf = a
                .verify_spf(SpfParameters::verify_mail_from(ip, helo, me, &sender))
                .await;
            let dkim = a.verify_dkim(&msg).await;
            let arc = a.verify_arc(&msg).await;
            let mail_from_domain = sender.rsplit_once('@').map_or(helo, |(_, d)| d);
            let dmarc = a
                .verify_dmarc(DmarcParameters::new(&msg, &dkim, mail_from_domain, &spf))
                .await;
            let ar = AuthenticationResults::new(me)
                .with_dkim_results(&dkim, msg.from())
                .with_spf_ehlo_result(&spf_helo, ip, helo)
                .with_spf_mailfrom_result(&spf, ip, &sender, helo)
                .with_arc_result(&arc, ip)
                .with_dmarc_result(&dmarc);
            let header = format!("Authentication-Results: {ar}\n").replace("\r\n", "\n");
            let failed = matches!(dmarc.result(), DmarcResult::Fail(_));
            let domain = dmarc.domain().to_ascii_lowercase();
            let overridden = !enforce || overrides.iter().any(|o| o.eq_ignore_ascii_case(&domain));
            if failed && overridden {
                log::info!("dmarc failure of {domain} not enforced");
            }
            match dmarc.policy() {
                Policy::Reject if failed && !overridden => Outcome::Reject(domain),
                Policy::Quarantine if failed && !overridden => Outcome::Pass {
                    header,
                    quarantine: true,
                },
                _ => Outcome::Pass {
                    header,
                    quarantine: false,
                },
            }
        })
    }
}

/// Whether the header field `Authentication-Results: VALUE` claims `me` as its
/// authserv-id (RFC 8601 §5: such fields from outside are removed).
pub fn claims(value: &[u8], me: &str) -> bool {
    let v = String::from_utf8_lossy(value);
    // The authserv-id is the first token, before `;` or white space (a version may follow).
    let id = v
        .trim_start()
        .split(|c: char| c == ';' || c.is_whitespace())
        .next()
        .unwrap_or("");
    id.eq_ignore_ascii_case(me)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_info_records() {
        let c = ClientInfo::parse(b"I192.0.2.1\0Hmx.example\0Sa@b.example\0R\0Xjunk\0");
        assert_eq!(c.ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(c.helo, "mx.example");
        assert_eq!(c.sender, "a@b.example");
        assert!(c.relay && !c.is_inbound());
        let c = ClientInfo::parse(b"I::1\0H\0S\0");
        assert!(c.is_inbound());
        assert!(!ClientInfo::parse(b"I1.2.3.4\0Aalice\0").is_inbound());
    }

    #[test]
    fn our_authserv_id_is_recognised() {
        assert!(claims(b" mx.example.test; spf=pass", "MX.example.test"));
        assert!(claims(b"mx.example.test 1; none", "mx.example.test"));
        assert!(!claims(
            b" other.test; spf=pass smtp.mailfrom=mx.example.test",
            "mx.example.test"
        ));
    }
}
