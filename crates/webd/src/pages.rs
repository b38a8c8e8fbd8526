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
input[type=text],input[type=email],input[type=password],textarea{width:100%;padding:.55rem .7rem;border:1px solid var(--line);border-radius:6px;font:inherit;background:#fff}
textarea{min-height:4.5rem}
input:focus,textarea:focus,button:focus,a:focus{outline:3px solid #8ab4f8;outline-offset:1px}
button{margin-top:.9rem;padding:.55rem 1.1rem;border:0;border-radius:6px;background:var(--accent);color:#fff;font:inherit;font-weight:600;cursor:pointer}
button.link{background:transparent;color:#fff;border:1px solid rgba(255,255,255,.5);margin:0;padding:.3rem .8rem}
.hint{color:var(--muted);font-size:.9rem;margin:.3rem 0 0}
.note{padding:.7rem 1rem;border-radius:6px;margin-bottom:1rem}
.note.bad{background:#fdecea;color:var(--bad);border:1px solid #f5c2bd}
.note.good{background:#e7f5ec;color:var(--good);border:1px solid #b9e0c6}
.who{color:var(--muted)}
@media (max-width:30rem){main{margin:1rem auto}.card{padding:1rem}}
"#;

/// A whole page around `body`; `user` shows the logout button.
pub fn page(title: &str, body: &str, user: Option<(&str, &str)>) -> String {
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
         <title>{t} — mail account</title><link rel=\"stylesheet\" href=\"/static/style.css\"></head>\
         <body><header><h1>Mail account</h1>{bar}</header><main>{body}</main></body></html>\n",
        t = escape(title)
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
         <button type=\"submit\" id=\"forward-submit\">Save forwarding</button></form></section>",
        n = note(n),
        addr = escape(address),
        fwd = escape(&forward.join(", "))
    );
    page("Your account", &body, Some((address, &csrf)))
}
