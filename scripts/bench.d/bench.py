"""make bench: mailorder side by side with Postfix on loopback (BENCHMARKS.md).

Started by scripts/bench, which builds the programs and installs Postfix. Environment:
BENCH_BIN_DIR (mailorder programs), BENCH_COUNT (2000), BENCH_SESSIONS ("1 10 50"),
BENCH_POSTFIX (1/0), BENCH_TMP (/var/tmp), BENCH_NEWCONN (1: every session count also
with one connection per message, smtp-source without -d), BENCH_TCPSERVER (1: also
mailorder's smtpd under tcpserver, a process per connection, when tcpserver is installed), BENCH_FSYNC_SECONDS (3), BENCH_CONNECTS (200),
BENCH_IDLE (20 idle connections for the memory figure), BENCH_OUT (report file,
target/bench/report.md), BENCH_SMTP_SOURCE (path, or "none" for the Python stand-in).

What it measures, for each system and each session count, with the same smtp-source
command line: (a) seconds until smtp-source exits (all COUNT messages accepted), (b) seconds
until all COUNT files are in the Maildir's new/ (polled every 10 ms), (c) the server CPU
time per message (user + system of every process of the system, the reaped ones included,
from /proc, before and after the run). Plus fsync'd file
creations per second (1 and 16 writers), connect-to-banner latency and smtpd memory per
idle connection. Every process it starts is stopped by its pid; the temporary tree is
removed.
"""

import datetime
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fsyncrate  # noqa: E402
import smtpprobe  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TARGET = os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")
BIN = os.environ.get("BENCH_BIN_DIR") or os.path.join(TARGET, "release")
COUNT = int(os.environ.get("BENCH_COUNT", "2000"))
SESSIONS = [int(s) for s in os.environ.get("BENCH_SESSIONS", "1 10 50").split()]
WITH_POSTFIX = os.environ.get("BENCH_POSTFIX", "1") == "1"
NEWCONN = os.environ.get("BENCH_NEWCONN", "1") == "1"
TCPSERVER = os.environ.get("BENCH_TCPSERVER", "1") == "1" and shutil.which("tcpserver")
CLK_TCK = os.sysconf("SC_CLK_TCK")
TMP = os.environ.get("BENCH_TMP", "/var/tmp")
FSYNC_SECONDS = float(os.environ.get("BENCH_FSYNC_SECONDS", "3"))
CONNECTS = int(os.environ.get("BENCH_CONNECTS", "200"))
IDLE = int(os.environ.get("BENCH_IDLE", "20"))
OUT = os.environ.get("BENCH_OUT") or os.path.join(TARGET, "bench", "report.md")
SMTP_SOURCE = os.environ.get("BENCH_SMTP_SOURCE") or shutil.which("smtp-source") or (
    "/usr/sbin/smtp-source" if os.access("/usr/sbin/smtp-source", os.X_OK) else None
)
if SMTP_SOURCE == "none":  # force the Python stand-in (testing the fallback)
    SMTP_SOURCE = None
SENDER = "from@example.test"
RCPT = "demo@example.test"
LENGTH = 4096
WARMUP = 20

COMMANDS = []  # the exact commands, for the report


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def record(argv, env=None):
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
    COMMANDS.append((prefix + " " if prefix else "") + shlex.join(argv))


def run(argv, **kw):
    record(argv)
    return subprocess.run(argv, check=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                smtpprobe._read_reply(s)
                s.sendall(b"QUIT\r\n")
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


def stop_pid(proc, timeout=70):
    """TERM the process we started, wait, KILL if it will not go."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_ticks(pid):
    """utime + stime + cutime + cstime of one process (reaped children included)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15])
    except (OSError, ValueError, IndexError):
        return 0


def children(pid):
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def tree_cpu(roots):
    """CPU seconds of the process trees under `roots`: every living process's own time
    plus its reaped children's (cutime/cstime hold the whole reaped subtree)."""
    ticks, todo, seen = 0, list(roots), set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        ticks += cpu_ticks(p)
        todo.extend(children(p))
    return ticks / CLK_TCK


