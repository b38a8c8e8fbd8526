//! webd: the web console (CONTRACT.md) — HTTPS on loopback, the self-service page for
//! users, under its own uid.
//!
//! One thread per connection, blocking std I/O, TLS through mailorder-tls-common (the same
//! rustls setup as tlswrap), one request per connection (`Connection: close`). The
//! request grammar is in [`http`] (no I/O), the password policy and login limiter in
//! [`policy`], the pages in [`pages`]. webd writes nothing of the directory or the
//! queue itself: logins go through the checkpassword program (`checkpassword-file true`,
//! as every login does), directory changes through `webd-dirwrite` (a fixed request on
//! its stdin).

pub mod activity;
pub mod admin;
pub mod http;
pub mod live;
pub mod metrics;
pub mod pages;
pub mod policy;
pub mod queue;

use http::{Framer, Request};
use mailorder_core::control::Control;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[mailorder_core::Exit::Temp.code()];

/// The session cookie: `__Host-` pins it to this origin, path `/`, Secure.
pub const SESSION_COOKIE: &str = "__Host-mosession";
/// The directory's admin flag: a `status=` word in the file directory, an
/// `accountStatus` value in LDAP (mailorder-directory-admin's `restrictions`).
pub const ADMIN_FLAG: &str = "webadmin";

/// The pre-login cookie that the login forms' CSRF token is bound to.
pub const PRELOGIN_COOKIE: &str = "__Host-mopre";

/// What webd reads at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The installation root.
    pub root: PathBuf,
    /// `control/webaddr`: where the pages are served.
    pub addr: String,
    /// `ssl/cert.pem`, `ssl/key.pem`.
    pub cert: PathBuf,
    /// The key.
    pub key: PathBuf,
    /// `control/webtimeout`: seconds per connection.
    pub timeout: Duration,
    /// `control/websessionlife`: seconds a session lives without use.
    pub session_life: Duration,
    /// `control/webloginlimit`: failed logins per address (and 4 times that per client
    /// address) in 15 minutes before further attempts are refused.
    pub login_limit: usize,
    /// `control/webadmins`: the addresses that get the admin console.
    pub admins: Vec<String>,
    /// `control/webadminnets`: client networks admins may log in from (empty: any).
    pub admin_nets: Vec<String>,
    /// `control/webmetricsaddr`: where the metrics are served (plain HTTP; empty: off).
    pub metrics_addr: String,
    /// `control/weblogs`: `NAME PATH` of each log to follow (empty: the supervise logs).
    pub logs: Vec<String>,
    /// `control/webservices`: `NAME PORT` of each service whose connections are counted
    /// (empty: the standard ports).
    pub services: Vec<String>,
}

impl Config {
    /// Read the control files of installation `root`.
    pub fn load(root: &Path) -> Result<Config, mailorder_core::control::ControlError> {
        let c = Control::new(root.join("control"));
        Ok(Config {
            root: root.to_owned(),
            addr: c.string("webaddr", "127.0.0.1:8443")?,
            cert: root.join("ssl/cert.pem"),
            key: root.join("ssl/key.pem"),
            timeout: Duration::from_secs(c.number("webtimeout", 30)?),
            session_life: Duration::from_secs(c.number("websessionlife", 1800)?),
            login_limit: usize::try_from(c.number("webloginlimit", 5)?).unwrap_or(5),
            admins: c
                .list("webadmins")?
                .iter()
                .map(|a| a.trim().to_lowercase())
                .collect(),
            admin_nets: c.list("webadminnets")?,
            metrics_addr: c.string("webmetricsaddr", "127.0.0.1:9443")?,
            logs: c.list("weblogs")?,
            services: c.list("webservices")?,
        })
    }
}

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    /// The canonical address.
    pub address: String,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// Last use.
    pub seen: Instant,
    /// Flagged `webadmin` in the directory or listed in `control/webadmins` (and logged in
    /// from `control/webadminnets`).
    pub admin: bool,
}

/// How a login is checked: (address, password, client) → result.
pub type Checker = Box<dyn Fn(&str, &str, &str) -> LoginResult + Send + Sync>;
/// How a directory change is made: one webd-dirwrite request.
pub type Writer = Box<dyn Fn(&[u8]) -> Result<String, String> + Send + Sync>;
/// All accounts, for the admin pages.
pub type Lister = Box<dyn Fn() -> Result<Vec<admin::Row>, String> + Send + Sync>;
/// The forwarding addresses of a user.
pub type Reader = Box<dyn Fn(&str) -> Option<mailorder_directory_admin::Account> + Send + Sync>;
/// The domains and their kinds (`local`, `relay`), for the admin pages.
pub type DomainLister = Box<dyn Fn() -> Result<Vec<(String, String)>, String> + Send + Sync>;

/// The shared state of the server.
pub struct State {
    sessions: HashMap<String, Session>,
    by_address: policy::Limiter,
    by_client: policy::Limiter,
}

/// The server: configuration, TLS and state.
pub struct App {
    /// The configuration.
    pub cfg: Config,
    state: Mutex<State>,
    /// Overridable for tests: how a login is checked.
    pub checker: Checker,
    /// Overridable for tests: how a directory change is made.
    pub writer: Writer,
    /// Overridable for tests: the forwarding addresses of a user.
    pub reader: Reader,
    /// Overridable for tests: all accounts.
    pub lister: Lister,
    /// Overridable for tests: the domains.
    pub domains: DomainLister,
    /// Overridable for tests: the token file's text.
    pub tokens: Box<dyn Fn() -> String + Send + Sync>,
    /// The counters behind the metrics endpoint.
    pub metrics: metrics::Metrics,
    /// The mail system's live figures (the activity page, the metrics).
    pub activity: activity::Activity,
    /// Overridable for tests: how a queue request is made (webd-queue).
    pub queue: queue::Runner,
    /// Event streams open now.
    watchers: AtomicUsize,
}

/// What a login check gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginResult {
    /// Good; the canonical address.
    Good(String),
    /// Wrong address or password.
    Bad,
    /// The directory is unreachable: try again later.
    Temp,
}

