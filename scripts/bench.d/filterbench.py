"""bench-filters (issue 13): the mail path with the content filter's scanners off and on, in
the same run, on two mailorder trees set up alike (scripts/bench.d/bench.py's Mailorder:
`setup --demo`, dispatch, smtpd under `listen -p`; as root every program runs as nobody).

"off": no control/filter. "on": control/filter = 1 with a private clamd (INSTREAM over TCP)
and a private spamd (SpamAssassin's shipped rules; network tests off, `-L`). Nothing can be
downloaded here, so clamd loads a database of one test signature unless BENCH_CLAMDB names
a directory with the installed one (/var/lib/clamav): clamd's scan time grows with its
database, spamd's does not depend on it.

For each tree, with the same smtp-source command line as `make bench` (or its Python
stand-in), BENCH_COUNT messages of 4 KiB over each of BENCH_SESSIONS sessions (connections
reused): messages per second accepted and in the Maildir; the CPU per message of mailorder's
processes, of the `filter` processes among them, and of spamd and clamd (user + system from
/proc, reaped children included). Then the added latency: BENCH_LATENCY messages one after
another over one connection, the time from the end of the data to the 250 reply (median and
90th percentile). Prints a Markdown section on stdout.

Environment: BENCH_BIN_DIR (required), BENCH_COUNT (300), BENCH_SESSIONS ("1 10"),
BENCH_LATENCY (100), BENCH_CLAMDB (unset: one test signature), BENCH_TMP (/var/tmp).
Every process it starts is stopped by its pid; the temporary trees are removed.
"""

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import smtpprobe  # noqa: E402

COUNT = int(os.environ.get("BENCH_COUNT", "300"))
SESSIONS = [int(s) for s in os.environ.get("BENCH_SESSIONS", "1 10").split()]
LATENCY = int(os.environ.get("BENCH_LATENCY", "100"))
CLAMDB = os.environ.get("BENCH_CLAMDB")
TMP = os.environ.get("BENCH_TMP", "/var/tmp")
SIGNATURE = "MAILORDER-TEST-VIRUS-7f3a1c-NOT-A-REAL-VIRUS"


def log(msg):
    print(f"bench-filters: {msg}", file=sys.stderr, flush=True)


