//! IMAP conformance (issue #12), each item an imaplib transcript through the real chain
//! (listen → imapd-login → checkpassword-file → imapd): ENVELOPE names and groups,
//! \Recent in exactly one session, BINARY decoding, message/rfc822 part numbers, SEARCH
//! by dates and names, SORT and THREAD, CONDSTORE with ESEARCH, mailbox names, ID,
//! LIST-EXTENDED, UIDVALIDITY after DELETE/CREATE, STORE then FETCH.

use mailorder_tests::{Tree, bin, python};

fn start(t: &mut Tree) -> u16 {
    let mut c = t.cmd("listen");
    c.arg("127.0.0.1")
        .arg("0")
        .arg(bin("imapd-login"))
        .arg(bin("checkpassword-file"))
        .arg(bin("imapd"));
    t.start_listen(c).0
}

/// Common start of every script: `conn()` logs in, `cmd(M, name, args)` runs a command
/// and returns (typ, data, untagged responses of it).
const PRELUDE: &str = r#"import imaplib, sys
imaplib.Commands["ID"] = ("NONAUTH", "AUTH", "SELECTED")
port, pw = int(sys.argv[1]), sys.argv[2]
def conn():
    M = imaplib.IMAP4("127.0.0.1", port)
    M.login("demo@example.test", pw)
    return M
def cmd(M, name, *args):
    M.untagged_responses.clear()
    typ, data = M._simple_command(name, *args)
    if name in ("SELECT", "EXAMINE") and typ == "OK":
        M.state = "SELECTED"
    got = dict(M.untagged_responses)
    M.untagged_responses.clear()
    return typ, data, got
def fetch1(M, what, n="1"):
    typ, d = M.fetch(n, what)
    assert typ == "OK", (what, d)
    return d
"#;

