#!/usr/bin/env python3
"""The machine doing a broker's bare work, for broker CPU figures measured in the same run.

    python3 benches/raw_baseline.py DIR [MiB]

write:    a buffered write of MiB (default 1024) to a new file in DIR, 1 MiB a call: what
          appending to a segment costs before any broker logic (page-cache copy, block
          allocation).
sendfile: the same file sent over loopback TCP with sendfile, 1 MiB a call, to a receiver
          thread reading 1 MiB at a time: what zero-copy fetch costs the sender before any
          broker logic (on loopback that includes the receiving side's TCP processing).

Prints one line: write MB/s, write CPU s/GiB, sendfile MB/s, sendfile sender CPU s/GiB.
CPU is the process's user+system time for the write, and the sending thread's own CPU
time for sendfile. The file is left in DIR: removing it would hand its pages back to the
host (the machine's note A in ../shared/research/machine-limits.md) and slow whatever runs
next; the caller removes DIR when it is done.
"""
import os
import socket
import sys
import threading
import time

CHUNK = 1 << 20


def write_file(path, mib):
    block = b"\x5a" * CHUNK
    t0, c0 = time.monotonic(), os.times()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for _ in range(mib):
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    t1, c1 = time.monotonic(), os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return mib * CHUNK / (t1 - t0) / 1e6, cpu / (mib / 1024)


def send_file(path, mib):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    total = mib * CHUNK
    received = [0]

    def receive():
        conn, _ = listener.accept()
        buf = bytearray(CHUNK)
        while received[0] < total:
            n = conn.recv_into(buf)
            if n == 0:
                break
            received[0] += n
        conn.close()

    receiver = threading.Thread(target=receive)
    receiver.start()
    sock = socket.create_connection(listener.getsockname())
    fd = os.open(path, os.O_RDONLY)
    try:
        t0, c0 = time.monotonic(), time.thread_time()
        offset = 0
        while offset < total:
            offset += os.sendfile(sock.fileno(), fd, offset, min(CHUNK, total - offset))
        c1 = time.thread_time()
        receiver.join()
        t1 = time.monotonic()
    finally:
        os.close(fd)
        sock.close()
        listener.close()
    assert received[0] == total, (received[0], total)
    return total / (t1 - t0) / 1e6, (c1 - c0) / (mib / 1024)


def main():
    directory = sys.argv[1]
    mib = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    path = os.path.join(directory, "raw-baseline")
    write_mbs, write_cpu = write_file(path, mib)
    send_mbs, send_cpu = send_file(path, mib)
    print(f"{write_mbs:.1f} {write_cpu:.3f} {send_mbs:.1f} {send_cpu:.3f}")


if __name__ == "__main__":
    main()
