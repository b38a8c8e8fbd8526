//! The web console (webd) in a real browser: Debian's chromium driven by chromedriver
//! through Python's selenium; the pages' effects checked with real mail clients.
//! Screenshots (and the metrics the activity test scraped, `activity/metrics.txt`) are kept
//! as artifacts under `$CARGO_TARGET_DIR/test-artifacts/web/TEST/` (`target/…` by
//! default), replaced at each run.

use mailorder_tests::*;
use std::path::PathBuf;
use std::process::Command;

/// Where the screenshots go: beside the binaries' target directory.
fn artifacts(name: &str) -> PathBuf {
    let d = bin_dir()
        .parent()
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("test-artifacts/web")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("artifacts dir");
    d
}

/// Debian's Python, where python3-selenium and python3-prometheus-client are installed
/// (a `python3` earlier in PATH, pyenv's say, does not see them).
const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// What every browser script starts with: headless Chromium through chromedriver
/// (`chromium(size)`, the window "W,H"; `browser_log` keeps the console for the script to
/// read), and the helpers on the script's own `d` (the driver) and `shots` (the
/// screenshot directory).
const BROWSER_PY: &str = r##"
import os, tempfile
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

def chromium(size, browser_log=False):
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run",
              "--ignore-certificate-errors", "--window-size=" + size,
              "--user-data-dir=" + tempfile.mkdtemp(prefix="mo-chromium")]:
        opts.add_argument(a)
    if browser_log:
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    drv.set_page_load_timeout(60)
    return drv

def text_of(id_):
    try:
        return d.find_element(By.ID, id_).text
    except Exception:
        return ""

def shot(name):
    d.save_screenshot(os.path.join(shots, name + ".png"))
"##;

/// A browser script: [`BROWSER_PY`], then `body`.
fn browser_script(body: &str) -> String {
    format!("{BROWSER_PY}{body}")
}

/// The browser and its driver, or a skip (a failure under CI and as root).
fn browser_ready(test: &str) -> bool {
    for (what, ok) in [
        (
            "chromium",
            std::path::Path::new("/usr/bin/chromium").exists(),
        ),
        (
            "chromedriver",
            std::path::Path::new("/usr/bin/chromedriver").exists(),
        ),
        (
            "python3-selenium",
            Command::new(DEBIAN_PYTHON)
                .args(["-c", "import selenium"])
                .status()
                .is_ok_and(|s| s.success()),
        ),
    ] {
        if !ok {
            skip(test, &format!("{what} missing (scripts/install-test-deps)"));
            return false;
        }
    }
    true
}