def count_new(path):
    try:
        return len(os.listdir(path))
    except FileNotFoundError:
        return 0


def set_aside(path):
    """Move the delivered messages out of `path` (a Maildir's new/) into a directory beside
    the Maildir, never unlinking them: on ext4 without a journal (this project's VMs) every
    inode freed in the last minute or more is skipped one by one at each file creation in
    its block group, so unlinking 2000 messages here would charge the next runs of both
    systems (their Maildir deliveries, their queue files) for the benchmark's own clean-up.
    Everything goes with the temporary tree at the end."""
    aside = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))),
                         "bench-delivered")
    os.makedirs(aside, exist_ok=True)
    for name in os.listdir(path):
        os.rename(os.path.join(path, name), os.path.join(aside, name))


class Mailorder:
    name = "mailorder"
    smtpd = "smtpd"

    def __init__(self, base):
        self.root = os.path.join(base, "mailorder")
        self.maildir_new = os.path.join(self.root, "mail/example.test/demo/Maildir/new")
        self.procs = []
        self.env = dict(os.environ, MAILORDER_ROOT=self.root, MAILORDER_BIN_DIR=BIN)
        self.port = None

    def start(self, controls=None):
        """`controls`: control files written after setup, before anything starts
        (bench-filters turns the content filter on this way)."""
        envdesc = {"MAILORDER_ROOT": self.root, "MAILORDER_BIN_DIR": BIN}
        argv = [f"{BIN}/setup", "--demo", "--me", "localhost", self.root]
        record(argv, envdesc)
        subprocess.run(argv, check=True, env=self.env)
        for name, value in (controls or {}).items():
            COMMANDS.append(f"echo {shlex.quote(value)} > {self.root}/control/{name}")
            with open(os.path.join(self.root, "control", name), "w") as f:
                f.write(value + "\n")
        # The network-facing programs refuse root: as root, every mailorder program runs as
        # nobody (one uid, as `make run` by an ordinary user), the tree given to it.
        self.as_user = []
        if os.getuid() == 0:
            argv = ["chown", "-R", "nobody:", self.root]
            record(argv)
            subprocess.run(argv, check=True)
            self.as_user = [f"{BIN}/runas", "nobody"]
        self.dlog = open(os.path.join(self.root, "dispatch.log"), "w")
        argv = self.as_user + [f"{BIN}/dispatch"]
        record(argv, envdesc)
        COMMANDS[-1] += " &"
        self.procs.append(subprocess.Popen(argv, env=self.env, stderr=self.dlog))
        self.slog = open(os.path.join(self.root, "smtpd.log"), "w")
        # make run's launcher: the smtpd pool (listen -p).
        argv = self.as_user + [f"{BIN}/listen", "-c", "100", "-C", "100", "-p", "100", "127.0.0.1", "0",
                               f"{BIN}/smtpd"]
        record(argv, envdesc)
        COMMANDS[-1] += " &   # port 0: listen prints the port it got"
        listen = subprocess.Popen(
            argv, env=self.env, stdout=subprocess.PIPE, stderr=self.slog, text=True
        )
        self.procs.append(listen)
        self.port = int(listen.stdout.readline().strip())
        wait_port(self.port)
        COMMANDS.append(f"# mailorder's smtpd: 127.0.0.1:{self.port}")

    def cpu_roots(self):
        return [p.pid for p in self.procs]

    def stop(self):
        for p in reversed(self.procs):
            stop_pid(p)
        self.procs = []

    def describe(self):
        ctl = os.path.join(self.root, "control")
        files = sorted(os.listdir(ctl))
        return (
            f"programs from `{BIN}`; `listen -c 100 -C 100 -p 100` (the smtpd pool; the per-address limit raised above the 50 sessions, which all come from 127.0.0.1); control files: "
            + ", ".join(f"`{f}`={open(os.path.join(ctl, f)).read().strip()}" for f in files)
            + " (everything else default: concurrencylocal 10); logs at level info to files; "
            + ("every program runs as `nobody` (started through `runas nobody`; no set-id "
               "install, so local-deliver runs directly, not through deliver-as)"
               if os.getuid() == 0 else f"all programs run as uid {os.getuid()}")
        )


