#!/usr/bin/env python3
"""End-to-end benchmark: the provider directly, sealgate in front of it, and
a peer gateway (rclone `serve s3` over an rclone crypt remote over the same
provider), measured in one run; and a second provider, Ceph RGW (a
throwaway single-node cluster, tests/e2e/rgw.py), directly and through
sealgate, in the same run.

    python3 benches/e2e.py                # full run (docs/BENCHMARKS.md)
    python3 benches/e2e.py --smoke        # seconds, tiny sizes: the harness works
    python3 benches/e2e.py --baseline OLD # also an earlier sealgate binary, same run

With --baseline, an earlier build of sealgate (e.g. one built from the
commit before a restructure) runs as the system "sealgate-before" beside
this build's, in front of the same provider with the same keys, measured in
the same round-robin, and the table gains a column "sealgate/before" (this
build's rate over the earlier one's: below 1.00 means slower now).

It builds what it needs (release; --debug for CI's smoke run), starts a
local s3s-fs as the provider unless --upstream-endpoint names another, and
Ceph RGW as the second provider unless --no-rgw, and
for every measurement alternates the systems (round-robin, the starting
system rotating each round) so drift hits all alike. It samples each
process's CPU time from /proc (the gateway's, the provider's, and the load
generator's own via wait4) and the gateway's resident memory every 50 ms,
and reads sealgate's /metrics for provider requests and bytes fetched.

Outputs in --out (default bench-out/): results.json (every measurement and
the derived figures), table.md (the table printed at the end), and plots
throughput.png and latency.png.
"""
import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
UAK, USK = "bench-upstream", "bench-upstream-secret-0123456789"
AK, SK = "bench-client", "bench-client-secret-0123456789"
TICK = os.sysconf("SC_CLK_TCK")
SMOKE = False  # set from --smoke: shorter per-request timeouts
GIB = 1 << 30
MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"process exited with {proc.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port} after {timeout}s")


def cpu_seconds(pid):
    """utime + stime of a live process, in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError):
        return 0.0


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class RssSampler:
    """Peak resident memory of a process while a measurement runs."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            self._stop.wait(0.05)

    def __enter__(self):
        if self.pid:
            self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.pid:
            self._t.join()
            self.peak = max(self.peak, rss_mib(self.pid))


def metrics(admin):
    """sealgate's counters as {name{labels}: value}."""
    if not admin:
        return {}
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def delta(before, after, prefix):
    return sum(v - before.get(k, 0) for k, v in after.items() if k.startswith(prefix))


class System:
    """One endpoint measured. `base` is the direct system of its provider
    (ratios are against it); `upstream_pids` are the provider's processes
    (their CPU time is the provider's cost)."""

    def __init__(self, name, endpoint, ak, sk, pid=None, admin=None, proc=None, restart=None, base="direct",
                 upstream_pids=()):
        self.name, self.endpoint, self.ak, self.sk = name, endpoint, ak, sk
        self.pid, self.admin, self.proc, self.restart = pid, admin, proc, restart
        self.base, self.upstream_pids = base, list(upstream_pids)
        self.restarts = 0