def wait_tcp(port, timeout):
    """Until something accepts connections on 127.0.0.1:port (spamd and clamd send no
    greeting)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Scanners:
    """A private spamd and clamd on loopback, stopped by their pids."""

    def __init__(self, base):
        self.dir = os.path.join(base, "scanners")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.procs = {}
        self.spamd_port = bench.free_port()
        self.clamd_port = bench.free_port()

    def start(self):
        argv = ["spamd", f"--listen=127.0.0.1:{self.spamd_port}", "-x", "-L",
                "--max-children=4", "--min-children=4", "--syslog=stderr",
                f"--pidfile={self.dir}/spamd.pid"]
        if os.getuid() == 0:
            argv[1:1] = ["-u", "nobody"]
        bench.record(argv)
        bench.COMMANDS[-1] += " &"
        self.spamd_log = open(os.path.join(self.dir, "spamd.log"), "w")
        self.procs["spamd"] = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                               stderr=self.spamd_log)
        db = CLAMDB
        if not db:
            db = os.path.join(self.dir, "clamdb")
            os.makedirs(db)
            hexsig = SIGNATURE.encode().hex()
            with open(os.path.join(db, "test.ndb"), "w") as f:
                f.write(f"MailorderTestSig:0:*:{hexsig}\n")
        conf = os.path.join(self.dir, "clamd.conf")
        with open(conf, "w") as f:
            f.write(f"DatabaseDirectory {db}\nTCPSocket {self.clamd_port}\nTCPAddr 127.0.0.1\n"
                    f"Foreground yes\nPidFile {self.dir}/clamd.pid\n"
                    f"LogFile {self.dir}/clamd.log\nMaxThreads 10\n")
        argv = ["clamd", "-c", conf]
        bench.record(argv)
        bench.COMMANDS[-1] += f" &   # {conf}: DatabaseDirectory {db}, TCPSocket, MaxThreads 10"
        self.procs["clamd"] = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL)
        log("waiting for spamd and clamd to load their rules")
        wait_tcp(self.spamd_port, 300)
        wait_tcp(self.clamd_port, 300)

    def controls(self):
        return {
            "filter": "1",
            "spamd": f"127.0.0.1:{self.spamd_port}",
            "clamd": f"127.0.0.1:{self.clamd_port}",
        }

    def cpu(self, name):
        return bench.tree_cpu([self.procs[name].pid])

    def stop(self):
        for name in ("clamd", "spamd"):
            p = self.procs.pop(name, None)
            if p is not None:
                bench.stop_pid(p)


def filter_cpu(system):
    """CPU seconds of the living `filter` processes under `system`'s process trees (one per
    smtpd process that took a message; they live as long as their smtpd)."""
    ticks, todo, seen = 0, list(system.cpu_roots()), set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/comm") as f:
                if f.read().strip() == "filter":
                    ticks += bench.cpu_ticks(p)
        except OSError:
            pass
        todo.extend(bench.children(p))
    return ticks / bench.CLK_TCK


def latency(port, count):
    """Seconds from the end of the data to the 250, `count` messages over one connection."""
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    # The final dot goes out in its own segment at once (no Nagle wait for an ACK).
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    try:
        _, buf = smtpprobe._read_reply(s)
        s.sendall(b"HELO bench.test\r\n")
        _, buf = smtpprobe._read_reply(s, buf)
        for n in range(count):
            for cmd in (f"MAIL FROM:<{bench.SENDER}>", f"RCPT TO:<{bench.RCPT}>", "DATA"):
                s.sendall(cmd.encode() + b"\r\n")
                code, buf = smtpprobe._read_reply(s, buf)
                if code >= 400:
                    raise RuntimeError(f"{cmd}: {code}")
            msg = smtpprobe._message(bench.LENGTH, bench.SENDER, bench.RCPT, n)
            s.sendall(msg[:-3])
            t0 = time.perf_counter()
            s.sendall(msg[-3:])
            code, buf = smtpprobe._read_reply(s, buf)
            times.append(time.perf_counter() - t0)
            if code != 250:
                raise RuntimeError(f"end of data: {code}")
        s.sendall(b"QUIT\r\n")
    finally:
        s.close()
    return sorted(times)


def measure(system, scanners):
    """Throughput runs and the latency run on one tree: a dict of figures."""
    out = {}
    for sessions in SESSIONS:
        before = {n: scanners.cpu(n) for n in ("spamd", "clamd")} if scanners else {}
        f0 = filter_cpu(system)
        log(f"{system.name}: {COUNT} messages over {sessions} sessions")
        r = bench.load(system, sessions, COUNT, True)
        if r["error"] or r["delivered"] != COUNT:
            raise RuntimeError(f"{system.name}: {r}")
        r["filter_cpu"] = filter_cpu(system) - f0
        for n, c in before.items():
            r[f"{n}_cpu"] = scanners.cpu(n) - c
        log(f"  accepted in {r['accept']:.2f} s, in Maildir in {r['deliver']:.2f} s, "
            f"mailorder CPU {r['cpu']:.2f} s")
        out[sessions] = r
    log(f"{system.name}: latency over {LATENCY} messages, one connection")
    times = latency(system.port, LATENCY)
    # Let them arrive, then move them aside as bench.load does.
    deadline = time.time() + 120
    while bench.count_new(system.maildir_new) < LATENCY and time.time() < deadline:
        time.sleep(0.05)
    bench.set_aside(system.maildir_new)
    out["latency"] = times
    return out


def ms(secs):
    return f"{secs * 1000:.1f}"


def per_msg(r, key):
    v = r.get(key)
    return ms(v / COUNT) if v is not None else "–"


def report(info, off, on):
    L = [f"### Content filter on vs off (issue 13): one run, {info['date']}", ""]
    L.append(f"Commit `{info['commit']}`{' (dirty)' if info['dirty'] else ''}, "
             f"{info['nproc']} CPUs ({info['cpu']}), kernel {info['kernel']}, "
             f"load at start {' '.join(info['load_start'])}, at end "
             f"{' '.join(info['load_end'])}. {COUNT} messages of {bench.LENGTH} octets per "
             "run, connections reused; clamd's database: "
             + (f"`{CLAMDB}`" if CLAMDB else "one test signature (nothing can be downloaded here)")
             + ".")
    L.append("")
    L.append("| sessions | filter | accepted msg/s | in Maildir msg/s | mailorder CPU ms/msg "
             "| of which `filter` | spamd CPU ms/msg | clamd CPU ms/msg |")
    L.append("|---|---|---|---|---|---|---|---|")
    for sessions in SESSIONS:
        for name, res in (("off", off), ("on", on)):
            r = res[sessions]
            L.append(f"| {sessions} | {name} | {bench.fmt_rate(COUNT, r['accept'])} "
                     f"| {bench.fmt_rate(COUNT, r['deliver'])} | {per_msg(r, 'cpu')} "
                     f"| {per_msg(r, 'filter_cpu') if name == 'on' else '–'} "
                     f"| {per_msg(r, 'spamd_cpu')} | {per_msg(r, 'clamd_cpu')} |")
    L.append("")
    lo, ln = off["latency"], on["latency"]

    def p90(t):
        return t[min(len(t) - 1, int(len(t) * 0.9))]

    L.append(f"Latency from the end of the data to the 250, {LATENCY} messages one after "
             "another over one connection (ms):")
    L.append("")
    L.append("| filter | median | 90th percentile |")
    L.append("|---|---|---|")
    L.append(f"| off | {ms(statistics.median(lo))} | {ms(p90(lo))} |")
    L.append(f"| on | {ms(statistics.median(ln))} | {ms(p90(ln))} |")
    L.append(f"| added | {ms(statistics.median(ln) - statistics.median(lo))} "
             f"| {ms(p90(ln) - p90(lo))} |")
    L.append("")
    L.append("Commands:")
    L.append("")
    L.append("```")
    L.extend(c.replace(info["base"], "DIR") for c in bench.COMMANDS)
    L.append("```")
    return "\n".join(L) + "\n"


def main():
    for prog in ("spamd", "clamd"):
        if not shutil.which(prog):
            log(f"{prog} is not installed (scripts/install-test-deps installs it)")
            return 111
    info = bench.machine()
    info["load_start"] = open("/proc/loadavg").read().split()[:3]
    base = tempfile.mkdtemp(prefix="mailorder-bench-filters.", dir=TMP)
    os.chmod(base, 0o755)
    info["base"] = base
    scanners = None
    systems = []
    try:
        scanners = Scanners(base)
        scanners.start()
        off = bench.Mailorder(os.path.join(base, "off"))
        off.name = "filter off"
        on = bench.Mailorder(os.path.join(base, "on"))
        on.name = "filter on"
        for s, controls in ((off, None), (on, scanners.controls())):
            os.makedirs(os.path.dirname(s.root), mode=0o755)
            log(f"starting mailorder, {s.name}")
            systems.append(s)
            s.start(controls)
        for s in systems:
            log(f"warm-up: {bench.WARMUP} messages, {s.name}")
            r = bench.load(s, 1, bench.WARMUP, note=False)
            if r["error"] or r["delivered"] != bench.WARMUP:
                raise RuntimeError(f"{s.name} warm-up failed: {r}")
        res_off = measure(off, None)
        res_on = measure(on, scanners)
        info["load_end"] = open("/proc/loadavg").read().split()[:3]
        text = report(info, res_off, res_on)
    finally:
        for s in reversed(systems):
            log(f"stopping {s.name}")
            try:
                s.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                log(f"stopping {s.name}: {e}")
        if scanners is not None:
            scanners.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(text)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
