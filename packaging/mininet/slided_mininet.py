"""Put Mininet hosts on a slided medium.

slided (https://github.com/slided/slided) gives Linux a TAP interface whose far
side is a slow, shared, half-duplex channel. This module lets a Mininet script
use a simulated slided channel instead of Mininet links:

    from mininet.net import Mininet
    from slided_mininet import Medium

    net = Mininet(topo=None, build=False, controller=None)  # no switch needed
    h1, h2 = net.addHost('h1', ip=None), net.addHost('h2', ip=None)
    net.start()
    medium = Medium(net, rate=115200)           # or scenario='line.toml'
    medium.start()                              # `slided sim` in the root namespace
    medium.attach(h1, node=1, addr='192.0.2.1/24')   # `slided run` inside h1
    medium.attach(h2, node=2, addr='192.0.2.2/24')
    print(h1.cmd('ping -c 3 192.0.2.2'))
    print(medium.status(h1)['bridge']['tx_frames'])  # `slided status -json`
    net.stop()                                  # stops the daemons and the medium first

Every process this module starts is stopped by its own PID; the medium's and
the daemons' Unix sockets live in a private directory that stop() removes.
Errors are raised as SlidedError with a message meant for the user, after
whatever the failing step had started has been removed again.

Needs: root, Mininet (Debian: apt-get install mininet), iproute2, and the
slided binary (on PATH, or its path as slided=). No Open vSwitch: the hosts
need no Mininet link; the daemon in each host creates the TAP interface.
docs/mininet.md in the slided repository describes it all.
"""

import ipaddress
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time

__all__ = ['Medium', 'Attachment', 'SlidedError']

# Linux interface names: at most 15 bytes, no '/', no whitespace, not '.'/'..'.
_IFNAME = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,14}$')


class SlidedError(Exception):
    """A step of the slided integration failed; the message says which and why."""


class Attachment:
    """One host on the medium: its slided daemon and where to reach it.

    host: the Mininet host; node: its slided node id; addr: the address given
    to the TAP; tap: the TAP's name; pid: the daemon's process id; control:
    the daemon's control socket; log: the daemon's log file.
    """

    def __init__(self, host, node, addr, tap, proc, control, log):
        self.host = host
        self.node = node
        self.addr = addr
        self.tap = tap
        self.proc = proc
        self.control = control
        self.log = log

    @property
    def pid(self):
        return self.proc.pid

    def __repr__(self):
        return 'Attachment(%s, node=%d, addr=%s, tap=%s, pid=%d)' % (
            self.host.name, self.node, self.addr, self.tap, self.pid)