/// Python's prometheus_client (the real Prometheus text parser), or a skip (a failure
/// under CI and as root).
fn prometheus_ready(test: &str) -> bool {
    let ok = Command::new(DEBIAN_PYTHON)
        .args(["-c", "import prometheus_client"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip(
            test,
            "python3-prometheus-client missing (scripts/install-test-deps)",
        );
    }
    ok
}

/// Start webd on a free port; returns (port, log path). As root it runs as `nobody`
/// with the set-uid checkpassword-file of the tree (as an installation has it) and the
/// directory writer beside it in ROOT/bin.
pub fn start_webd(t: &mut Tree) -> (u16, PathBuf) {
    let bindir = t.root.join("bin");
    std::fs::create_dir_all(&bindir).unwrap();
    if is_root() {
        t.setuid_root_copy("checkpassword-file");
    } else {
        std::fs::copy(bin("checkpassword-file"), bindir.join("checkpassword-file")).unwrap();
    }
    for p in ["webd-dirwrite", "webd-queue", "qadmin"] {
        std::fs::copy(bin(p), bindir.join(p)).unwrap();
    }
    let port = free_port();
    t.control("webaddr", &format!("127.0.0.1:{port}"));
    let mport = free_port();
    t.control("webmetricsaddr", &format!("127.0.0.1:{mport}"));
    let log = t.root.join("webd.log");
    let mut c = t.cmd("webd");
    c.env("MAILORDER_BIN_DIR", &bindir)
        .stderr(std::fs::File::create(&log).unwrap());
    t.keep(c.spawn().expect("webd"));
    wait_listening("127.0.0.1", port, 30);
    wait_listening("127.0.0.1", mport, 30);
    (port, log)
}

/// The POP3S login chain under listen; returns its port.
fn start_pop3s(t: &mut Tree) -> u16 {
    let cp = t.checkpassword_as_installed();
    t.start_login_chain("pop3d-login", "pop3d", ChainTls::Implicit, &cp)
        .port
}

const SELF_SERVICE_PY: &str = r##"
import sys, os, ssl, tempfile, http.client, poplib, urllib.parse

url, shots, addr, old, new, popport = sys.argv[1:7]
d = chromium("1100,900")

def note_has(text):
    # A click returns before the next page may be in: wait for the note to say it.
    def ok(drv):
        try:
            return text in drv.find_element(By.ID, "note").text
        except Exception:
            return False
    try:
        WebDriverWait(d, 30, poll_frequency=0.1).until(ok)
    except Exception:
        raise AssertionError("no note saying %r in %s" % (text, d.page_source))
    return True

def url_ends(path):
    try:
        WebDriverWait(d, 30, poll_frequency=0.1).until(lambda drv: drv.current_url.endswith(path))
    except Exception:
        raise AssertionError("not at %s: %s" % (path, d.current_url))
    return True

def post_raw(path, body, cookie, origin=None):
    c = http.client.HTTPSConnection(url.split("//")[1].rstrip("/"), timeout=30,
                                    context=ssl._create_unverified_context())
    h = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    if origin:
        h["Origin"] = origin
    c.request("POST", path, body=body, headers=h)
    r = c.getresponse()
    return r.status, r.read().decode()

try:
    d.get(url + "login")
    assert "Log in" in d.title, d.title
    shot("01-login")
    # A wrong password: refused, said plainly.
    d.find_element(By.ID, "address").send_keys(addr)
    d.find_element(By.ID, "password").send_keys("not the password")
    d.find_element(By.ID, "login-submit").click()
    assert note_has("Wrong address or password")
    print("wrong password refused")
    d.find_element(By.ID, "address").send_keys(addr)
    d.find_element(By.ID, "password").send_keys(old)
    d.find_element(By.ID, "login-submit").click()
    assert url_ends("/account")
    print("logged in")
    cookie = {c["name"]: c for c in d.get_cookies()}["__Host-mosession"]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict", cookie
    sess = "__Host-mosession=" + cookie["value"]
    csrf = d.find_element(By.CSS_SELECTOR, "#password-form input[name=csrf]").get_attribute("value")
    # A weak password: refused by the policy.
    d.find_element(By.ID, "new").send_keys("password123")
    d.find_element(By.ID, "again").send_keys("password123")
    d.find_element(By.ID, "password-submit").click()
    assert note_has("too common")
    print("weak password refused")
    # CSRF and forged sessions: refused.
    body = urllib.parse.urlencode({"new": "forged pass 9 word", "again": "forged pass 9 word"})
    st, _ = post_raw("/account/password", body, sess)
    assert st == 403, st
    st, _ = post_raw("/account/password", body + "&csrf=" + "0" * 64, sess)
    assert st == 403, st
    st, _ = post_raw("/account/password", body + "&csrf=" + csrf, "__Host-mosession=" + "f" * 64)
    assert st == 403, st
    st, _ = post_raw("/account/password", body + "&csrf=" + csrf, sess, origin="https://evil.example")
    assert st == 403, st
    print("csrf and forged sessions refused")
    d.find_element(By.ID, "new").send_keys(new)
    d.find_element(By.ID, "again").send_keys(new)
    shot("02-account")
    d.find_element(By.ID, "password-submit").click()
    assert note_has("was changed")
    shot("03-changed")
    print("password changed")
    fw = d.find_element(By.ID, "forward")
    fw.clear()
    fw.send_keys("elsewhere@example.org")
    d.find_element(By.ID, "forward-submit").click()
    assert note_has("forwarding was saved")
    assert "elsewhere@example.org" in d.find_element(By.ID, "forward").get_attribute("value")
    print("forwarding saved")
    d.find_element(By.ID, "reply-subject").send_keys("Away")
    d.execute_script("document.getElementById('reply-end').value = '2030-01-31'")
    d.find_element(By.ID, "reply-body").send_keys("Back in February.")
    d.find_element(By.ID, "reply-submit").click()
    assert note_has("autoresponder was saved")
    assert d.find_element(By.ID, "reply-subject").get_attribute("value") == "Away"
    assert "is on" in d.find_element(By.ID, "reply-state").text
    print("autoresponder saved")
    d.find_element(By.CSS_SELECTOR, "header button").click()
    assert url_ends("/login")
    d.get(url + "account")
    assert d.current_url.endswith("/login"), d.current_url
    print("logged out")
finally:
    d.quit()

ctx = ssl._create_unverified_context()
p = poplib.POP3_SSL("127.0.0.1", int(popport), context=ctx, timeout=30)
p.user(addr)
p.pass_(new)
print("pop3 new password ok", p.stat()[0])
p.quit()
p = poplib.POP3_SSL("127.0.0.1", int(popport), context=ctx, timeout=30)
p.user(addr)
try:
    p.pass_(old)
    print("pop3 OLD PASSWORD STILL WORKS")
except poplib.error_proto:
    print("pop3 old password refused")
print("done")
"##;

// See: issue #15
#[test]
fn self_service_password_and_forwarding_in_a_browser() {
    if !browser_ready("web::self_service_password_and_forwarding_in_a_browser") {
        return;
    }
    let mut t = Tree::new();
    t.control("authfaildelay", "100");
    let (port, log) = start_webd(&mut t);
    let pop = start_pop3s(&mut t);
    let shots = artifacts("self-service");
    let old = t.demo_password();
    let new = "violet tram 42 sings";
    let out = Command::new(DEBIAN_PYTHON)
        .arg("-c")
        .arg(browser_script(SELF_SERVICE_PY))
        .args([
            &format!("https://127.0.0.1:{port}/"),
            shots.to_str().unwrap(),
            "demo@example.test",
            &old,
            new,
            &pop.to_string(),
        ])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let weblog = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}\nwebd log:\n{weblog}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "wrong password refused",
        "logged in",
        "weak password refused",
        "csrf and forged sessions refused",
        "password changed",
        "forwarding saved",
        "autoresponder saved",
        "logged out",
        "pop3 new password ok",
        "pop3 old password refused",
        "done",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}\n{weblog}");
    }
    let users = std::fs::read_to_string(t.root.join("directory/users")).unwrap();
    assert!(users.contains("forward=elsewhere@example.org"), "{users}");
    assert!(
        users.contains("reply=Subject:%20Away%0AEnd:%202030-01-31%0A%0ABack%20in%20February."),
        "{users}"
    );
    assert!(
        !weblog.contains(new) && !weblog.contains(&old),
        "a password in the log"
    );
    assert!(
        weblog.contains("password changed address=demo@example.test"),
        "{weblog}"
    );
    assert!(shots.join("03-changed.png").exists());
}

/// The IMAPS login chain under listen.
fn start_imaps(t: &mut Tree) -> LoginChain {
    let cp = t.checkpassword_as_installed();
    t.start_login_chain("imapd-login", "imapd", ChainTls::Implicit, &cp)
}

const ADMIN_PY: &str = r##"
import sys, os, ssl, tempfile, imaplib, re, time
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.common.action_chains import ActionChains