class MailorderTcpserver:
    """The same mailorder tree and dispatch, smtpd under tcpserver: a process per
    connection (what admins get with tcpserver or systemd Accept=yes)."""

    name = "mailorder/tcpserver"
    smtpd = "smtpd"

    def __init__(self, mo):
        self.mo = mo
        self.maildir_new = mo.maildir_new
        self.port = None
        self.proc = None

    def start(self):
        self.port = free_port()
        argv = ["tcpserver", "-b", "128", "-c", "100", "-RHl0"]
        if os.getuid() == 0:
            nobody = pwd.getpwnam("nobody")
            argv += ["-u", str(nobody.pw_uid), "-g", str(nobody.pw_gid)]
        argv += ["127.0.0.1", str(self.port), f"{BIN}/smtpd"]
        record(argv, {"MAILORDER_ROOT": self.mo.root, "MAILORDER_BIN_DIR": BIN})
        COMMANDS[-1] += " &"
        self.proc = subprocess.Popen(argv, env=self.mo.env, stdout=subprocess.DEVNULL,
                                     stderr=self.mo.slog)
        wait_port(self.port)

    def stop(self):
        if self.proc:
            stop_pid(self.proc)
        self.proc = None

    def cpu_roots(self):
        # dispatch is the same process as for `mailorder`.
        return [self.proc.pid] + [p.pid for p in self.mo.procs[:1]]  # procs[0]: dispatch

    def describe(self):
        return (f"the same tree and dispatch, smtpd under `tcpserver -b 128 -c 100 -RHl0` "
                "(as nobody when root: `-u -g`; a process per connection)")


