#!/usr/bin/env python3
"""End-to-end suite: real S3 clients -> sealgate (its own process) -> a real upstream.

For each upstream (s3s-fs as its own process: checks signatures and checksums;
moto server: broadest S3 semantics, no auth), start sealgate with a config
file pointing at it, drive it with the aws CLI, boto3, s5cmd and rclone, check
every byte read back, and then scan what the upstream stores for a marker
string that every uploaded file contains: it must never appear.

Usage: python3 tests/e2e/run_e2e.py --sealgate BIN --s3s-fs BIN
Prints one line per check and a closing 'e2e: N passed, M failed'.
"""

import argparse
import hashlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

import boto3
from botocore.config import Config

MARKER = b"E2E-PLAINTEXT-MARKER-91c4"
AK, SK = "e2e-client", "e2e-client-secret-0123456789"
UAK, USK = "e2e-upstream", "e2e-upstream-secret-0123456789"

results = []


def check(name):
    def wrap(fn):
        def run(*a, **kw):
            t = time.time()
            try:
                fn(*a, **kw)
                results.append((name, True))
                print(f"ok   {name} ({time.time() - t:.1f}s)", flush=True)
            except Exception:
                results.append((name, False))
                print(f"FAIL {name}", flush=True)
                traceback.print_exc()
        return run
    return wrap


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def payload(size, seed):
    """Random bytes with the marker sprinkled in, so a leak is findable."""
    rng = random.Random(seed)
    out = bytearray(rng.randbytes(size))
    for pos in range(0, max(size - len(MARKER), 0), 4096):
        out[pos:pos + len(MARKER)] = MARKER
    return bytes(out[:size])


def sha(b):
    return hashlib.sha256(b).hexdigest()


class Upstream:
    def __init__(self, kind, work, s3s_fs_bin):
        self.kind, self.work = kind, work
        self.port = free_port()
        self.root = os.path.join(work, "upstream-data")
        os.makedirs(self.root, exist_ok=True)
        log = open(os.path.join(work, f"{kind}.log"), "w")
        if kind == "s3s-fs":
            self.proc = subprocess.Popen([s3s_fs_bin, self.root, f"127.0.0.1:{self.port}", UAK, USK], stdout=log, stderr=log)
        else:
            self.proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=log)
        wait_port(self.port, self.proc, 60)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stored_blobs(self):
        """Every stored object's bytes, straight from the provider."""
        if self.kind == "s3s-fs":
            for d, _, files in os.walk(self.root):
                for f in files:
                    with open(os.path.join(d, f), "rb") as fh:
                        yield os.path.join(d, f), fh.read()
        else:
            c = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=UAK, aws_secret_access_key=USK, region_name="us-east-1")
            for b in c.list_buckets()["Buckets"]:
                for page in c.get_paginator("list_objects_v2").paginate(Bucket=b["Name"]):
                    for o in page.get("Contents", []):
                        obj = c.get_object(Bucket=b["Name"], Key=o["Key"])
                        meta = repr(obj.get("Metadata", {})).encode()
                        yield f"{b['Name']}/{o['Key']}", obj["Body"].read() + meta

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