url, shots, admin, adminpw, imapport = sys.argv[1:6]
d = chromium("1280,1000", browser_log=True)

def wait(cond, what):
    try:
        WebDriverWait(d, 30, poll_frequency=0.1).until(lambda drv: cond())
    except Exception:
        raise AssertionError("%s: %s\n%s" % (what, d.current_url, d.page_source[:3000]))

new_pw = "amber kettle 7 rivers"
reset_pw = "copper lantern 5 hills"
try:
    d.get(url + "login")
    # Keyboard only: the address has the focus, Tab goes to the password, then to the
    # button, Enter logs in.
    def focused():
        e = d.switch_to.active_element
        return e, (e.get_attribute("id") or e.text.strip())
    for typed, then in [(admin, "password"), (adminpw, "login-submit")]:
        e, _ = focused()
        e.send_keys(typed + Keys.TAB)
        assert focused()[1] == then, (then, focused()[1])
    focused()[0].send_keys(Keys.ENTER)
    wait(lambda: d.current_url.endswith("/admin"), "admin console")
    assert "3501 matching" in text_of("count"), text_of("count")
    print("admin console")
    # Tab walks the console in reading order, every stop visibly focused; Enter on a
    # tab opens it.
    seen = []
    for _ in range(12):
        ActionChains(d).send_keys(Keys.TAB).perform()
        e, name = focused()
        outline = d.execute_script("return getComputedStyle(arguments[0]).outlineStyle", e)
        assert outline not in ("", "none"), (name, outline)
        seen.append(name)
        if name == "q":
            break
    assert seen[:6] == ["Log out", "Users", "Activity", "Queue", "Domains and aliases", "add-address"], seen
    assert seen[-1] == "q", seen
    for _ in range(len(seen) - 4):
        ActionChains(d).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
    assert focused()[1] == "Queue", focused()[1]
    focused()[0].send_keys(Keys.ENTER)
    wait(lambda: d.current_url.endswith("/admin/queue"), "queue page by keyboard")
    print("keyboard walk", seen)
    d.get(url + "admin")
    shot("01-users")
    t0 = time.time()
    q = d.find_element(By.ID, "q")
    q.send_keys("user34" + Keys.ENTER)
    wait(lambda: "100 matching, page 1 of 2" in text_of("count"), "search")
    print("search %.3f s" % (time.time() - t0))
    d.find_element(By.ID, "next").click()
    wait(lambda: "page 2 of 2" in text_of("count"), "next page")
    assert "user3499@example.test" in text_of("users")
    print("paged")
    # Forwarding and a password reset for one user, typed and sent with Enter.
    d.find_element(By.ID, "forward-address").send_keys("user0005@example.test" + Keys.TAB)
    focused()[0].send_keys("far@example.org, near@example.org" + Keys.ENTER)
    wait(lambda: "now forwards to far@example.org, near@example.org" in text_of("note"), "forwarding")
    d.find_element(By.ID, "reset-address").send_keys("user0005@example.test")
    d.find_element(By.ID, "reset-password").send_keys("password123" + Keys.ENTER)
    wait(lambda: "too common" in text_of("note"), "weak reset refused")
    d.find_element(By.ID, "reset-address").send_keys("user0005@example.test")
    d.find_element(By.ID, "reset-password").send_keys(reset_pw + Keys.ENTER)
    wait(lambda: "password of user0005@example.test was set" in text_of("note"), "reset")
    print("forwarding and password reset")
    # Disable one user from its row.
    d.get(url + "admin?q=user0001")
    d.find_element(By.CSS_SELECTOR, "#users form[action='/admin/disable'] button").click()
    wait(lambda: "was disabled" in text_of("note"), "disable")
    print("disabled")
    # Domains and aliases.
    d.find_element(By.LINK_TEXT, "Domains and aliases").click()
    d.find_element(By.ID, "domain-name").send_keys("new.test")
    d.find_element(By.ID, "domain-submit").click()
    wait(lambda: "new.test is served here" in text_of("note"), "domain added")
    assert "new.test" in text_of("domains")
    d.find_element(By.ID, "alias-alias").send_keys("sales@new.test")
    d.find_element(By.ID, "alias-owner").send_keys("user0002@example.test")
    d.find_element(By.ID, "alias-submit").click()
    wait(lambda: "now delivers to user0002@example.test" in text_of("note"), "alias added")
    d.find_element(By.ID, "q").send_keys("sales" + Keys.ENTER)
    wait(lambda: "1 shown" in text_of("count"), "alias search")
    shot("02-aliases")
    print("domain and alias added")
    d.find_element(By.ID, "alias-alias").send_keys("info@new.test")
    d.find_element(By.ID, "alias-owner").send_keys("user0003@example.test")
    d.find_element(By.ID, "alias-submit").click()
    wait(lambda: "info@new.test now delivers" in text_of("note"), "second alias")
    d.get(url + "admin/domains?q=info")
    d.find_element(By.CSS_SELECTOR, "#aliases button").click()
    wait(lambda: "was removed" in text_of("note"), "alias removed")
    print("alias removed")
    d.find_element(By.ID, "domain-name").send_keys("empty.test")
    d.find_element(By.ID, "domain-submit").click()
    wait(lambda: "empty.test is served here" in text_of("note"), "second domain")
    d.find_element(By.XPATH, "//table[@id='domains']//tr[td[text()='empty.test']]//button").click()
    wait(lambda: "empty.test is no longer served here" in text_of("note"), "domain removed")
    assert "empty.test" not in text_of("domains")
    print("domain removed")
    d.get(url + "admin")
    # Add a user without a password: a one-time link.
    d.find_element(By.ID, "add-address").send_keys("newbie@example.test")
    d.find_element(By.ID, "add-submit").click()
    wait(lambda: "/login/token?t=" in text_of("note"), "token link")
    shot("03-added")
    link = re.search(r"https://\S+/login/token\?t=[0-9a-f]+", text_of("note")).group(0)
    print("added with link")
    d.find_element(By.CSS_SELECTOR, "header button").click()
    wait(lambda: d.current_url.endswith("/login"), "logout")
    d.delete_all_cookies()
    d.get(link)
    shot("04-token")
    d.find_element(By.ID, "token-submit").click()
    wait(lambda: d.current_url.endswith("/account"), "token login")
    d.find_element(By.ID, "new").send_keys(new_pw)
    d.find_element(By.ID, "again").send_keys(new_pw)
    d.find_element(By.ID, "password-submit").click()
    wait(lambda: "was changed" in text_of("note"), "password set")
    print("token login and password set")
    # The link works once. (Wait for the log-out to land first: a navigation still under
    # way could replace the page loaded next, and the log-out would find the cookies gone.)
    d.find_element(By.CSS_SELECTOR, "header button").click()
    wait(lambda: d.current_url.endswith("/login"), "logout after the password")
    d.delete_all_cookies()
    d.get(link)
    d.find_element(By.ID, "token-submit").click()
    wait(lambda: "not valid" in text_of("note"), "token used twice")
    print("token refused the second time")
    # Every page kept to its Content-Security-Policy; the only errors are the refusals
    # the test provoked (the used link's 403).
    bad = [e["message"] for e in d.get_log("browser")
           if "Content Security Policy" in e["message"]
           or (e["level"] == "SEVERE" and "status of 403" not in e["message"] and "status of 400" not in e["message"])]
    assert not bad, bad
    print("no CSP violation")
