#!/usr/bin/env python3
"""A throwaway single-node Ceph cluster with a RADOS Gateway, for tests.

One monitor, one OSD on memstore (data in RAM, capped), no manager, cephx
off, everything bound to 127.0.0.1, radosgw (beast) on a free port; a user
with known keys. Each daemon runs in the foreground in its own session with
a pid file under a temporary directory, and `stop()` ends all of them and
removes the directory, also when starting failed half-way. The facts and
the three configuration traps are in docs/TESTING.md ("Ceph RGW").

    with Rgw(ak, sk) as rgw:            # or rgw = Rgw(ak, sk).start() ... rgw.stop()
        rgw.endpoint                    # http://127.0.0.1:PORT
        rgw.ensure_running()            # restarts radosgw if it died (and says so)

Run on its own (`python3 tests/e2e/rgw.py`) it starts a cluster, prints the
time it took and its processes' memory, and stops it.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid

PACKAGES = ["ceph-mon", "ceph-osd", "radosgw", "ceph-common", "uuid-runtime"]
COMMANDS = ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool"]


def missing_commands():
    return [c for c in COMMANDS if not shutil.which(c)]


def version():
    try:
        out = subprocess.run(["radosgw", "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.split("(")[0].strip()
    except OSError:
        return "radosgw missing"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_range(n):
    """n consecutive free ports below the usual ephemeral range (so ports
    the kernel hands out to other processes do not collide with them)."""
    import random
    for _ in range(200):
        base = random.randrange(20000, 32000 - n)
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                s.bind(("127.0.0.1", p))
                socks.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range for the Ceph daemons")


def _die_with_parent():
    import ctypes
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


RAW_SCAN = r"""
import rados, sys
marker = sys.argv[2].encode()
c = rados.Rados(conffile=sys.argv[1])
c.connect(timeout=20)
n = hits = gone = 0
for pool in c.list_pools():
    io = c.open_ioctx(pool)
    io.set_namespace(rados.LIBRADOS_ALL_NSPACES)
    names = [(o.nspace, o.get_locator() if hasattr(o, "get_locator") else o.locator_key, o.key) for o in io.list_objects()]
    for nspace, loc, key in names:
        io.set_namespace(nspace or "")
        io.set_locator_key(loc or "")
        obj = type("O", (), {"key": key})
        parts = []
        # RGW's garbage collector deletes the tail objects of overwritten
        # and deleted uploads while the scan runs: an object that was listed
        # and is gone when read holds nothing any more, so it is skipped
        # (and counted apart); every object still there is read whole.
        try:
            size = io.stat(obj.key)[0]
            off = 0
            while off < size:
                chunk = io.read(obj.key, 1 << 22, off)
                if not chunk:
                    break
                parts.append(chunk)
                off += len(chunk)
            parts += [v for _, v in io.get_xattrs(obj.key)]
        except rados.ObjectNotFound:
            gone += 1
            continue
        try:
            with rados.ReadOpCtx() as op:
                it, _ = io.get_omap_vals(op, "", "", 100000)
                io.operate_read_op(op, obj.key)
                parts += [k.encode() + (v or b"") for k, v in it]
        except rados.Error:
            pass
        n += 1
        if any(marker in p for p in parts):
            hits += 1
            print(f"plaintext in pool {pool} object {obj.key!r}")
    io.close()
