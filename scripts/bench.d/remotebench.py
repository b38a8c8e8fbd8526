#!/usr/bin/env python3
"""bench-remote (issue 3): messages per second relayed from the queue to Postfix's
smtp-sink on loopback, mailorder (dispatch + remote-send) beside a private Postfix relaying
the same load to the same sink in the same run; remote-send's peak RSS.

Method, for both systems: COUNT messages of SIZE bytes to one remote domain are put in the
queue while delivery is held (mailorder: dispatch not running; Postfix:
`defer_transports = smtp`, mail injected with smtp-source), then delivery is released and
the clock runs until the queue is empty. Prints a Markdown section on stdout.

Environment: BENCH_BIN_DIR (required), BENCH_COUNT (1000), BENCH_SIZE (2000),
BENCH_POSTFIX (1; 0 leaves Postfix out), BENCH_ROUNDS (3: the machine is noisy, so each
round measures both and the median is reported), BENCH_TMP (/var/tmp).
"""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ["BENCH_BIN_DIR"]
COUNT = int(os.environ.get("BENCH_COUNT", "1000"))
SIZE = int(os.environ.get("BENCH_SIZE", "2000"))
USE_POSTFIX = os.environ.get("BENCH_POSTFIX", "1") != "0"
ROUNDS = max(1, int(os.environ.get("BENCH_ROUNDS", "3")))
TMP = os.environ.get("BENCH_TMP", "/var/tmp")
SENDER = "bench@example.test"
RCPT = "user@sink.test"