finally:
    d.quit()

ctx = ssl._create_unverified_context()
m = imaplib.IMAP4_SSL("127.0.0.1", int(imapport), ssl_context=ctx, timeout=30)
m.login("newbie@example.test", new_pw)
print("imap login", m.select()[0])
m.logout()
m = imaplib.IMAP4_SSL("127.0.0.1", int(imapport), ssl_context=ctx, timeout=30)
m.login("user0005@example.test", reset_pw)
print("imap login after reset", m.select()[0])
m.logout()
print("done")
"##;

// See: issue #15
#[test]
fn admin_console_adds_a_user_who_sets_a_password_and_reads_mail_over_imap() {
    if !browser_ready("web::admin_console_adds_a_user_who_sets_a_password_and_reads_mail_over_imap")
    {
        return;
    }
    let mut t = Tree::new();
    t.control("authfaildelay", "100");
    // The admin flag in the directory (not control/webadmins).
    let o = t
        .cmd("useradm")
        .args(["modify", "demo@example.test", "--restrict", "webadmin"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut users = String::new();
    for i in 0..3500 {
        users.push_str(&format!("user{i:04}@example.test\n"));
    }
    let path = t.root.join("directory/users");
    let mut all = std::fs::read_to_string(&path).unwrap();
    all.push_str(&users);
    std::fs::write(&path, all).unwrap();
    let (port, log) = start_webd(&mut t);
    let imap = start_imaps(&mut t);
    let shots = artifacts("admin");
    let out = Command::new(DEBIAN_PYTHON)
        .arg("-c")
        .arg(browser_script(ADMIN_PY))
        .args([
            &format!("https://127.0.0.1:{port}/"),
            shots.to_str().unwrap(),
            "demo@example.test",
            &t.demo_password(),
            &imap.port.to_string(),
        ])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let weblog = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}\nwebd log:\n{weblog}\nimap log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        imap.log()
    );
    for want in [
        "admin console",
        "keyboard walk",
        "paged",
        "forwarding and password reset",
        "disabled",
        "domain and alias added",
        "alias removed",
        "domain removed",
        "added with link",
        "token login and password set",
        "token refused the second time",
        "no CSP violation",
        "imap login OK",
        "imap login after reset OK",
        "done",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}\n{weblog}");
    }
    for audit in [
        "audit admin=demo@example.test action=disable target=user0001@example.test result=ok",
        "audit admin=demo@example.test action=add target=newbie@example.test result=ok",
        "audit admin=demo@example.test action=forward target=user0005@example.test result=ok",
        "audit admin=demo@example.test action=password target=user0005@example.test result=ok",
    ] {
        assert!(weblog.contains(audit), "{audit}: {weblog}");
    }
    let users = std::fs::read_to_string(&path).unwrap();
    assert!(
        users
            .lines()
            .any(|l| l.starts_with("user0001@example.test") && l.contains("status=disabled"))
    );
    assert!(
        users
            .lines()
            .any(|l| l.starts_with("user0002@example.test") && l.contains("sales@new.test")),
        "{users}"
    );
    assert!(!users.contains("info@new.test"), "{users}");
    assert!(
        users.lines().any(|l| l.starts_with("user0005@example.test")
            && l.contains("far@example.org")
            && l.contains("near@example.org")),
        "{users}"
    );
    assert!(
        !weblog.contains("copper lantern"),
        "the reset password in the log"
    );
    let domains = std::fs::read_to_string(t.root.join("directory/domains")).unwrap();
    assert!(domains.lines().any(|l| l == "new.test"), "{domains}");
    assert!(
        weblog.contains("action=alias target=sales@new.test result=ok"),
        "{weblog}"
    );
}

const METRICS_PY: &str = r##"
import sys, ssl, http.client, urllib.request
from prometheus_client.parser import text_string_to_metric_families