class Medium:
    """A simulated slided channel (`slided sim`) and the hosts attached to it.

    net: the Mininet network; when given, net.stop() first calls stop().
    rate: the channel's bit rate (bit/s); with a scenario it overrides the
      file's bit_rate.
    scenario: a scenario file (positions, link table; docs/simulation.md),
      for hosts that are out of each other's range.
    slided: the slided binary (default: 'slided' found on PATH).
    workdir: where sockets and logs go; default a new private directory that
      stop() removes. A workdir you give is kept, with the logs in it; the
      sockets in it are removed.
    sim_args: extra arguments for `slided sim` (e.g. ['-seed', '3']).
    """

    def __init__(self, net=None, rate=None, scenario=None, slided='slided',
                 workdir=None, sim_args=(), timeout=15.0):
        if rate is not None and (not isinstance(rate, int) or isinstance(rate, bool)
                                 or rate <= 0):
            raise SlidedError('rate %r: want a positive number of bit/s' % (rate,))
        if rate is None and scenario is None:
            rate = 9600
        self.rate = rate
        self.scenario = os.path.abspath(scenario) if scenario else None
        self.slided = slided
        self.sim_args = list(sim_args)
        self.timeout = timeout
        self._given_workdir = workdir
        self.workdir = None
        self.sock = None
        self.log = None
        self.proc = None
        self.pid = None  # the last `slided sim` started (kept after stop, for checks)
        self.attachments = []
        self._net = net
        self._net_stop = None

    # -- the medium ------------------------------------------------------

    def start(self):
        """Start `slided sim` and wait until it serves; returns self.

        Raises SlidedError (with slided's own message, e.g. the scenario
        file's line and reason) if it does not; nothing is left running.
        """
        if self.proc is not None:
            raise SlidedError('medium already started')
        binary = shutil.which(self.slided)
        if binary is None:
            raise SlidedError('slided binary %r not found (give its path as slided=)' % self.slided)
        self.slided = os.path.abspath(binary)
        if self.scenario and not os.path.isfile(self.scenario):
            raise SlidedError('scenario %s: no such file' % self.scenario)
        if self._given_workdir:
            os.makedirs(self._given_workdir, mode=0o700, exist_ok=True)
            self.workdir = os.path.abspath(self._given_workdir)
        else:
            self.workdir = tempfile.mkdtemp(prefix='slided-mn-')
        self.sock = os.path.join(self.workdir, 'medium.sock')
        self.log = os.path.join(self.workdir, 'medium.log')
        argv = [self.slided, 'sim', '-listen', self.sock, '-log-format', 'json']
        if self.rate is not None:
            argv += ['-rate', str(self.rate)]
        if self.scenario:
            argv += ['-scenario', self.scenario]
        argv += self.sim_args
        try:
            with open(self.log, 'ab') as logf:
                self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=subprocess.STDOUT, close_fds=True)
            self.pid = self.proc.pid
            deadline = time.monotonic() + self.timeout
            while not _is_socket(self.sock):
                if self.proc.poll() is not None:
                    raise SlidedError('medium did not start (slided sim exited with status %d): %s'
                                      % (self.proc.returncode, _tail(self.log)))
                if time.monotonic() > deadline:
                    raise SlidedError('medium did not start within %gs: %s'
                                      % (self.timeout, _tail(self.log)))
                time.sleep(0.05)
        except BaseException:
            self._stop_medium()
            raise
        if self._net is not None and self._net_stop is None:
            net_stop = self._net_stop = self._net.stop

            def stop_with_network():
                try:
                    self.stop()
                finally:
                    net_stop()
            self._net.stop = stop_with_network
        return self

    # -- hosts -----------------------------------------------------------

    def attach(self, host, node, addr, tap='slided0', args=()):
        """Run a slided daemon inside host's namespace: node id node, address
        addr (CIDR, e.g. '192.0.2.1/24') on a TAP named tap. args are extra
        flags for `slided run` (e.g. ['-cw-senders']). Waits until the daemon
        reports its modem up and returns its Attachment.

        Raises SlidedError, and leaves nothing of the attempt behind, if the
        input is wrong, the host already has an interface named tap, or the
        daemon does not come up.
        """
        if self.proc is None or self.proc.poll() is not None:
            raise SlidedError('attach %s: the medium is not running (call start() first)'
                              % getattr(host, 'name', host))
        name = getattr(host, 'name', None)
        if name is None or not hasattr(host, 'popen'):
            raise SlidedError('attach: %r is not a Mininet host' % (host,))
        if not isinstance(node, int) or isinstance(node, bool) or not 1 <= node <= 254:
            raise SlidedError('attach %s: node id %r: want an integer in 1..254' % (name, node))
        try:
            iface = ipaddress.ip_interface(addr)
        except ValueError:
            raise SlidedError('attach %s: address %r: want CIDR such as 192.0.2.1/24' % (name, addr))
        if '/' not in str(addr):
            raise SlidedError('attach %s: address %r: give the prefix length too (e.g. %s/24)'
                              % (name, addr, addr))
        if not isinstance(tap, str) or not _IFNAME.match(tap):
            raise SlidedError('attach %s: TAP name %r: want 1-15 letters, digits, or _.:-'
                              % (name, tap))
        for a in self.attachments:
            if a.host is host and a.tap == tap:
                raise SlidedError('attach %s: already attached as %s' % (name, tap))
            if a.node == node:
                raise SlidedError('attach %s: node id %d is already %s\'s' % (name, node, a.host.name))
        if _link_exists(host, tap):
            raise SlidedError('attach %s: %s already has an interface named %s; '
                              'give attach() another tap= name' % (name, name, tap))

        ctl = os.path.join(self.workdir, '%s-%s.ctl' % (name, tap))
        log = os.path.join(self.workdir, '%s-%s.log' % (name, tap))
        argv = [self.slided, 'run', '-tap', tap, '-node', str(node),
                '-phy', 'sim:' + self.sock, '-addr', str(iface), '-control', ctl,
                '-log-format', 'json'] + list(args)
        with open(log, 'ab') as logf:
            # Mininet runs it through `mnexec -da PID`, which enters the
            # host's namespaces and then execs slided: proc.pid is slided's.
            proc = host.popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                              stderr=subprocess.STDOUT)
        att = Attachment(host, node, str(iface), tap, proc, ctl, log)
        try:
            deadline = time.monotonic() + self.timeout
            while True:
                if proc.poll() is not None:
                    raise SlidedError('attach %s: slided run exited with status %d: %s'
                                      % (name, proc.returncode, _tail(log)))
                st = None
                if _is_socket(ctl):
                    try:
                        st = self._query(ctl)
                    except SlidedError:
                        st = None
                if st and (st.get('bridge') or {}).get('up'):
                    break
                if time.monotonic() > deadline:
                    raise SlidedError('attach %s: slided run not up within %gs: %s'
                                      % (name, self.timeout, _tail(log)))
                time.sleep(0.1)
        except BaseException:
            _stop_proc(proc)
            _remove(ctl)
            raise
        self.attachments.append(att)
        return att

    def attachment(self, host, tap=None):
        """The Attachment of host (and tap, if host has several)."""
        found = [a for a in self.attachments
                 if a.host is host and (tap is None or a.tap == tap)]
        if not found:
            raise SlidedError('%s is not attached%s' % (
                getattr(host, 'name', host), '' if tap is None else ' as ' + tap))
        if len(found) > 1:
            raise SlidedError('%s is attached several times: name the tap' % host.name)
        return found[0]

    def status(self, host, tap=None):
        """The daemon's status (`slided status -json`) as a dict: 'bridge'
        (frames, 'drops' by reason, 'arq', 'mac'), 'link' (the TAP's kernel
        counters, e.g. TxDropped), 'qdisc' ('Root': Packets, Drops)."""
        return self._query(self.attachment(host, tap).control)

    def _query(self, ctl):
        try:
            out = subprocess.run([self.slided, 'status', '-control', ctl, '-json'],
                                 stdin=subprocess.DEVNULL, capture_output=True,
                                 timeout=10, check=False)
        except subprocess.TimeoutExpired:
            raise SlidedError('slided status -control %s: no answer within 10s' % ctl)
        if out.returncode != 0:
            raise SlidedError('slided status -control %s: %s'
                              % (ctl, out.stderr.decode(errors='replace').strip()))
        try:
            return json.loads(out.stdout)
        except ValueError as e:
            raise SlidedError('slided status -control %s: bad JSON: %s' % (ctl, e))

    def detach(self, host, tap=None):
        """Stop host's daemon (its TAP goes with it)."""
        att = self.attachment(host, tap)
        self.attachments.remove(att)
        _stop_proc(att.proc)
        _remove(att.control)

    # -- cleaning up -----------------------------------------------------

    def stop(self):
        """Stop every daemon (last attached first), then the medium, and
        remove the sockets (and the private workdir). Safe to call twice."""
        while self.attachments:
            att = self.attachments.pop()
            _stop_proc(att.proc)
            _remove(att.control)
        self._stop_medium()
        if self._net is not None and self._net_stop is not None:
            self._net.stop = self._net_stop
            self._net_stop = None

    def _stop_medium(self):
        if self.proc is not None:
            _stop_proc(self.proc)
            self.proc = None
        if self.workdir:
            if self._given_workdir:
                _remove(self.sock)
            else:
                shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def _stop_proc(proc, grace=5.0):
    """SIGTERM to proc's own PID, then SIGKILL after grace seconds; reaps it."""
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            proc.wait()