class Gateway:
    def __init__(self, sealgate, upstream, work):
        self.port = free_port()
        keys = os.path.join(work, "keys")
        subprocess.run([sealgate, "keys", "generate", "--keys-dir", keys], check=True, capture_output=True)
        cfg = os.path.join(work, "sealgate.toml")
        with open(cfg, "w") as f:
            f.write(f'''listen = "127.0.0.1:{self.port}"
keys_dir = "{keys}"
[upstream]
endpoint = "{upstream.endpoint}"
access_key = "{UAK}"
secret_key = "{USK}"
[[credentials]]
access_key = "{AK}"
secret_key = "{SK}"
buckets = ["*"]
''')
        self.log = os.path.join(work, "sealgate.log")
        self.proc = subprocess.Popen([sealgate, "serve", "--config", cfg], stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(15)


def client_env():
    env = dict(os.environ)
    env.update(AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_DEFAULT_REGION="us-east-1",
               AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    return env


def run(cmd, **kw):
    r = subprocess.run(cmd, env=client_env(), capture_output=True, text=True, timeout=300, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def boto(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=AK, aws_secret_access_key=SK,
                        region_name="us-east-1", config=Config(s3={"addressing_style": "path"}))


def suite(name, gw, work):
    ep = gw.endpoint
    files = os.path.join(work, "files")
    os.makedirs(files, exist_ok=True)
    sizes = {"empty.bin": 0, "one.bin": 1, "seg.bin": 65536, "seg1.bin": 65537, "mid.bin": 777_777, "big.bin": 3 * 1024 * 1024 + 5}
    data = {}
    for i, (f, n) in enumerate(sizes.items()):
        data[f] = payload(n, i)
        with open(os.path.join(files, f), "wb") as fh:
            fh.write(data[f])

    @check(f"{name}: aws CLI mb/cp/ls/cp back/diff")
    def aws_cli():
        aws = ["aws", "--endpoint-url", ep]
        run(aws + ["s3", "mb", "s3://cli-bucket"])
        for f in sizes:
            run(aws + ["s3", "cp", os.path.join(files, f), f"s3://cli-bucket/dir/{f}"])
        listing = run(aws + ["s3", "ls", "s3://cli-bucket/dir/"])
        for f, n in sizes.items():
            assert any(line.split()[-1] == f and int(line.split()[-2]) == n for line in listing.splitlines()), (f, listing)
        back = os.path.join(work, "cli-back")
        os.makedirs(back, exist_ok=True)
        for f in sizes:
            run(aws + ["s3", "cp", f"s3://cli-bucket/dir/{f}", os.path.join(back, f)])
            assert open(os.path.join(back, f), "rb").read() == data[f], f
        head = run(aws + ["s3api", "head-object", "--bucket", "cli-bucket", "--key", "dir/mid.bin"])
        assert '"ContentLength": 777777' in head, head

    @check(f"{name}: aws CLI sync twice transfers nothing the second time")
    def aws_sync():
        aws = ["aws", "--endpoint-url", ep]
        run(aws + ["s3", "sync", files, "s3://cli-bucket/sync/"])
        second = run(aws + ["s3", "sync", files, "s3://cli-bucket/sync/"])
        assert "upload:" not in second, second

    @check(f"{name}: boto3 put/get/ranges/metadata/list/presigned")
    def boto3_suite():
        c = boto(ep)
        c.create_bucket(Bucket="boto-bucket")
        body = data["big.bin"]
        put = c.put_object(Bucket="boto-bucket", Key="k/big", Body=body, Metadata={"owner": MARKER.decode()},
                           ContentType="application/x-test", ChecksumAlgorithm="CRC32")
        head = c.head_object(Bucket="boto-bucket", Key="k/big")
        assert head["ContentLength"] == len(body) and head["ETag"] == put["ETag"]
        assert head["Metadata"]["owner"] == MARKER.decode() and head["ContentType"] == "application/x-test"
        assert c.get_object(Bucket="boto-bucket", Key="k/big")["Body"].read() == body
        for rng, want in [("bytes=0-0", body[:1]), ("bytes=65530-131100", body[65530:131101]), ("bytes=-10", body[-10:]), ("bytes=3000000-", body[3000000:])]:
            r = c.get_object(Bucket="boto-bucket", Key="k/big", Range=rng)
            assert r["Body"].read() == want, rng
        c.upload_file(os.path.join(files, "mid.bin"), "boto-bucket", "k/mid")
        listed = {o["Key"]: o["Size"] for o in c.list_objects_v2(Bucket="boto-bucket")["Contents"]}
        assert listed == {"k/big": len(body), "k/mid": 777_777}, listed
        url = c.generate_presigned_url("get_object", Params={"Bucket": "boto-bucket", "Key": "k/mid"}, ExpiresIn=120)
        assert urllib.request.urlopen(url).read() == data["mid.bin"]
        expired = c.generate_presigned_url("get_object", Params={"Bucket": "boto-bucket", "Key": "k/mid"}, ExpiresIn=1)
        time.sleep(2)
        try:
            urllib.request.urlopen(expired)
            raise AssertionError("expired presigned URL accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 403, e.code

    @check(f"{name}: s5cmd cp up and back (signed payload + Content-MD5)")
    def s5cmd_suite():
        s5 = ["s5cmd", "--endpoint-url", ep]
        boto(ep).create_bucket(Bucket="s5-bucket")
        for f in ["one.bin", "mid.bin", "big.bin"]:
            run(s5 + ["cp", os.path.join(files, f), f"s3://s5-bucket/{f}"])
        back = os.path.join(work, "s5-back")
        os.makedirs(back, exist_ok=True)
        for f in ["one.bin", "mid.bin", "big.bin"]:
            run(s5 + ["cp", f"s3://s5-bucket/{f}", os.path.join(back, f)])
            assert open(os.path.join(back, f), "rb").read() == data[f], f
        ls = run(s5 + ["ls", "s3://s5-bucket/*"])
        assert "777777" in ls, ls

    @check(f"{name}: rclone copy tree up and back (UNSIGNED-PAYLOAD + Content-MD5)")
    def rclone_suite():
        conf = os.path.join(work, "rclone.conf")  # noqa: F841
        with open(conf, "w") as f:
            f.write(f"[sg]\ntype = s3\nprovider = Other\nendpoint = {ep}\naccess_key_id = {AK}\nsecret_access_key = {SK}\nregion = us-east-1\nforce_path_style = true\n")
        rc = ["rclone", "--config", conf]
        boto(ep).create_bucket(Bucket="rclone-bucket")
        # The bucket root, not a prefix: rclone HEADs a remote path to see if
        # it is a file, and s3s-fs answers HEAD on a "directory" key with 500
        # (a known s3s-fs quirk), which rclone retries for minutes.
        run(rc + ["copy", files, "sg:rclone-bucket"])
        back = os.path.join(work, "rclone-back")
        run(rc + ["copy", "sg:rclone-bucket", back])
        for f in sizes:
            assert open(os.path.join(back, f), "rb").read() == data[f], f
        run(rc + ["check", files, "sg:rclone-bucket", "--size-only"])

    aws_cli()
    aws_sync()
    boto3_suite()
    s5cmd_suite()
    rclone_suite()


def rss_peak_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return -1.0


def large(name, gw, work, gib):
    @check(f"{name}: {gib} GiB single PUT and GET stream through with bounded gateway memory")
    def big():
        path = os.path.join(work, "large.bin")
        h = hashlib.sha256()
        block = bytearray(payload(1 << 20, 99))
        with open(path, "wb") as f:
            for i in range(gib << 10):
                block[:8] = i.to_bytes(8, "big")
                f.write(block)
                h.update(block)
        c = boto(gw.endpoint)
        c.create_bucket(Bucket="large-bucket")
        t = time.time()
        with open(path, "rb") as f:
            c.put_object(Bucket="large-bucket", Key="large.bin", Body=f)
        put_s = time.time() - t
        os.remove(path)
        assert c.head_object(Bucket="large-bucket", Key="large.bin")["ContentLength"] == gib << 30
        t = time.time()
        body = c.get_object(Bucket="large-bucket", Key="large.bin")["Body"]
        g, n = hashlib.sha256(), 0
        for chunk in iter(lambda: body.read(1 << 20), b""):
            g.update(chunk)
            n += len(chunk)
        get_s = time.time() - t
        assert n == gib << 30 and g.hexdigest() == h.hexdigest(), "large object differs"
        peak = rss_peak_mib(gw.proc.pid)
        print(f"     {gib} GiB: PUT {put_s:.0f}s, GET {get_s:.0f}s, gateway peak RSS {peak:.0f} MiB", flush=True)
        assert 0 < peak < 256, f"gateway peak RSS {peak:.0f} MiB"
    big()


def scan(name, upstream):
    @check(f"{name}: upstream holds no plaintext (marker scan of every stored object)")
    def no_plaintext():
        n = 0
        for where, blob in upstream.stored_blobs():
            n += 1
            assert MARKER not in blob, f"plaintext at {where}"
        assert n >= 20, f"only {n} objects found upstream"
    no_plaintext()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sealgate", required=True)
    ap.add_argument("--s3s-fs", required=True)
    ap.add_argument("--upstream", action="append", choices=["s3s-fs", "moto"])
    ap.add_argument("--large-gib", type=int, default=int(os.environ.get("SEALGATE_E2E_LARGE_GIB", "5")),
                    help="size of the large-object check on s3s-fs (0 to skip)")
    args = ap.parse_args()
    for kind in args.upstream or ["s3s-fs", "moto"]:
        work = tempfile.mkdtemp(prefix=f"sealgate-e2e-{kind}-")
        up = gw = None
        try:
            up = Upstream(kind, work, args.s3s_fs)
            gw = Gateway(args.sealgate, up, work)
            suite(kind, gw, work)
            if kind == "s3s-fs" and args.large_gib > 0:
                large(kind, gw, work, args.large_gib)
            scan(kind, up)
        except Exception:
            results.append((f"{kind}: setup", False))
            traceback.print_exc()
        finally:
            for p in (gw, up):
                if p:
                    try:
                        p.stop()
                    except Exception:
                        pass
            if all(ok for _, ok in results):
                shutil.rmtree(work, ignore_errors=True)
            else:
                print(f"logs kept in {work}")
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print(f"e2e: {passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