def build(debug):
    profile = [] if debug else ["--release"]
    subprocess.run(["cargo", "build", "--locked", *profile, "--bin", "sealgate", "--example", "s3bench",
                    "--example", "s3s_fs_server"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    d = os.path.join(target, "debug" if debug else "release")
    return os.path.join(d, "sealgate"), os.path.join(d, "examples", "s3bench"), os.path.join(d, "examples", "s3s_fs_server")


def start_systems(args, work, bins, procs):
    sealgate, _, s3s_fs = bins
    systems = []
    upstream_pid = None
    if args.upstream_endpoint:
        up_endpoint, uak, usk = args.upstream_endpoint, args.upstream_access_key, args.upstream_secret_key
    else:
        port = free_port()
        data = os.path.join(work, "upstream")
        os.makedirs(data)
        p = subprocess.Popen([s3s_fs, data, f"127.0.0.1:{port}", UAK, USK],
                             stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "upstream.log"), "w"))
        wait_port(port, p)
        procs.append(p)
        upstream_pid = p.pid
        up_endpoint, uak, usk = f"http://127.0.0.1:{port}", UAK, USK
    up_pids = [upstream_pid] if upstream_pid else []
    systems.append(System("direct", up_endpoint, uak, usk, upstream_pids=up_pids))
    keys = os.path.join(work, "keys")
    subprocess.run([sealgate, "keys", "generate", "--keys-dir", keys], check=True, capture_output=True)
    systems.append(start_sealgate(sealgate, work, "sealgate", keys, up_endpoint, uak, usk, procs, up_pids, "direct"))
    if args.baseline:
        systems.append(start_sealgate(args.baseline, work, "sealgate-before", keys, up_endpoint, uak, usk, procs, up_pids,
                                      "direct"))

    rclone = shutil.which("rclone")
    if rclone and not args.no_peer:
        port = free_port()
        password = subprocess.run([rclone, "obscure", "sealgate-bench-password"], capture_output=True, text=True,
                                  check=True).stdout.strip()
        env = dict(os.environ,
                   RCLONE_CONFIG=os.path.join(work, "rclone.conf"),
                   RCLONE_CONFIG_UP_TYPE="s3", RCLONE_CONFIG_UP_PROVIDER="Other",
                   RCLONE_CONFIG_UP_ENDPOINT=up_endpoint, RCLONE_CONFIG_UP_ACCESS_KEY_ID=uak,
                   RCLONE_CONFIG_UP_SECRET_ACCESS_KEY=usk, RCLONE_CONFIG_UP_FORCE_PATH_STYLE="true",
                   RCLONE_CONFIG_SECRET_TYPE="crypt", RCLONE_CONFIG_SECRET_REMOTE="up:rclone-crypt",
                   RCLONE_CONFIG_SECRET_PASSWORD=password)
        open(env["RCLONE_CONFIG"], "w").close()
        subprocess.run([rclone, "mkdir", "up:rclone-crypt"], env=env, check=True, capture_output=True)
        def launch():
            p = subprocess.Popen([rclone, "serve", "s3", "secret:", "--addr", f"127.0.0.1:{port}",
                                  "--auth-key", f"{AK},{SK}", "--vfs-cache-mode", "off", "-v"],
                                 env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "rclone.log"), "a"))
            wait_port(port, p)
            procs.append(p)
            return p

        p = launch()
        peer = System("rclone-crypt", f"http://127.0.0.1:{port}", AK, SK, pid=p.pid, proc=p, upstream_pids=up_pids)

        def restart():
            # The peer stops answering after some failures (seen: hangs on
            # every PUT after a burst of concurrent uploads); a fresh process
            # keeps the later measurements meaningful. Counted in the report.
            peer.proc.terminate()
            try:
                peer.proc.wait(10)
            except subprocess.TimeoutExpired:
                peer.proc.kill()
            peer.proc = launch()
            peer.pid = peer.proc.pid
            peer.restarts += 1

        peer.restart = restart
        systems.append(peer)

    rgw = None
    if not args.no_rgw:
        import rgw as rgw_mod
        if rgw_mod.missing_commands():
            sys.exit(f"Ceph RGW: {', '.join(rgw_mod.missing_commands())} missing (apt-get install --no-install-recommends "
                     f"{' '.join(rgw_mod.PACKAGES)}; or --no-rgw)")
        t = time.time()
        # memstore keeps the data in RAM: room for what the phases store on
        # both RGW systems (overwritten data waits for RGW's garbage
        # collector), capped by --rgw-memstore-gib.
        rgw = rgw_mod.Rgw(UAK, USK, memstore_bytes=args.rgw_memstore_gib << 30,
                          log=lambda m: print(m, file=sys.stderr, flush=True)).start()
        print(f"{rgw_mod.version()}: single-node cluster up in {time.time() - t:.1f}s", file=sys.stderr, flush=True)
        rgw_pids = list(rgw.pids().values())
        systems.append(System("rgw-direct", rgw.endpoint, UAK, USK, base="rgw-direct", upstream_pids=rgw_pids))
        systems.append(start_sealgate(sealgate, work, "rgw-sealgate", keys, rgw.endpoint, UAK, USK, procs, rgw_pids,
                                      "rgw-direct"))
    return systems, procs, rgw


