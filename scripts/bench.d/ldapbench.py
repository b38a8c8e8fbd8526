"""LDAP vs file directory: checkpassword logins/s and per-RCPT latency (scripts/bench-ldap)."""
import os, socket, statistics, subprocess, sys, tempfile, time

BIN = os.environ["BENCH_BIN_DIR"]
USERS = int(os.environ.get("BENCH_USERS", "3500"))
LOGINS = int(os.environ.get("BENCH_LOGINS", "300"))
RCPTS = int(os.environ.get("BENCH_RCPTS", "500"))
HERE = os.path.dirname(os.path.abspath(__file__))
ETC = os.path.join(HERE, "..", "..", "etc", "ldap")
BASE = "dc=example,dc=test"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run(*a, **kw):
    subprocess.run(a, check=True, **kw)


def slappasswd(pw):
    return subprocess.run(["slappasswd", "-h", "{SSHA}", "-s", pw], check=True,
                          capture_output=True, text=True).stdout.strip()


def start_slapd(tmp, port):
    d = os.path.join(tmp, "slapd")
    os.makedirs(d + "/conf")
    os.makedirs(d + "/db")
    conf = f"""dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {d}/slapd.pid

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

include: file:///etc/ldap/schema/nis.ldif

include: file://{os.path.abspath(ETC)}/mailorder.ldif

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcSuffix: {BASE}
olcDbDirectory: {d}/db
olcRootDN: cn=admin,{BASE}
olcDbIndex: objectClass eq
olcDbIndex: mail,mailAlternateAddress eq
olcAccess: to attrs=userPassword by dn.exact="cn=auth,{BASE}" read by anonymous auth by * none
olcAccess: to * by * read
"""
    open(d + "/config.ldif", "w").write(conf)
    run("slapadd", "-n", "0", "-F", d + "/conf", "-l", d + "/config.ldif")
    h = slappasswd("benchpw")
    data = open(os.path.join(ETC, "sample.ldif")).read()
    data += f"\ndn: cn=auth,{BASE}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: auth\nuserPassword: {slappasswd('authpw')}\n"
    for i in range(USERS):
        a = f"user{i:04d}@example.test"
        data += (f"\ndn: mail={a},ou=people,{BASE}\nobjectClass: inetOrgPerson\nobjectClass: mailorderUser\n"
                 f"cn: User {i}\nsn: {i}\nmail: {a}\nmailAlternateAddress: u{i:04d}@example.test\n"
                 f"accountStatus: active\nuserPassword: {h}\n")
    open(d + "/data.ldif", "w").write(data)
    run("slapadd", "-q", "-n", "1", "-F", d + "/conf", "-l", d + "/data.ldif")
    run("slapd", "-F", d + "/conf", "-h", f"ldap://127.0.0.1:{port}/")
    return d + "/slapd.pid", h