/// Random bytes as lower-case hex.
pub fn token(n: usize) -> String {
    let mut b = vec![0u8; n];
    if getrandom::fill(&mut b).is_err() {
        // No randomness means no safe session: make that loud rather than weak.
        log::error!("no randomness from the kernel (#4.3.0)");
        mailorder_core::exit::exit(mailorder_core::Exit::Temp.code());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Compare without an early exit (tokens).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The checkpassword program of `root`, run as `CHECKPASSWORD true` with `SERVICE=web`.
pub fn checkpassword(address: &str, password: &str, client: &str) -> LoginResult {
    use mailorder_login_common::{Checkpassword, Outcome};
    if !mailorder_login_common::valid_login(address.as_bytes()) {
        return LoginResult::Bad;
    }
    let cp = Checkpassword {
        argv: vec![
            mailorder_core::root::program("checkpassword-file").into(),
            "true".into(),
        ],
        service: "web",
    };
    let env = [("TCPREMOTEIP".to_owned(), client.to_owned())];
    match cp.run(address.as_bytes(), password.as_bytes(), b"", &env) {
        Ok(Outcome::Served(0)) => {
            let canon = mailorder_directory_admin::valid_address(address)
                .unwrap_or_else(|_| address.to_owned());
            // The primary address when the login was an alias.
            let primary =
                mailorder_directory_admin::Store::open_read(&mailorder_core::root::root())
                    .ok()
                    .and_then(|mut s| s.owner_of(&canon).ok().flatten())
                    .unwrap_or(canon);
            LoginResult::Good(primary)
        }
        Ok(Outcome::Bad) | Ok(Outcome::Misuse) => LoginResult::Bad,
        Ok(_) => LoginResult::Temp,
        Err(e) => {
            log::error!("{e}");
            LoginResult::Temp
        }
    }
}

/// Run `webd-dirwrite` with `request` on its stdin; returns its output (a new token).
pub fn dirwrite(request: &[u8]) -> Result<String, String> {
    let out = run_helper("webd-dirwrite", request)?;
    match out.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
        Some(100) => Err("the directory refused the change".to_owned()),
        _ => Err("the directory is not available; try again later".to_owned()),
    }
}

/// Run the helper program `name` (webd-dirwrite, webd-queue: the privileged sides) with
/// `input` on its stdin, closed after it: its status and stdout (stderr is webd's log).
pub(crate) fn run_helper(name: &str, input: &[u8]) -> Result<std::process::Output, String> {
    let prog = mailorder_core::root::program(name);
    let mut child = std::process::Command::new(&prog)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", prog.display()))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input);
    }
    child.wait_with_output().map_err(|e| e.to_string())
}