def start_sealgate(sealgate, work, name, keys, up_endpoint, uak, usk, procs, up_pids, base):
    port, admin = free_port(), free_port()
    cfg = os.path.join(work, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write(f'listen = "127.0.0.1:{port}"\nadmin_listen = "127.0.0.1:{admin}"\nkeys_dir = "{keys}"\n'
                f'[upstream]\nendpoint = "{up_endpoint}"\naccess_key = "{uak}"\nsecret_key = "{usk}"\n'
                f'[[credentials]]\naccess_key = "{AK}"\nsecret_key = "{SK}"\n')
    env = dict(os.environ, SEALGATE_LOG="warn")
    p = subprocess.Popen([sealgate, "serve", "--config", cfg], env=env, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(work, f"{name}.log"), "w"))
    wait_port(port, p)
    procs.append(p)
    return System(name, f"http://127.0.0.1:{port}", AK, SK, pid=p.pid, admin=f"127.0.0.1:{admin}", base=base,
                  upstream_pids=up_pids)


def measure(s3bench, system, bucket, mode, **kw):
    if system.name == "rclone-crypt" and mode == "put-large":
        # rclone serve s3 answers CreateMultipartUpload with a root element
        # the AWS SDK rejects (InitiateMultipartUpload): single streamed PUT.
        kw = dict(kw, part=kw["size"])
    timeout = 600 if mode.endswith("-large") else (10 if SMOKE else 30)
    cmd = [s3bench, system.endpoint, system.ak, system.sk, bucket, mode, f"timeout={timeout}"] + [f"{k}={v}" for k, v in kw.items()]
    m0 = metrics(system.admin)
    upstream_cpu = lambda: sum(cpu_seconds(p) for p in system.upstream_pids)  # noqa: E731
    g0, u0 = cpu_seconds(system.pid) if system.pid else 0, upstream_cpu()
    with RssSampler(system.pid) as rss:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(p.pid, 0)
        out, err = p.stdout.read().decode(), p.stderr.read().decode()
    if status != 0:
        if system.name == "rclone-crypt":
            # The peer's failures are results to report, not harness bugs.
            why = (err.strip().splitlines() or ["?"])[-1][:300]
            print(f"peer failed {mode}: {why}", file=sys.stderr)
            if system.restart:
                system.restart()
            return dict(system=system.name, error=why, args=kw, seconds=0, bytes=0, ops=0)
        sys.exit(f"{system.name} {mode} failed: {' '.join(cmd)}\n{out}\n{err}")
    r = json.loads(out.strip().splitlines()[-1])
    m1 = metrics(system.admin)
    r.update(system=system.name,
             gateway_cpu_s=(cpu_seconds(system.pid) - g0) if system.pid else None,
             upstream_cpu_s=(upstream_cpu() - u0) if system.upstream_pids else None,
             client_cpu_s=usage.ru_utime + usage.ru_stime,
             gateway_peak_rss_mib=rss.peak if system.pid else None,
             args=kw)
    if system.admin:
        r["upstream_requests"] = delta(m0, m1, "sealgate_upstream_requests_total")
        r["upstream_list_requests"] = delta(m0, m1, 'sealgate_upstream_requests_total{operation="ListObjectsV2"')
        r["upstream_head_requests"] = delta(m0, m1, 'sealgate_upstream_requests_total{operation="HeadObject"')
        r["upstream_bytes"] = delta(m0, m1, "sealgate_upstream_received_bytes_total")
    return r


# The multipart objects of "LIST multipart": two parts, 5 MiB and 1 byte,
# large enough that sealgate HEADs each one on a provider whose listings
# carry no ETag (s3s-fs, src/front/list.rs) and lists RGW's as they come.
MP_OBJECT = dict(size=5 * MIB + 1, part=5 * MIB)


