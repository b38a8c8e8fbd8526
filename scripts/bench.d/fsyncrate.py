"""The machine's own limit: fsync'd file creations per second.

Each writer loops: open(O_CREAT|O_EXCL) a new file in one shared directory, write 4 KiB,
fsync it, close it, fsync the directory (what a Maildir delivery or a queue write needs
at least once per message). Writers are processes, started together; the result is the
total number of files made per second of wall time.

Run alone: python3 fsyncrate.py DIR [SECONDS] [WRITERS...]
"""

import multiprocessing as mp
import os
import shutil
import sys
import time

PAYLOAD = b"x" * 4096


def _writer(directory, index, start, deadline, out):
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    n = 0
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < deadline:
        name = os.path.join(directory, f"w{index}.{n}")
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, PAYLOAD)
        os.fsync(fd)
        os.close(fd)
        os.fsync(dfd)
        n += 1
    os.close(dfd)
    out.put(n)


def rate(base, writers, seconds, keep=False):
    """Files per second created by `writers` processes in `seconds` seconds. With `keep`
    the files stay (the caller removes `base` later): unlinking thousands of files just
    before a measurement makes every file creation in their block group slower for a
    minute or more on ext4 without a journal (freed inodes are skipped one by one)."""
    directory = os.path.join(base, f"fsync-{writers}")
    os.makedirs(directory)
    out = mp.Queue()
    start = time.time() + 0.3
    deadline = start + seconds
    procs = [
        mp.Process(target=_writer, args=(directory, i, start, deadline, out))
        for i in range(writers)
    ]
    for p in procs:
        p.start()
    total = sum(out.get() for _ in procs)
    for p in procs:
        p.join()
    if not keep:
        shutil.rmtree(directory)
    return total / seconds


if __name__ == "__main__":
    d = sys.argv[1]
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    ws = [int(w) for w in sys.argv[3:]] or [1, 16]
    for w in ws:
        print(f"{w} writers: {rate(d, w, secs):.0f} files/s")
