#!/usr/bin/env python3
"""Three Mininet hosts in a line on a slided channel, routed by babeld.

    sudo python3 packaging/mininet/line.py [--slided PATH] [--rate BPS]
                 [--count N] [--converge] [--report FILE] [--workdir DIR] [--cli]

h1 hears h2, h2 hears h3, h1 and h3 are out of each other's range
(line.toml: a link table with no link between nodes 1 and 3). Each host runs
a slided daemon on the shared simulated channel (115200 bit/s) and babeld
(Debian package babeld), which finds that h1 reaches h3 through h2. The
script waits for those routes, pings h3 from h1, sends a bounded blast of
UDP datagrams from h1 to h3 with a blocking sender, reads every daemon's
counters and the TAPs' kernel counters, prints a summary (and writes it as
JSON with --report), and removes everything it started.

Needs: root, Debian packages mininet, babeld, iproute2, iputils-ping; the
slided binary (on PATH or --slided). No Open vSwitch: there is no switch.

--converge: h1 and h3, hidden from each other, each blast --count datagrams
to h2 at the same time (two hidden senders at one receiver, link/hidden.go);
the summary gives each sender's deliveries and Jain's index of the two.
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time

from mininet.log import setLogLevel, info, error
from mininet.net import Mininet

from slided_mininet import Medium, SlidedError

HERE = os.path.dirname(os.path.abspath(__file__))
TAP = 'slided0'
SUBNET = '192.0.2.'
PORT = 5001


def addr(i):
    return SUBNET + str(i)


def host_ip_json(host, *argv):
    out = host.cmd(' '.join(argv))
    try:
        return json.loads(out)
    except ValueError:
        raise SlidedError('%s: %s: %s' % (host.name, ' '.join(argv), out.strip()))


def start_babeld(host, workdir, hello):
    """babeld in host on the TAP. The TAP is a shared channel: type wireless
    (no split horizon: h2 must announce what it learns from h3 back out of
    the same interface, to h1). Hellos every 2 s: faster ones are lost or
    late under a saturating blast often enough that babeld withdraws a route
    for a moment (docs/mininet.md)."""
    base = os.path.join(workdir, host.name + '-babeld')
    argv = ['babeld', '-I', base + '.pid', '-S', base + '.state', '-c', '/dev/null', '-r',
            '-C', 'interface %s type wireless hello-interval %g update-interval %g' % (TAP, hello, 4 * hello),
            '-C', 'redistribute local ip 192.0.2.0/24 ge 32 allow',
            '-C', 'redistribute local deny',
            TAP]
    logf = open(base + '.log', 'ab')
    try:
        return host.popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
    finally:
        logf.close()


def start_monitor(host, workdir):
    """ip monitor of host's routes and neighbours, with timestamps, to
    <workdir>/<host>-monitor.log: when a datagram is lost in the kernel (a
    route babeld withdrew, a neighbour ARP gave up on), this log says which
    and when."""
    logf = open(os.path.join(workdir, host.name + '-monitor.log'), 'ab')
    try:
        return host.popen(['ip', '-ts', 'monitor', 'route', 'neigh'],
                          stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT)
    finally:
        logf.close()


def monitor_offset(workdir, host):
    """How much host's ip monitor log holds now (routes_lost counts from
    there)."""
    return os.path.getsize(os.path.join(workdir, host.name + '-monitor.log'))


def routes_lost(workdir, host, since):
    """The unreachable routes babeld installed in host after offset since of
    its ip monitor log (it does when a neighbour's link seems dead and it
    withdraws what went through it): each is a moment in which host answered
    traffic for that destination with ICMP unreachable."""
    with open(os.path.join(workdir, host.name + '-monitor.log')) as f:
        f.seek(since)
        return [line.strip() for line in f if 'unreachable' in line and 'Deleted' not in line]


def stop_proc(proc):
    if proc.poll() is None:
        proc.terminate()  # SIGTERM to its own PID
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_route(host, dst, via, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = host.cmd('ip -4 route show %s/32' % dst)
        if 'via ' + via in out:
            return out.strip()
        time.sleep(0.25)
    raise SlidedError('%s: no route to %s via %s after %gs; routes:\n%s'
                      % (host.name, dst, via, timeout, host.cmd('ip -4 route')))


def ping(src, dst, count):
    # A deadline (-w), not -W alone, with which ping exits two round trips
    # after its last echo: the first echoes wait for ARP at both hops, and
    # a reply that collided comes an ARQ Ack timeout later, so replies may
    # come seconds late and all at once (docs/mininet.md).
    out = src.cmd('ping -n -c %d -i 0.5 -w %d %s' % (count, count // 2 + 15, dst))
    rx = 0
    rtt = None
    replies = []  # [icmp_seq, rtt ms] of each reply, in arrival order
    for line in out.splitlines():
        m = re.search(r'icmp_seq=(\d+) .*time=([\d.]+) ms', line)
        if m:
            replies.append([int(m.group(1)), float(m.group(2))])
        if 'received' in line:
            rx = int(line.split(',')[1].split()[0])
        if line.startswith('rtt'):
            rtt = float(line.split('=')[1].split('/')[1])
    return {'sent': count, 'received': rx, 'rtt_avg_ms': rtt, 'replies': replies}


def blast(src, dst, count, size):
    """A blocking UDP sender on src, a receiver on dst; both bounded."""
    tool = os.path.join(HERE, 'udpblast.py')
    recv = dst.popen([sys.executable, tool, 'recv', '--bind', '%s:%d' % (dst.IP_, PORT),
                      '--idle', '8', '--seconds', '120'], stdin=subprocess.DEVNULL)
    try:
        line = recv.stdout.readline().decode().strip()
        if line != 'ready':
            raise SlidedError('UDP receiver on %s did not start: %s %s'
                              % (dst.name, line, recv.stderr.read().decode()))
        snd = src.popen([sys.executable, tool, 'send', '--to', '%s:%d' % (dst.IP_, PORT),
                         '--count', str(count), '--size', str(size), '--seconds', '60'],
                        stdin=subprocess.DEVNULL)
        sout, serr = snd.communicate(timeout=90)
        rout, rerr = recv.communicate(timeout=150)
    finally:
        stop_proc(recv)
    if snd.returncode != 0 or recv.returncode != 0:
        raise SlidedError('UDP blast failed: %s %s' % (serr.decode(), rerr.decode()))
    return {'sender': json.loads(sout), 'receiver': json.loads(rout)}


def blast_converge(srcs, dst, count, size):
    """Blocking UDP senders on each of srcs at once, each to a receiver of
    its own on dst (port PORT + i); all bounded."""
    tool = os.path.join(HERE, 'udpblast.py')
    recvs, snds = [], []
    try:
        for i in range(len(srcs)):
            r = dst.popen([sys.executable, tool, 'recv', '--bind', '%s:%d' % (dst.IP_, PORT + i),
                           '--idle', '8', '--seconds', '120'], stdin=subprocess.DEVNULL)
            recvs.append(r)
            line = r.stdout.readline().decode().strip()
            if line != 'ready':
                raise SlidedError('UDP receiver on %s did not start: %s %s'
                                  % (dst.name, line, r.stderr.read().decode()))
        for i, src in enumerate(srcs):
            snds.append(src.popen([sys.executable, tool, 'send', '--to', '%s:%d' % (dst.IP_, PORT + i),
                                   '--count', str(count), '--size', str(size), '--seconds', '60'],
                                  stdin=subprocess.DEVNULL))
        souts = [p.communicate(timeout=90) for p in snds]
        routs = [p.communicate(timeout=150) for p in recvs]
    finally:
        for p in snds + recvs:
            stop_proc(p)
    out = {}
    for src, snd, (sout, serr), rcv, (rout, rerr) in zip(srcs, snds, souts, recvs, routs):
        if snd.returncode != 0 or rcv.returncode != 0:
            raise SlidedError('UDP blast %s -> %s failed: %s %s' % (src.name, dst.name, serr.decode(), rerr.decode()))
        out[src.name] = {'sender': json.loads(sout), 'receiver': json.loads(rout)}
    got = [out[s.name]['receiver']['received'] for s in srcs]
    total = sum(got)
    out['jain'] = round(total * total / (len(got) * sum(g * g for g in got)), 3) if total else 0
    return out


def node_report(medium, host):
    st = medium.status(host)
    b = st.get('bridge') or {}
    drops = {k: v for k, v in (b.get('drops') or {}).items() if v}
    link = host_ip_json(host, 'ip', '-j', '-s', 'link', 'show', 'dev', TAP)[0]
    return {
        'node': b.get('node'),
        'tx_frames': b.get('tx_frames'), 'rx_frames': b.get('rx_frames'),
        'arq': {k: (b.get('arq') or {}).get(k) for k in ('Packets', 'Retransmissions', 'GiveUps', 'Delivered')},
        'drops': drops, 'drops_total': sum(drops.values()),
        'qdisc_drops': ((st.get('qdisc') or {}).get('Root') or {}).get('Drops'),
        'tap_tx_dropped': link['stats64']['tx']['dropped'],
        'tap_rx_dropped': link['stats64']['rx']['dropped'],
        'kernel': kernel_counters(host),
    }


def tap_tx_dropped(hosts):
    """Each host's TAP tx_dropped now (ip -s link), to tell in which phase
    a drop happened."""
    return {h.name: host_ip_json(h, 'ip', '-j', '-s', 'link', 'show', 'dev', TAP)[0]
            ['stats64']['tx']['dropped'] for h in hosts}


def kernel_counters(host):
    """The host's IP counters that tell where a forwarded or sent packet
    was lost (nonzero ones only)."""
    out = host.cmd('nstat -asz')
    keep = ('IpForwDatagrams', 'IpOutDiscards', 'IpOutNoRoutes', 'IpInDiscards',
            'IpInAddrErrors', 'IpExtInNoRoutes', 'IcmpOutDestUnreachs', 'IcmpInDestUnreachs',
            'IcmpOutRedirects', 'UdpInErrors', 'UdpRcvbufErrors', 'UdpSndbufErrors', 'UdpNoPorts')
    got = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] in keep and f[1] != '0':
            got[f[0]] = int(f[1])
    return got


def run(a, report):
    net = Mininet(topo=None, build=False, controller=None)
    hosts = [net.addHost('h%d' % i, ip=None) for i in (1, 2, 3)]
    babelds = []
    monitors = []
    medium = None
    try:
        net.start()
        report['pids'] = {'shells': [h.pid for h in hosts]}
        report['netns'] = [os.readlink('/proc/%d/ns/net' % h.pid) for h in hosts]
        medium = Medium(net, rate=a.rate, scenario=os.path.join(HERE, 'line.toml'),
                        slided=a.slided, workdir=a.workdir)
        info('*** Starting the slided medium\n')
        medium.start()
        report['pids']['medium'] = medium.proc.pid
        report['workdir'] = medium.workdir
        for i, h in enumerate(hosts, 1):
            # Forward, and never tell h1 to go straight to h3 (an ICMP
            # redirect): on a shared medium h2 forwards back out of the
            # interface it received on.
            h.cmd('sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0 '
                  'net.ipv4.conf.default.send_redirects=0 net.ipv4.conf.all.accept_redirects=0')
            info('*** Attaching %s as node %d\n' % (h.name, i))
            att = medium.attach(h, node=i, addr=addr(i) + '/24', tap=TAP, args=a.slided_args.split())
            h.IP_ = addr(i)
            if a.arp_by_hand:
                # What the example did up to stop 15, for side-by-side runs
                # of old builds (docs/mininet.md).
                h.cmd('sysctl -qw net.ipv4.neigh.%s.retrans_time_ms=3000 '
                      'net.ipv4.neigh.%s.ucast_solicit=5' % (TAP, TAP))
            report['pids'].setdefault('daemons', []).append(att.pid)
        # Counters once every daemon is up, before any traffic of ours: the
        # drops that count are those after this.
        report['nodes_up'] = {h.name: node_report(medium, h) for h in hosts}
        report['tap_tx_dropped'] = {'attached': tap_tx_dropped(hosts)}
        for h in hosts:
            monitors.append(start_monitor(h, medium.workdir))
            babelds.append(start_babeld(h, medium.workdir, a.babel_hello))
        report['pids']['babeld'] = [p.pid for p in babelds]
        report['pids']['monitors'] = [p.pid for p in monitors]
        info('*** Waiting for babeld to route h1 <-> h3 through h2\n')
        t0 = time.monotonic()
        report['routes'] = {
            'h1': wait_route(hosts[0], addr(3), addr(2), 60),
            'h3': wait_route(hosts[2], addr(1), addr(2), 60),
        }
        report['route_wait_s'] = round(time.monotonic() - t0, 1)
        # Routes withdrawn count from here: while babeld converges they may
        # come and go.
        routed_at = {h.name: monitor_offset(medium.workdir, h) for h in hosts}
        report['tap_tx_dropped']['routed'] = tap_tx_dropped(hosts)
        info('*** %s\n*** %s\n' % (report['routes']['h1'], report['routes']['h3']))
        info('*** Ping h1 -> h3\n')
        report['ping'] = ping(hosts[0], addr(3), 5)
        report['tap_tx_dropped']['pinged'] = tap_tx_dropped(hosts)
        if a.converge:
            info('*** UDP blasts h1 -> h2 and h3 -> h2: %d datagrams of %d bytes each\n' % (a.count, a.size))
            report['converge'] = blast_converge([hosts[0], hosts[2]], hosts[1], a.count, a.size)
        else:
            dst = hosts[int(a.blast_to[1]) - 1]
            info('*** UDP blast h1 -> %s: %d datagrams of %d bytes\n' % (dst.name, a.count, a.size))
            report['udp'] = blast(hosts[0], dst, a.count, a.size)
            report['udp']['to'] = dst.name
        report['nodes'] = {h.name: node_report(medium, h) for h in hosts}
        report['routes_lost'] = {h.name: routes_lost(medium.workdir, h, routed_at[h.name]) for h in hosts}
        if a.cli:
            from mininet.cli import CLI
            CLI(net)
    finally:
        for p in babelds + monitors:
            stop_proc(p)
        if medium is not None:
            medium.stop()
        net.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--slided', default='slided', help='the slided binary (default: slided on PATH)')
    p.add_argument('--rate', type=int, default=None, help="channel bit rate (default: line.toml's 115200)")
    p.add_argument('--count', type=int, default=100, help='UDP datagrams to send (default 100)')
    p.add_argument('--size', type=int, default=1000, help='UDP payload bytes (default 1000)')
    p.add_argument('--blast-to', choices=['h2', 'h3'], default='h3',
                   help='receiver of the UDP blast: h3 (through h2, default) or h2 (one hop)')
    p.add_argument('--converge', action='store_true',
                   help='h1 and h3 (hidden from each other) both blast --count datagrams to h2 at once')
    p.add_argument('--babel-hello', type=float, default=2,
                   help="babeld's hello interval on the TAP, seconds (updates every 4 hellos; default 2)")
    p.add_argument('--arp-by-hand', action='store_true',
                   help='set IPv4 ARP timers by hand as the example did before the daemon tuned them (5 probes 3 s apart)')
    p.add_argument('--report', help='write the results as JSON to this file')
    p.add_argument('--workdir', help='keep sockets and logs here (default: a temporary directory)')
    p.add_argument('--slided-args', default='', help="extra flags for every 'slided run', e.g. '-cw-senders'")
    p.add_argument('--cli', action='store_true', help='open the Mininet CLI before cleaning up')
    p.add_argument('-q', '--quiet', action='store_true', help='only the summary')
    a = p.parse_args()
    # SIGTERM (a timeout, a stopped test) unwinds like an exception, so that
    # the finally blocks stop every process and Mininet host.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    setLogLevel('warning' if a.quiet else 'info')
    report = {}
    rc = 0
    try:
        run(a, report)
    except SlidedError as e:
        error('*** %s\n' % e)
        report['error'] = str(e)
        rc = 1
    finally:
        # Also when interrupted: the report names what was started.
        if a.report:
            with open(a.report, 'w') as f:
                json.dump(report, f, indent=1)
    if 'ping' in report and ('udp' in report or 'converge' in report):
        pg = report['ping']
        print('ping h1 -> h3: %d of %d replies, rtt avg %s ms' % (pg['received'], pg['sent'], pg['rtt_avg_ms']))
        blasts = [(report['udp']['to'], 'h1', report['udp'])] if 'udp' in report else \
            [('h2', name, report['converge'][name]) for name in ('h1', 'h3')]
        for to, frm, u in blasts:
            s, r = u['sender'], u['receiver']
            print('UDP %s -> %s: sent %d, delivered %d, %d duplicates, sender blocked %.1f of %.1f s'
                  % (frm, to, s['sent'], r['received'], r['duplicates'], s['blocked_s'], s['elapsed_s']))
        if 'converge' in report:
            print("Jain's index of h1's and h3's deliveries: %.3f" % report['converge']['jain'])
        for name, lost in report.get('routes_lost', {}).items():
            for line in lost:
                print('%s: route withdrawn during the run: %s' % (name, line))
        for name, n in report['nodes'].items():
            up = report['nodes_up'][name]
            print('%s: %d frames on air, %d to the TAP; drops since all were up: daemon %d, qdisc %d, TAP tx %d'
                  '%s' % (name, n['tx_frames'], n['rx_frames'], n['drops_total'] - up['drops_total'],
                          (n['qdisc_drops'] or 0) - (up['qdisc_drops'] or 0), n['tap_tx_dropped'] - up['tap_tx_dropped'],
                          ' (at start-up: daemon %d, qdisc %d, TAP tx %d)'
                          % (up['drops_total'], up['qdisc_drops'] or 0, up['tap_tx_dropped'])
                          if up['drops_total'] or up['qdisc_drops'] or up['tap_tx_dropped'] else ''))
    return rc


if __name__ == '__main__':
    sys.exit(main())