port, mport = sys.argv[1:3]
# One failed login without its form token, one wrong password: counted.
c = http.client.HTTPSConnection("127.0.0.1", int(port), timeout=30, context=ssl._create_unverified_context())
c.request("GET", "/login")
r = c.getresponse(); r.read()
pre = [v.split(";")[0].split("=", 1)[1] for k, v in r.getheaders() if k.lower() == "set-cookie"][0]
c = http.client.HTTPSConnection("127.0.0.1", int(port), timeout=30, context=ssl._create_unverified_context())
c.request("POST", "/login", body="csrf=%s&address=demo%%40example.test&password=wrong" % pre,
          headers={"Cookie": "__Host-mopre=" + pre, "Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse(); r.read()
print("login status", r.status)
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % mport, timeout=30).read().decode()
fams = {f.name: f for f in text_string_to_metric_families(text)}
logins = {s.labels["result"]: s.value for s in fams["mailorder_web_logins"].samples}
print("logins failed", int(logins["failed"]), "ok", int(logins["ok"]))
h = fams["mailorder_web_request_duration_seconds"]
print("histogram", h.type, int([s.value for s in h.samples if s.name.endswith("_count")][0]))
print("requests 2xx", int([s.value for s in fams["mailorder_web_requests"].samples if s.labels["code"] == "2xx"][0]))
print("connections", int(fams["mailorder_web_connections"].samples[0].value))
# The mail system's figures beside webd's own.
d = {s.labels["result"]: s.value for s in fams["mailorder_deliveries"].samples}
print("deliveries", sorted(d))
print("queue messages", int(fams["mailorder_queue_messages"].samples[0].value))
print("done")
"##;

// See: issue #15
#[test]
fn metrics_parse_with_prometheus_client() {
    if !prometheus_ready("web::metrics_parse_with_prometheus_client") {
        return;
    }
    let mut t = Tree::new();
    t.control("authfaildelay", "100");
    let (port, log) = start_webd(&mut t);
    let maddr = std::fs::read_to_string(t.root.join("control/webmetricsaddr")).unwrap();
    let mport = maddr.trim().rsplit(':').next().unwrap().to_owned();
    let out = Command::new(DEBIAN_PYTHON)
        .arg("-c")
        .arg(METRICS_PY)
        .args([&port.to_string(), &mport])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    for want in [
        "login status 403",
        "logins failed 1 ok 0",
        "histogram histogram 2",
        "requests 2xx 1",
        "connections 2",
        "deliveries ['bounced', 'deferred', 'delivered']",
        "queue messages 0",
        "done",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}");
    }
}

/// dispatch and smtpd (under listen) with their logs in files that webd follows
/// (`control/weblogs`), and smtpd's port as the `smtp` service (`control/webservices`).
/// Returns smtpd's port.
fn start_mail_with_logs(t: &mut Tree) -> u16 {
    let logs = t.root.join("log");
    std::fs::create_dir_all(&logs).unwrap();
    let d = t
        .cmd("dispatch")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(logs.join("dispatch")).unwrap())
        .spawn()
        .expect("dispatch");
    t.keep(d);
    let mut c = t.cmd("listen");
    c.args(["-p", "10", "127.0.0.1", "0"])
        .arg(bin("smtpd"))
        .stderr(std::fs::File::create(logs.join("smtpd")).unwrap());
    let port = t.start_listen(c).0;
    t.control(
        "weblogs",
        &format!(
            "smtpd {}\ndispatch {}",
            logs.join("smtpd").display(),
            logs.join("dispatch").display()
        ),
    );
    t.control("webservices", &format!("smtp {port}"));
    port
}

const ACTIVITY_PY: &str = r##"
import sys, os, tempfile, smtplib, time
from selenium.webdriver.common.keys import Keys

url, shots, admin, adminpw, smtpport, mport = sys.argv[1:7]
d = chromium("1280,1400", browser_log=True)

def num(id_):
    try:
        return int(text_of(id_))
    except ValueError:
        return -1

def wait(cond, what, secs=60):
    try:
        WebDriverWait(d, secs, poll_frequency=0.2).until(lambda drv: cond())
    except Exception:
        raise AssertionError("%s: %s\n%s" % (what, d.current_url, d.page_source[:4000]))

try:
    d.get(url + "login")
    d.find_element(By.ID, "address").send_keys(admin)
    d.find_element(By.ID, "password").send_keys(adminpw + Keys.ENTER)
    wait(lambda: d.current_url.endswith("/admin"), "admin console")
    d.find_element(By.LINK_TEXT, "Activity").click()
    wait(lambda: "Live" in text_of("live-status"), "the stream is live")
    url0 = d.current_url
    before = num("n-accepted")
    assert before >= 0, text_of("n-accepted")
    print("live, accepted before", before)
    wait(lambda: text_of("q-messages").isdigit(), "queue figures")
    print("queue figures", text_of("q-messages"))
    s = smtplib.SMTP("127.0.0.1", int(smtpport), timeout=60)
    s.ehlo("browser.test")
    wait(lambda: num("conn-smtp") >= 1, "an open smtp connection counted")
    print("connection counted", num("conn-smtp"))
    s.sendmail("someone@example.org", ["demo@example.test"],
               b"Subject: activity\r\n\r\nlive counters\r\n")
    s.quit()
    wait(lambda: num("n-accepted") >= before + 1, "accepted counter moved")
    print("accepted counter moved", num("n-accepted"))
    wait(lambda: num("n-delivered") >= 1, "delivered counter moved")
    print("delivered counter moved", num("n-delivered"))
    wait(lambda: num("conn-smtp") == 0, "the connection closed")
    assert d.current_url == url0, "the page was reloaded"
    f = d.find_element(By.ID, "log-filter")
    f.send_keys("status=delivered")
    def filtered():
        items = d.find_elements(By.CSS_SELECTOR, "#log li")
        return len(items) >= 1 and all("status=delivered" in i.text for i in items)
    wait(filtered, "log filter")
    print("log filtered", len(d.find_elements(By.CSS_SELECTOR, "#log li")))
    pts = d.find_elements(By.CSS_SELECTOR, "#chart polyline")
    assert len(pts) == 4, len(pts)
    d.save_screenshot(os.path.join(shots, "01-activity.png"))
    print("chart drawn")
    # The pages keep to their Content-Security-Policy: nothing refused, no script error.
    bad = [e["message"] for e in d.get_log("browser")
           if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]]
    assert not bad, bad
    print("no CSP violation")