def _link_exists(host, name):
    """Whether host's namespace has an interface called name."""
    out = host.popen(['ip', '-o', 'link', 'show', 'dev', name],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE)
    _, err = out.communicate(timeout=10)
    if out.returncode == 0:
        return True
    if b'does not exist' in err:
        return False
    raise SlidedError('ip link show dev %s in %s: %s'
                      % (name, host.name, err.decode(errors='replace').strip()))


def _is_socket(path):
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _remove(path):
    if path:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _tail(path, n=8):
    """The last n lines of a log, for an error message."""
    try:
        with open(path, 'rb') as f:
            lines = f.read().decode(errors='replace').strip().splitlines()
    except OSError as e:
        return '(no log: %s)' % e
    # A usage error: the reason comes first, the flag list after it.
    for i, l in enumerate(lines):
        if l.startswith('Usage of ') and i > 0:
            lines = lines[:i]
            break
    if not lines:
        return '(no output)'
    return ' | '.join(_plain(l) for l in lines[-n:])


def _plain(line):
    """A JSON log line as 'level: message (error)', other lines as they are."""
    try:
        d = json.loads(line)
    except ValueError:
        return line
    if not isinstance(d, dict):
        return line
    s = '%s: %s' % (d.get('level', '?'), d.get('message', ''))
    if d.get('error'):
        s += ' (%s)' % d['error']
    return s