def tree(tmp, name):
    root = os.path.join(tmp, name)
    run(os.path.join(BIN, "setup"), "--demo", "--me", "mx.example.test", root,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return root


def login_times(root, prog, user, pw, n=None, ok=True):
    env = {"PATH": "/usr/bin:/bin", "MAILORDER_ROOT": root, "SERVICE": "imap", "MAILORDER_LOG": "error"}
    times = []
    data = f"{user}\0{pw}\0\0".encode()
    for _ in range(n or LOGINS):
        r, w = os.pipe()
        os.write(w, data)
        os.close(w)
        t0 = time.perf_counter()
        p = subprocess.run([os.path.join(BIN, prog), "/bin/true"], env=env,
                           pass_fds=(3,) if r == 3 else (), stdin=subprocess.DEVNULL,
                           preexec_fn=lambda: (os.dup2(r, 3)), stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
        os.close(r)
        if (p.returncode == 0) != ok:
            sys.exit(f"{prog}: login of {user}: exit {p.returncode}, expected {'0' if ok else 'a failure'}")
    return times


def rcpt_times(root, users):
    env = {"PATH": "/usr/bin:/bin", "MAILORDER_ROOT": root, "MAILORDER_LOG": "error"}
    # smtpd refuses to run as root: listen binds, then drops to nobody (issue #10), so the
    # tree must be readable by nobody.
    subprocess.run(["chown", "-R", "nobody:", root], check=True)
    lst = subprocess.Popen([os.path.join(BIN, "listen"), "-u", "nobody", "127.0.0.1", "0", os.path.join(BIN, "smtpd")],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    port = int(lst.stdout.readline())
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb")

    def reply():
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                return line

    def cmd(c):
        s.sendall(c.encode() + b"\r\n")
        return reply()

    reply()
    cmd("EHLO bench.example")
    cmd("MAIL FROM:<bench@remote.test>")
    first = None
    times = []
    for i in range(RCPTS + 1):
        if i and i % 50 == 0:
            cmd("RSET")
            cmd("MAIL FROM:<bench@remote.test>")
        t0 = time.perf_counter()
        r = cmd(f"RCPT TO:<{users[i % len(users)]}>")
        dt = time.perf_counter() - t0
        if not r.startswith(b"250"):
            sys.exit(f"RCPT refused: {r!r}")
        if first is None:
            first = dt  # includes opening the directory
        else:
            times.append(dt)
    cmd("QUIT")
    s.close()
    lst.terminate()
    lst.wait()
    return first, times


def hash_cost(root):
    """What the default password scheme costs (issue #10): a user added with `useradm passwd`
    (the default scheme) beside the {SSHA} users above, and both kinds of failure."""
    env = dict(os.environ, MAILORDER_ROOT=root, MAILORDER_LOG="error")
    user = "hashcost@example.test"
    run(os.path.join(BIN, "useradm"), "add", user, env=env, stdout=subprocess.DEVNULL)
    run(os.path.join(BIN, "useradm"), "passwd", user, input=b"hashcostpw\n", env=env,
        stdout=subprocess.DEVNULL)
    scheme = next(l.split(":", 1)[1].strip() for l in open(root + "/directory/passwd")
                  if l.startswith(user + ":"))
    scheme = scheme[:scheme.index("$", scheme.index("rounds")) + 1] if "rounds" in scheme else scheme[:12]
    n = max(10, LOGINS // 10)
    rows = [
        (f"success, `{{SSHA}}`", login_times(root, "checkpassword-file", f"u{min(1234, USERS - 1):04d}@example.test", "benchpw", n)),
        (f"success, default `{scheme}`", login_times(root, "checkpassword-file", user, "hashcostpw", n)),
        ("failure, known user, wrong password", login_times(root, "checkpassword-file", user, "wrong", n, ok=False)),
        ("failure, unknown user", login_times(root, "checkpassword-file", "nobody-here@example.test", "wrong", n, ok=False)),
    ]
    out = ["", f"Password scheme cost on the file directory, {n} sequential `checkpassword-file` runs each "
           "(a new process each, process start to exit):", "",
           "| login | median ms | p90 ms |", "|---|---|---|"]
    for label, t in rows:
        out.append(f"| {label} | {ms(statistics.median(t))} | {ms(statistics.quantiles(t, n=10)[-1])} |")
    return out


def ms(x):
    return f"{x * 1000:.2f}"


def main():
    tmp = tempfile.mkdtemp(prefix="mailorder-bench-ldap", dir=os.environ.get("BENCH_TMP", "/var/tmp"))
    os.chmod(tmp, 0o755)
    port = free_port()
    pidfile, h = start_slapd(tmp, port)
    try:
        froot = tree(tmp, "file")
        lroot = tree(tmp, "ldap")
        with open(froot + "/directory/users", "a") as u, open(froot + "/directory/passwd", "a") as pw:
            for i in range(USERS):
                a = f"user{i:04d}@example.test"
                u.write(f"{a} aliases=u{i:04d}@example.test\n")
                pw.write(f"{a}:{h}\n")
        c = lroot + "/control/"
        for name, val in [("ldapservers", f"ldap://127.0.0.1:{port}/"), ("ldapbase", BASE),
                          ("ldapauthdn", f"cn=auth,{BASE}"), ("ldapauthpassword", "authpw")]:
            open(c + name, "w").write(val + "\n")
        open(lroot + "/directory/users", "w").close()
        users = [f"user{(i * 7919) % USERS:04d}@example.test" for i in range(RCPTS + 1)]
        rows = []
        for label, root, prog in [("file", froot, "checkpassword-file"), ("LDAP", lroot, "checkpassword-ldap")]:
            lt = login_times(root, prog, f"u{min(1234, USERS - 1):04d}@example.test", "benchpw")
            first, rt = rcpt_times(root, users)
            rows.append((label, lt, first, rt))
        out = []
        out.append(f"Users per directory: {USERS}; {LOGINS} sequential logins (a new process each, "
                   f"`{{SSHA}}` hash, login by alias); {RCPTS} RCPTs in one SMTP session (RSET + MAIL every 50) to spread-out users. "
                   f"Programs: `{BIN}`. slapd (back_mdb, `mail`/`mailAlternateAddress` indexed) on loopback.")
        out.append("")
        out.append("| back-end | logins/s | login median ms | login p90 ms | first RCPT ms (opens the directory) | RCPT median ms | RCPT p90 ms |")
        out.append("|---|---|---|---|---|---|---|")
        for label, lt, first, rt in rows:
            q = statistics.quantiles
            out.append(f"| {label} | {len(lt) / sum(lt):.0f} | {ms(statistics.median(lt))} | {ms(q(lt, n=10)[-1])} | "
                       f"{ms(first)} | {ms(statistics.median(rt))} | {ms(q(rt, n=10)[-1])} |")
        out += hash_cost(froot)
        print("\n".join(out))
    finally:
        try:
            pid = int(open(pidfile).read())
            os.kill(pid, 15)
            for _ in range(100):
                if not os.path.exists(f"/proc/{pid}"):
                    break
                time.sleep(0.05)
        except (OSError, ValueError):
            pass
        subprocess.run(["rm", "-rf", tmp])


main()