finally:
    d.quit()

# The same figures on the metrics endpoint, read by a real Prometheus text parser: the
# mail system's, not only webd's own.
import urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % mport, timeout=30).read().decode()
open(os.path.join(shots, "metrics.txt"), "w").write(text)
fams = {f.name: f for f in text_string_to_metric_families(text)}
def one(name, **labels):
    v = [s.value for s in fams[name].samples
         if s.name in (name, name + "_total") and all(s.labels.get(k) == w for k, w in labels.items())]
    assert len(v) == 1, (name, labels, fams[name].samples)
    return int(v[0])
assert fams["mailorder_messages_accepted"].type == "counter"
print("metric accepted", one("mailorder_messages_accepted"))
print("metric delivered", one("mailorder_deliveries", result="delivered"))
print("metric logins ok", one("mailorder_logins", result="ok") >= 1)
print("metric smtp connections", one("mailorder_connections", service="smtp"))
print("metric queue", one("mailorder_queue_messages"), one("mailorder_queue_oldest_seconds") >= 0)
for h in ["mailorder_delivery_seconds", "mailorder_web_request_duration_seconds"]:
    f = fams[h]
    count = [s.value for s in f.samples if s.name == h + "_count"][0]
    inf = [s.value for s in f.samples if s.name == h + "_bucket" and s.labels["le"] == "+Inf"][0]
    assert f.type == "histogram" and count == inf, (h, f.samples)
    print("histogram", h, count >= 1)
print("done")
"##;

// See: issue #15
#[test]
fn activity_counters_move_live_when_mail_is_sent() {
    if !browser_ready("web::activity_counters_move_live_when_mail_is_sent")
        || !prometheus_ready("web::activity_counters_move_live_when_mail_is_sent")
    {
        return;
    }
    let mut t = Tree::new();
    t.control("authfaildelay", "100");
    t.control("webadmins", "demo@example.test");
    let smtp = start_mail_with_logs(&mut t);
    let (port, log) = start_webd(&mut t);
    let shots = artifacts("activity");
    let maddr = std::fs::read_to_string(t.root.join("control/webmetricsaddr")).unwrap();
    let mport = maddr.trim().rsplit(':').next().unwrap().to_owned();
    let out = Command::new(DEBIAN_PYTHON)
        .arg("-c")
        .arg(browser_script(ACTIVITY_PY))
        .args([
            &format!("https://127.0.0.1:{port}/"),
            shots.to_str().unwrap(),
            "demo@example.test",
            &t.demo_password(),
            &smtp.to_string(),
            &mport,
        ])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let weblog = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}\nwebd log:\n{weblog}\nsmtpd log:\n{}\ndispatch log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(t.root.join("log/smtpd")).unwrap_or_default(),
        std::fs::read_to_string(t.root.join("log/dispatch")).unwrap_or_default(),
    );
    for want in [
        "live, accepted before 0",
        "queue figures",
        "connection counted 1",
        "accepted counter moved 1",
        "delivered counter moved",
        "log filtered",
        "chart drawn",
        "no CSP violation",
        "metric accepted 1\n",
        "metric delivered 1\n",
        "metric logins ok True",
        "metric smtp connections 0",
        "metric queue 0 True",
        "histogram mailorder_delivery_seconds True",
        "histogram mailorder_web_request_duration_seconds True",
        "done",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}\n{weblog}");
    }
    assert_eq!(t.messages("demo").len(), 1);
}

const QUEUE_PY: &str = r##"
import sys, os, tempfile, time
from selenium.webdriver.common.keys import Keys

url, shots, admin, adminpw = sys.argv[1:5]
d = chromium("1280,1000")

def wait(cond, what, secs=60):
    try:
        WebDriverWait(d, secs, poll_frequency=0.2).until(lambda drv: cond())
    except Exception:
        raise AssertionError("%s: %s\n%s" % (what, d.current_url, d.page_source[:4000]))

def tries_become(n, path):
    # The page is not live: reload until dispatch has made attempt n.
    def ok():
        d.get(url + path)
        return [e.text for e in d.find_elements(By.CSS_SELECTOR, "#rcpts td.tries")] == [str(n)]
    wait(ok, "attempt %d" % n)

try:
    d.get(url + "login")
    d.find_element(By.ID, "address").send_keys(admin)
    d.find_element(By.ID, "password").send_keys(adminpw + Keys.ENTER)
    wait(lambda: d.current_url.endswith("/admin"), "admin console")
    d.find_element(By.LINK_TEXT, "Queue").click()
    wait(lambda: "2 matching" in text_of("count"), "two queued messages")
    print("listed")
    q = d.find_element(By.ID, "q")
    q.send_keys("carol" + Keys.ENTER)
    wait(lambda: "1 matching" in text_of("count"), "search")
    print("searched")
    q = d.find_element(By.ID, "q")
    q.clear()
    q.send_keys("bob@far" + Keys.ENTER)
    wait(lambda: "1 matching" in text_of("count") and "bob@far.test" in text_of("queue"), "recipient search")
    print("searched by recipient")
    d.find_element(By.CSS_SELECTOR, "#queue tbody a").click()
    wait(lambda: "carol@example.test" in text_of("f-sender"), "envelope")
    path = d.current_url.split("/", 3)[3]
    tries_become(1, path)
    assert "pending" in text_of("rcpts") and "far.test" in text_of("rcpts"), text_of("rcpts")
    d.save_screenshot(os.path.join(shots, "01-message.png"))
    print("envelope and recipient status")
    d.find_element(By.XPATH, "//button[text()='Retry now']").click()
    wait(lambda: "Retry of" in text_of("note"), "retry requested")
    tries_become(2, path)
    print("retried")
    d.get(url + "admin/queue")
    d.find_element(By.ID, "flush-domain").send_keys("far.test")
    d.find_element(By.ID, "flush-submit").click()
    wait(lambda: "Flush of far.test requested" in text_of("note"), "flush requested")
    tries_become(3, path)
    print("flushed")
    d.find_element(By.XPATH, "//button[text()='Remove']").click()
    wait(lambda: "Removal of" in text_of("note"), "remove requested")
    def gone():
        d.get(url + "admin/queue")
        return "1 matching" in text_of("count")
    wait(gone, "removed")
    d.save_screenshot(os.path.join(shots, "02-queue.png"))
    print("removed")