class Postfix:
    name = "Postfix"
    smtpd = "smtpd"

    def __init__(self, base):
        self.top = os.path.join(base, "postfix")
        self.etc = os.path.join(self.top, "etc")
        self.spool = os.path.join(self.top, "spool")
        self.data = os.path.join(self.top, "data")
        self.mail = os.path.join(self.top, "mail")
        self.maildir_new = os.path.join(self.mail, "demo/Maildir/new")
        self.port = None
        self.master_pid = None
        self.version = subprocess.run(
            ["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True
        ).stdout.strip()

    def start(self):
        self.port = free_port()
        nobody = pwd.getpwnam("nobody")
        postfix_user = pwd.getpwnam("postfix")
        for d in (self.etc, self.spool, self.data, self.mail):
            os.makedirs(d)
        os.chmod(self.top, 0o755)
        os.chown(self.data, postfix_user.pw_uid, postfix_user.pw_gid)
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        with open(os.path.join(self.etc, "vmailbox"), "w") as f:
            f.write(f"{RCPT} demo/Maildir/\n")
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": self.spool,
            "data_directory": self.data,
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "myhostname": "localhost.localdomain",
            "mydomain": "localdomain",
            "mydestination": "",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "maillog_file": os.path.join(self.top, "maillog"),
            "maillog_file_prefixes": self.top,
            "virtual_mailbox_domains": "example.test",
            "virtual_mailbox_base": self.mail,
            "virtual_mailbox_maps": f"texthash:{self.etc}/vmailbox",
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
        }
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in settings.items():
                f.write(f"{k} = {v}\n")
        self.settings = settings
        with open("/etc/postfix/master.cf") as f:
            master = f.read()
        master, n = re.subn(
            r"(?m)^smtp\s+inet\s.*$", f"127.0.0.1:{self.port} inet n - n - - smtpd", master
        )
        if n != 1:
            raise RuntimeError("no `smtp inet` line in /etc/postfix/master.cf")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(master)
        record(["cp", "/etc/postfix/master.cf", self.etc + "/"])
        COMMANDS.append(
            f"# master.cf: `smtp inet ... smtpd` replaced by "
            f"`127.0.0.1:{self.port} inet n - n - - smtpd`; main.cf: "
            + "; ".join(f"{k} = {v}" for k, v in settings.items())
        )
        run(["postconf", "-c", self.etc, "-F", "*/*/chroot = n"])
        run(["postfix", "-c", self.etc, "start"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        pidfile = os.path.join(self.spool, "pid", "master.pid")
        deadline = time.time() + 20
        while self.master_pid is None and time.time() < deadline:
            try:
                with open(pidfile) as f:
                    self.master_pid = int(f.read().strip())
            except (OSError, ValueError):
                time.sleep(0.1)
        wait_port(self.port)
        COMMANDS.append(f"# Postfix's smtpd: 127.0.0.1:{self.port}")

    def cpu_roots(self):
        return [self.master_pid] if self.master_pid else []

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if self.master_pid:
            deadline = time.time() + 30
            while os.path.exists(f"/proc/{self.master_pid}") and time.time() < deadline:
                time.sleep(0.1)
            if os.path.exists(f"/proc/{self.master_pid}"):
                os.kill(self.master_pid, signal.SIGKILL)
        self.master_pid = None

    def describe(self):
        return (
            f"Postfix {self.version}, private instance (`postfix -c DIR`), defaults except "
            "the main.cf settings listed below (virtual(8) delivery to a Maildir as nobody; "
            "chroot off)"
        )


def source_argv(port, sessions, count, keep):
    argv = [SMTP_SOURCE or "smtp-source", "-s", str(sessions), "-m", str(count),
            "-l", str(LENGTH), "-f", SENDER, "-t", RCPT]
    if keep:
        argv.append("-d")
    return argv + [f"127.0.0.1:{port}"]


def load(system, sessions, count, keep=True, note=True):
    """One run: returns dict(accept=seconds, deliver=seconds, delivered=n, error=str)."""
    new = system.maildir_new
    before = count_new(new)
    timeout = max(120.0, count * 0.1)
    argv = source_argv(system.port, sessions, count, keep)
    if note and SMTP_SOURCE:
        record(argv)
    elif note:
        COMMANDS.append(f"# smtpprobe.load(port={system.port}, sessions={sessions}, "
                        f"count={count}, length={LENGTH}, keep={keep})  (smtp-source stand-in)")
    res = {"accept": None, "deliver": None, "delivered": 0, "error": None, "cpu": None}
    cpu0 = tree_cpu(system.cpu_roots())
    t0 = time.monotonic()
    if SMTP_SOURCE:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
    else:
        proc = None
        try:
            smtpprobe.load(system.port, sessions, count, LENGTH, SENDER, RCPT, keep)
        except RuntimeError as e:
            res["error"] = str(e)
        res["accept"] = time.monotonic() - t0
    while True:
        now = time.monotonic()
        if proc is not None and res["accept"] is None and proc.poll() is not None:
            res["accept"] = now - t0
            if proc.returncode != 0:
                err = proc.stderr.read().strip().splitlines()
                res["error"] = f"smtp-source exit {proc.returncode}: " + (err[-1] if err else "")
        n = count_new(new) - before
        if res["deliver"] is None and n >= count:
            res["deliver"] = now - t0
        if res["accept"] is not None and (res["deliver"] is not None or res["error"]):
            break
        if now - t0 > timeout:
            res["error"] = res["error"] or f"timeout after {timeout:.0f} s"
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            break
        time.sleep(0.01)
    if res["error"] and res["deliver"] is None:
        time.sleep(2)  # let whatever was accepted arrive before counting
    # Let the queue settle (cleanup after delivery), then take the CPU of the whole run.
    time.sleep(0.5)
    res["cpu"] = tree_cpu(system.cpu_roots()) - cpu0
    res["delivered"] = count_new(new) - before
    if os.path.isdir(new):
        set_aside(new)
    return res


def fmt_rate(count, secs):
    return f"{count / secs:.0f}" if secs else "–"


def ratio(a, b):
    if not a or not b:
        return "–"
    return f"{b / a:.2f}"  # seconds: peer / ours == our rate / peer rate


def machine():
    def sh(cmd):
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()

    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": sh("nproc"),
        "free": sh("free -h"),
        "kernel": sh("uname -r"),
        "cpu": cpu,
        "fs": sh(f"df -T {TMP} | tail -1 | awk '{{print $2\" on \"$1}}'"),
        "commit": sh(f"git -c safe.directory={REPO} -C {REPO} rev-parse --short HEAD"),
        "dirty": sh(f"git -c safe.directory={REPO} -C {REPO} status --porcelain --untracked-files=no") != "",
        "rustc": sh("rustc --version"),
    }


def main():
    info = machine()
    info["load_start"] = open("/proc/loadavg").read().split()[:3]
    base = tempfile.mkdtemp(prefix="mailorder-bench.", dir=TMP)
    os.chmod(base, 0o755)
    systems = []
    results = {}
    extra = {}
    try:
        log(f"fsync rate in {base} ({FSYNC_SECONDS:g} s per writer count)")
        COMMANDS.append(
            f"python3 scripts/bench.d/fsyncrate.py {base} {FSYNC_SECONDS:g} 1 16"
            "   # (called as a module)"
        )
        extra["fsync"] = {w: fsyncrate.rate(base, w, FSYNC_SECONDS, keep=True)
                          for w in (1, 16)}

        mo = Mailorder(base)
        log("starting mailorder")
        systems.append(mo)
        mo.start()
        if TCPSERVER:
            mt = MailorderTcpserver(mo)
            log("starting mailorder's smtpd under tcpserver")
            systems.append(mt)
            mt.start()
        if WITH_POSTFIX:
            pf = Postfix(base)
            log("starting Postfix")
            systems.append(pf)
            pf.start()
        for s in systems:
            log(f"warm-up: {WARMUP} messages to {s.name}")
            r = load(s, 1, WARMUP, note=False)
            if r["error"] or r["delivered"] != WARMUP:
                raise RuntimeError(f"{s.name} warm-up failed: {r}")
        runs = [(n, True) for n in SESSIONS] + ([(n, False) for n in SESSIONS] if NEWCONN else [])
        for i, (sessions, keep) in enumerate(runs):
            # The order reverses at every run (A T B, B T A, A T B, ...), so no system
            # always runs right after the other: with tcpserver (T, mailorder's own tree)
            # in between, mailorder follows itself or T, and Postfix follows T or itself.
            # On ext4 without a journal a file creation pays for every inode freed nearby
            # in the last minute or more; with a fixed order mailorder always paid for the
            # 2,000 queue files Postfix had just unlinked (BENCHMARKS.md, "What is
            # measured").
            for s in (systems if i % 2 == 0 else list(reversed(systems))):
                log(f"{s.name}: {COUNT} messages over {sessions} sessions"
                    + ("" if keep else ", one connection per message"))
                r = load(s, sessions, COUNT, keep)
                log(f"  accepted in {r['accept']:.2f} s, in Maildir in "
                    + (f"{r['deliver']:.2f} s" if r["deliver"] else "–")
                    + f", server CPU {r['cpu']:.2f} s"
                    + (f", ERROR {r['error']}" if r["error"] else ""))
                results[(s.name, sessions, keep)] = r
                time.sleep(1)
        for s in systems:
            log(f"{s.name}: connect-to-banner over {CONNECTS} connects")
            extra[(s.name, "banner")] = smtpprobe.summary_ms(
                smtpprobe.banner_latency(s.port, CONNECTS))
            log(f"{s.name}: memory of smtpd over {IDLE} idle connections")
            extra[(s.name, "mem")] = smtpprobe.memory_per_connection(s.port, IDLE, s.smtpd)
        info["load_end"] = open("/proc/loadavg").read().split()[:3]
        report = make_report(info, systems, results, extra, runs)
    finally:
        for s in reversed(systems):
            log(f"stopping {s.name}")
            try:
                s.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                log(f"stopping {s.name}: {e}")
        keep_logs(base)
        shutil.rmtree(base, ignore_errors=True)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write(report)
    print(report)
    log(f"report written to {OUT}")


def keep_logs(base):
    """Copy the systems' logs out of the tree before it is removed (target/bench/logs/)."""
    dest = os.path.join(os.path.dirname(OUT), "logs")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest, exist_ok=True)
    for rel in ("mailorder/dispatch.log", "mailorder/smtpd.log", "postfix/maillog"):
        src = os.path.join(base, rel)
        if os.path.exists(src):
            shutil.copy(src, os.path.join(dest, rel.replace("/", "-")))
    log(f"logs kept in {dest}")