/// The account of `address` in the directory (read access: group modir), for the
/// forwarding and the autoresponder shown.
pub fn read_account(address: &str) -> Option<mailorder_directory_admin::Account> {
    let mut s = mailorder_directory_admin::Store::open_read(&mailorder_core::root::root()).ok()?;
    s.get(address).ok().flatten()
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// An HTML page.
    pub fn html(status: u16, body: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.into_bytes(),
        }
    }

    /// A 303 redirect to `to` (a local path).
    pub fn redirect(to: &str) -> Response {
        Response {
            status: 303,
            headers: vec![("Location".into(), to.into())],
            body: Vec::new(),
        }
    }

    /// Plain text.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// A static file of the binary (style sheet, script).
    pub fn asset(content_type: &str, body: &'static str) -> Response {
        Response {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                format!("{content_type}; charset=utf-8"),
            )],
            body: body.as_bytes().to_vec(),
        }
    }

    /// 503: something webd relies on is not available; `what` says what, for a person.
    pub fn unavailable(what: &str) -> Response {
        Response::html(
            503,
            pages::page(
                "Unavailable",
                &format!("<p>{}; try again later.</p>", http::escape(what)),
                None,
            ),
        )
    }

    /// Add a header.
    pub fn with(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The bytes on the wire, with the security headers every answer carries.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.head(Some(self.body.len()));
        v.extend_from_slice(&self.body);
        v
    }

    /// The status line and headers, with the security headers every answer carries;
    /// without a length the body runs until the connection closes (an event stream).
    pub fn head(&self, length: Option<usize>) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            303 => "See Other",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            411 => "Length Required",
            413 => "Content Too Large",
            429 => "Too Many Requests",
            431 => "Request Header Fields Too Large",
            503 => "Service Unavailable",
            _ => "Status",
        };
        let mut h = format!("HTTP/1.1 {} {reason}\r\n", self.status);
        for (n, v) in &self.headers {
            h.push_str(&format!("{n}: {v}\r\n"));
        }
        h.push_str(concat!(
            "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; ",
            "img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; ",
            "frame-ancestors 'none'\r\n",
            "X-Frame-Options: DENY\r\n",
            "X-Content-Type-Options: nosniff\r\n",
            "Referrer-Policy: same-origin\r\n",
            "Strict-Transport-Security: max-age=31536000\r\n",
            "Cache-Control: no-store\r\n",
            "Cross-Origin-Opener-Policy: same-origin\r\n",
            "Connection: close\r\n",
        ));
        if let Some(n) = length {
            h.push_str(&format!("Content-Length: {n}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }
}

/// The pre-login cookie carrying `pre`, the token the login forms repeat.
pub(crate) fn prelogin_cookie(pre: &str) -> String {
    format!("{PRELOGIN_COOKIE}={pre}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// Whether a login form (password or token) carries its pre-login cookie's token.
pub(crate) fn prelogin_ok(req: &Request, form: &[(String, String)]) -> bool {
    match (req.cookie(PRELOGIN_COOKIE), http::field(form, "csrf")) {
        (Some(c), Some(f)) => !c.is_empty() && same(&c, f),
        _ => false,
    }
}

/// Rows per page of the admin listings (users, queue).
pub const PAGE: usize = 50;

/// The search text (`q`, trimmed, lower case) and page number (`page`, from 0) of a
/// listing's query string.
pub fn listing(req: &Request) -> (String, usize) {
    let q = http::form(req.query.as_bytes());
    (
        http::field(&q, "q")
            .unwrap_or_default()
            .trim()
            .to_lowercase(),
        http::field(&q, "page")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
    )
}

/// Page `page` of `items`, [`PAGE`] rows: the rows, the page shown (clamped to the last)
/// and the number of pages (at least 1).
pub fn page_of<T>(items: &[T], page: usize) -> (&[T], usize, usize) {
    let total = items.len();
    let pages = total.div_ceil(PAGE).max(1);
    let page = page.min(pages - 1);
    (
        &items[(page * PAGE).min(total)..((page + 1) * PAGE).min(total)],
        page,
        pages,
    )
}

fn session_cookie(id: &str, life: Duration) -> String {
    format!(
        "{SESSION_COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        life.as_secs()
    )
}

fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

impl App {
    /// The server with the real checkpassword, directory writer and reader.
    pub fn new(cfg: Config) -> App {
        let limit = cfg.login_limit.max(1);
        App {
            state: Mutex::new(State {
                sessions: HashMap::new(),
                by_address: policy::Limiter::new(limit, Duration::from_secs(900)),
                by_client: policy::Limiter::new(limit * 4, Duration::from_secs(900)),
            }),
            cfg,
            checker: Box::new(checkpassword),
            writer: Box::new(dirwrite),
            reader: Box::new(read_account),
            domains: Box::new(admin::list_domains),
            lister: Box::new(admin::list_accounts),
            metrics: metrics::Metrics::default(),
            activity: activity::Activity::default(),
            queue: Box::new(queue::webd_queue),
            watchers: AtomicUsize::new(0),
            tokens: Box::new(|| {
                std::fs::read_to_string(mailorder_core::root::root().join("directory/webtokens"))
                    .unwrap_or_default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic in another thread while holding the lock leaves plain data behind.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The session a request carries, if live (its use time is refreshed).
    pub fn session(&self, req: &Request) -> Option<(String, Session)> {
        let id = req.cookie(SESSION_COOKIE)?;
        let mut st = self.state();
        let life = self.cfg.session_life;
        let now = Instant::now();
        st.sessions.retain(|_, s| now.duration_since(s.seen) < life);
        let s = st.sessions.get_mut(&id)?;
        s.seen = now;
        Some((id, s.clone()))
    }

    /// Every admin page passes here: an admin's live session, or the answer instead (the
    /// login page, or 403 for a user who is no admin).
    fn admin_get(
        &self,
        req: &Request,
        client: &str,
        f: impl FnOnce(&Session) -> Response,
    ) -> Response {
        match self.admin_session(req, client) {
            Ok(s) => f(&s),
            Err(r) => r,
        }
    }

    /// Whether session `id` (with CSRF token `csrf`) is still live, without counting this
    /// as a use (an open live page does not keep a session alive).
    pub fn session_alive(&self, id: &str, csrf: &str) -> bool {
        let st = self.state();
        st.sessions
            .get(id)
            .is_some_and(|s| s.csrf == csrf && s.seen.elapsed() < self.cfg.session_life)
    }

    /// A request whose `Origin` (when sent) is not this server's is a cross-site one.
    fn cross_site(req: &Request) -> bool {
        match (req.header("origin"), req.header("host")) {
            (Some(o), Some(h)) => o
                .strip_prefix("https://")
                .is_none_or(|rest| !rest.eq_ignore_ascii_case(h)),
            (Some(_), None) => true,
            _ => req
                .header("sec-fetch-site")
                .is_some_and(|s| s == "cross-site"),
        }
    }

    /// Answer one request from client address `client`.
    pub fn handle(&self, req: &Request, client: &str) -> Response {
        let get = req.method == "GET" || req.method == "HEAD";
        if !get && req.method != "POST" {
            return Response::text(405, "method not allowed\n").with("Allow", "GET, HEAD, POST");
        }
        if !get && Self::cross_site(req) {
            log::warn!("cross-site request refused path={} ip={client}", req.path);
            return Response::text(403, "cross-site request refused\n");
        }
        match (get, req.path.as_str()) {
            (true, "/static/style.css") => Response::asset("text/css", pages::STYLE),
            (true, "/static/activity.js") => Response::asset("text/javascript", pages::ACTIVITY_JS),
            (true, "/static/icon.svg") => Response::asset("image/svg+xml", pages::ICON),
            (true, "/") => match self.session(req) {
                Some(_) => Response::redirect("/account"),
                None => Response::redirect("/login"),
            },
            (true, "/login") => self.login_page(None, 200),
            (false, "/login") => self.login(req, client),
            (true, "/account") => match self.session(req) {
                Some((_, s)) => self.account_page(&s, req, None, 200),
                None => Response::redirect("/login"),
            },
            (false, "/account/password") => {
                self.with_session(req, client, |s, f| self.change_password(s, f, req, client))
            }
            (false, "/account/reply") => {
                self.with_session(req, client, |s, f| self.set_reply(s, f, req, client))
            }
            (false, "/account/forward") => {
                self.with_session(req, client, |s, f| self.set_forward(s, f, req, client))
            }
            (true, "/login/token") => {
                let pre = token(16);
                let t = req
                    .query
                    .strip_prefix("t=")
                    .map(|t| http::decode(t.as_bytes()))
                    .unwrap_or_default();
                Response::html(200, pages::token_login(&pre, &t, None))
                    .with("Set-Cookie", &prelogin_cookie(&pre))
            }
            (false, "/login/token") => self.token_login(req, client),
            (true, "/admin") => {
                self.admin_get(req, client, |s| self.render_admin(s, req, None, 200))
            }
            (true, "/admin/activity") => {
                self.admin_get(req, client, |s| Response::html(200, pages::activity(s)))
            }
            (true, "/admin/domains") => {
                self.admin_get(req, client, |s| self.render_domains(s, req, None, 200))
            }
            (true, "/admin/queue") => {
                self.admin_get(req, client, |s| self.render_queue(s, req, None, 200))
            }
            (true, "/admin/queue/show") => self.admin_get(req, client, |s| {
                let q = http::form(req.query.as_bytes());
                self.render_show(s, http::field(&q, "id").unwrap_or_default(), None, 200)
            }),
            (false, p) if p.starts_with("/admin/queue/") => self.queue_action(req, client),
            (false, p) if p.starts_with("/admin/") => self.admin_action(req, client),
            (false, "/logout") => self.with_session(req, client, |s, _| {
                self.state().sessions.retain(|_, x| x.csrf != s.csrf);
                log::info!("logout address={} ip={client}", s.address);
                Response::redirect("/login").with("Set-Cookie", &clear_cookie(SESSION_COOKIE))
            }),
            _ => Response::html(404, pages::page("Not found", "<p>No such page.</p>", None)),
        }
    }

    /// A state change: a live session and its CSRF token, or 403.
    fn with_session(
        &self,
        req: &Request,
        client: &str,
        f: impl FnOnce(&Session, &[(String, String)]) -> Response,
    ) -> Response {
        match self.post(req, client, false) {
            Ok((s, form)) => f(&s, &form),
            Err(r) => r,
        }
    }

    /// Every form post passes here: a live session (an admin's when `admin`), and the
    /// form with the session's CSRF token; otherwise the 403 page to answer with (and a
    /// log line).
    pub(crate) fn post(
        &self,
        req: &Request,
        client: &str,
        admin: bool,
    ) -> Result<(Session, http::Form), Response> {
        let Some((_, s)) = self.session(req) else {
            log::warn!(
                "state change without a session refused path={} ip={client}",
                req.path
            );
            return Err(Response::html(
                403,
                pages::page(
                    "Not logged in",
                    "<p>Your session has ended. <a href=\"/login\">Log in</a> again.</p>",
                    None,
                ),
            ));
        };
        if admin && !(s.admin && self.admin_net(client)) {
            log::warn!("admin page refused address={} ip={client}", s.address);
            return Err(Response::html(
                403,
                pages::page("Refused", "<p>This page is for administrators.</p>", None),
            ));
        }
        let form = req.form();
        if !http::field(&form, "csrf").is_some_and(|t| same(t, &s.csrf)) {
            log::warn!(
                "bad CSRF token refused path={} address={} ip={client}",
                req.path,
                s.address
            );
            let back = if s.admin { "/admin" } else { "/account" };
            return Err(Response::html(
                403,
                pages::page(
                    "Refused",
                    &format!(
                        "<p>The form was stale or forged. <a href=\"{back}\">Reload</a> the page.</p>"
                    ),
                    None,
                ),
            ));
        }
        Ok((s, form))
    }

    /// Whether `client` may use the admin pages (`control/webadminnets`; empty: any).
    /// Checked at login and again at each admin request, so that an admin session's
    /// cookie is no use from elsewhere.
    pub(crate) fn admin_net(&self, client: &str) -> bool {
        self.cfg.admin_nets.is_empty()
            || self.cfg.admin_nets.iter().any(|n| admin::in_net(client, n))
    }

    /// A new session for `address`, its cookie, and the way to the right page.
    fn start_session(&self, address: &str, client: &str, now: Instant) -> Response {
        let id = token(32);
        // The directory's admin flag, or control/webadmins (the root-only override).
        let admin = (self.cfg.admins.iter().any(|a| a == address)
            || (self.reader)(address)
                .is_some_and(|a| a.restrictions.iter().any(|r| r == ADMIN_FLAG)))
            && self.admin_net(client);
        let s = Session {
            address: address.to_owned(),
            csrf: token(32),
            seen: now,
            admin,
        };
        self.state().sessions.insert(id.clone(), s);
        Response::redirect(if admin { "/admin" } else { "/account" })
            .with("Set-Cookie", &session_cookie(&id, self.cfg.session_life))
            .with("Set-Cookie", &clear_cookie(PRELOGIN_COOKIE))
    }

    fn login_page(&self, error: Option<&str>, status: u16) -> Response {
        let pre = token(16);
        Response::html(status, pages::login(&pre, error)).with("Set-Cookie", &prelogin_cookie(&pre))
    }

    fn login(&self, req: &Request, client: &str) -> Response {
        let form = req.form();
        let pre_ok = prelogin_ok(req, &form);
        if !pre_ok {
            log::warn!("login without its CSRF token refused ip={client}");
            return self.login_page(Some("The form was stale. Please try again."), 403);
        }
        let address = http::field(&form, "address")
            .unwrap_or_default()
            .trim()
            .to_lowercase();
        let password = http::field(&form, "password").unwrap_or_default();
        if address.is_empty() || password.is_empty() || address.len() > 255 || password.len() > 1024
        {
            return self.login_page(Some("Enter your address and password."), 400);
        }
        let now = Instant::now();
        {
            let mut st = self.state();
            if st.by_address.blocked(&address, now) || st.by_client.blocked(client, now) {
                log::warn!(
                    "login refused: too many failures address={} ip={client}",
                    mailorder_core::logger::loggable(address.as_bytes())
                );
                self.metrics.login("limited");
                return self.login_page(
                    Some("Too many failed attempts. Wait 15 minutes and try again."),
                    429,
                );
            }
        }
        match (self.checker)(&address, password, client) {
            LoginResult::Good(primary) => {
                log::info!("login ok address={primary} ip={client}");
                self.metrics.login("ok");
                self.activity
                    .count(activity::kind::LOGIN_OK, activity::unix_now());
                self.start_session(&primary, client, now)
            }
            LoginResult::Bad => {
                self.metrics.login("failed");
                self.activity
                    .count(activity::kind::LOGIN_FAILED, activity::unix_now());
                let mut st = self.state();
                st.by_address.fail(&address, now);
                st.by_client.fail(client, now);
                drop(st);
                log::warn!(
                    "login failed address={} ip={client}",
                    mailorder_core::logger::loggable(address.as_bytes())
                );
                self.login_page(Some("Wrong address or password."), 403)
            }
            LoginResult::Temp => {
                self.metrics.login("temp");
                self.login_page(
                    Some("The directory is not available; try again later."),
                    503,
                )
            }
        }
    }

    fn account_page(
        &self,
        s: &Session,
        req: &Request,
        note: Option<Result<&str, &str>>,
        status: u16,
    ) -> Response {
        let acct = (self.reader)(&s.address).unwrap_or_default();
        let note = note.or(match req.query.as_str() {
            "done=password" => Some(Ok("Your password was changed.")),
            "done=forward" => Some(Ok("Your forwarding was saved.")),
            "done=reply" => Some(Ok("Your autoresponder was saved.")),
            "done=noreply" => Some(Ok("Your autoresponder is off.")),
            _ => None,
        });
        let reply = acct
            .reply
            .as_deref()
            .map(mailorder_directory_admin::Reply::parse);
        Response::html(
            status,
            pages::account(&s.address, &s.csrf, &acct.forward, reply.as_ref(), note),
        )
    }

    fn change_password(
        &self,
        s: &Session,
        form: &[(String, String)],
        req: &Request,
        client: &str,
    ) -> Response {
        let new = http::field(form, "new").unwrap_or_default();
        let again = http::field(form, "again").unwrap_or_default();
        if new != again {
            return self.account_page(s, req, Some(Err("The two new passwords differ.")), 400);
        }
        if let Err(why) = policy::check(&s.address, new) {
            return self.account_page(s, req, Some(Err(why)), 400);
        }
        let r = admin::request("password", &s.address, new);
        self.self_change(
            s,
            req,
            client,
            &r,
            ("password", "password changed", ""),
            "password",
        )
    }

    /// One self-service change: the webd-dirwrite request, its log line (`what.1`, the
    /// address, `what.2`), and the way back to the account page (`?done=DONE`); or the
    /// page saying that the `what.0` could not be saved.
    fn self_change(
        &self,
        s: &Session,
        req: &Request,
        client: &str,
        request: &[u8],
        what: (&str, &str, &str),
        done: &str,
    ) -> Response {
        let (thing, logged, extra) = what;
        match (self.writer)(request) {
            Ok(_) => {
                log::info!("{logged} address={}{extra} ip={client}", s.address);
                Response::redirect(&format!("/account?done={done}"))
            }
            Err(e) => {
                log::error!(
                    "{thing} change failed address={} ip={client}: {e}",
                    s.address
                );
                let why = format!("The {thing} could not be saved; try again later.");
                self.account_page(s, req, Some(Err(&why)), 503)
            }
        }
    }

    fn set_reply(
        &self,
        s: &Session,
        form: &[(String, String)],
        req: &Request,
        client: &str,
    ) -> Response {
        let (r, on) = match admin::reply_request(&s.address, form) {
            Ok(x) => x,
            Err(why) => return self.account_page(s, req, Some(Err(&why)), 400),
        };
        let (logged, done) = if on {
            ("autoresponder set", "reply")
        } else {
            ("autoresponder off", "noreply")
        };
        self.self_change(s, req, client, &r, ("autoresponder", logged, ""), done)
    }

    fn set_forward(
        &self,
        s: &Session,
        form: &[(String, String)],
        req: &Request,
        client: &str,
    ) -> Response {
        let list = match forward_list(http::field(form, "forward").unwrap_or_default(), &s.address)
        {
            Ok(l) => l,
            Err(why) => return self.account_page(s, req, Some(Err(why)), 400),
        };
        let r = admin::request("forward", &s.address, &list.join(","));
        let count = format!(" count={}", list.len());
        self.self_change(
            s,
            req,
            client,
            &r,
            ("forwarding", "forwarding set", &count),
            "forward",
        )
    }
}

/// The forwarding addresses of a form field for account `own`: separated by commas,
/// spaces or lines, each through the directory's address grammar, not `own`, at most 20.
pub(crate) fn forward_list(raw: &str, own: &str) -> Result<Vec<String>, &'static str> {
    let mut list = Vec::new();
    for a in raw
        .split([',', '\n', '\r', ' '])
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        match mailorder_directory_admin::valid_address(a) {
            Ok(a) if a != own => list.push(a),
            _ => {
                return Err(
                    "Forwarding: enter valid addresses other than the account's own, separated by commas.",
                );
            }
        }
    }
    if list.len() > 20 {
        return Err("Forwarding: at most 20 addresses.");
    }
    Ok(list)
}

/// Serve one connection: TLS handshake, one request, one answer.
fn connection(app: &App, tls: Arc<rustls::ServerConfig>, stream: TcpStream) -> std::io::Result<()> {
    let client = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    stream.set_read_timeout(Some(app.cfg.timeout))?;
    stream.set_write_timeout(Some(app.cfg.timeout))?;
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + app.cfg.timeout;
    let mut tls = mailorder_tls_common::TlsStream::new(tls, stream.try_clone()?, stream)?;
    tls.handshake()?;
    app.metrics.connection();
    let mut framer = Framer::new();
    let mut buf = [0u8; 8192];
    let resp = loop {
        if Instant::now() > deadline {
            return Ok(());
        }
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        match framer.push(&buf[..n]) {
            Ok(Some(req)) if req.method == "GET" && req.path == "/admin/events" => {
                app.events(&req, &client, &mut tls)?;
                tls.flush()?;
                let _ = tls.close();
                return Ok(());
            }
            Ok(Some(req)) => {
                let started = Instant::now();
                let mut r = app.handle(&req, &client);
                app.metrics
                    .request(r.status, started.elapsed().as_secs_f64());
                if req.method == "HEAD" {
                    r.body.clear();
                }
                break r;
            }
            Ok(None) => {}
            Err(e) => break Response::text(e.status(), &format!("{e}\n")),
        }
    };
    tls.write_all(&resp.to_bytes())?;
    tls.flush()?;
    let _ = tls.close();
    Ok(())
}

/// The most connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 64;

/// Accept and serve forever.
pub fn serve(app: Arc<App>, listener: TcpListener) -> std::io::Result<()> {
    let active = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, _) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        while active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Each connection reads the certificate anew, as tlswrap does: a renewed one is
        // taken without a restart.
        let tls = match mailorder_tls_common::server_config(&app.cfg.cert, &app.cfg.key) {
            Ok(t) => t,
            Err(e) => {
                log::error!("{e}");
                continue;
            }
        };
        active.fetch_add(1, Ordering::SeqCst);
        let (app, active) = (app.clone(), active.clone());
        std::thread::spawn(move || {
            if let Err(e) = connection(&app, tls, stream) {
                log::debug!("connection: {e}");
            }
            active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// The metrics endpoint: plain HTTP, `GET /metrics`, one request per connection.
fn serve_metrics(app: &App, listener: TcpListener) {
    for stream in listener.incoming().flatten() {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        let mut stream = stream;
        let mut framer = Framer::new();
        let mut buf = [0u8; 4096];
        let resp = loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break None,
                Ok(n) => match framer.push(&buf[..n]) {
                    Ok(Some(req)) if req.method == "GET" && req.path == "/metrics" => {
                        let sessions = app.state().sessions.len();
                        app.activity.set_queue(app.queue_stat());
                        let mut text = app.metrics.render(sessions);
                        text.push_str(&metrics::render_mail(&app.activity.snapshot()));
                        let mut r = Response::text(200, &text);
                        r.headers = vec![(
                            "Content-Type".into(),
                            "text/plain; version=0.0.4; charset=utf-8".into(),
                        )];
                        break Some(r);
                    }
                    Ok(Some(_)) => break Some(Response::text(404, "GET /metrics\n")),
                    Ok(None) => {}
                    Err(e) => break Some(Response::text(e.status(), &format!("{e}\n"))),
                },
            }
        };
        if let Some(r) = resp {
            let _ = stream.write_all(&r.to_bytes());
        }
    }
}

/// Load the configuration of `root`, bind, serve. Returns only on a start-up failure.
pub fn run(root: &Path) -> u8 {
    let cfg = match Config::load(root) {
        Ok(c) => c,
        Err(e) => return mailorder_core::exit::failed(mailorder_core::Exit::Temp, e),
    };
    if let Err(e) = mailorder_tls_common::server_config(&cfg.cert, &cfg.key) {
        return mailorder_core::exit::failed(mailorder_core::Exit::Temp, e);
    }
    let listener = match TcpListener::bind(&cfg.addr) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot listen on {}: {e} (#4.3.0)", cfg.addr);
            return mailorder_core::Exit::Temp.code();
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    log::info!("listening url=https://{local}/");
    let metrics_listener = if cfg.metrics_addr.is_empty() {
        None
    } else {
        match TcpListener::bind(&cfg.metrics_addr) {
            Ok(l) => Some(l),
            Err(e) => {
                log::error!("cannot listen on {}: {e} (#4.3.0)", cfg.metrics_addr);
                return mailorder_core::Exit::Temp.code();
            }
        }
    };
    let app = Arc::new(App::new(cfg));
    {
        let app = app.clone();
        std::thread::spawn(move || app.collect());
    }
    if let Some(l) = metrics_listener {
        let app = app.clone();
        if let Ok(a) = l.local_addr() {
            log::info!("metrics url=http://{a}/metrics");
        }
        std::thread::spawn(move || serve_metrics(&app, l));
    }
    if let Err(e) = serve(app, listener) {
        log::error!("{e}");
    }
    mailorder_core::Exit::Temp.code()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn app(writes: Arc<Mutex<Vec<Vec<u8>>>>) -> App {
        let cfg = Config {
            root: PathBuf::from("/nonexistent"),
            addr: String::new(),
            cert: PathBuf::new(),
            key: PathBuf::new(),
            timeout: Duration::from_secs(5),
            session_life: Duration::from_secs(60),
            login_limit: 3,
            admins: vec!["boss@example.test".into()],
            admin_nets: vec!["127.0.0.0/8".into()],
            metrics_addr: String::new(),
            logs: vec![],
            services: vec![],
        };
        let mut a = App::new(cfg);
        a.checker = Box::new(|addr, pw, _| {
            if (addr == "a@example.test" || addr == "boss@example.test") && pw == "right" {
                LoginResult::Good(addr.to_owned())
            } else {
                LoginResult::Bad
            }
        });
        a.writer = Box::new(move |r| {
            writes.lock().unwrap().push(r.to_vec());
            Ok(if r.starts_with(b"token\0") {
                "t0k3n".into()
            } else {
                String::new()
            })
        });
        a.lister = Box::new(|| {
            Ok((0..3500)
                .map(|i| admin::Row {
                    address: format!("user{i:04}@example.test"),
                    disabled: false,
                    quota: None,
                    forward: vec![],
                    aliases: vec![],
                })
                .collect())
        });
        a.tokens = Box::new(|| {
            format!(
                "{} boss@example.test 99999999999\n",
                admin::mailorder_webd_digest("good")
            )
        });
        a.reader = Box::new(|_| {
            Some(mailorder_directory_admin::Account {
                forward: vec!["x@y.test".into()],
                reply: Some("Subject: Away\n\nBack soon.".into()),
                ..Default::default()
            })
        });
        a.domains = Box::new(|| {
            Ok(vec![
                ("example.test".into(), "local".into()),
                ("backup.test".into(), "relay".into()),
            ])
        });
        a
    }

    /// A queue of two messages; the requests made are recorded.
    fn with_queue(a: &mut App) -> Arc<Mutex<Vec<(String, String)>>> {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let c = calls.clone();
        a.queue = Box::new(move |cmd, arg| {
            c.lock().unwrap().push((cmd.to_owned(), arg.to_owned()));
            Ok(match (cmd, arg) {
                ("list", _) => (
                    0,
                    "1700000000.1.1\t300\t90\tann@example.test\t1\n\
                     1700000001.2.2\t400\t4000\t<>\t2\n"
                        .into(),
                ),
                ("show", "1700000000.1.1") => (
                    0,
                    "id\t1700000000.1.1\nstage\tstate\nsize\t300\narrival\t1700000000\n\
                     age\t90\nsender\tann@example.test\n\
                     rcpt\tpending\t1\t1700000600\tbob@far.test\t421 <try> later\n"
                        .into(),
                ),
                ("rcpts", _) => (
                    0,
                    "1700000000.1.1\tbob@far.test\n1700000001.2.2\tx@y.test\n\
                     1700000001.2.2\tcarol@other.test\n"
                        .into(),
                ),
                ("stat", _) => (
                    0,
                    "messages 2\ntodo 0\nrecipients-pending 3\noldest-seconds 4000\n".into(),
                ),
                ("retry" | "remove", "9.9.9") => (1, String::new()),
                ("retry" | "remove" | "flush", _) => (0, String::new()),
                _ => (1, String::new()),
            })
        });
        calls
    }

    // See: issue #15
    #[test]
    fn queue_pages_and_actions() {
        let mut a = app(Arc::new(Mutex::new(Vec::new())));
        let calls = with_queue(&mut a);
        let user = login(&a, "right");
        let uck = format!("{SESSION_COOKIE}={}", cookie_of(&user, SESSION_COOKIE));
        assert_eq!(
            a.handle(&req("GET", "/admin/queue", &uck, ""), "1.2.3.4")
                .status,
            403
        );
        let r = login_as(&a, "boss%40example.test", "right", "127.0.0.1");
        let ck = format!("{SESSION_COOKIE}={}", cookie_of(&r, SESSION_COOKIE));
        let csrf = a.session(&req("GET", "/", &ck, "")).unwrap().1.csrf;
        let body = |r: Response| String::from_utf8(r.body).unwrap();
        let page = body(a.handle(&req("GET", "/admin/queue", &ck, ""), "127.0.0.1"));
        assert!(
            page.contains("2 matching") && page.contains("1 h"),
            "{page}"
        );
        let page = body(a.handle(&req("GET", "/admin/queue?q=carol", &ck, ""), "127.0.0.1"));
        assert!(
            page.contains("1 matching") && page.contains("1700000001.2.2"),
            "{page}"
        );
        let page = body(a.handle(&req("GET", "/admin/queue?q=ANN", &ck, ""), "127.0.0.1"));
        assert!(
            page.contains("1 matching") && page.contains("1700000000.1.1"),
            "{page}"
        );
        let page = body(a.handle(
            &req("GET", "/admin/queue/show?id=1700000000.1.1", &ck, ""),
            "127.0.0.1",
        ));
        assert!(
            page.contains("bob@far.test") && page.contains("421 &lt;try&gt; later"),
            "{page}"
        );
        assert!(page.contains("2023-11-14 22:23:20 UTC"), "{page}");
        let r = a.handle(
            &req("GET", "/admin/queue/show?id=..%2Fx", &ck, ""),
            "127.0.0.1",
        );
        assert_eq!(r.status, 404);
        // Actions: the token, a valid id or domain, then one request each.
        let n = calls.lock().unwrap().len();
        let r = a.handle(
            &req("POST", "/admin/queue/retry", &ck, "id=1700000000.1.1"),
            "127.0.0.1",
        );
        assert_eq!(r.status, 403);
        let r = a.handle(
            &req(
                "POST",
                "/admin/queue/remove",
                &ck,
                &format!("csrf={csrf}&id=..%2F..%2Fx"),
            ),
            "127.0.0.1",
        );
        assert_eq!(r.status, 400);
        let r = a.handle(
            &req(
                "POST",
                "/admin/queue/flush",
                &ck,
                &format!("csrf={csrf}&domain=a%2Fb"),
            ),
            "127.0.0.1",
        );
        assert_eq!(r.status, 400);
        assert!(
            calls.lock().unwrap()[n..]
                .iter()
                .all(|(c, _)| c == "list" || c == "rcpts"),
            "nothing asked of the queue"
        );
        let r = a.handle(
            &req(
                "POST",
                "/admin/queue/retry",
                &ck,
                &format!("csrf={csrf}&id=1700000000.1.1"),
            ),
            "127.0.0.1",
        );
        assert!(body(r).contains("Retry of 1700000000.1.1 requested"));
        let r = a.handle(
            &req(
                "POST",
                "/admin/queue/remove",
                &ck,
                &format!("csrf={csrf}&id=9.9.9"),
            ),
            "127.0.0.1",
        );
        assert_eq!(r.status, 404);
        let r = a.handle(
            &req(
                "POST",
                "/admin/queue/flush",
                &ck,
                &format!("csrf={csrf}&domain=Far.Test"),
            ),
            "127.0.0.1",
        );
        assert!(body(r).contains("Flush of far.test requested"));
        let c = calls.lock().unwrap();
        let asked: Vec<_> = c[n..]
            .iter()
            .filter(|(c, _)| c != "list" && c != "rcpts" && c != "show")
            .collect();
        assert_eq!(
            asked,
            [
                &("retry".to_owned(), "1700000000.1.1".to_owned()),
                &("remove".to_owned(), "9.9.9".to_owned()),
                &("flush".to_owned(), "far.test".to_owned())
            ]
        );
    }

    // See: issue #15
    #[test]
    fn autoresponder_aliases_and_domains_forms() {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let a = app(writes.clone());
        let body = |r: Response| String::from_utf8(r.body).unwrap();
        // Self-service: the form shows the stored reply; a change is one request.
        let r = login(&a, "right");
        let ck = format!("{SESSION_COOKIE}={}", cookie_of(&r, SESSION_COOKIE));
        let csrf = a.session(&req("GET", "/", &ck, "")).unwrap().1.csrf;
        let page = body(a.handle(&req("GET", "/account", &ck, ""), "1.2.3.4"));
        assert!(
            page.contains("value=\"Away\"") && page.contains(">Back soon.</textarea>"),
            "{page}"
        );
        let r = a.handle(
            &req(
                "POST",
                "/account/reply",
                &ck,
                &format!(
                    "csrf={csrf}&subject=Away&start=&end=2030-01-31&anyrcpt=on&body=Back%0D%0Asoon"
                ),
            ),
            "1.2.3.4",
        );
        assert_eq!(r.status, 303);
        let r = a.handle(
            &req(
                "POST",
                "/account/reply",
                &ck,
                &format!("csrf={csrf}&end=31.1.2030&body=x"),
            ),
            "1.2.3.4",
        );
        assert_eq!(r.status, 400);
        let r = a.handle(
            &req(
                "POST",
                "/account/reply",
                &ck,
                &format!("csrf={csrf}&subject=x&body="),
            ),
            "1.2.3.4",
        );
        assert_eq!(r.status, 303);
        // Users cannot reach the admin forms.
        let r = a.handle(
            &req(
                "POST",
                "/admin/alias",
                &ck,
                &format!("csrf={csrf}&address=a%40example.test&alias=b%40example.test"),
            ),
            "1.2.3.4",
        );
        assert_eq!(r.status, 403);
        // Admin: domains page, a domain, an alias and its removal, a user's reply.
        let r = login_as(&a, "boss%40example.test", "right", "127.0.0.1");
        let ck = format!("{SESSION_COOKIE}={}", cookie_of(&r, SESSION_COOKIE));
        let csrf = a.session(&req("GET", "/", &ck, "")).unwrap().1.csrf;
        let page = body(a.handle(&req("GET", "/admin/domains", &ck, ""), "127.0.0.1"));
        assert!(
            page.contains("<td>example.test</td><td>local</td><td>3500</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>backup.test</td><td>relay</td><td>0</td>"),
            "{page}"
        );
        for (path, form, want) in [
            (
                "/admin/domain",
                "domain=New.Test&kind=relay",
                "new.test is served here (relay)",
            ),
            ("/admin/domain", "domain=..%2Fx&kind=local", "valid domain"),
            (
                "/admin/undomain",
                "domain=backup.test",
                "backup.test is no longer served here",
            ),
            (
                "/admin/alias",
                "address=user0001%40example.test&alias=Sales%40example.test",
                "sales@example.test now delivers to user0001@example.test",
            ),
            (
                "/admin/unalias",
                "address=user0001%40example.test&alias=sales%40example.test",
                "was removed",
            ),
            (
                "/admin/alias",
                "address=user0001%40example.test&alias=bad",
                "valid alias",
            ),
            (
                "/admin/reply",
                "address=user0002%40example.test&subject=Gone&body=Left+the+company.",
                "autoresponder of user0002@example.test is on",
            ),
        ] {
            let page = body(a.handle(
                &req("POST", path, &ck, &format!("csrf={csrf}&{form}")),
                "127.0.0.1",
            ));
            assert!(page.contains(want), "{want}: {page}");
        }
        assert_eq!(
            *writes.lock().unwrap(),
            vec![
                b"reply\0a@example.test\0Subject: Away\nEnd: 2030-01-31\nTo-Cc-Only: no\n\nBack\nsoon\0"
                    .to_vec(),
                b"reply\0a@example.test\0\0".to_vec(),
                b"domain\0new.test\0relay\0".to_vec(),
                b"undomain\0backup.test\0\0".to_vec(),
                b"alias\0user0001@example.test\0sales@example.test\0".to_vec(),
                b"unalias\0user0001@example.test\0sales@example.test\0".to_vec(),
                b"reply\0user0002@example.test\0Subject: Gone\n\nLeft the company.\0".to_vec(),
            ]
        );
    }

    fn req(method: &str, path: &str, cookie: &str, body: &str) -> Request {
        let raw = format!(
            "{method} {path} HTTP/1.1\r\nHost: h\r\nCookie: {cookie}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        Framer::new().push(raw.as_bytes()).unwrap().unwrap()
    }

    fn cookie_of(r: &Response, name: &str) -> String {
        r.headers
            .iter()
            .filter(|(n, _)| n == "Set-Cookie")
            .find_map(|(_, v)| v.strip_prefix(&format!("{name}=")))
            .map(|v| v.split(';').next().unwrap().to_owned())
            .unwrap()
    }

    fn login(a: &App, pw: &str) -> Response {
        login_as(a, "a%40example.test", pw, "1.2.3.4")
    }

    fn login_as(a: &App, who: &str, pw: &str, ip: &str) -> Response {
        let page = a.handle(&req("GET", "/login", "", ""), ip);
        let pre = cookie_of(&page, PRELOGIN_COOKIE);
        a.handle(
            &req(
                "POST",
                "/login",
                &format!("{PRELOGIN_COOKIE}={pre}"),
                &format!("csrf={pre}&address={who}&password={pw}"),
            ),
            ip,
        )
    }

    #[test]
    fn admin_console_pages_and_actions() {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let a = app(writes.clone());
        // A user is no admin; an admin from outside webadminnets is none either.
        let r = login(&a, "right");
        let ck = format!("{SESSION_COOKIE}={}", cookie_of(&r, SESSION_COOKIE));
        assert_eq!(
            a.handle(&req("GET", "/admin", &ck, ""), "1.2.3.4").status,
            403
        );
        let r = login_as(&a, "boss%40example.test", "right", "10.0.0.1");
        assert_eq!(
            r.headers.iter().find(|(n, _)| n == "Location").unwrap().1,
            "/account"
        );
        let r = login_as(&a, "boss%40example.test", "right", "127.0.0.1");
        assert_eq!(
            r.headers.iter().find(|(n, _)| n == "Location").unwrap().1,
            "/admin"
        );
        let ck = format!("{SESSION_COOKIE}={}", cookie_of(&r, SESSION_COOKIE));
        let csrf = a.session(&req("GET", "/", &ck, "")).unwrap().1.csrf;
        let t = Instant::now();
        let page = a.handle(&req("GET", "/admin?q=user34&page=0", &ck, ""), "127.0.0.1");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "3,500 users page instantly"
        );
        let html = String::from_utf8(page.body).unwrap();
        assert!(html.contains("100 matching, page 1 of 2"), "{html}");
        assert!(html.contains("user3400@example.test"));
        let page = a.handle(&req("GET", "/admin?page=69", &ck, ""), "127.0.0.1");
        let html = String::from_utf8(page.body).unwrap();
        assert!(html.contains("user3499@example.test") && html.contains("page 70 of 70"));
        // Actions need the token.
        let r = a.handle(
            &req(
                "POST",
                "/admin/disable",
                &ck,
                "address=user0001%40example.test",
            ),
            "127.0.0.1",
        );
        assert_eq!(r.status, 403);
        let r = a.handle(
            &req(
                "POST",
                "/admin/add",
                &ck,
                &format!("csrf={csrf}&address=new%40example.test&password="),
            ),
            "127.0.0.1",
        );
        let html = String::from_utf8(r.body).unwrap();
        assert!(html.contains("/login/token?t=t0k3n"), "{html}");
        let r = a.handle(
            &req(
                "POST",
                "/admin/quota",
                &ck,
                &format!("csrf={csrf}&address=new%40example.test&megabytes=5"),
            ),
            "127.0.0.1",
        );
        assert_eq!(r.status, 200);
        // Forwarding and a password reset by the admin, under the same rules as the
        // user's own.
        let post = |path: &str, body: &str| {
            a.handle(
                &req("POST", path, &ck, &format!("csrf={csrf}&{body}")),
                "127.0.0.1",
            )
        };
        let r = post(
            "/admin/forward",
            "address=new%40example.test&forward=a%40example.org%2C+b%40example.org",
        );
        assert_eq!(r.status, 200);
        assert!(
            String::from_utf8(r.body)
                .unwrap()
                .contains("now forwards to a@example.org, b@example.org")
        );
        for (path, body) in [
            (
                "/admin/forward",
                "address=new%40example.test&forward=new%40example.test",
            ),
            (
                "/admin/forward",
                "address=new%40example.test&forward=not+an+address",
            ),
            (
                "/admin/password",
                "address=new%40example.test&password=password123",
            ),
            (
                "/admin/password",
                "address=new%40example.test&password=new%40example.test1",
            ),
        ] {
            assert_eq!(post(path, body).status, 400, "{path} {body}");
        }
        // A reset logs the account out of the console; the admin stays.
        let mut st = a.state();
        for (id, who) in [("u1", "new@example.test"), ("u2", "other@example.test")] {
            st.sessions.insert(
                id.into(),
                Session {
                    address: who.into(),
                    csrf: "x".into(),
                    seen: Instant::now(),
                    admin: false,
                },
            );
        }
        drop(st);
        let r = post(
            "/admin/password",
            "address=new%40example.test&password=quiet+harbour+9+lamps",
        );
        assert_eq!(r.status, 200);
        let st = a.state();
        assert!(!st.sessions.contains_key("u1") && st.sessions.contains_key("u2"));
        drop(st);
        assert!(a.session(&req("GET", "/", &ck, "")).is_some());
        let w = writes.lock().unwrap();
        assert!(w[0].starts_with(b"add\0new@example.test\0"));
        assert_eq!(w[1], b"token\0new@example.test\x0072\0".to_vec());
        assert_eq!(w[2], b"quota\0new@example.test\x005242880\0".to_vec());
        assert_eq!(
            w[3],
            b"forward\0new@example.test\0a@example.org,b@example.org\0".to_vec()
        );
        assert_eq!(
            w[4],
            b"password\0new@example.test\0quiet harbour 9 lamps\0".to_vec()
        );
        assert_eq!(w.len(), 5);
    }

    // See: issue #15
    #[test]
    fn the_directory_admin_flag_makes_an_admin() {
        let mut a = app(Arc::new(Mutex::new(Vec::new())));
        a.reader = Box::new(|addr| {
            Some(mailorder_directory_admin::Account {
                address: addr.to_owned(),
                restrictions: if addr == "a@example.test" {
                    vec!["nopop".into(), ADMIN_FLAG.into()]
                } else {
                    vec![]
                },
                ..Default::default()
            })
        });
        let r = login_as(&a, "a%40example.test", "right", "127.0.0.1");
        assert_eq!(
            r.headers.iter().find(|(n, _)| n == "Location").unwrap().1,
            "/admin"
        );
        // Still only from control/webadminnets.
        let r = login_as(&a, "a%40example.test", "right", "10.9.9.9");
        assert_eq!(
            r.headers.iter().find(|(n, _)| n == "Location").unwrap().1,
            "/account"
        );
    }

    #[test]
    fn token_login_once() {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let a = app(writes.clone());
        let page = a.handle(&req("GET", "/login/token?t=good", "", ""), "1.2.3.4");
        assert!(
            String::from_utf8(page.body.clone())
                .unwrap()
                .contains("value=\"good\"")
        );
        let pre = cookie_of(&page, PRELOGIN_COOKIE);
        let bad = a.handle(
            &req(
                "POST",
                "/login/token",
                &format!("{PRELOGIN_COOKIE}={pre}"),
                &format!("csrf={pre}&token=bad"),
            ),
            "1.2.3.4",
        );
        assert_eq!(bad.status, 403);
        let ok = a.handle(
            &req(
                "POST",
                "/login/token",
                &format!("{PRELOGIN_COOKIE}={pre}"),
                &format!("csrf={pre}&token=good"),
            ),
            "1.2.3.4",
        );
        assert_eq!(ok.status, 303);
        assert!(writes.lock().unwrap()[0].starts_with(b"usetoken\0boss@example.test\0"));
    }

    #[test]
    fn login_csrf_sessions_and_changes() {
        let writes = Arc::new(Mutex::new(Vec::new()));
        let a = app(writes.clone());
        // Login without the pre-login token: refused.
        let r = a.handle(
            &req(
                "POST",
                "/login",
                "",
                "address=a%40example.test&password=right",
            ),
            "1.2.3.4",
        );
        assert_eq!(r.status, 403);
        let r = login(&a, "right");
        assert_eq!(r.status, 303);
        let sid = cookie_of(&r, SESSION_COOKIE);
        let set = r
            .headers
            .iter()
            .find(|(n, v)| n == "Set-Cookie" && v.starts_with(SESSION_COOKIE))
            .unwrap();
        for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.1.contains(attr), "{set:?}");
        }
        let ck = format!("{SESSION_COOKIE}={sid}");
        let page = a.handle(&req("GET", "/account", &ck, ""), "1.2.3.4");
        assert_eq!(page.status, 200);
        let html = String::from_utf8(page.body.clone()).unwrap();
        assert!(html.contains("x@y.test"));
        let csrf = a.session(&req("GET", "/", &ck, "")).unwrap().1.csrf;
        // No token, a wrong token, a forged session: refused, nothing written.
        for (c, body) in [
            (
                ck.clone(),
                "new=violet+tram+42+sings&again=violet+tram+42+sings".to_owned(),
            ),
            (
                ck.clone(),
                format!(
                    "csrf={}&new=violet+tram+42+sings&again=violet+tram+42+sings",
                    "0".repeat(64)
                ),
            ),
            (
                format!("{SESSION_COOKIE}={}", "f".repeat(64)),
                format!("csrf={csrf}&new=violet+tram+42+sings&again=violet+tram+42+sings"),
            ),
        ] {
            assert_eq!(
                a.handle(&req("POST", "/account/password", &c, &body), "1.2.3.4")
                    .status,
                403
            );
        }
        assert!(writes.lock().unwrap().is_empty());
        // Cross-site origin: refused even with the right token.
        let mut x = req(
            "POST",
            "/account/password",
            &ck,
            &format!("csrf={csrf}&new=violet+tram+42+sings&again=violet+tram+42+sings"),
        );
        x.headers
            .push(("origin".into(), "https://evil.test".into()));
        assert_eq!(a.handle(&x, "1.2.3.4").status, 403);
        // The policy.
        let r = a.handle(
            &req(
                "POST",
                "/account/password",
                &ck,
                &format!("csrf={csrf}&new=password123&again=password123"),
            ),
            "1.2.3.4",
        );
        assert_eq!(r.status, 400);
        let r = a.handle(
            &req(
                "POST",
                "/account/password",
                &ck,
                &format!("csrf={csrf}&new=violet+tram+42+sings&again=violet+tram+42+sing"),
            ),
            "1.2.3.4",
        );
        assert_eq!(r.status, 400);
        let r = a.handle(
            &req(
                "POST",
                "/account/password",
                &ck,
                &format!("csrf={csrf}&new=violet+tram+42+sings&again=violet+tram+42+sings"),
            ),
            "1.2.3.4",
        );
        assert_eq!(r.status, 303);
        let r = a.handle(
            &req(
                "POST",
                "/account/forward",
                &ck,
                &format!("csrf={csrf}&forward=b%40x.test%2C+c%40y.test"),
            ),
            "1.2.3.4",
        );
        assert_eq!(r.status, 303);
        let r = a.handle(
            &req(
                "POST",
                "/account/forward",
                &ck,
                &format!("csrf={csrf}&forward=..%2F..%2Fetc"),
            ),
            "1.2.3.4",
        );
        assert_eq!(r.status, 400);
        assert_eq!(
            *writes.lock().unwrap(),
            vec![
                b"password\0a@example.test\0violet tram 42 sings\0".to_vec(),
                b"forward\0a@example.test\0b@x.test,c@y.test\0".to_vec()
            ]
        );
        // Logout ends the session.
        assert_eq!(
            a.handle(
                &req("POST", "/logout", &ck, &format!("csrf={csrf}")),
                "1.2.3.4"
            )
            .status,
            303
        );
        assert_eq!(
            a.handle(&req("GET", "/account", &ck, ""), "1.2.3.4").status,
            303
        );
    }

    #[test]
    fn failed_logins_are_limited() {
        let a = app(Arc::new(Mutex::new(Vec::new())));
        for _ in 0..3 {
            assert_eq!(login(&a, "wrong").status, 403);
        }
        assert_eq!(
            login(&a, "right").status,
            429,
            "blocked even with the right password"
        );
    }

    #[test]
    fn headers_on_every_answer() {
        let a = app(Arc::new(Mutex::new(Vec::new())));
        let b = String::from_utf8(a.handle(&req("GET", "/login", "", ""), "1").to_bytes()).unwrap();
        assert!(b.contains("frame-ancestors 'none'"));
        assert!(b.contains("script-src 'self'"));
        assert!(!b.contains("unsafe-inline"));
        assert!(!b.contains("<script>"));
        assert!(b.contains("X-Content-Type-Options: nosniff"));
    }
}