finally:
    d.quit()
print("done")
"##;

// See: issue #15
#[test]
fn queue_page_retries_flushes_and_removes_through_dispatch() {
    if !browser_ready("web::queue_page_retries_flushes_and_removes_through_dispatch") {
        return;
    }
    let mut t = Tree::new();
    t.control("authfaildelay", "100");
    t.control("webadmins", "demo@example.test");
    // Nothing listens on this port: every attempt is a temporary failure.
    let closed = free_port();
    t.control(
        "smtproutes",
        &format!("far.test:[127.0.0.1]:{closed}\nother.test:[127.0.0.1]:{closed}"),
    );
    t.inject(
        "carol@example.test",
        &["bob@far.test"],
        "Subject: one\n\nx\n",
    );
    t.inject(
        "dave@example.test",
        &["eve@other.test"],
        "Subject: two\n\nx\n",
    );
    t.start_dispatch();
    let (port, log) = start_webd(&mut t);
    let shots = artifacts("queue");
    let out = Command::new(DEBIAN_PYTHON)
        .arg("-c")
        .arg(browser_script(QUEUE_PY))
        .args([
            &format!("https://127.0.0.1:{port}/"),
            shots.to_str().unwrap(),
            "demo@example.test",
            &t.demo_password(),
        ])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let weblog = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}\nwebd log:\n{weblog}",
        String::from_utf8_lossy(&out.stderr),
    );
    for want in [
        "listed",
        "searched",
        "searched by recipient",
        "envelope and recipient status",
        "retried",
        "flushed",
        "removed",
        "done",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}\n{weblog}");
    }
    for audit in [
        "action=queue-retry target=",
        "action=queue-flush target=far.test result=ok",
        "action=queue-remove target=",
    ] {
        assert!(weblog.contains(audit), "{audit}: {weblog}");
    }
    // The other message is still there; the removed one left no bounce.
    let list = t.cmd("qadmin").arg("list").output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains("dave@example.test"), "{list}");
    assert!(t.messages("demo").is_empty());
}

const LIMITS_PY: &str = r##"
import sys, ssl, re, http.client, urllib.parse

port, addr, pw = sys.argv[1:4]
ctx = ssl._create_unverified_context()

def req(method, path, src, body=None, cookie=None, headers=None):
    # Each client address of 127/8 is a different client to webd.
    c = http.client.HTTPSConnection("127.0.0.1", int(port), timeout=60, context=ctx,
                                    source_address=(src, 0))
    h = dict(headers or {})
    if body is not None:
        h["Content-Type"] = "application/x-www-form-urlencoded"
    if cookie:
        h["Cookie"] = cookie
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    out = (r.status, r.getheader("Location") or "", r.getheaders(), r.read().decode())
    c.close()
    return out

def cookie(headers, name):
    for k, v in headers:
        if k.lower() == "set-cookie" and v.startswith(name + "="):
            return v.split(";")[0].split("=", 1)[1]
    return None

def login(address, password, src):
    _, _, hs, _ = req("GET", "/login", src)
    pre = cookie(hs, "__Host-mopre")
    body = urllib.parse.urlencode({"csrf": pre, "address": address, "password": password})
    st, loc, hs, _ = req("POST", "/login", src, body, "__Host-mopre=" + pre)
    s = cookie(hs, "__Host-mosession")
    return st, loc, s and "__Host-mosession=" + s

def csrf_of(page):
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)

# Admin pages only from control/webadminnets (127.0.0.2): the same admin from
# 127.0.0.1 gets the self-service page.
st, loc, admin_s = login(addr, pw, "127.0.0.2")
assert (st, loc) == (303, "/admin"), (st, loc)
st, _, _, page = req("GET", "/admin", "127.0.0.2", cookie=admin_s)
assert st == 200, st
admin_csrf = csrf_of(page)
st, loc, user_s = login(addr, pw, "127.0.0.1")
assert (st, loc) == (303, "/account"), (st, loc)
st, _, _, page = req("GET", "/admin", "127.0.0.1", cookie=user_s)
assert st == 403, st
user_csrf = csrf_of(req("GET", "/account", "127.0.0.1", cookie=user_s)[3])
print("admin networks kept")

# Forged admin requests: each refused, nothing added.
good = {"address": "x@example.test", "password": "granite owl 4 meadows"}
def add(n, src, cookie_, csrf, headers=None):
    f = dict(good, address="forged%d@example.test" % n)
    if csrf is not None:
        f["csrf"] = csrf
    return req("POST", "/admin/add", src, urllib.parse.urlencode(f), cookie_, headers)[0]
