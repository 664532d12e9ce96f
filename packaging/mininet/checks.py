#!/usr/bin/env python3
"""Bad input to slided_mininet, and what it must answer. The test suite runs
these (cmd/slided/mininet_test.go); they also check an installation by hand:

    sudo python3 packaging/mininet/checks.py tap-taken    [--slided PATH] [--report FILE]
    sudo python3 packaging/mininet/checks.py bad-scenario [--slided PATH] [--report FILE]

tap-taken: host h1 already has an interface named slided0 (a TAP another
program made); attach() must refuse with a clear message, start no daemon and
leave that interface alone. bad-scenario: the medium's scenario file names a
node it does not declare; Medium.start() must fail with slided's own message
(file, line, reason) and leave nothing running. Each prints the error it got
and exits 0 when the integration behaved, 1 otherwise.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile

from mininet.log import setLogLevel
from mininet.net import Mininet

from slided_mininet import Medium, SlidedError

BAD_SCENARIO = """bit_rate = 115200

[[node]]
id = 1

[[link]]
from = 1
to = 9
delay = "1ms"
"""


def tap_taken(a, report):
    net = Mininet(topo=None, build=False, controller=None)
    h1 = net.addHost('h1', ip=None)
    medium = None
    try:
        net.start()
        report['pids'] = {'shells': [h1.pid]}
        report['netns'] = [os.readlink('/proc/%d/ns/net' % h1.pid)]
        h1.cmd('ip tuntap add dev slided0 mode tap')
        if 'slided0' not in h1.cmd('ip -o link show dev slided0'):
            raise RuntimeError('could not make the TAP for the test: %s'
                               % h1.cmd('ip -o link show'))
        medium = Medium(net, rate=115200, slided=a.slided, workdir=a.workdir)
        medium.start()
        report['pids']['medium'] = medium.pid
        try:
            medium.attach(h1, node=1, addr='192.0.2.1/24')
        except SlidedError as e:
            report['error'] = str(e)
        else:
            report['error'] = None
        report['attached'] = len(medium.attachments)
        # The interface is the user's, not ours: it must still be there.
        report['kept'] = 'slided0' in h1.cmd('ip -o link show dev slided0')
        report['addrs'] = h1.cmd('ip -o addr show dev slided0').strip()
        report['files'] = sorted(os.listdir(medium.workdir))
        h1.cmd('ip tuntap del dev slided0 mode tap')
    finally:
        if medium is not None:
            medium.stop()
        net.stop()
    return report['error'] is not None and report['attached'] == 0 and report['kept']


def bad_scenario(a, report):
    if a.workdir:
        os.makedirs(a.workdir, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix='slided-bad-', suffix='.toml', dir=a.workdir)
    with os.fdopen(fd, 'w') as f:
        f.write(BAD_SCENARIO)
    report['scenario'] = path
    net = Mininet(topo=None, build=False, controller=None)
    h1 = net.addHost('h1', ip=None)
    medium = Medium(net, scenario=path, slided=a.slided,
                    workdir=os.path.join(a.workdir, 'medium') if a.workdir else None)
    try:
        net.start()
        report['pids'] = {'shells': [h1.pid]}
        report['netns'] = [os.readlink('/proc/%d/ns/net' % h1.pid)]
        try:
            medium.start()
        except SlidedError as e:
            report['error'] = str(e)
        else:
            report['error'] = None
        report['running'] = medium.proc is not None
        report['pids']['medium'] = medium.pid
    finally:
        medium.stop()
        net.stop()
        os.remove(path)
    return report['error'] is not None and not report['running']


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('case', choices=['tap-taken', 'bad-scenario'])
    p.add_argument('--slided', default='slided')
    p.add_argument('--report')
    p.add_argument('--workdir', help='sockets and logs go here (default: a temporary directory)')
    a = p.parse_args()
    # SIGTERM (a timeout, a stopped test) unwinds like an exception, so that
    # the finally blocks stop every process and Mininet host.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    setLogLevel('warning')
    report = {'case': a.case}
    try:
        ok = (tap_taken if a.case == 'tap-taken' else bad_scenario)(a, report)
        report['ok'] = ok
    finally:
        if a.report:
            with open(a.report, 'w') as f:
                json.dump(report, f, indent=1)
    print('%s: %s: %s' % (a.case, 'ok' if ok else 'WRONG', report.get('error')))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