def make_report(info, systems, results, extra, runs):
    names = [s.name for s in systems]
    pf = "Postfix" in names
    L = []
    L.append(f"### Run of {info['date']}")
    L.append("")
    built = os.environ.get("BENCH_COMMIT")
    if built and built != info["commit"]:
        L.append(f"- commit `{built}` when the build started, `{info['commit']}` when the "
                 "measuring began" + (" (with uncommitted changes)" if info["dirty"] else ""))
    else:
        L.append(f"- commit `{info['commit']}`"
                 + (" (with uncommitted changes)" if info["dirty"] else ""))
    L.append(f"- machine: `nproc` = {info['nproc']}, {info['cpu']}, kernel {info['kernel']}, "
             f"filesystem {info['fs']}; load average at start {' '.join(info['load_start'])}, "
             f"at end {' '.join(info['load_end'])}")
    L.append("- `free -h`:")
    L.append("")
    L.append("```")
    L.append(info["free"])
    L.append("```")
    L.append("")
    L.append(f"- {info['rustc']}")
    L.append(f"- load generator: "
             + (f"`{SMTP_SOURCE}` (Postfix's smtp-source)" if SMTP_SOURCE
                else "scripts/bench.d/smtpprobe.py (smtp-source missing)")
             + f"; {COUNT} messages of {LENGTH} bytes payload per run, one recipient each")
    for s in systems:
        L.append(f"- {s.name}: {s.describe()}")
    if not pf:
        L.append("- Postfix: **not measured in this run** (not root, or not installable)")
    L.append("")
    L.append("Accept rate = COUNT / seconds until smtp-source exits (every message got `250`). "
             "Delivery rate = COUNT / seconds from the start of smtp-source until all COUNT "
             "files are in `Maildir/new`. Ratio = mailorder / Postfix (above 1: mailorder ahead).")
    L.append("")
    hdr = "| sessions | mailorder accept msg/s | "
    hdr += "Postfix accept msg/s | ratio | " if pf else ""
    hdr += "mailorder in Maildir msg/s (s) | "
    hdr += "Postfix in Maildir msg/s (s) | ratio |" if pf else ""
    hdr = hdr.rstrip()
    L.append(hdr)
    L.append("|" + "---|" * (hdr.count("|") - 1))
    for sessions, keep in runs:
        mo = results.get(("mailorder", sessions, keep))
        p = results.get(("Postfix", sessions, keep)) if pf else None
        label = f"{sessions}" + (" (-d)" if keep else " (new connection per message)")
        row = f"| {label} | {cell_rate(mo, 'accept')} | "
        if pf:
            row += f"{cell_rate(p, 'accept')} | {ratio(mo and mo['accept'], p and p['accept'])} | "
        row += f"{cell_deliver(mo)} | "
        if pf:
            row += f"{cell_deliver(p)} | {ratio(mo and mo['deliver'], p and p['deliver'])} |"
        L.append(row.rstrip())
    if "mailorder/tcpserver" in names:
        L.append("")
        L.append("Launchers for mailorder's smtpd (same tree, same dispatch): `listen -p 100` "
                 "(make run's and supervise's: the smtpd pool) and `tcpserver` (a process per "
                 "connection, as systemd Accept=yes). msg/s in Maildir:")
        L.append("")
        L.append("| sessions | listen -p (pool) | tcpserver | ratio |")
        L.append("|---|---|---|---|")
        for sessions, keep in runs:
            a = results.get(("mailorder", sessions, keep))
            b = results.get(("mailorder/tcpserver", sessions, keep))
            label = f"{sessions}" + (" (-d)" if keep else " (new connection per message)")
            L.append(f"| {label} | {cell_deliver(a)} | {cell_deliver(b)} | "
                     f"{ratio(a and a['deliver'], b and b['deliver'])} |")
    L.append("")
    L.append("Server CPU per message (user + system of every process of the system, reaped "
             "children included, over the whole run: accept and delivery), in ms:")
    L.append("")
    hdr = "| sessions | " + " | ".join(f"{n} ms/msg" for n in names)
    hdr += " | mailorder / Postfix |" if pf else " |"
    L.append(hdr)
    L.append("|" + "---|" * (hdr.count("|") - 1))
    for sessions, keep in runs:
        label = f"{sessions}" + (" (-d)" if keep else " (new connection per message)")
        cells = []
        for n in names:
            r = results.get((n, sessions, keep))
            cells.append(f"{r['cpu'] * 1000 / COUNT:.2f}" if r and r.get("cpu") is not None
                         else "–")
        row = f"| {label} | " + " | ".join(cells)
        if pf:
            mo_r = results.get(("mailorder", sessions, keep))
            p_r = results.get(("Postfix", sessions, keep))
            if mo_r and p_r and mo_r.get("cpu") and p_r.get("cpu"):
                row += f" | {mo_r['cpu'] / p_r['cpu']:.2f}"
            else:
                row += " | –"
        L.append(row + " |")
    errs = [(k, r) for k, r in results.items() if r["error"]]
    if errs:
        L.append("")
        L.append("Errors:")
        for (n, s, keep), r in errs:
            L.append(f"- {n}, {s} sessions{'' if keep else ' (new conn)'}: {r['error']} "
                     f"({r['delivered']} of {COUNT} delivered)")
    L.append("")
    fs = extra["fsync"]
    L.append(f"Machine limit (fsync'd 4 KiB file creations + directory fsync, one directory, "
             f"{FSYNC_SECONDS:g} s each): **{fs[1]:.0f}/s** with 1 writer, "
             f"**{fs[16]:.0f}/s** with 16 writers. Issue #11's target at 50 sessions: "
             f"at least 70 % of the 16-writer rate halved (two durable files per message) = "
             f"**{0.7 * fs[16] / 2:.0f} msg/s** in Maildir.")
    L.append("")
    L.append(f"| | connect → 220 banner, median (p90), {CONNECTS} sequential connects | "
             f"smtpd per idle connection after EHLO ({IDLE} open): peak RSS (VmHWM) | VmRSS | PSS |")
    L.append("|---|---|---|---|---|")
    for n in names:
        med, p90 = extra[(n, "banner")]
        m = extra[(n, "mem")]
        if m:
            mem = (f"{m['hwm'] / 1024:.1f} MiB | {m['rss'] / 1024:.1f} MiB | "
                   f"{m['pss'] / 1024:.1f} MiB")
            if m["processes"] != m["connections"]:
                mem += f" ({m['processes']} processes for {m['connections']} connections)"
        else:
            mem = "not found | | "
        L.append(f"| {n} | {med:.2f} ms ({p90:.2f} ms) | {mem} |")
    L.append("")
    L.append("Commands, as run (DIR = the temporary tree):")
    L.append("")
    L.append("```")
    base_re = re.compile(re.escape(TMP.rstrip("/")) + r"/mailorder-bench\.[A-Za-z0-9_]+")
    seen = set()
    for c in COMMANDS:
        c = base_re.sub("DIR", c)
        if c not in seen:
            seen.add(c)
            L.append(c)
    L.append("```")
    L.append("")
    return "\n".join(L)


def cell_rate(r, key):
    if not r or not r[key]:
        return "–"
    s = fmt_rate(COUNT, r[key])
    return s + (" (error)" if r["error"] else "")


def cell_deliver(r):
    if not r:
        return "–"
    if not r["deliver"]:
        return f"incomplete ({r['delivered']}/{COUNT})"
    return f"{COUNT / r['deliver']:.0f} ({r['deliver']:.2f} s)"


if __name__ == "__main__":
    main()