/// Run `body` after the prelude against a fresh chain; it prints OK at its end.
fn transcript(body: &str) {
    let mut t = Tree::new();
    let port = start(&mut t);
    let out = python(
        &format!("{PRELUDE}{body}\nprint('TRANSCRIPT OK')\n"),
        &[&port.to_string(), &t.demo_password()],
    );
    let so = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && so.contains("TRANSCRIPT OK"),
        "python failed:\n{so}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// See: issue #12: ENVELOPE dropped display names; groups must round-trip.
#[test]
fn envelope_names_and_groups() {
    transcript(
        r#"M = conn()
M.append("INBOX", None, None, b"From: Real Name <user@domain.test>\r\nTo: undisclosed-recipients: ;\r\nCc: Team: a@b.test, \"Q, X\" <c@d.test>;\r\nSubject: s\r\n\r\nx\r\n")
M.select("INBOX")
d = fetch1(M, "(ENVELOPE)")[0].decode()
assert '(("Real Name" NIL "user" "domain.test"))' in d, d
assert '((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))' in d, d
assert '((NIL NIL "Team" NIL)(NIL NIL "a" "b.test")("Q, X" NIL "c" "d.test")(NIL NIL NIL NIL))' in d, d
# SEARCH FROM/TO/CC match display names as well as addresses.
for key, val in [("FROM", '"Real Name"'), ("FROM", "user@domain"), ("CC", '"Q, X"'), ("CC", "c@d.test"), ("TO", "undisclosed")]:
    typ, d = M.search(None, key, val)
    assert d == [b"1"], (key, val, d)
typ, d = M.search(None, "FROM", '"Nobody Here"')
assert d == [b""], d"#,
    );
}

// See: issue #12: \Recent in two sessions at once; after COPY into the selected mailbox
// NOOP did not report RECENT and FETCH FLAGS lacked \Recent.
#[test]
fn recent_in_exactly_one_session() {
    transcript(
        r#"A, B, C = conn(), conn(), conn()
A.select("INBOX"); B.select("INBOX")
C.append("INBOX", None, None, b"Subject: r\r\n\r\nx\r\n")
ra = cmd(A, "NOOP")[2].get("RECENT", [b"0"])[-1]
rb = cmd(B, "NOOP")[2].get("RECENT", [b"0"])[-1]
assert sorted([ra, rb]) == [b"0", b"1"], (ra, rb)
fa = fetch1(A, "(FLAGS)")[0]; fb = fetch1(B, "(FLAGS)")[0]
assert (b"\\Recent" in fa) != (b"\\Recent" in fb), (fa, fb)
# A third session selecting later sees it as recent in neither.
typ, d, got = cmd(C, "SELECT", "INBOX")
assert got["RECENT"] == [b"0"], got
# COPY into the selected mailbox: the copy is recent in the copying session.
typ, d, got = cmd(C, "COPY", "1", "INBOX")
assert typ == "OK", d
if "RECENT" not in got:
    got = cmd(C, "NOOP")[2]
assert got["RECENT"] == [b"1"], got
f = fetch1(C, "(FLAGS)", "2")[0]
assert b"\\Recent" in f, f
cmd(A, "NOOP")
assert b"\\Recent" not in fetch1(A, "(FLAGS)", "2")[0]"#,
    );
}

// See: issue #12: BINARY must decode quoted-printable and base64, partial ranges count
// decoded octets, BINARY.SIZE after APPEND of a binary literal.
#[test]
fn binary_decodes_parts() {
    transcript(
        r#"M = conn()
msg = (b"Subject: b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
       b"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=C3=A9llo =3D wor=\r\nld\r\n"
       b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICf8=\r\n--XX--\r\n")
M.append("INBOX", None, None, msg)
M.select("INBOX")
d = fetch1(M, "(BINARY.PEEK[1] BINARY.SIZE[1])")
assert d[0][1] == "h\u00e9llo = world".encode(), d
assert b"BINARY.SIZE[1] 14" in d[1], d
d = fetch1(M, "(BINARY.PEEK[1]<1.4>)")
assert d[0][1] == "\u00e9ll".encode(), d
d = fetch1(M, "(BINARY.PEEK[2] BINARY.SIZE[2])")
assert d[0][1] == bytes(range(10)) + b"\xff", d
assert b"BINARY.SIZE[2] 11" in d[1], d
d = fetch1(M, "(BINARY.PEEK[2]<8.10>)")
assert d[0][1] == b"\x08\x09\xff", d
# APPEND with a binary literal (literal8, RFC 3516), then BINARY.SIZE.
raw = b"Subject: bin\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\x02abc\xff\r\n"
M.send(b"b1 APPEND INBOX ~{%d}\r\n" % len(raw))
line = M.readline()
assert line.startswith(b"+"), line
M.send(raw + b"\r\n")
while True:
    line = M.readline()
    if line.startswith(b"b1 "):
        break
assert line.startswith(b"b1 OK"), line
typ, d = M.fetch("2", "(BINARY.SIZE[1] BINARY.PEEK[1])")
assert b"BINARY.SIZE[1] 9" in d[0][0], d
assert d[0][1] == b"\x00\x01\x02abc\xff\r\n", d"#,
    );
}

// See: issue #12: parts inside message/rfc822 (RFC 3501 §6.4.5 numbering).
#[test]
fn encapsulated_message_parts() {
    transcript(
        r#"M = conn()
msg = (b"Subject: outer\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
       b"--XX\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
       b"--XX\r\nContent-Type: message/rfc822\r\n\r\n"
       b"From: Inner <in@x.test>\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n"
       b"--YY\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--YY\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--YY--\r\n"
       b"--XX--\r\n")
M.append("INBOX", None, None, msg)
M.select("INBOX")
def part(s):
    return fetch1(M, "(BODY.PEEK[%s])" % s)[0][1]
assert part("2").startswith(b"From: Inner <in@x.test>\r\nSubject: inner\r\n"), part("2")
assert part("2.HEADER") == b"From: Inner <in@x.test>\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=YY\r\n\r\n", part("2.HEADER")
assert part("2.HEADER.FIELDS (SUBJECT)") == b"Subject: inner\r\n\r\n"
assert part("2.HEADER.FIELDS.NOT (SUBJECT CONTENT-TYPE)") == b"From: Inner <in@x.test>\r\n\r\n"
assert part("2.MIME") == b"Content-Type: message/rfc822\r\n\r\n", part("2.MIME")
assert part("2.1") == b"inner text"
assert part("2.2") == b"<p>x</p>"
assert part("2.1.MIME") == b"Content-Type: text/plain\r\n\r\n"
assert part("2.TEXT").startswith(b"--YY\r\n")
d = fetch1(M, "(BODYSTRUCTURE)")[0]
assert b'("MESSAGE" "RFC822"' in d and b'"inner"' in d, d"#,
    );
}

// See: issue #12: BEFORE/ON/SINCE use INTERNALDATE, SENTBEFORE/SENTON/SENTSINCE the
// Date: header in its own zone.
#[test]
fn search_by_dates() {
    transcript(
        r#"M = conn()
# Sent 7 Dec late in the evening at -0500 (8 Dec in UTC); arrived 1 Jan 2020.
M.append("INBOX", None, '"01-Jan-2020 12:00:00 +0000"', b"Date: Mon, 07 Dec 2026 23:30:00 -0500\r\nSubject: d1\r\n\r\nx\r\n")
# Sent 9 Dec at +1300 early in the morning (8 Dec in UTC); arrived 5 Mar 2021.
M.append("INBOX", None, '"05-Mar-2021 12:00:00 +0000"', b"Date: Wed, 09 Dec 2026 00:30:00 +1300\r\nSubject: d2\r\n\r\nx\r\n")
M.select("INBOX")
for crit, want in [
    ("SENTON 7-Dec-2026", b"1"), ("SENTON 8-Dec-2026", b""), ("SENTON 9-Dec-2026", b"2"),
    ("SENTBEFORE 8-Dec-2026", b"1"), ("SENTBEFORE 9-Dec-2026", b"1"), ("SENTSINCE 8-Dec-2026", b"2"),
    ("SENTSINCE 7-Dec-2026", b"1 2"),
    ("ON 1-Jan-2020", b"1"), ("BEFORE 1-Jan-2020", b""), ("BEFORE 2-Jan-2020", b"1"),
    ("SINCE 2-Jan-2020", b"2"), ("SINCE 5-Mar-2021", b"2"), ("ON 5-Mar-2021", b"2"),
]:
    typ, d = M.search(None, *crit.split())
    assert d == [want], (crit, d)"#,
    );
}

// See: issue #12: SORT by base subject and by the first address's mailbox (RFC 5256),
// THREAD=REFERENCES with its dummy and orphan rules.
#[test]
fn sort_and_thread_rfc5256() {
    transcript(
        r#"M = conn()
msgs = [("Re: [list] Fwd: apple (fwd)", "Zed <a@x.test>", "<1@x>", ""),
        ("banana", '"Adam" <z@x.test>', "<2@x>", "References: <1@x>\r\n"),
        ("Re: banana", "bob@x.test", "<3@x>", "In-Reply-To: <2@x>\r\n"),
        ("cherry", "Carl <c@x.test>", "<4@x>", "References: <9@gone> <1@x>\r\n"),
        ("[PATCH] Re: apple", "yy@x.test", "<5@x>", "References: <7@missing>\r\n"),
        ("orphan", "o@x.test", "<6@x>", "References: <7@missing>\r\n")]
for i, (s, f, mid, ref) in enumerate(msgs):
    M.append("INBOX", None, None, ("From: %s\r\nTo: t%d@x.test\r\nSubject: %s\r\nMessage-ID: %s\r\n%sDate: Mon, 07 Dec 2026 10:0%d:00 +0000\r\n\r\nx\r\n" % (f, 6 - i, s, mid, ref, i)).encode())
M.select("INBOX")
assert M.sort("(SUBJECT)", "UTF-8", "ALL")[1] == [b"1 5 2 3 4 6"]
assert M.sort("(REVERSE SUBJECT)", "UTF-8", "ALL")[1] == [b"6 4 2 3 1 5"]
assert M.sort("(FROM)", "UTF-8", "ALL")[1] == [b"1 3 4 6 5 2"]
assert M.sort("(TO)", "UTF-8", "ALL")[1] == [b"6 5 4 3 2 1"]
assert M.thread("REFERENCES", "UTF-8", "ALL")[1] == [b"((1 (2 3)(4))((5)(6)))"], M.thread("REFERENCES", "UTF-8", "ALL")"#,
    );
}

// See: issue #12: SEARCH RETURN (MIN) … MODSEQ answered BAD, RETURN (MAX) disconnected;
// FETCH MODSEQ must show the new value after a STORE, and the STORE be visible.
#[test]
fn condstore_with_esearch() {
    transcript(
        r#"M = conn()
for i in range(3):
    M.append("INBOX", None, None, b"Subject: c%d\r\n\r\nx\r\n" % i)
typ, d, got = cmd(M, "SELECT", "INBOX", "(CONDSTORE)")
hms = int(got["HIGHESTMODSEQ"][0])
typ, d = M.store("2", "+FLAGS", "(\\Answered)")
assert b"\\Answered" in d[0], d
f = fetch1(M, "(FLAGS MODSEQ)", "2")[0]
assert b"\\Answered" in f, f
ms = int(f.split(b"MODSEQ (")[1].split(b")")[0])
assert ms > hms, (ms, hms)
typ, d, got = cmd(M, "SEARCH", "RETURN", "(MIN)", "MODSEQ", str(hms + 1))
assert typ == "OK", d
assert got["ESEARCH"][0].endswith(b"MIN 2 MODSEQ %d" % ms), got
typ, d, got = cmd(M, "SEARCH", "RETURN", "(MAX)", "MODSEQ", "1")
assert b"MAX 3" in got["ESEARCH"][0] and b"MODSEQ" in got["ESEARCH"][0], got
typ, d, got = cmd(M, "SEARCH", "RETURN", "(MAX)", "ALL")
assert typ == "OK" and got["ESEARCH"][0].endswith(b"MAX 3"), got
assert M.noop()[0] == "OK""#,
    );
}

// See: issue #12: atom-special names get NO, not BAD, and LIST does not disconnect;
// names with "." work (escaped on disk as Dovecot's listescape: "\2e"); ID values of
// 1024 octets; \NonExistent for a subscribed mailbox that was deleted; DELETE then
// CREATE gives a new UIDVALIDITY.
#[test]
fn mailbox_names_id_list_uidvalidity() {
    transcript(
        r#"M = conn()
name = "!#$&'+,-.0123456789:;<=>?@^_`|[}"
typ, d, got = cmd(M, "SELECT", name)
assert typ == "NO", (typ, d)
typ, d, got = cmd(M, "LIST", '""', name)
assert typ == "OK", (typ, d)
typ, d, got = cmd(M, "LIST", '""', '"%s"' % name.replace("\\", "\\\\"))
assert typ == "OK", (typ, d)
assert M.noop()[0] == "OK"
for n in ["a.b", "Lists/rust.users", "v1.2.3"]:
    assert M.create(n)[0] == "OK", n
    assert M.select(n)[0] == "OK", n
    assert M.append(n, None, None, b"Subject: dot\r\n\r\nx\r\n")[0] == "OK"
typ, d = M.list('""', "*")
names = [x.decode() for x in d]
assert any(x.endswith('"/" a.b') for x in names) and any(x.endswith('"/" Lists/rust.users') for x in names), names
assert M.rename("a.b", "c.d")[0] == "OK"
assert b"(MESSAGES 1)" in M.status("c.d", "(MESSAGES)")[1][0], M.status("c.d", "(MESSAGES)")
typ, d, got = cmd(M, "ID", '("name" "%s" "version" "%s")' % ("n" * 1024, "v" * 1024))
assert typ == "OK" and "ID" in got, (typ, d)
assert M.noop()[0] == "OK"
M.create("gone"); M.subscribe("gone")
uv1 = M.status("gone", "(UIDVALIDITY)")[1][0]
assert M.delete("gone")[0] == "OK"
typ, d, got = cmd(M, "LIST", "(SUBSCRIBED)", '""', "gone")
assert got.get("LIST") == [b'(\\NonExistent \\Subscribed) "/" gone'], got
assert M.create("gone")[0] == "OK"
uv2 = M.status("gone", "(UIDVALIDITY)")[1][0]
assert uv1 != uv2, (uv1, uv2)"#,
    );
}