def plan(args):
    """(phase name, mode, options) in run order, the number of small and of
    multipart objects listed, and the rounds."""
    if args.smoke:
        big, count, part, ops, nlist, nmp, rounds = 8 * MIB, 2, 5 * MIB, 20, 300, 16, 1
    else:
        big, count, part, ops, nlist, nmp, rounds = args.large_size, 8, 16 * MIB, args.small_ops, 10_000, 64, args.rounds
    phases = [
        ("PUT 1 stream", "put-large", dict(size=big, count=1, concurrency=1, part=part)),
        ("GET 1 stream", "get-large", dict(size=big, count=1, concurrency=1)),
        (f"PUT {count}-way", "put-large", dict(size=big, count=count, concurrency=count, part=part)),
        (f"GET {count}-way", "get-large", dict(size=big, count=count, concurrency=count)),
    ]
    for size in (4096, 256 * 1024):
        for c in (1, 16, 64):
            n = max(ops, c * 4) if size == 4096 else max(ops // 2, c * 2)
            phases.append((f"PUT {size // 1024}KiB c{c}", "put-small", dict(size=size, ops=n, concurrency=c)))
            phases.append((f"GET {size // 1024}KiB c{c}", "get-small", dict(size=size, ops=n, concurrency=c)))
    phases.append(("GET range 1MiB", "ranged", dict(key="large/0", size=big, range=MIB, ops=ops, concurrency=4)))
    phases.append(("GET range 100B", "ranged", dict(key="large/0", size=big, range=100, ops=ops, concurrency=4)))
    phases.append(("LIST", "list", dict(prefix="list/")))
    phases.append(("LIST multipart", "list", dict(prefix="listmp/")))
    return phases, nlist, nmp, rounds


def for_system(system, mode, kw, args):
    """RGW's memstore keeps data in RAM: its large objects are capped at
    --rgw-large-size (the ratios compare like with like: RGW directly and
    sealgate over RGW use the same size)."""
    if system.base == "rgw-direct" and "size" in kw and mode in ("put-large", "get-large", "ranged"):
        kw = dict(kw, size=min(kw["size"], args.rgw_large_size))
    return kw


def aead_cpu_per_gib():
    """CPU-seconds per GiB of the raw AEAD (AES-256-GCM, in place) from
    `cargo bench --bench format`, if its results are there."""
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    d = os.path.join(target, "criterion", "raw_aead", "in_place", "AES-256-GCM", "new")
    try:
        est = json.load(open(os.path.join(d, "estimates.json")))
        nbytes = json.load(open(os.path.join(d, "benchmark.json")))["throughput"]["Bytes"]
    except (OSError, KeyError, ValueError):
        return None
    return est["mean"]["point_estimate"] / 1e9 / nbytes * GIB


def summarize(results, systems):
    """One row per phase: per system the median of its rounds."""
    rows = []
    by = {}
    for r in results:
        by.setdefault(r["phase"], {}).setdefault(r["system"], []).append(r)
    for phase, per in by.items():
        row = {"phase": phase}
        for s in systems:
            rs = [r for r in per.get(s, []) if "error" not in r]
            if not rs:
                if per.get(s):
                    row[s] = {"error": per[s][0]["error"], "mib_s": None, "ops_s": None, "p50_ms": None, "p99_ms": None}
                continue
            rs = sorted(rs, key=lambda r: r["seconds"])
            mid = rs[len(rs) // 2]
            moved = mid["bytes"]
            row[s] = {
                "mib_s": moved / MIB / mid["seconds"] if moved else None,
                "ops_s": mid["ops"] / mid["seconds"],
                "p50_ms": mid["p50_ms"], "p99_ms": mid["p99_ms"], "seconds": mid["seconds"],
                "gateway_cpu_s_per_gib": (mid["gateway_cpu_s"] / (moved / GIB)) if moved and mid.get("gateway_cpu_s") is not None else None,
                "upstream_cpu_s_per_gib": (mid["upstream_cpu_s"] / (moved / GIB)) if moved and mid.get("upstream_cpu_s") is not None else None,
                "client_cpu_s_per_gib": mid["client_cpu_s"] / (moved / GIB) if moved else None,
                "peak_rss_mib": mid.get("gateway_peak_rss_mib"),
                "upstream_bytes_per_byte": (mid["upstream_bytes"] / moved) if mid.get("upstream_bytes") is not None and moved else None,
                "upstream_requests_per_page": (mid["upstream_list_requests"] / mid["pages"]) if "pages" in mid and mid.get("upstream_list_requests") is not None else None,
                "upstream_requests": mid.get("upstream_requests"),
                "upstream_list_requests": mid.get("upstream_list_requests"),
                "upstream_head_requests": mid.get("upstream_head_requests"),
                "pages": mid.get("pages"), "keys": mid.get("keys"),
            }
        rows.append(row)
    return rows


def fmt(v, spec=".2f"):
    return "–" if v is None else format(v, spec)


def rate_of(row, s):
    """A system's rate in a row: MiB/s where bytes moved, else op/s."""
    d = row.get(s)
    if not d:
        return None
    return d["mib_s"] or d["ops_s"]


def table(rows, systems, aead, bases=None):
    bases = bases or {s: "direct" for s in systems}
    peers = [s for s in systems if bases[s] != s]
    head = ["phase"] + list(systems) + [f"{s}/{bases[s]}" for s in peers]
    before = "sealgate-before" in systems
    head += (["sealgate/before"] if before else []) + ["sealgate/peer", "sealgate CPU-s/GiB", "provider CPU-s/GiB", "client CPU-s/GiB", "sealgate peak RSS MiB", "p50 / p99 ms (direct, sealgate)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        def rate(s):
            d = row.get(s)
            if not d:
                return None
            return d["mib_s"] if d["mib_s"] else d["ops_s"]
        unit = "MiB/s" if row.get("direct", {}).get("mib_s") and not row["phase"].startswith(("PUT 4KiB", "GET 4KiB", "PUT 256KiB", "GET 256KiB", "GET range 100B")) else "op/s"
        if unit == "op/s":
            rate = (lambda s: row[s]["ops_s"] if row.get(s) else None)  # noqa: E731
        cells = [row["phase"] + f" ({unit})"] + [fmt(rate(s), ".1f") for s in systems]
        cells += [fmt(rate(s) / rate(bases[s]) if rate(s) and rate(bases[s]) else None) for s in peers]
        sg, peer = rate("sealgate"), rate("rclone-crypt")
        if before:
            old = rate("sealgate-before")
            cells.append(fmt(sg / old if sg and old else None))
        cells.append(fmt(sg / peer if sg and peer else None))
        g = row.get("sealgate", {})
        if unit == "op/s":  # CPU per GiB means little for small objects
            g = {k: v for k, v in g.items() if not k.endswith("_per_gib")}
        cells += [fmt(g.get("gateway_cpu_s_per_gib")), fmt(g.get("upstream_cpu_s_per_gib")), fmt(g.get("client_cpu_s_per_gib")),
                  fmt(g.get("peak_rss_mib"), ".0f"),
                  f"{fmt(row.get('direct', {}).get('p50_ms'), '.1f')}/{fmt(row.get('direct', {}).get('p99_ms'), '.1f')}, "
                  f"{fmt(g.get('p50_ms'), '.1f')}/{fmt(g.get('p99_ms'), '.1f')}"]
        lines.append("| " + " | ".join(cells) + " |")
    extra = []
    for row in rows:
        for s in peers:
            if row.get(s, {}).get("error"):
                extra.append(f"- {row['phase']}: {s} failed: {row[s]['error']}")
        g = row.get("sealgate", {})
        if g.get("upstream_bytes_per_byte") is not None and row["phase"].startswith("GET range"):
            extra.append(f"- {row['phase']}: sealgate fetched {g['upstream_bytes_per_byte']:.2f} bytes from the provider per byte returned")
        for s in peers:
            g = row.get(s, {})
            if g.get("upstream_requests_per_page") is not None:
                extra.append(f"- {row['phase']} ({s}): {g['keys']} keys in {g['pages']} pages; {s} made {g['upstream_requests_per_page']:.2f} provider ListObjectsV2 requests per page and {g['upstream_requests']:.0f} provider requests in all")
        if row["phase"] == "LIST multipart":
            # What listing multipart objects costs where the provider lists
            # no ETags (s3s-fs: a HEAD per entry of 5 MiB or more, 16 at a
            # time) against a provider that lists them (RGW).
            for s in peers:
                g, d = row.get(s, {}), row.get(bases[s], {})
                if g.get("seconds") and d.get("seconds") and g.get("upstream_requests") is not None:
                    extra.append(f"- LIST multipart ({g['keys']} objects of 5 MiB + 1 byte in 2 parts): {s} takes "
                                 f"{g['seconds'] / d['seconds']:.2f}x the time of {bases[s]} ({g['seconds'] * 1000:.0f} ms vs "
                                 f"{d['seconds'] * 1000:.0f} ms), with {g['upstream_list_requests']:.0f} provider "
                                 f"ListObjectsV2 and {g['upstream_head_requests']:.0f} HeadObject requests")
    if before:
        pairs = [(row["phase"], rate_of(row, "sealgate") / rate_of(row, "sealgate-before")) for row in rows
                 if rate_of(row, "sealgate") and rate_of(row, "sealgate-before")]
        if pairs:
            worst = min(pairs, key=lambda p: p[1])
            extra.append(f"- this build against sealgate-before: median ratio {sorted(r for _, r in pairs)[len(pairs) // 2]:.2f} "
                         f"over {len(pairs)} phases; lowest {worst[1]:.2f} ({worst[0]})")
    if aead is not None:
        extra.append(f"- raw AES-256-GCM (criterion, in place, one core): {aead:.2f} CPU-s/GiB")
    return "\n".join(lines + [""] + extra) + "\n"


def plots(rows, systems, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plots (pip install matplotlib)", file=sys.stderr)
        return []
    large = [r for r in rows if r["phase"].split()[0] in ("PUT", "GET") and ("stream" in r["phase"] or "-way" in r["phase"])]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    w = 0.8 / len(systems)
    for i, s in enumerate(systems):
        ax.bar([x + i * w for x in range(len(large))], [r.get(s, {}).get("mib_s") or 0 for r in large], w, label=s)
    ax.set_xticks([x + w * (len(systems) - 1) / 2 for x in range(len(large))], [r["phase"] for r in large])
    ax.set_ylabel("MiB/s")
    ax.set_title("Large objects: throughput by system and operation")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput.png"), dpi=110)
    plt.close(fig)

    small = [r for r in rows if "KiB c" in r["phase"]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, q in zip(axes, ("p50_ms", "p99_ms")):
        for i, s in enumerate(systems):
            ax.bar([x + i * w for x in range(len(small))], [r.get(s, {}).get(q) or 0 for r in small], w, label=s)
        ax.set_xticks([x + w * (len(systems) - 1) / 2 for x in range(len(small))], [r["phase"] for r in small], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("ms")
        ax.set_yscale("log")
        ax.set_title(f"Small objects: {q[:3]} latency")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "latency.png"), dpi=110)
    plt.close(fig)
    return ["throughput.png", "latency.png"]


def machine():
    info = {"cores": os.cpu_count()}
    try:
        cpu = open("/proc/cpuinfo").read()
        info["cpu"] = next(l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("model name"))
        flags = next(l.split(":", 1)[1].split() for l in cpu.splitlines() if l.startswith("flags"))
        info["flags"] = [f for f in ("aes", "pclmulqdq", "vaes", "vpclmulqdq", "avx2", "avx512f", "sha_ni") if f in flags]
    except (OSError, StopIteration):
        pass
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one round: checks the harness, not speed")
    ap.add_argument("--debug", action="store_true", help="use debug builds (CI smoke run)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench-out"))
    ap.add_argument("--rounds", type=int, default=3, help="rounds per measurement (the median is reported)")
    ap.add_argument("--large-size", type=int, default=GIB, help="bytes per large object (default 1 GiB)")
    ap.add_argument("--small-ops", type=int, default=400, help="operations per small-object measurement")
    ap.add_argument("--upstream-endpoint", help="benchmark against this S3 endpoint instead of a local s3s-fs")
    ap.add_argument("--upstream-access-key", default=os.environ.get("AWS_ACCESS_KEY_ID"))
    ap.add_argument("--upstream-secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY"))
    ap.add_argument("--baseline", metavar="SEALGATE_BIN",
                    help="an earlier sealgate binary, measured beside this build as the system sealgate-before")
    ap.add_argument("--no-peer", action="store_true", help="skip the rclone crypt peer")
    ap.add_argument("--no-rgw", action="store_true", help="skip the second provider (Ceph RGW)")
    ap.add_argument("--rgw-large-size", type=int, default=128 * MIB,
                    help="bytes per large object on RGW (its memstore holds data in RAM; default 128 MiB)")
    ap.add_argument("--rgw-memstore-gib", type=int, default=None,
                    help="RAM the RGW cluster may store (default 1 for --smoke, else 4)")
    args = ap.parse_args()
    global SMOKE
    SMOKE = args.smoke
    if args.rgw_memstore_gib is None:
        args.rgw_memstore_gib = 1 if args.smoke else 4

    bins = build(args.debug)
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="sealgate-bench-")
    systems, procs, rgw = [], [], None
    try:
        systems, procs, rgw = start_systems(args, work, bins, procs)
    except BaseException:
        for p in procs:
            p.terminate()
        raise
    names = [s.name for s in systems]
    bases = {s.name: s.base for s in systems}
    rgw_version = __import__("rgw").version() if rgw else None
    phases, nlist, nmp, rounds = plan(args)
    results = []
    bucket_of = {s.name: f"bench-{s.name.replace('-', '')}-{random.randrange(1 << 30):x}" for s in systems}
    started = time.time()
    try:
        for s in systems:  # the LIST phases need their objects in place first (not measured)
            measure(bins[1], s, bucket_of[s.name], "fill", prefix="list/", count=nlist, concurrency=32)
            measure(bins[1], s, bucket_of[s.name], "put-large", prefix="listmp/", count=nmp, concurrency=4, **MP_OBJECT)
        for phase, mode, kw in phases:
            for rnd in range(rounds):
                order = systems[rnd % len(systems):] + systems[:rnd % len(systems)]
                for s in order:
                    r = measure(bins[1], s, bucket_of[s.name], mode, **for_system(s, mode, kw, args))
                    r.update(phase=phase, round=rnd)
                    results.append(r)
                    print(f"{phase:>18} {s.name:>13} round {rnd}: {r['seconds']:.2f}s{' FAILED' if 'error' in r else ''}",
                          file=sys.stderr, flush=True)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if rgw:
            rgw_restarts = rgw.restarts
            rgw_rss = rgw.rss_mib()
            rgw.stop()
        # Stored data never outlives the run (a full run stores gigabytes);
        # the logs stay when something failed.
        shutil.rmtree(os.path.join(work, "upstream"), ignore_errors=True)
        if any("error" in r for r in results):
            print(f"logs kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    rows = summarize(results, names)
    aead = aead_cpu_per_gib()
    text = table(rows, names, aead, bases)
    if rgw:
        text += (f"- Ceph RGW ({rgw_version}): large objects of {args.rgw_large_size // MIB} MiB on RGW; cluster RSS at the "
                 f"end (MiB) {', '.join(f'{k} {v:.0f}' for k, v in rgw_rss.items())}; radosgw restarts: {rgw_restarts}\n")
    restarts = sum(s.restarts for s in systems)
    if restarts:
        text += f"- the peer was restarted {restarts} times after failing (see results.json for each failure)\n"
    pics = plots(rows, names, args.out)
    report = {"machine": machine(), "smoke": args.smoke, "rounds": rounds, "seconds": time.time() - started,
              "upstream": args.upstream_endpoint or "s3s-fs 0.14.1 (local, this build)", "systems": names,
              "bases": bases, "second_provider": rgw_version if rgw else None,
              "aead_cpu_s_per_gib": aead, "summary": rows, "measurements": results, "plots": pics,
              "peer_restarts": sum(s.restarts for s in systems)}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(text)
    print(text)
    print(f"benchmark: {len(results)} measurements of {len(names)} systems in {report['seconds']:.0f} s; "
          f"results in {args.out} (results.json, table.md{''.join(', ' + p for p in pics)})")


if __name__ == "__main__":
    main()