assert add(1, "127.0.0.1", user_s, user_csrf) == 403            # not an admin session
assert add(2, "127.0.0.2", admin_s, None) == 403                 # no token
assert add(3, "127.0.0.2", admin_s, "0" * 64) == 403             # a wrong token
assert add(4, "127.0.0.2", admin_s, user_csrf) == 403            # another session's token
assert add(5, "127.0.0.2", "__Host-mosession=" + "a" * 64, admin_csrf) == 403  # forged session
assert add(6, "127.0.0.2", None, admin_csrf) == 403              # no session
assert add(7, "127.0.0.2", admin_s, admin_csrf, {"Origin": "https://evil.example"}) == 403
assert add(8, "127.0.0.2", admin_s, admin_csrf, {"Sec-Fetch-Site": "cross-site"}) == 403
# The admin's own cookie and token, from outside control/webadminnets.
assert add(9, "127.0.0.1", admin_s, admin_csrf) == 403
assert req("GET", "/admin/queue", "127.0.0.1", cookie=admin_s)[0] == 403
print("forged admin requests refused")
f = dict(good, address="real@example.test", csrf=admin_csrf)
st, _, _, page = req("POST", "/admin/add", "127.0.0.2", urllib.parse.urlencode(f), admin_s)
assert st == 200 and "real@example.test was added" in page, (st, page[:2000])
print("admin add ok")

# Failed logins per address (control/webloginlimit 2): then even the right password
# is refused without asking the directory.
for _ in range(2):
    assert login(addr, "wrong password", "127.0.0.3")[0] == 403
st, _, s = login(addr, pw, "127.0.0.3")
assert st == 429 and s is None, st
print("limited per address")
# Per client (4 times the limit): eight failures on different addresses from
# 127.0.0.4, then a ninth address is refused from there but not from 127.0.0.5.
for i in range(8):
    assert login("nobody%d@example.test" % i, "wrong password", "127.0.0.4")[0] == 403
assert login("nobody8@example.test", "wrong password", "127.0.0.4")[0] == 429
assert login("nobody8@example.test", "wrong password", "127.0.0.5")[0] == 403
print("limited per client")
print("done")
"##;

// See: issue #15
#[test]
fn admin_networks_forged_requests_and_login_limits() {
    let mut t = Tree::new();
    t.control("authfaildelay", "100");
    t.control("webadmins", "demo@example.test");
    t.control("webadminnets", "127.0.0.2");
    t.control("webloginlimit", "2");
    let (port, log) = start_webd(&mut t);
    let out = Command::new(DEBIAN_PYTHON)
        .arg("-c")
        .arg(LIMITS_PY)
        .args([&port.to_string(), "demo@example.test", &t.demo_password()])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let weblog = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "{stdout}\n{}\nwebd log:\n{weblog}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "admin networks kept",
        "forged admin requests refused",
        "admin add ok",
        "limited per address",
        "limited per client",
        "done",
    ] {
        assert!(stdout.contains(want), "{want}: {stdout}\n{weblog}");
    }
    let users = std::fs::read_to_string(t.root.join("directory/users")).unwrap();
    assert!(users.contains("real@example.test"), "{users}");
    assert!(!users.contains("forged"), "{users}");
    for line in [
        "admin page refused address=demo@example.test ip=127.0.0.1",
        "bad CSRF token refused path=/admin/add",
        "cross-site request refused",
        "audit admin=demo@example.test action=add target=real@example.test result=ok ip=127.0.0.2",
        "login refused: too many failures address=demo@example.test ip=127.0.0.3",
        "login refused: too many failures address=nobody8@example.test ip=127.0.0.4",
    ] {
        assert!(weblog.contains(line), "{line}: {weblog}");
    }
    assert_eq!(weblog.matches("audit ").count(), 1, "{weblog}");
}

const REFUSALS_PY: &str = r##"
import sys, time, urllib.request
from prometheus_client.parser import text_string_to_metric_families
mport = sys.argv[1]
def figures():
    text = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % mport, timeout=30).read().decode()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    r = {s.labels["reason"]: int(s.value) for s in fams["mailorder_rejections"].samples}
    a = int(fams["mailorder_messages_accepted"].samples[0].value)
    return r["spam"], r["virus"], a
end = time.time() + 60
while figures() != (1, 1, 1) and time.time() < end:
    time.sleep(0.2)
print("spam %d virus %d accepted %d" % figures())
"##;

// See: issue #15. The filter's refusals (real spamd and clamd) reach the activity figures
// and the metrics, from smtpd's log where the filter stage writes.
#[test]
fn spam_and_virus_refusals_are_counted() {
    let name = "web::spam_and_virus_refusals_are_counted";
    if !have("spamd") || !have("clamd") {
        return skip(
            name,
            "spamd and clamd (spamassassin, clamav-daemon) not installed",
        );
    }
    if !prometheus_ready(name) {
        return;
    }
    let dir = scratch();
    let (_spam, spam_port) = super::filter::spamd(dir.path());
    let (_clam, clam_port) = super::filter::clamd(dir.path());
    let mut t = Tree::new();
    t.control("filter", "1");
    t.control("clamd", &format!("127.0.0.1:{clam_port}"));
    t.control("spamd", &format!("127.0.0.1:{spam_port}"));
    t.control("spamreject", "100");
    let smtp = start_mail_with_logs(&mut t);
    let (_, log) = start_webd(&mut t);
    let maddr = std::fs::read_to_string(t.root.join("control/webmetricsaddr")).unwrap();
    let mport = maddr.trim().rsplit(':').next().unwrap().to_owned();
    expect_code(
        &super::filter::send(smtp, super::filter::GTUBE),
        "554 5.7.1",
    );
    expect_code(
        &super::filter::send(smtp, &format!("see {} here", super::filter::VIRUS)),
        "554 5.7.1",
    );
    expect_code(&super::filter::send(smtp, "a plain message"), "250");
    let out = Command::new(DEBIAN_PYTHON)
        .arg("-c")
        .arg(REFUSALS_PY)
        .arg(&mport)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("spam 1 virus 1 accepted 1"),
        "{stdout}\n{}\nwebd log:\n{}\nsmtpd log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(t.root.join("log/smtpd")).unwrap_or_default()
    );
}
