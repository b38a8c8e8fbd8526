"""Per-mailbox uids vs the shared virtual-mail uid: what delivery costs (scripts/bench-uids).

Issue #10 item 6 asks BENCHMARKS.md to say what a uid per mailbox costs. Logins cost the
same either way (checkpassword switches uid in both cases), so this measures delivery only:
a real installation (scripts/install into a temporary PREFIX: system users, set-id
deliver-as), MAILBOXES mailboxes with the shared uid and as many with a uid each from
control/vmailuidrange, COUNT messages spread round-robin over each set, queued while
dispatch is stopped, then dispatch (as mosend, under runas) started and timed until every
message is in Maildir/new, with the CPU of dispatch's whole process tree (workers, deliver-as,
local-deliver, queue-clean).

Settings: BENCH_BIN_DIR (release programs), BENCH_COUNT (2000), BENCH_MAILBOXES (50),
BENCH_TMP (/var/tmp). Root only. Prints a Markdown section.
"""
import os, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import CLK_TCK, tree_cpu  # noqa: E402  (the mail-path benchmark's CPU accounting)

BIN = os.environ["BENCH_BIN_DIR"]
COUNT = int(os.environ.get("BENCH_COUNT", "2000"))
BOXES = int(os.environ.get("BENCH_MAILBOXES", "50"))
TMP = os.environ.get("BENCH_TMP", "/var/tmp")
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
assert CLK_TCK


def run(argv, **kw):
    return subprocess.run(argv, check=True, **kw)


def main():
    if os.getuid() != 0:
        sys.exit("bench-uids: needs root (an installation with set-id programs)")
    base = tempfile.mkdtemp(prefix="mailorder-bench-uids.", dir=TMP)
    os.chmod(base, 0o755)
    prefix = os.path.join(base, "mo")
    env = dict(PATH="/usr/sbin:/usr/bin:/sbin:/bin", MAILORDER_ROOT=prefix, MAILORDER_LOG="warn")
    try:
        run(["sh", os.path.join(REPO, "scripts", "install"), prefix, BIN], cwd=REPO,
            stdout=subprocess.DEVNULL)
        ctl = os.path.join(prefix, "control")
        with open(os.path.join(ctl, "me"), "w") as f:
            f.write("mx.example.test\n")
        useradm = os.path.join(prefix, "bin", "useradm")
        run([useradm, "domain", "add", "example.test"], env=env, stdout=subprocess.DEVNULL)
        shared = [f"shared{i:03d}@example.test" for i in range(BOXES)]
        own = [f"own{i:03d}@example.test" for i in range(BOXES)]
        for a in shared:
            run([useradm, "add", a], env=env, stdout=subprocess.DEVNULL)
        with open(os.path.join(ctl, "vmailuidrange"), "w") as f:
            f.write("70000-79999\n")
        for a in own:
            run([useradm, "add", a], env=env, stdout=subprocess.DEVNULL)
        rows = []
        for label, users in [("shared uid (movmail)", shared), ("a uid per mailbox", own)]:
            rows.append((label, measure(prefix, env, users)))
        out = [f"{COUNT} messages of about 1 KiB, one recipient each, round-robin over {BOXES} "
               "mailboxes, queued with `sendmail` while dispatch is stopped; then dispatch "
               "started (as mosend, `runas`) and timed until all are in `Maildir/new`. CPU = "
               "dispatch's whole process tree (delivery workers, deliver-as, local-deliver, "
               f"queue-clean). Installation: `scripts/install` into a temporary PREFIX; "
               f"programs from `{BIN}`.", "",
               "| mailboxes | delivered msg/s (s) | CPU ms/msg |", "|---|---|---|"]
        for label, (secs, cpu, owners) in rows:
            out.append(f"| {label}: {len(owners)} owner uid(s) | {COUNT / secs:.0f} ({secs:.2f} s) | "
                       f"{cpu * 1000 / COUNT:.2f} |")
        print("\n".join(out))
    finally:
        subprocess.run(["rm", "-rf", base])


def maildir_new(prefix, addr):
    local, dom = addr.split("@")
    return os.path.join(prefix, "mail", dom, local, "Maildir", "new")


def measure(prefix, env, users):
    sendmail = os.path.join(prefix, "bin", "sendmail")
    body = ("Subject: bench\n\n" + "x" * 72 + "\n") * 14
    for i in range(COUNT):
        to = users[i % len(users)]
        run([sendmail, "-f", "bench@remote.test", to], input=body.encode(), env=env)
    t0 = time.perf_counter()
    d = subprocess.Popen([os.path.join(prefix, "bin", "runas"), "mosend",
                          os.path.join(prefix, "bin", "dispatch")], env=env)
    try:
        while True:
            n = sum(len(os.listdir(maildir_new(prefix, u))) if os.path.isdir(maildir_new(prefix, u)) else 0
                    for u in users)
            if n >= COUNT:
                break
            if time.perf_counter() - t0 > 600:
                sys.exit(f"bench-uids: only {n} of {COUNT} delivered after 600 s")
            time.sleep(0.02)
        secs = time.perf_counter() - t0
        cpu = tree_cpu([d.pid])
        owners = {os.stat(maildir_new(prefix, u)).st_uid for u in users}
    finally:
        d.terminate()
        d.wait()
    return secs, cpu, owners


main()
