"""SMTP probes for the benchmark: connect-to-banner latency, smtpd memory per connection,
and a small load generator used only when Postfix's smtp-source is missing.
"""

import os
import socket
import statistics
import threading
import time


def _read_reply(sock, buf=b""):
    """Read one complete SMTP reply (last line `NNN `); returns (code, rest-of-buffer)."""
    while True:
        while b"\r\n" in buf:
            line, buf = buf.split(b"\r\n", 1)
            if len(line) < 4 or line[3:4] != b"-":
                return int(line[:3]), buf
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before a complete reply")
        buf += chunk


def banner_latency(port, connects=200, host="127.0.0.1"):
    """Seconds from connect() to the complete 220 greeting, per connection (sorted)."""
    times = []
    for _ in range(connects):
        t0 = time.perf_counter()
        s = socket.create_connection((host, port), timeout=30)
        code, _ = _read_reply(s)
        t1 = time.perf_counter()
        if code != 220:
            raise RuntimeError(f"banner code {code}")
        try:
            s.sendall(b"QUIT\r\n")
            _read_reply(s)
        except OSError:
            pass
        s.close()
        times.append(t1 - t0)
    times.sort()
    return times


def summary_ms(times):
    """(median, p90) in milliseconds."""
    p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
    return statistics.median(times) * 1000, p90 * 1000


def _server_socket_inodes(port, client_ports):
    """Inodes of the server-side ends (local PORT, remote one of client_ports)."""
    inodes = set()
    want = {f"0100007F:{p:04X}" for p in client_ports}
    local = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == local and fields[2] in want:
                inodes.add(fields[9])
    return inodes


def _procs_holding(inodes):
    """PIDs whose fds include one of these socket inodes."""
    links = {f"socket:[{i}]" for i in inodes}
    pids = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        fddir = f"/proc/{pid}/fd"
        try:
            for fd in os.listdir(fddir):
                try:
                    if os.readlink(f"{fddir}/{fd}") in links:
                        pids.add(int(pid))
                        break
                except OSError:
                    pass
        except OSError:
            pass
    return pids


def _kib(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def memory_per_connection(port, connections=20, name="smtpd", host="127.0.0.1"):
    """Open idle connections (after EHLO); measure the server processes holding them.

    Returns a dict with the number of processes found and the mean VmHWM (peak RSS),
    VmRSS and Pss in KiB per process, or None when no process could be found.
    """
    socks = []
    try:
        for _ in range(connections):
            s = socket.create_connection((host, port), timeout=30)
            code, buf = _read_reply(s)
            s.sendall(b"EHLO bench.test\r\n")
            code, _ = _read_reply(s, buf)
            if code != 250:
                raise RuntimeError(f"EHLO code {code}")
            socks.append(s)
        time.sleep(0.3)
        inodes = _server_socket_inodes(port, [s.getsockname()[1] for s in socks])
        pids = []
        for pid in _procs_holding(inodes):
            try:
                with open(f"/proc/{pid}/comm") as f:
                    if f.read().strip() == name:
                        pids.append(pid)
            except OSError:
                pass
        if not pids:
            return None
        hwm = [_kib(f"/proc/{p}/status", "VmHWM") for p in pids]
        rss = [_kib(f"/proc/{p}/status", "VmRSS") for p in pids]
        pss = [_kib(f"/proc/{p}/smaps_rollup", "Pss") for p in pids]
        return {
            "connections": connections,
            "processes": len(pids),
            "hwm": statistics.mean(hwm),
            "rss": statistics.mean(rss),
            "pss": statistics.mean(pss),
        }
    finally:
        for s in socks:
            try:
                s.sendall(b"QUIT\r\n")
            except OSError:
                pass
            s.close()


def _message(length, sender, rcpt, n):
    lines = [
        f"From: <{sender}>",
        f"To: <{rcpt}>",
        f"Message-Id: <bench.{n}.{time.time()}@bench.test>",
        "",
    ]
    body = []
    size = 0
    while size < length:
        line = "La De Da " * 8
        body.append(line)
        size += len(line) + 2
    return ("\r\n".join(lines + body) + "\r\n.\r\n").encode()


def load(port, sessions, count, length, sender, rcpt, keep=True, host="127.0.0.1"):
    """A stand-in for `smtp-source -s SESSIONS -m COUNT -l LENGTH [-d]`: returns the
    number of messages accepted with 250."""
    lock = threading.Lock()
    state = {"left": count, "ok": 0, "err": None}

    def take():
        with lock:
            if state["left"] <= 0:
                return None
            state["left"] -= 1
            return state["left"]

    def session():
        s = None
        buf = b""
        try:
            while True:
                n = take()
                if n is None:
                    break
                if s is None:
                    s = socket.create_connection((host, port), timeout=60)
                    _, buf = _read_reply(s)
                    s.sendall(b"HELO bench.test\r\n")
                    _, buf = _read_reply(s, buf)
                for cmd in (f"MAIL FROM:<{sender}>", f"RCPT TO:<{rcpt}>", "DATA"):
                    s.sendall(cmd.encode() + b"\r\n")
                    code, buf = _read_reply(s, buf)
                    if code >= 400:
                        raise RuntimeError(f"{cmd}: {code}")
                s.sendall(_message(length, sender, rcpt, n))
                code, buf = _read_reply(s, buf)
                if code != 250:
                    raise RuntimeError(f"end of data: {code}")
                with lock:
                    state["ok"] += 1
                if not keep:
                    s.sendall(b"QUIT\r\n")
                    s.close()
                    s, buf = None, b""
        except Exception as e:  # noqa: BLE001 - reported by the caller
            state["err"] = e
        finally:
            if s is not None:
                s.close()

    threads = [threading.Thread(target=session) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if state["err"] is not None:
        raise RuntimeError(f"load generator: {state['err']}")
    return state["ok"]
