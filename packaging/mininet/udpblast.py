#!/usr/bin/env python3
"""A bounded UDP blast and its receiver, for packaging/mininet/line.py.

    udpblast.py recv --bind 192.0.2.3:5001 [--idle 6] [--seconds 120]
    udpblast.py send --to 192.0.2.3:5001 [--count 100] [--size 1000]
                     [--seconds 60] [--sndbuf 32768]

send uses a blocking socket: once its send buffer is full, sendto() waits
until the kernel takes the next datagram, so a link that pushes back slows it
down instead of losing datagrams. Each datagram carries a sequence number.
Both print one JSON object on stdout when done; recv prints 'ready' on a line
of its own first, once its socket is bound. Both are bounded in count and time.
"""

import argparse
import errno
import json
import socket
import struct
import sys
import time

MAGIC = 0x736c6964  # 'slid'


def hostport(s):
    host, _, port = s.rpartition(':')
    return host, int(port)


def send(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, a.sndbuf)
    dst = hostport(a.to)
    payload = bytearray(max(a.size, 12))
    sent = errors = 0
    why = {}
    blocked = 0.0
    start = time.monotonic()
    end = start + a.seconds
    s.settimeout(max(0.1, a.seconds))
    for seq in range(a.count):
        now = time.monotonic()
        if now >= end:
            break
        s.settimeout(end - now)
        struct.pack_into('!IQ', payload, 0, MAGIC, seq)
        t0 = time.monotonic()
        try:
            s.sendto(payload, dst)
        except socket.timeout:
            break
        except OSError as e:
            errors += 1
            name = errno.errorcode.get(e.errno, str(e.errno))
            why[name] = why.get(name, 0) + 1
            continue
        finally:
            dt = time.monotonic() - t0
            if dt > 0.001:
                blocked += dt
        sent += 1
    elapsed = time.monotonic() - start
    s.close()
    json.dump({'sent': sent, 'errors': errors, 'why': why, 'size': len(payload), 'count': a.count,
               'elapsed_s': round(elapsed, 3), 'blocked_s': round(blocked, 3)}, sys.stdout)
    print()


def recv(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(hostport(a.bind))
    print('ready', flush=True)
    seen = set()
    dups = bad = 0
    first = last = None
    start = time.monotonic()
    end = start + a.seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        # Wait for the first datagram until the deadline, then until idle.
        wait = end - now if first is None else min(a.idle, end - now)
        s.settimeout(wait)
        try:
            data = s.recv(65535)
        except socket.timeout:
            if first is not None:
                break
            continue
        if len(data) < 12 or struct.unpack_from('!I', data)[0] != MAGIC:
            bad += 1
            continue
        seq = struct.unpack_from('!Q', data, 4)[0]
        last = time.monotonic()
        if first is None:
            first = last
        if seq in seen:
            dups += 1
        seen.add(seq)
    s.close()
    span = (last - first) if first is not None else 0.0
    json.dump({'received': len(seen), 'duplicates': dups, 'foreign': bad,
               'span_s': round(span, 3)}, sys.stdout)
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    sub = p.add_subparsers(dest='cmd', required=True)
    ps = sub.add_parser('send')
    ps.add_argument('--to', required=True)
    ps.add_argument('--count', type=int, default=100)
    ps.add_argument('--size', type=int, default=1000)
    ps.add_argument('--seconds', type=float, default=60)
    ps.add_argument('--sndbuf', type=int, default=32768)
    pr = sub.add_parser('recv')
    pr.add_argument('--bind', required=True)
    pr.add_argument('--idle', type=float, default=6)
    pr.add_argument('--seconds', type=float, default=120)
    a = p.parse_args()
    if a.cmd == 'send':
        send(a)
    else:
        recv(a)


if __name__ == '__main__':
    main()
