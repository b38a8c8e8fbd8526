//! The HTML pages and the style sheet. Every value put into a page goes through
//! [`escape`]; no page carries inline script or style (the CSP forbids both).

use crate::http::escape;

/// The one style sheet, served at `/static/style.css`.
pub const STYLE: &str = r#":root{--fg:#1d2430;--muted:#5b6578;--bg:#f4f6f9;--card:#fff;--accent:#1f5fbf;--bad:#b3261e;--good:#1e7a3c;--line:#d9dee7}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
header{background:var(--fg);color:#fff;padding:.8rem 1.2rem;display:flex;align-items:center;justify-content:space-between;gap:1rem}
header h1{font-size:1.1rem;margin:0;font-weight:600}
header form{margin:0}
main{max-width:44rem;margin:1.5rem auto;padding:0 1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:1.2rem 1.4rem;margin-bottom:1.2rem;box-shadow:0 1px 2px rgba(0,0,0,.04)}
.card h2{margin:0 0 .8rem;font-size:1.1rem}
label{display:block;font-weight:600;margin:.6rem 0 .2rem}
input[type=text],input[type=email],input[type=password],input[type=date],select,textarea{width:100%;padding:.55rem .7rem;border:1px solid var(--line);border-radius:6px;font:inherit;background:#fff}
textarea{min-height:4.5rem}
input:focus,textarea:focus,button:focus,a:focus{outline:3px solid #8ab4f8;outline-offset:1px}
button{margin-top:.9rem;padding:.55rem 1.1rem;border:0;border-radius:6px;background:var(--accent);color:#fff;font:inherit;font-weight:600;cursor:pointer}
button.link{background:transparent;color:#fff;border:1px solid rgba(255,255,255,.5);margin:0;padding:.3rem .8rem}
.hint{color:var(--muted);font-size:.9rem;margin:.3rem 0 0}
.note{padding:.7rem 1rem;border-radius:6px;margin-bottom:1rem}
.note.bad{background:#fdecea;color:var(--bad);border:1px solid #f5c2bd}
.note.good{background:#e7f5ec;color:var(--good);border:1px solid #b9e0c6}
.who{color:var(--muted)}
label.check{font-weight:400}
main.wide{max-width:72rem}
table{width:100%;border-collapse:collapse;font-size:.95rem}
th,td{text-align:left;padding:.45rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}
td.actions{white-space:nowrap}
.actions form{display:inline;margin:0}
button.small{margin:0 .2rem 0 0;padding:.25rem .6rem;font-size:.85rem;background:#eef2f8;color:var(--accent);border:1px solid #c9d6ea}
button.danger{color:var(--bad);border-color:#f5c2bd;background:#fdecea}
.row{display:flex;gap:.8rem;flex-wrap:wrap;align-items:flex-end}
.row > div{flex:1 1 14rem}
.pager{display:flex;gap:1rem;align-items:center;margin-top:.8rem}
.note{overflow-wrap:anywhere}
nav.tabs{display:flex;gap:.4rem;margin-bottom:1rem;flex-wrap:wrap}
nav.tabs a{padding:.4rem .9rem;border-radius:6px;background:var(--card);border:1px solid var(--line);color:var(--accent);text-decoration:none;font-weight:600}
nav.tabs a[aria-current=page]{background:var(--accent);color:#fff;border-color:var(--accent)}
.stats{display:grid;grid-template-columns:repeat(auto-fill,minmax(9.5rem,1fr));gap:.8rem}
.stat{border:1px solid var(--line);border-radius:8px;padding:.6rem .8rem}
.stat .label{display:block;color:var(--muted);font-size:.85rem;font-weight:600}
.stat .big{display:block;font-size:1.6rem;font-weight:700;font-variant-numeric:tabular-nums}
svg.chart{width:100%;height:auto;display:block}
svg.chart .axis{stroke:var(--line);stroke-width:1}
svg.chart text{fill:var(--muted);font-size:11px}
svg.chart polyline{fill:none;stroke-width:2}
.s0{stroke:#1f5fbf;color:#1f5fbf}.s1{stroke:#1e7a3c;color:#1e7a3c}.s2{stroke:#b26a00;color:#b26a00}.s3{stroke:#b3261e;color:#b3261e}
.legend{display:flex;gap:1rem;flex-wrap:wrap;font-size:.9rem}
.legend span::before{content:"";display:inline-block;width:.9rem;height:.25rem;margin-right:.35rem;vertical-align:middle;background:currentColor}
ol.log{list-style:none;margin:.6rem 0 0;padding:0;font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace;max-height:28rem;overflow:auto;border:1px solid var(--line);border-radius:6px}
ol.log li{padding:.15rem .5rem;border-bottom:1px solid #eef1f5;overflow-wrap:anywhere}
ol.log .src{color:var(--accent);margin-right:.5rem}
ol.log time{color:var(--muted);margin-right:.5rem}
@media (max-width:30rem){main{margin:1rem auto}.card{padding:1rem}}
"#;

/// The page icon, served at `/static/icon.svg` (an envelope).
pub const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">\
<rect x=\"2\" y=\"6\" width=\"28\" height=\"20\" rx=\"3\" fill=\"#1f5fbf\"/>\
<path d=\"M3 8l13 10 13-10\" fill=\"none\" stroke=\"#fff\" stroke-width=\"2.5\"/></svg>\n";

/// A whole page around `body`; `user` shows the logout button.
pub fn page(title: &str, body: &str, user: Option<(&str, &str)>) -> String {
    page_in("", title, body, user)
}

/// [`page`] with a class on `main` (`wide` for the console).
pub fn page_in(class: &str, title: &str, body: &str, user: Option<(&str, &str)>) -> String {
    let bar = match user {
        Some((addr, csrf)) => format!(
            "<form method=\"post\" action=\"/logout\"><span class=\"who\">{}</span> \
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button class=\"link\" type=\"submit\">Log out</button></form>",
            escape(addr),
            escape(csrf)
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{t} — mail account</title><link rel=\"stylesheet\" href=\"/static/style.css\">\
         <link rel=\"icon\" href=\"/static/icon.svg\" type=\"image/svg+xml\"></head>\
         <body><header><h1>Mail account</h1>{bar}</header><main class=\"{class}\">{body}</main></body></html>\n",
        t = escape(title),
        class = escape(class)
    )
}

fn note(n: Option<Result<&str, &str>>) -> String {
    match n {
        Some(Ok(t)) => format!(
            "<div class=\"note good\" role=\"status\" id=\"note\">{}</div>",
            escape(t)
        ),
        Some(Err(t)) => format!(
            "<div class=\"note bad\" role=\"alert\" id=\"note\">{}</div>",
            escape(t)
        ),
        None => String::new(),
    }
}

/// [`note`] for the notes the admin pages carry (owned texts).
fn note_of(n: Option<&Result<String, String>>) -> String {
    note(n.map(|r| r.as_ref().map(String::as_str).map_err(String::as_str)))
}

/// The previous / next links of a listing at `base` (`/admin`, `/admin/queue`) for
/// search `search` on page `page_no` (from 0) of `pages`.
fn pager(base: &str, search: &str, page_no: usize, pages: usize) -> String {
    let qs = search.replace(
        |c: char| !c.is_ascii_alphanumeric() && !"@.-_+".contains(c),
        "",
    );
    let link = |p: usize, text: &str, id: &str| {
        format!(
            "<a id=\"{id}\" href=\"{base}?q={}&amp;page={p}\">{text}</a>",
            escape(&qs)
        )
    };
    let mut o = String::from("<div class=\"pager\">");
    if page_no > 0 {
        o.push_str(&link(page_no - 1, "← Previous", "prev"));
    }
    if page_no + 1 < pages {
        o.push_str(&link(page_no + 1, "Next →", "next"));
    }
    o.push_str("</div>");
    o
}

/// The login page; `pre` is the pre-login CSRF token (also in a cookie).
pub fn login(pre: &str, error: Option<&str>) -> String {
    let body = format!(
        "{n}<section class=\"card\"><h2>Log in</h2>\
         <form method=\"post\" action=\"/login\" id=\"login\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{pre}\">\
         <label for=\"address\">Mail address</label>\
         <input type=\"email\" id=\"address\" name=\"address\" autocomplete=\"username\" required autofocus>\
         <label for=\"password\">Password</label>\
         <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\" id=\"login-submit\">Log in</button></form></section>",
        n = note(error.map(Err)),
        pre = escape(pre)
    );
    page("Log in", &body, None)
}

/// The self-service page of `address`.
pub fn account(
    address: &str,
    csrf: &str,
    forward: &[String],
    reply: Option<&mailorder_directory_admin::Reply>,
    n: Option<Result<&str, &str>>,
) -> String {
    let csrf = escape(csrf);
    let body = format!(
        "{n}<section class=\"card\"><h2>Change your password</h2>\
         <form method=\"post\" action=\"/account/password\" id=\"password-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <input type=\"text\" name=\"username\" value=\"{addr}\" autocomplete=\"username\" hidden>\
         <label for=\"new\">New password</label>\
         <input type=\"password\" id=\"new\" name=\"new\" autocomplete=\"new-password\" minlength=\"10\" required>\
         <label for=\"again\">New password again</label>\
         <input type=\"password\" id=\"again\" name=\"again\" autocomplete=\"new-password\" minlength=\"10\" required>\
         <p class=\"hint\">At least 10 characters; not your address, not a common password. \
         A few unrelated words make a good one.</p>\
         <button type=\"submit\" id=\"password-submit\">Change password</button></form></section>\
         <section class=\"card\"><h2>Forwarding</h2>\
         <form method=\"post\" action=\"/account/forward\" id=\"forward-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <label for=\"forward\">Also send my mail to</label>\
         <textarea id=\"forward\" name=\"forward\">{fwd}</textarea>\
         <p class=\"hint\">Addresses separated by commas; empty for none. Your own mailbox keeps a copy.</p>\
         <button type=\"submit\" id=\"forward-submit\">Save forwarding</button></form></section>\
         <section class=\"card\"><h2>Autoresponder</h2>{reply}</section>",
        reply = reply_form("/account/reply", &csrf, None, reply),
        n = note(n),
        addr = escape(address),
        fwd = escape(&forward.join(", "))
    );
    page("Your account", &body, Some((address, &csrf)))
}

/// The autoresponder form (`subject`, `start`, `end`, `body`; an empty body turns it
/// off), posted to `action`; `address` adds an address field (the admin's form).
/// `csrf` is already escaped.
pub fn reply_form(
    action: &str,
    csrf: &str,
    address: Option<&str>,
    r: Option<&mailorder_directory_admin::Reply>,
) -> String {
    let v = |o: Option<&Option<String>>| escape(o.and_then(|x| x.as_deref()).unwrap_or(""));
    let addr = match address {
        Some(a) => format!(
            "<label for=\"reply-address\">Address</label>\
             <input type=\"email\" id=\"reply-address\" name=\"address\" value=\"{}\" required>",
            escape(a)
        ),
        None => String::new(),
    };
    format!(
        "<p class=\"hint\" id=\"reply-state\">{state}</p>\
         <form method=\"post\" action=\"{action}\" id=\"reply-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">{addr}\
         <label for=\"reply-subject\">Subject</label>\
         <input type=\"text\" id=\"reply-subject\" name=\"subject\" value=\"{subject}\" maxlength=\"200\">\
         <div class=\"row\"><div><label for=\"reply-start\">From (UTC day)</label>\
         <input type=\"date\" id=\"reply-start\" name=\"start\" value=\"{start}\"></div>\
         <div><label for=\"reply-end\">Until (UTC day)</label>\
         <input type=\"date\" id=\"reply-end\" name=\"end\" value=\"{end}\"></div></div>\
         <label class=\"check\"><input type=\"checkbox\" id=\"reply-anyrcpt\" name=\"anyrcpt\"{any}> \
         Answer also mail that names the address in neither To nor Cc</label>\
         <label for=\"reply-body\">Reply text</label>\
         <textarea id=\"reply-body\" name=\"body\" maxlength=\"4000\">{body}</textarea>\
         <p class=\"hint\">One reply per sender and week; never to lists, bulk mail or spam. \
         Empty text: no autoresponder.</p>\
         <button type=\"submit\" id=\"reply-submit\">Save autoresponder</button></form>",
        state = if r.is_some() {
            "The autoresponder is on."
        } else {
            "The autoresponder is off."
        },
        subject = v(r.map(|x| &x.subject)),
        start = v(r.map(|x| &x.start)),
        end = v(r.map(|x| &x.end)),
        body = escape(r.map_or("", |x| x.body.as_str())),
        any = if r.is_some_and(|x| x.any_recipient) {
            " checked"
        } else {
            ""
        },
    )
}

/// The domains and aliases page.
pub fn domains(
    s: &crate::Session,
    search: &str,
    domains: &[(String, String, usize)],
    aliases: &[(String, String)],
    n: Option<&Result<String, String>>,
) -> String {
    let csrf = escape(&s.csrf);
    let drows: String = domains
        .iter()
        .map(|(d, k, c)| {
            // Only a domain without accounts can go (aliases in it: webd-dirwrite says).
            let remove = if *c == 0 {
                format!(
                    "<form method=\"post\" action=\"/admin/undomain\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                     <input type=\"hidden\" name=\"domain\" value=\"{}\">\
                     <button type=\"submit\" class=\"small danger\">Remove</button></form>",
                    escape(d)
                )
            } else {
                String::new()
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{c}</td><td class=\"actions\">{remove}</td></tr>",
                escape(d),
                escape(k)
            )
        })
        .collect();
    let arows: String = aliases
        .iter()
        .map(|(a, o)| {
            format!(
                "<tr><td>{a}</td><td>{o}</td><td class=\"actions\">\
                 <form method=\"post\" action=\"/admin/unalias\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <input type=\"hidden\" name=\"address\" value=\"{o}\">\
                 <input type=\"hidden\" name=\"alias\" value=\"{a}\">\
                 <button type=\"submit\" class=\"small danger\">Remove</button></form></td></tr>",
                a = escape(a),
                o = escape(o)
            )
        })
        .collect();
    let body = format!(
        "{nav}{n}<section class=\"card\"><h2>Domains</h2>\
         <table id=\"domains\"><thead><tr><th>Domain</th><th>Kind</th><th>Accounts</th><th>Actions</th></tr></thead>\
         <tbody>{drows}</tbody></table>\
         <form method=\"post\" action=\"/admin/domain\" class=\"row\" id=\"domain-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div><label for=\"domain-name\">Add a domain</label><input type=\"text\" id=\"domain-name\" name=\"domain\" required></div>\
         <div><label for=\"domain-kind\">Kind</label><select id=\"domain-kind\" name=\"kind\">\
         <option value=\"local\">local: mailboxes here</option><option value=\"relay\">relay: backup MX</option></select></div>\
         <div><button type=\"submit\" id=\"domain-submit\">Add domain</button></div></form>\
         <p class=\"hint\">A domain can be removed once no account or alias uses it.</p></section>\
         <section class=\"card\"><h2>Aliases</h2>\
         <form method=\"get\" action=\"/admin/domains\" class=\"row\" role=\"search\">\
         <div><label for=\"q\">Search aliases and owners</label><input type=\"text\" id=\"q\" name=\"q\" value=\"{q}\"></div>\
         <div><button type=\"submit\" id=\"search-submit\">Search</button></div></form>\
         <p class=\"hint\" id=\"count\">{count} shown</p>\
         <table id=\"aliases\"><thead><tr><th>Alias</th><th>Delivers to</th><th>Actions</th></tr></thead>\
         <tbody>{arows}</tbody></table>\
         <form method=\"post\" action=\"/admin/alias\" class=\"row\" id=\"alias-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div><label for=\"alias-alias\">New alias</label><input type=\"email\" id=\"alias-alias\" name=\"alias\" required></div>\
         <div><label for=\"alias-owner\">Delivers to (an account)</label><input type=\"email\" id=\"alias-owner\" name=\"address\" required></div>\
         <div><button type=\"submit\" id=\"alias-submit\">Add alias</button></div></form></section>",
        nav = admin_nav("/admin/domains"),
        n = note_of(n),
        q = escape(search),
        count = aliases.len(),
    );
    page_in(
        "wide",
        "Domains and aliases",
        &body,
        Some((&s.address, &s.csrf)),
    )
}

/// The one-time token page: the token (from the link) and a button that uses it.
pub fn token_login(pre: &str, token: &str, error: Option<&str>) -> String {
    let body = format!(
        "{n}<section class=\"card\"><h2>Set your password</h2>\
         <p>This one-time link logs you in once, so that you can choose your password.</p>\
         <form method=\"post\" action=\"/login/token\" id=\"token-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{pre}\">\
         <label for=\"token\">One-time code</label>\
         <input type=\"text\" id=\"token\" name=\"token\" value=\"{t}\" autocomplete=\"off\" required>\
         <button type=\"submit\" id=\"token-submit\">Continue</button></form></section>",
        n = note(error.map(Err)),
        pre = escape(pre),
        t = escape(token)
    );
    page("Set your password", &body, None)
}

/// The admin pages' navigation; `current` is the path shown as the current page.
pub fn admin_nav(current: &str) -> String {
    let mut o = String::from("<nav class=\"tabs\" aria-label=\"Console\">");
    for (path, name) in [
        ("/admin", "Users"),
        ("/admin/activity", "Activity"),
        ("/admin/queue", "Queue"),
        ("/admin/domains", "Domains and aliases"),
    ] {
        let cur = if path == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        o.push_str(&format!("<a href=\"{path}\"{cur}>{name}</a>"));
    }
    o.push_str("</nav>");
    o
}

/// The live activity page: counters, connections, the queue, the hour's chart and the
/// latest log lines, filled and kept current by `/static/activity.js` from the event
/// stream `/admin/events`.
pub fn activity(s: &crate::Session) -> String {
    let stats: String = [
        ("accepted", "Accepted"),
        ("delivered", "Delivered"),
        ("deferred", "Deferred"),
        ("bounced", "Bounced"),
        ("login_ok", "Logins"),
        ("login_failed", "Login failures"),
        ("spam", "Spam refused"),
        ("virus", "Viruses refused"),
    ]
    .iter()
    .map(|(k, label)| {
        format!(
            "<div class=\"stat\"><span class=\"label\">{label}</span>\
             <span class=\"big\" id=\"m-{k}\">–</span>\
             <span class=\"hint\">this minute · <span id=\"n-{k}\">–</span> in the hour</span></div>"
        )
    })
    .collect();
    let body = format!(
        "{nav}<section class=\"card\"><h2>Now</h2><div class=\"stats\">{stats}\
         <div class=\"stat\"><span class=\"label\">Queue</span><span class=\"big\" id=\"q-messages\">–</span>\
         <span class=\"hint\">messages · oldest <span id=\"q-oldest\">–</span></span></div></div>\
         <h3>Open connections</h3><table id=\"connections\"><thead><tr><th>Service</th><th>Open</th></tr></thead>\
         <tbody></tbody></table>\
         <p class=\"hint\" id=\"live-status\" role=\"status\">Connecting…</p></section>\
         <section class=\"card\"><h2>The last hour, per minute</h2>\
         <svg class=\"chart\" id=\"chart\" viewBox=\"0 0 640 220\" role=\"img\" \
         aria-label=\"Messages accepted, delivered, deferred and bounced per minute over the last hour\"></svg>\
         <div class=\"legend\"><span class=\"s0\">accepted</span><span class=\"s1\">delivered</span>\
         <span class=\"s2\">deferred</span><span class=\"s3\">bounced</span></div></section>\
         <section class=\"card\"><h2>Latest log lines</h2>\
         <label for=\"log-filter\">Show only lines containing</label>\
         <input type=\"text\" id=\"log-filter\" autocomplete=\"off\">\
         <ol class=\"log\" id=\"log\" aria-live=\"off\"></ol></section>\
         <script src=\"/static/activity.js\" defer></script>",
        nav = admin_nav("/admin/activity"),
    );
    page_in("wide", "Activity", &body, Some((&s.address, &s.csrf)))
}

/// The activity page's script (no build step, no library): reads the event stream and
/// draws the counters, the chart (SVG) and the log lines. Text goes in through
/// `textContent` only.
pub const ACTIVITY_JS: &str = include_str!("activity.js");

/// The admin console's accounts page.
pub fn admin(
    s: &crate::Session,
    search: &str,
    page_no: usize,
    pages: usize,
    total: usize,
    rows: &[&crate::admin::Row],
    n: Option<&Result<String, String>>,
) -> String {
    let csrf = escape(&s.csrf);
    let q = escape(search);
    let pager = pager("/admin", search, page_no, pages);
    let table: String = rows
        .iter()
        .map(|r| crate::admin::row_html(r, &s.csrf))
        .collect();
    let body = format!(
        "{nav}{n}<section class=\"card\"><h2>Add a user</h2>\
         <form method=\"post\" action=\"/admin/add\" id=\"add-form\" class=\"row\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div><label for=\"add-address\">Address</label><input type=\"email\" id=\"add-address\" name=\"address\" required></div>\
         <div><label for=\"add-password\">Password (empty: send a set-password link)</label>\
         <input type=\"password\" id=\"add-password\" name=\"password\" autocomplete=\"new-password\"></div>\
         <div><button type=\"submit\" id=\"add-submit\">Add user</button></div></form></section>\
         <section class=\"card\"><h2>Users</h2>\
         <form method=\"get\" action=\"/admin\" class=\"row\" role=\"search\">\
         <div><label for=\"q\">Search addresses, aliases, forwarding</label>\
         <input type=\"text\" id=\"q\" name=\"q\" value=\"{q}\"></div>\
         <div><button type=\"submit\" id=\"search-submit\">Search</button></div></form>\
         <p class=\"hint\" id=\"count\">{total} matching, page {pn} of {pages}</p>\
         <table id=\"users\"><thead><tr><th>Address</th><th>Status</th><th>Quota</th><th>Forwarding</th><th>Actions</th></tr></thead>\
         <tbody>{table}</tbody></table>{pager}\
         <form method=\"post\" action=\"/admin/quota\" class=\"row\" id=\"quota-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div><label for=\"quota-address\">Set quota: address</label><input type=\"email\" id=\"quota-address\" name=\"address\" required></div>\
         <div><label for=\"quota-mb\">Megabytes (0: none)</label><input type=\"text\" id=\"quota-mb\" name=\"megabytes\" inputmode=\"numeric\" required></div>\
         <div><button type=\"submit\" id=\"quota-submit\">Set quota</button></div></form>\
         <form method=\"post\" action=\"/admin/forward\" class=\"row\" id=\"forward-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div><label for=\"forward-address\">Set forwarding: address</label><input type=\"email\" id=\"forward-address\" name=\"address\" required></div>\
         <div><label for=\"forward-to\">Forward to (commas; empty: none)</label><input type=\"text\" id=\"forward-to\" name=\"forward\"></div>\
         <div><button type=\"submit\" id=\"forward-submit\">Set forwarding</button></div></form>\
         <form method=\"post\" action=\"/admin/password\" class=\"row\" id=\"reset-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div><label for=\"reset-address\">Reset password: address</label><input type=\"email\" id=\"reset-address\" name=\"address\" required></div>\
         <div><label for=\"reset-password\">New password</label><input type=\"password\" id=\"reset-password\" name=\"password\" autocomplete=\"new-password\" required></div>\
         <div><button type=\"submit\" id=\"reset-submit\">Set password</button></div></form></section>\
         <section class=\"card\"><h2>Autoresponder of a user</h2>{reply}</section>",
        reply = reply_form("/admin/reply", &csrf, Some(""), None),
        n = note_of(n),
        pn = page_no + 1,
        nav = admin_nav("/admin"),
    );
    page_in("wide", "Users", &body, Some((&s.address, &s.csrf)))
}

fn hidden(csrf: &str, name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\"><input type=\"hidden\" name=\"{name}\" value=\"{}\">",
        escape(csrf),
        escape(value)
    )
}

/// The retry and remove buttons of one message.
fn queue_buttons(csrf: &str, id: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/admin/queue/retry\">{h}\
         <button type=\"submit\" class=\"small\">Retry now</button></form>\
         <form method=\"post\" action=\"/admin/queue/remove\">{h}\
         <button type=\"submit\" class=\"small danger\">Remove</button></form>",
        h = hidden(csrf, "id", id)
    )
}

/// The queue page: search, one page of messages with their actions, and the flush form.
pub fn queue_list(
    s: &crate::Session,
    search: &str,
    (page_no, pages, total): (usize, usize, usize),
    rows: &[&crate::queue::Entry],
    n: Option<&Result<String, String>>,
) -> String {
    use crate::queue::age;
    let pager = pager("/admin/queue", search, page_no, pages);
    let table: String = rows
        .iter()
        .map(|e| {
            let id = escape(&e.id);
            let mut to = e
                .rcpts
                .iter()
                .take(3)
                .map(|r| escape(r))
                .collect::<Vec<_>>()
                .join("<br>");
            if e.rcpts.len() > 3 {
                to.push_str(&format!(
                    "<br><span class=\"hint\">and {} more</span>",
                    e.rcpts.len() - 3
                ));
            }
            format!(
                "<tr><td><a href=\"/admin/queue/show?id={id}\">{id}</a></td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{to}</td><td class=\"actions\">{}</td></tr>",
                age(e.age),
                e.size,
                escape(&e.sender),
                e.pending,
                queue_buttons(&s.csrf, &e.id)
            )
        })
        .collect();
    let body = format!(
        "{nav}{n}<section class=\"card\"><h2>Queue</h2>\
         <form method=\"get\" action=\"/admin/queue\" class=\"row\" role=\"search\">\
         <div><label for=\"q\">Search ids, senders and recipients</label>\
         <input type=\"text\" id=\"q\" name=\"q\" value=\"{q}\"></div>\
         <div><button type=\"submit\" id=\"search-submit\">Search</button></div></form>\
         <p class=\"hint\" id=\"count\">{total} matching, page {pn} of {pages}</p>\
         <table id=\"queue\"><thead><tr><th>Id</th><th>Age</th><th>Bytes</th><th>Sender</th>\
         <th>Pending</th><th>To</th><th>Actions</th></tr></thead><tbody>{table}</tbody></table>\
         {pager}</section>\
         <section class=\"card\"><h2>Flush a domain</h2>\
         <form method=\"post\" action=\"/admin/queue/flush\" class=\"row\" id=\"flush-form\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <div><label for=\"flush-domain\">Domain (empty: every message)</label>\
         <input type=\"text\" id=\"flush-domain\" name=\"domain\"></div>\
         <div><button type=\"submit\" id=\"flush-submit\">Deliver now</button></div></form>\
         <p class=\"hint\">Every pending recipient in the domain is tried at once, whatever its back-off \
         (the primary is back after a backup-MX period).</p></section>",
        nav = admin_nav("/admin/queue"),
        n = note_of(n),
        q = escape(search),
        pn = page_no + 1,
        csrf = escape(&s.csrf),
    );
    page_in("wide", "Queue", &body, Some((&s.address, &s.csrf)))
}

/// One queued message: its envelope and each recipient's status.
pub fn queue_show(
    s: &crate::Session,
    id: &str,
    d: &crate::queue::Detail,
    n: Option<&Result<String, String>>,
) -> String {
    use crate::queue::{age, utc};
    let fields: String = d
        .fields
        .iter()
        .map(|(k, v)| {
            let shown = match k.as_str() {
                "arrival" => v.parse().map_or_else(|_| v.clone(), utc),
                "age" => v.parse().map_or_else(|_| v.clone(), age),
                _ => v.clone(),
            };
            format!(
                "<tr><th scope=\"row\">{}</th><td id=\"f-{}\">{}</td></tr>",
                escape(k),
                escape(k),
                escape(&shown)
            )
        })
        .collect();
    let rcpts: String = d
        .rcpts
        .iter()
        .map(|r| {
            let next = match (r.status.as_str(), r.next.parse::<u64>()) {
                ("pending" | "held" | "failed", Ok(t)) if t > 0 => utc(t),
                _ => "—".into(),
            };
            let dsn = r.dsn.as_ref().map_or_else(String::new, |(notify, orcpt)| {
                format!(
                    "<br><span class=\"hint\">NOTIFY={} ORCPT={}</span>",
                    escape(notify),
                    escape(orcpt)
                )
            });
            format!(
                "<tr><td>{}{dsn}</td><td class=\"status\">{}</td><td class=\"tries\">{}</td><td>{next}</td><td>{}</td></tr>",
                escape(&r.address),
                escape(&r.status),
                escape(&r.tries),
                escape(&r.result)
            )
        })
        .collect();
    let body = format!(
        "{nav}{n}<section class=\"card\"><h2>Message {idh}</h2>\
         <table id=\"envelope\"><tbody>{fields}</tbody></table>\
         <div class=\"actions\">{buttons}</div></section>\
         <section class=\"card\"><h2>Recipients</h2>\
         <table id=\"rcpts\"><thead><tr><th>Address</th><th>Status</th><th>Tries</th><th>Next attempt</th>\
         <th>Last result</th></tr></thead><tbody>{rcpts}</tbody></table>\
         <p><a href=\"/admin/queue\">Back to the queue</a></p></section>",
        nav = admin_nav("/admin/queue"),
        n = note_of(n),
        idh = escape(id),
        buttons = queue_buttons(&s.csrf, id),
    );
    page_in("wide", "Queued message", &body, Some((&s.address, &s.csrf)))
}