def log(msg):
    print(f"bench-remote: {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def message(i):
    head = f"From: {SENDER}\nTo: {RCPT}\nSubject: bench {i}\nMessage-ID: <{i}@bench>\n\n"
    body = ("x" * 70 + "\n") * max(1, (SIZE - len(head)) // 71)
    return (head + body).encode()


def files_under(path):
    n = 0
    for _, _, files in os.walk(path):
        n += len(files)
    return n


def sink(port, extra=()):
    argv = ["smtp-sink", *extra]
    if os.getuid() == 0:
        argv += ["-u", "nobody"]
    argv += [f"127.0.0.1:{port}", "256"]
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return p


def run_mailorder(base, sink_port):
    root = os.path.join(base, "mailorder")
    env = dict(os.environ, MAILORDER_ROOT=root, MAILORDER_BIN_DIR=BIN)
    subprocess.run([f"{BIN}/setup", "--demo", "--me", "localhost", root], check=True, env=env)
    ctl = os.path.join(root, "control")
    for name, value in {
        "smtproutes": f":[127.0.0.1]:{sink_port}",
        "concurrencyremote": "20",
        "concurrencydomain": "20",
    }.items():
        with open(os.path.join(ctl, name), "w") as f:
            f.write(value + "\n")
    log(f"mailorder: queueing {COUNT} messages")
    envelope = f"F{SENDER}\0T{RCPT}\0\0".encode()
    for i in range(COUNT):
        r, w = os.pipe()
        p = subprocess.Popen([f"{BIN}/queue"], stdin=subprocess.PIPE, stdout=r, env=env)
        os.close(r)
        p.stdin.write(message(i))
        p.stdin.close()
        os.write(w, envelope)
        os.close(w)
        if p.wait() != 0:
            raise RuntimeError("queue failed")
    q = os.path.join(root, "queue")
    dlog = open(os.path.join(root, "dispatch.log"), "w")
    t0 = time.time()
    d = subprocess.Popen([f"{BIN}/dispatch"], env=env, stderr=dlog)
    while True:
        if (not os.listdir(os.path.join(q, "todo")) and not os.listdir(os.path.join(q, "state"))
                and not os.listdir(os.path.join(q, "mess"))):
            break
        if time.time() - t0 > 3600:
            raise RuntimeError("mailorder did not finish in an hour")
        time.sleep(0.01)
    secs = time.time() - t0
    d.send_signal(signal.SIGTERM)
    d.wait(70)
    dlog.close()
    with open(os.path.join(root, "dispatch.log")) as f:
        text = f.read()
    delivered = len(re.findall(r"status=delivered", text))
    runs = len(re.findall(r"program=remote-send", text))
    return {
        "secs": secs,
        "delivered": delivered,
        "runs": runs,
        "rss": remote_send_rss(env, ctl),
    }


def remote_send_rss(env, ctl):
    """remote-send's peak RSS in KiB, measured after the timed phase (sampling /proc during
    it would take CPU from the system being measured): 10 remote-sends, each sending one
    message of the benchmark's size to a second sink that waits a second before answering
    DATA, so that VmHWM can be read from /proc while they live."""
    port = free_port()
    slow = sink(port, ["-w", "1"])
    try:
        with open(os.path.join(ctl, "smtproutes"), "w") as f:
            f.write(f":[127.0.0.1]:{port}\n")
        msg = message(0)
        procs = []
        for _ in range(10):
            p = subprocess.Popen([f"{BIN}/remote-send", RCPT.split("@")[1], SENDER, RCPT],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, env=env)
            p.stdin.write(msg)
            p.stdin.close()
            procs.append(p)
        peak = 0
        while any(p.poll() is None for p in procs):
            for p in procs:
                try:
                    with open(f"/proc/{p.pid}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                peak = max(peak, int(line.split()[1]))
                except (OSError, ValueError):
                    pass
            time.sleep(0.01)
        for p in procs:
            if b"\0K" not in b"\0" + p.stdout.read():
                raise RuntimeError("remote-send did not deliver in the RSS run")
        return peak
    finally:
        slow.terminate()
        slow.wait()


def run_postfix(base, sink_port):
    top = os.path.join(base, "postfix")
    etc, spool, data = (os.path.join(top, d) for d in ("etc", "spool", "data"))
    for d in (etc, spool, data):
        os.makedirs(d)
    os.chmod(top, 0o755)
    pf = pwd.getpwnam("postfix")
    os.chown(data, pf.pw_uid, pf.pw_gid)
    port = free_port()
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": spool,
        "data_directory": data,
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "myhostname": "localhost.localdomain",
        "mydestination": "",
        "maillog_file": os.path.join(top, "maillog"),
        "maillog_file_prefixes": top,
        "relayhost": f"[127.0.0.1]:{sink_port}",
        "smtp_dns_support_level": "disabled",
        "defer_transports": "smtp",
    }
    with open(os.path.join(etc, "main.cf"), "w") as f:
        for k, v in settings.items():
            f.write(f"{k} = {v}\n")
    with open("/etc/postfix/master.cf") as f:
        master = f.read()
    master = re.sub(r"(?m)^smtp\s+inet\s.*$", f"127.0.0.1:{port} inet n - n - - smtpd", master)
    with open(os.path.join(etc, "master.cf"), "w") as f:
        f.write(master)
    subprocess.run(["postconf", "-c", etc, "-F", "*/*/chroot = n"], check=True)
    subprocess.run(["postfix", "-c", etc, "start"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    wait_port(port)
    try:
        log(f"Postfix: queueing {COUNT} messages with smtp-source (delivery deferred)")
        subprocess.run(["smtp-source", "-s", "10", "-m", str(COUNT), "-l", str(SIZE),
                        "-f", SENDER, "-t", RCPT, f"127.0.0.1:{port}"], check=True)
        deadline = time.time() + 600
        while files_under(os.path.join(spool, "deferred")) < COUNT:
            if time.time() > deadline:
                raise RuntimeError("Postfix did not defer every message")
            time.sleep(0.05)
        # Put every message on hold, lift defer_transports and reload while nothing can
        # move, then start the clock and release them all: the measured phase is delivery
        # alone, not the daemons' restart (a restarted qmgr could also start on the
        # deferred queue before the clock).
        subprocess.run(["postsuper", "-c", etc, "-h", "ALL"], check=True,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["postconf", "-c", etc, "-e", "defer_transports ="], check=True)
        subprocess.run(["postfix", "-c", etc, "reload"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        time.sleep(2)
        t0 = time.time()
        subprocess.run(["postsuper", "-c", etc, "-H", "ALL"], check=True,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["postqueue", "-c", etc, "-f"], check=True)
        queues = [os.path.join(spool, q)
                  for q in ("incoming", "active", "deferred", "maildrop", "hold")]
        while sum(files_under(q) for q in queues) > 0:
            if time.time() - t0 > 3600:
                raise RuntimeError("Postfix did not finish in an hour")
            time.sleep(0.01)
        secs = time.time() - t0
        with open(os.path.join(top, "maillog")) as f:
            sent = len(re.findall(r"status=sent", f.read()))
        version = subprocess.run(["postconf", "-d", "-h", "mail_version"],
                                 capture_output=True, text=True).stdout.strip()
        return {"secs": secs, "delivered": sent, "version": version}
    finally:
        subprocess.run(["postfix", "-c", etc, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        time.sleep(1)


def main():
    port = free_port()
    s = sink(port)
    rounds = []
    try:
        for n in range(ROUNDS):
            base = tempfile.mkdtemp(prefix="mailorder-bench-remote", dir=TMP)
            os.chmod(base, 0o755)
            try:
                log(f"round {n + 1} of {ROUNDS}")
                m = run_mailorder(base, port)
                p = run_postfix(base, port) if USE_POSTFIX else None
                rounds.append((m, p))
            finally:
                shutil.rmtree(base, ignore_errors=True)
    finally:
        s.terminate()
        s.wait()
    rate = lambda r: COUNT / r["secs"] if r and r["secs"] > 0 else 0.0
    print("## Remote delivery: relay from the queue to smtp-sink (issue 3)\n")
    print(f"{COUNT} messages of about {SIZE} bytes to one domain, queued first with delivery "
          "held, then released; time until the queue is empty. `smtp-sink -u nobody "
          f"127.0.0.1:PORT 256` receives for both. {ROUNDS} rounds, mailorder then Postfix "
          "in each.\n")
    print("| round | system | delivered | seconds | messages/s | notes |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for n, (m, p) in enumerate(rounds, 1):
        rss = f"remote-send peak RSS {m['rss']} KiB (VmHWM of 10 runs after the timed phase)"
        print(f"| {n} | mailorder (`{BIN}`) | {m['delivered']} | {m['secs']:.2f} | "
              f"{rate(m):.1f} | {m['runs']} remote-send runs, "
              f"concurrencyremote=concurrencydomain=20; {rss} |")
        if p:
            print(f"| {n} | Postfix {p['version']} | {p['delivered']} | {p['secs']:.2f} | "
                  f"{rate(p):.1f} | defaults (destination concurrency 20, connection cache), "
                  "relayhost = the sink |")
            if rate(p):
                ratios.append(rate(m) / rate(p))
    med = lambda xs: sorted(xs)[len(xs) // 2]
    print(f"\nmedian messages/s: mailorder {med([rate(m) for m, _ in rounds]):.1f}", end="")
    if ratios:
        print(f", Postfix {med([rate(p) for _, p in rounds]):.1f}; "
              f"mailorder / Postfix per round: {', '.join(f'{r:.2f}×' for r in ratios)}; "
              f"median {med(ratios):.2f}×")
    else:
        print()


if __name__ == "__main__":
    main()