c.shutdown()
print(f"objects {n} hits {hits} gone {gone}")
"""


class Rgw:
    def __init__(self, access_key, secret_key, memstore_bytes=2 << 30, uid="sealgate-test", log=None):
        self.ak, self.sk, self.uid = access_key, secret_key, uid
        self.memstore_bytes = memstore_bytes
        self.log = log or (lambda msg: print(msg, flush=True))
        self.dir = None
        self.procs = {}
        self.restarts = 0
        self.port = None
        self.endpoint = None
        self.started_s = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=120):
        missing = missing_commands()
        if missing:
            raise RuntimeError(f"Ceph RGW: {', '.join(missing)} not installed "
                               f"(apt-get install --no-install-recommends {' '.join(PACKAGES)})")
        t0 = time.time()
        self.dir = tempfile.mkdtemp(prefix="sealgate-rgw-")
        atexit.register(self.stop)
        try:
            self._configure()
            self._start_mon(timeout)
            self._start_osd(timeout)
            self._start_rgw(timeout)
            self._create_user()
            self._wait_authenticated(timeout)
        except BaseException:
            self.log(f"Ceph RGW failed to start; last log lines:\n{self.tail()}")
            self.stop()
            raise
        self.started_s = time.time() - t0
        return self

    def stop(self, keep_logs=None):
        """Ends every daemon (SIGTERM to its session, then SIGKILL) and
        removes the cluster's directory (its logs copied to `keep_logs`
        first, if given). Safe to call twice."""
        for name in ("radosgw", "osd", "mon"):
            p = self.procs.pop(name, None)
            if p is None:
                continue
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(10)
        if self.dir:
            if keep_logs:
                try:
                    shutil.copytree(os.path.join(self.dir, "log"), keep_logs, dirs_exist_ok=True)
                    for name in ("mon", "osd", "radosgw"):
                        if os.path.exists(os.path.join(self.dir, f"{name}.out")):
                            shutil.copy(os.path.join(self.dir, f"{name}.out"), keep_logs)
                except OSError as e:
                    self.log(f"Ceph RGW: logs not kept: {e}")
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    # -- state -------------------------------------------------------------

    def alive(self):
        p = self.procs.get("radosgw")
        return p is not None and p.poll() is None

    def ensure_running(self):
        """Restarts radosgw if it died (Pacific aborts on some requests,
        docs/TESTING.md) and reports it. Returns True if it restarted it."""
        if self.alive() or self.dir is None:
            return False
        code = self.procs["radosgw"].returncode
        self.restarts += 1
        self.log(f"     Ceph RGW: radosgw died (exit {code}); restarting it (restart #{self.restarts}): "
                 f"{self.death_cause()}")
        self._start_rgw(60)
        self._wait_authenticated(60)
        return True

    def death_cause(self):
        """The lines of radosgw's output that say why it died."""
        try:
            lines = open(os.path.join(self.dir, "radosgw.out"), errors="replace").read().splitlines()
        except OSError:
            return "no output"
        for i, line in enumerate(lines):
            if "FAILED ceph_assert" in line or "Caught signal" in line or "terminate called" in line:
                return " / ".join(l.strip() for l in lines[i:i + 3])
        return " / ".join(l.strip() for l in lines[-3:])

    def rss_mib(self):
        out = {}
        for name, p in self.procs.items():
            try:
                with open(f"/proc/{p.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            out[name] = int(line.split()[1]) / 1024
            except OSError:
                pass
        return out

    def raw_scan(self, marker):
        """Reads every RADOS object of every pool (data, extended attributes
        and omap: what the OSD stores, below the S3 API) and returns (number
        of objects, lines naming the objects that contain `marker`). Uses
        Debian's python3-rados, hence /usr/bin/python3."""
        r = subprocess.run(["/usr/bin/python3", "-c", RAW_SCAN, self.conf, marker.decode()],
                           capture_output=True, text=True, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"RADOS scan failed: {r.stderr.strip()[-800:]}")
        lines = r.stdout.strip().splitlines()
        n = int(lines[-1].split()[1])
        return n, lines[:-1]

    def pids(self):
        return {name: p.pid for name, p in self.procs.items() if p.poll() is None}

    def tail(self, which=None, n=15):
        if not self.dir:
            return ""
        out = []
        for name in ([which] if which else ["mon", "osd", "radosgw"]):
            path = os.path.join(self.dir, f"{name}.out")
            try:
                lines = open(path, errors="replace").read().splitlines()[-n:]
            except OSError:
                continue
            out.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(out)

    # -- the cluster -------------------------------------------------------

    def _configure(self):
        d = self.dir
        for sub in ("mon", "osd", "run", "log", "rgw"):
            os.makedirs(os.path.join(d, sub))
        self.fsid = str(uuid.uuid4())
        self.mon_port = _free_port()
        ms_base = _port_range(16)
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.conf = os.path.join(d, "ceph.conf")
        with open(self.conf, "w") as f:
            f.write(f"""[global]
fsid = {self.fsid}
mon host = [v2:127.0.0.1:{self.mon_port}]
mon initial members = a
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv4 = true
ms bind ipv6 = false
ms bind msgr1 = false
ms bind msgr2 = true
ms bind port min = {ms_base}
ms bind port max = {ms_base + 15}
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
run dir = {d}/run
admin socket = {d}/run/$name.asok
log file = {d}/log/$name.log
pid file = {d}/run/$name.pid
keyring = /dev/null
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
paxos propose interval = 0.1
debug ms = 0
err to stderr = true
log to stderr = false

[mon]
mon data = {d}/mon/$cluster-$id
mon pg warn min per osd = 0
# Trap: the monitor exits (code 28) when its data filesystem has less than
# 5% free, which a CI host's large disk can reach with gigabytes still free;
# the throwaway monitor holds a few megabytes, so only a truly full disk
# should stop it.
mon data avail crit = 0
mon data avail warn = 0

[osd]
osd data = {d}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = {self.memstore_bytes}
osd max object size = 134217728
osd journal size = 0

[client]
# Trap 1: radosgw asks for a secure connection to the monitor by default,
# which fails with cephx off ("get_initial_auth_request returned -13").
ms mon client mode = crc
rgw frontends = beast endpoint=127.0.0.1:{self.port}
rgw data = {d}/rgw
rgw dns name = 127.0.0.1
rgw gc obj min wait = 30
rgw gc processor period = 30
rgw enable usage log = false
rgw enable ops log = false
""")

    def _spawn(self, name, cmd):
        out = open(os.path.join(self.dir, f"{name}.out"), "a")
        # Own session (a terminal's ^C reaches only the harness, which then
        # stops the daemons in order), and SIGKILL when the harness dies
        # without cleaning up (PR_SET_PDEATHSIG), so no daemon outlives it.
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, preexec_fn=_die_with_parent)
        with open(os.path.join(self.dir, "run", f"{name}.session.pid"), "w") as f:
            f.write(f"{p.pid}\n")
        self.procs[name] = p
        return p

    def _run(self, cmd, timeout=60):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {(r.stdout + r.stderr).strip()[:1500]}")
        return r.stdout

    def _ceph(self, *args, timeout=60):
        r = subprocess.run(["ceph", "-c", self.conf, "--connect-timeout", "20", *args],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"ceph {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()[-500:]}")
        return r.stdout

    def _wait(self, what, cond, timeout, proc=None):
        end = time.time() + timeout
        while time.time() < end:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"Ceph RGW: {what}: the daemon exited with {proc.returncode}")
            try:
                if cond():
                    return
            except Exception:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"Ceph RGW: {what} not reached after {timeout}s")

    def _start_mon(self, timeout):
        monmap = os.path.join(self.dir, "monmap")
        self._run(["monmaptool", "--create", "--fsid", self.fsid, "--addv", "a",
                   f"[v2:127.0.0.1:{self.mon_port}]", monmap])
        self._run(["ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap])
        p = self._spawn("mon", ["ceph-mon", "-c", self.conf, "-f", "-i", "a"])

        def listening():
            socket.create_connection(("127.0.0.1", self.mon_port), timeout=0.5).close()
            return True
        self._wait("monitor listening", listening, timeout, p)

    def _start_osd(self, timeout):
        osd_uuid = str(uuid.uuid4())
        osd_id = self._ceph("osd", "create", osd_uuid).strip()
        assert osd_id == "0", osd_id
        os.makedirs(os.path.join(self.dir, "osd", "ceph-0"))
        self._run(["ceph-osd", "-c", self.conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid])
        p = self._spawn("osd", ["ceph-osd", "-c", self.conf, "-f", "-i", "0"])
        self._wait("OSD up", lambda: '"num_up_osds":1' in self._ceph("osd", "stat", "-f", "json").replace(" ", ""),
                   timeout, p)

    def _start_rgw(self, timeout):
        p = self._spawn("radosgw", ["radosgw", "-c", self.conf, "-f", "-n", "client.rgw"])

        def listening():
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        self._wait("radosgw listening", listening, timeout, p)

    def admin(self, *args):
        """Runs radosgw-admin against the cluster (as client.admin, so its
        admin socket does not collide with radosgw's); returns its stdout."""
        return self._run(["radosgw-admin", "-c", self.conf, *args])

    def bucket_quota(self, bucket, max_objects):
        """Caps a bucket at `max_objects` objects: RGW then refuses writes
        with 403 QuotaExceeded (a refusal S3 clients meet on real sites)."""
        self.admin("quota", "set", "--quota-scope=bucket", f"--bucket={bucket}", f"--max-objects={max_objects}")
        self.admin("quota", "enable", "--quota-scope=bucket", f"--bucket={bucket}")

    def _create_user(self):
        self.admin("user", "create", f"--uid={self.uid}", "--display-name=sealgate tests",
                   f"--access-key={self.ak}", f"--secret-key={self.sk}")

    def _wait_authenticated(self, timeout):
        import boto3
        from botocore.config import Config
        c = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.ak, aws_secret_access_key=self.sk,
                         region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}, connect_timeout=2,
                                                                 read_timeout=5))
        self._wait("an authenticated ListBuckets", lambda: "Buckets" in c.list_buckets(), timeout,
                   self.procs["radosgw"])


def main():
    t = time.time()
    rgw = Rgw("rgw-selftest", "rgw-selftest-secret-0123456789")
    with rgw:
        print(f"{version()}: radosgw on {rgw.endpoint}, started in {time.time() - t:.1f}s")
        print("RSS MiB:", {k: round(v) for k, v in rgw.rss_mib().items()})
    print("stopped and removed")


if __name__ == "__main__":
    sys.exit(main())
