#!/usr/bin/env python3
"""End-to-end suite: real S3 clients -> sealgate (its own process) -> a real upstream.

For each upstream in PROVIDERS (s3s-fs as its own process: checks signatures
and checksums; moto server: broad S3 semantics, no auth; Ceph RGW, a
throwaway single-node cluster from tests/e2e/rgw.py: real SigV4, ETags in
listings, atomic writes), start sealgate with a config
file pointing at it, drive it with the aws CLI, boto3, s5cmd and rclone, check
every byte read back, and then scan what the upstream stores for a marker
string that every uploaded file contains: it must never appear.

Usage: python3 tests/e2e/run_e2e.py --sealgate BIN --s3s-fs BIN
           [--provider NAME]... [--client NAME]... [-k TEXT]...
Prints one line per check and a closing 'e2e: N passed, M failed'. With no
filter it runs everything (what tests/run.sh runs); the filters are in --help
and docs/TESTING.md.
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

import clients

MARKER = b"E2E-PLAINTEXT-MARKER-91c4"
DOMAIN = "s3.sealgate.test"

_getaddrinfo = socket.getaddrinfo


def _resolve_test_domain(host, *a, **kw):
    """Virtual-host addressing needs bucket.DOMAIN to resolve; send the test
    domain to the loopback gateway without touching /etc/hosts."""
    if isinstance(host, str) and (host == DOMAIN or host.endswith("." + DOMAIN)):
        host = "127.0.0.1"
    return _getaddrinfo(host, *a, **kw)


socket.getaddrinfo = _resolve_test_domain
AK, SK = "e2e-client", "e2e-client-secret-0123456789"
UAK, USK = "e2e-upstream", "e2e-upstream-secret-0123456789"
# The provider bucket every gateway keeps its upload records in
# (upstream.state_bucket): no client reaches it.
STATE = "sealgate-state"


def record_key(bucket, key, upload):
    """The state bucket's name for an upload's record (src/upstream/state.rs)."""
    h = hashlib.sha256()
    for part in (bucket, key, upload):
        b = part.encode()
        h.update(len(b).to_bytes(4, "big") + b)
    return "uploads/" + h.hexdigest()

results = []
UP = None  # the provider under test (main sets it): checked after each check
SELECT = None  # the check-name filter (main sets it from --client and -k)
skipped = []


class Select:
    """--client and -k: which checks (by name) run. A name is the provider,
    a colon and what the check does, starting with the client it drives
    ("moto: rclone copy tree up and back", "rgw: matrix s3cmd sealgate")."""

    def __init__(self, clients, keywords):
        self.clients = [c.lower() for c in clients or []]
        self.keywords = [k.lower() for k in keywords or []]

    def __call__(self, name):
        n = name.lower()
        what = n.split(": ", 1)[-1].removeprefix("matrix ")
        if self.clients and not any(what.startswith(c) for c in self.clients):
            return False
        return not self.keywords or any(k in n for k in self.keywords)

    def client(self, client):
        """Whether a client of the matrix (clients.CLIENTS) is selected."""
        return not self.clients or any(client.lower().startswith(c) for c in self.clients)


def check(name):
    def wrap(fn):
        def run(*a, **kw):
            if SELECT is not None and not SELECT(name):
                skipped.append(name)
                return
            t = time.time()
            try:
                fn(*a, **kw)
                results.append((name, True))
                print(f"ok   {name} ({time.time() - t:.1f}s)", flush=True)
            except Exception:
                results.append((name, False))
                print(f"FAIL {name}", flush=True)
                traceback.print_exc()
            if UP is not None:
                UP.ensure_running()  # says so when it had to restart the provider
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


def make_pki(work):
    """A private CA and a server certificate for 127.0.0.1/localhost (PEM
    files), for the gateway's HTTPS listener and an HTTPS upstream."""
    import datetime
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealgate e2e CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {n: os.path.join(work, f) for n, f in [("ca", "ca.pem"), ("cert", "server.pem"), ("key", "server.key")]}
    with open(paths["ca"], "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    with open(paths["cert"], "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
    with open(paths["key"], "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    # sealgate refuses a private key others can read (docs/SECURITY.md).
    os.chmod(paths["key"], 0o600)
    return paths


# Refusals a provider answers unlike S3 (docs/TESTING.md): the answer
# sealgate must give instead (S3's where sealgate can know it), and the
# provider's bug. The refusals check compares every other case with the
# provider's own answer.
DEVIATIONS = {
    "s3s-fs": {
        "CompleteMultipartUpload of an aborted upload": (
            ("InvalidPart", 400), "s3s-fs 0.14.1 answers 403 AccessDenied (S3: 404 NoSuchUpload) and lists an aborted "
                                  "upload's parts as none, so sealgate sees the part missing"),
    },
    "moto": {
        "UploadPart to an aborted upload": (
            ("InternalError", 500), "moto 5.2.5 answers 500 (S3: 404 NoSuchUpload); sealgate passes the provider's 500 on"),
        "CompleteMultipartUpload of an aborted upload": (("NoSuchUpload", 404), "moto 5.2.5 answers 500"),
    },
    "rgw": {
        "CompleteMultipartUpload of an aborted upload": (
            ("NoSuchUpload", 404), "RGW 16.2.15 answers 500 InternalError 'This multipart completion is already in progress'"),
        "ListParts of an aborted upload": (("NoSuchUpload", 404), "RGW 16.2.15 answers 404 NoSuchKey"),
    },
}


class Upstream:
    """s3s-fs runs over HTTPS with a private CA (the gateway trusts it through
    upstream.ca_file); moto runs over plain HTTP. Each provider says what it
    can do, and the suites read that rather than the provider's name."""
    lists_etags = True  # listings carry ETags (s3s-fs's do not)
    large = False  # room for the multi-GiB streaming check
    passthrough = False  # the passthrough check runs here (after the scan)

    def __init__(self, kind, work, args, pki):
        self.kind, self.work = kind, work
        self.ca = pki["ca"] if kind == "s3s-fs" else None
        self.lists_etags = kind != "s3s-fs"
        self.large = self.passthrough = kind == "s3s-fs"
        self.DEVIATIONS = DEVIATIONS.get(kind, {})
        self.port = free_port()
        self.root = os.path.join(work, "upstream-data")
        os.makedirs(self.root, exist_ok=True)
        log = open(os.path.join(work, f"{kind}.log"), "w")
        if kind == "s3s-fs":
            self.proc = subprocess.Popen([args.s3s_fs, self.root, f"127.0.0.1:{self.port}", UAK, USK, pki["cert"], pki["key"]],
                                         stdout=log, stderr=log)
        else:
            self.proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=log)
        wait_port(self.port, self.proc, 60)
        self.endpoint = f"{'https' if self.ca else 'http'}://localhost:{self.port}"
        self.direct().create_bucket(Bucket=STATE)

    def direct(self):
        """A client of the provider itself (what the provider sees)."""
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=UAK, aws_secret_access_key=USK,
                            region_name="us-east-1", verify=self.ca)

    def ensure_running(self):
        pass

    def stored_blobs(self):
        """Every stored object's bytes, straight from the provider."""
        if self.kind == "s3s-fs":
            for d, _, files in os.walk(self.root):
                for f in files:
                    with open(os.path.join(d, f), "rb") as fh:
                        yield os.path.join(d, f), fh.read()
        else:
            yield from api_blobs(self)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def api_blobs(up):
    """Every object's bytes and user metadata through the provider's S3 API."""
    c = boto3.client("s3", endpoint_url=up.endpoint, aws_access_key_id=UAK, aws_secret_access_key=USK, region_name="us-east-1",
                     verify=up.ca)
    for b in c.list_buckets()["Buckets"]:
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=b["Name"]):
            for o in page.get("Contents", []):
                obj = c.get_object(Bucket=b["Name"], Key=o["Key"])
                meta = repr(obj.get("Metadata", {})).encode()
                yield f"{b['Name']}/{o['Key']}", obj["Body"].read() + meta


class RgwUpstream:
    """Ceph RGW (Pacific, Debian's packages): a throwaway single-node cluster
    started by tests/e2e/rgw.py, radosgw over plain HTTP with real SigV4.
    The scan reads what the OSD stores (every RADOS object's data, xattrs
    and omap), below the S3 API, as well as every object through it."""
    lists_etags = True
    large = False  # memstore holds data in RAM (capped at 2 GiB)
    passthrough = True

    def __init__(self, kind, work, args, pki):
        import rgw
        self.DEVIATIONS = DEVIATIONS.get(kind, {})
        self.kind, self.work, self.ca = kind, work, None
        t = time.time()
        self.rgw = rgw.Rgw(UAK, USK).start()
        self.endpoint = self.rgw.endpoint
        self.direct().create_bucket(Bucket=STATE)
        print(f"     {rgw.version()} (1 mon, 1 memstore OSD, radosgw) started in {time.time() - t:.1f}s on {self.endpoint}", flush=True)

    def direct(self):
        """A client of the provider itself (what the provider sees)."""
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=UAK, aws_secret_access_key=USK,
                            region_name="us-east-1")

    def ensure_running(self):
        return self.rgw.ensure_running()

    def bucket_quota(self, bucket, max_objects):
        self.rgw.bucket_quota(bucket, max_objects)

    def crash(self):
        """Kills radosgw the way RGW's own bug does (docs/TESTING.md): a
        direct UploadPartCopy whose source key holds a '%'. Returns whether
        radosgw died."""
        d = boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=UAK, aws_secret_access_key=USK,
                         region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}, read_timeout=20))
        d.create_bucket(Bucket="rgw-crash")
        d.put_object(Bucket="rgw-crash", Key="a%b.bin", Body=b"c" * 1000)
        uid = d.create_multipart_upload(Bucket="rgw-crash", Key="copy")["UploadId"]
        try:
            d.upload_part_copy(Bucket="rgw-crash", Key="copy", UploadId=uid, PartNumber=1,
                               CopySource={"Bucket": "rgw-crash", "Key": "a%b.bin"}, CopySourceRange="bytes=0-999")
        except Exception:
            pass
        end = time.time() + 10
        while self.rgw.alive() and time.time() < end:
            time.sleep(0.1)
        return not self.rgw.alive()

    def stored_blobs(self):
        n, hits = self.rgw.raw_scan(MARKER)
        assert n > 0, "no RADOS objects found"
        for line in hits:
            yield line, MARKER
        yield from api_blobs(self)

    def stop(self):
        rss = {k: round(v) for k, v in self.rgw.rss_mib().items()}
        if rss:
            print(f"     Ceph RGW RSS at the end (MiB): {rss}; radosgw restarts: {self.rgw.restarts}", flush=True)
        self.rgw.stop(keep_logs=os.path.join(self.work, "rgw-logs"))


# (name, provider class): the suites run once per provider, in this order.
PROVIDERS = [("s3s-fs", Upstream), ("moto", Upstream), ("rgw", RgwUpstream)]


class Gateway:
    """One sealgate process. Several may share a key store and an upstream,
    as instances behind a load balancer do."""

    def __init__(self, sealgate, upstream, work, name="gw", tls=None, extra="", audit=None, admin=False):
        self.port = free_port()
        self.admin_port = free_port() if admin else None
        keys = os.path.join(work, "keys")
        if not os.path.isdir(keys):
            subprocess.run([sealgate, "keys", "generate", "--keys-dir", keys], check=True, capture_output=True)
        cfg = os.path.join(work, f"{name}.toml")
        with open(cfg, "w") as f:
            f.write(f'''listen = "127.0.0.1:{self.port}"
keys_dir = "{keys}"
domain = "{DOMAIN}"
{f'admin_listen = "127.0.0.1:{self.admin_port}"' if admin else ""}
[upstream]
endpoint = "{upstream.endpoint}"
access_key = "{UAK}"
secret_key = "{USK}"
state_bucket = "{STATE}"
''')
            if upstream.ca:
                f.write(f'ca_file = "{upstream.ca}"\n')
            if tls:
                f.write(f'[tls]\ncert_file = "{tls["cert"]}"\nkey_file = "{tls["key"]}"\n')
            f.write(f'''[[credentials]]
access_key = "{AK}"
secret_key = "{SK}"
buckets = ["*"]
''')
            f.write(extra)
        self.log = os.path.join(work, f"{name}.log")
        cmd = [sealgate, "serve", "--config", cfg] + (["--audit-log", audit] if audit else [])
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        wait_port(self.port, self.proc)
        self.ca = tls["ca"] if tls else None
        self.endpoint = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(15)


def client_env(ca=None):
    env = dict(os.environ)
    if ca:
        env["AWS_CA_BUNDLE"] = ca
    env.update(AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_DEFAULT_REGION="us-east-1",
               AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
    return env


def run(cmd, ca=None, **kw):
    r = subprocess.run(cmd, env=client_env(ca), capture_output=True, text=True, timeout=300, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def boto(endpoint, style="path", ca=None, **config):
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=AK, aws_secret_access_key=SK, verify=ca,
                        region_name="us-east-1", config=Config(s3={"addressing_style": style}, **config))


def suite(name, gw, gws, work):
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

    @check(f"{name}: aws CLI over HTTPS (unsigned aws-chunked, CRC trailer, no Content-Length); read back through a second instance")
    def aws_https():
        tls = ["aws", "--endpoint-url", gws.endpoint]
        plain = ["aws", "--endpoint-url", ep]
        for f in sizes:
            run(tls + ["s3", "cp", os.path.join(files, f), f"s3://cli-bucket/tls/{f}"], ca=gws.ca)
        # The CRC32 the aws CLI sent in the trailer comes back when asked.
        import base64, json, zlib
        head = json.loads(run(tls + ["s3api", "head-object", "--bucket", "cli-bucket", "--key", "tls/mid.bin",
                                     "--checksum-mode", "ENABLED"], ca=gws.ca))
        crc = base64.b64encode(zlib.crc32(data["mid.bin"]).to_bytes(4, "big")).decode()
        assert head.get("ChecksumCRC32") == crc and head.get("ChecksumType") == "FULL_OBJECT", (crc, head)
        listing = run(tls + ["s3", "ls", "s3://cli-bucket/tls/"], ca=gws.ca)
        for f, n in sizes.items():
            assert any(line.split()[-1] == f and int(line.split()[-2]) == n for line in listing.splitlines()), (f, listing)
        back = os.path.join(work, "tls-back")
        os.makedirs(back, exist_ok=True)
        for f in sizes:
            # Written through the HTTPS instance, read through the HTTP one
            # (stateless: any instance serves any object), and the reverse.
            run(plain + ["s3", "cp", f"s3://cli-bucket/tls/{f}", os.path.join(back, f)])
            assert open(os.path.join(back, f), "rb").read() == data[f], f
            run(tls + ["s3", "cp", f"s3://cli-bucket/dir/{f}", os.path.join(back, f + ".2")], ca=gws.ca)
            assert open(os.path.join(back, f + ".2"), "rb").read() == data[f], f
        # Without the test CA the client refuses the gateway's certificate.
        r = subprocess.run(tls + ["s3", "ls", "s3://cli-bucket/"], env=client_env(), capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and "SSL" in (r.stderr + r.stdout).upper(), r.stderr
        # TLS 1.2 and 1.3 are served; TLS 1.1 and older are refused.
        import socket, ssl, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1_1 is, on purpose
        for version, served in ((ssl.TLSVersion.TLSv1_3, True), (ssl.TLSVersion.TLSv1_2, True), (ssl.TLSVersion.TLSv1_1, False)):
            ctx = ssl.create_default_context(cafile=gws.ca)
            if not served:
                ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
                try:
                    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                except ssl.SSLError:
                    pass
            ctx.minimum_version = version if served else ctx.minimum_version
            ctx.maximum_version = version
            try:
                with socket.create_connection(("localhost", gws.port), timeout=10) as sock:
                    with ctx.wrap_socket(sock, server_hostname="localhost") as tls_sock:
                        got = tls_sock.version()
                ok = True
            except (ssl.SSLError, OSError) as e:
                ok, got = False, str(e)
            assert ok == served, (version, got)

    @check(f"{name}: boto3 virtual-host addressing (bucket.{DOMAIN})")
    def virtual_host():
        c = boto(f"http://{DOMAIN}:{gw.port}", style="virtual")
        c.create_bucket(Bucket="vhost-bucket")
        c.put_object(Bucket="vhost-bucket", Key="a/b.txt", Body=data["mid.bin"])
        assert c.get_object(Bucket="vhost-bucket", Key="a/b.txt")["Body"].read() == data["mid.bin"]
        assert [o["Key"] for o in c.list_objects_v2(Bucket="vhost-bucket")["Contents"]] == ["a/b.txt"]
        # The same object through path-style addressing.
        assert boto(ep).get_object(Bucket="vhost-bucket", Key="a/b.txt")["Body"].read() == data["mid.bin"]

    @check(f"{name}: boto3 empty PUT then small PUT on one connection (Expect: 100-continue)")
    def expect_continue():
        # An empty PUT gets its final response without a 100 Continue;
        # botocore then misread the next response on that connection and
        # stalled until its read timeout. No retries here: a stall fails.
        c = boto(ep, read_timeout=20, retries={"total_max_attempts": 1})
        c.create_bucket(Bucket="expect-bucket")
        for i in range(5):
            c.put_object(Bucket="expect-bucket", Key=f"empty{i}", Body=b"")
            c.put_object(Bucket="expect-bucket", Key=f"small{i}", Body=data["mid.bin"][:1000])
        assert c.head_object(Bucket="expect-bucket", Key="small4")["ContentLength"] == 1000

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
        # The checksum sent with the PUT comes back when asked, as on S3
        # (sealed at the provider: tests/it/checksums.rs scans for it).
        sums = c.head_object(Bucket="boto-bucket", Key="k/big", ChecksumMode="ENABLED")
        assert put.get("ChecksumCRC32") and sums.get("ChecksumCRC32") == put["ChecksumCRC32"], (put, sums)
        assert sums.get("ChecksumType") == "FULL_OBJECT", sums
        attrs = c.get_object_attributes(Bucket="boto-bucket", Key="k/big", ObjectAttributes=["ObjectSize", "Checksum", "ETag"])
        assert attrs["ObjectSize"] == len(body) and attrs["Checksum"]["ChecksumCRC32"] == put["ChecksumCRC32"], attrs
        for rng, want in [("bytes=0-0", body[:1]), ("bytes=65530-131100", body[65530:131101]), ("bytes=-10", body[-10:]), ("bytes=3000000-", body[3000000:])]:
            r = c.get_object(Bucket="boto-bucket", Key="k/big", Range=rng)
            assert r["Body"].read() == want, rng
        c.upload_file(os.path.join(files, "mid.bin"), "boto-bucket", "k/mid")
        listed = {o["Key"]: o["Size"] for o in c.list_objects_v2(Bucket="boto-bucket")["Contents"]}
        assert listed == {"k/big": len(body), "k/mid": 777_777}, listed
        # botocore presigns with Signature Version 2 unless told otherwise;
        # sealgate refuses V2 (replayable, docs/SECURITY.md), as S3 does for
        # buckets made since 2020: presign with s3v4.
        v2 = c.generate_presigned_url("get_object", Params={"Bucket": "boto-bucket", "Key": "k/mid"}, ExpiresIn=120)
        assert "AWSAccessKeyId=" in v2, v2
        try:
            urllib.request.urlopen(v2)
            raise AssertionError("a Signature Version 2 presigned URL was accepted")
        except urllib.error.HTTPError as e:
            assert e.code == 400 and b"AWS4-HMAC-SHA256" in e.read(), e.code
        c = boto(ep, signature_version="s3v4")
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
    aws_https()
    virtual_host()
    expect_continue()
    boto3_suite()
    s5cmd_suite()
    rclone_suite()


def signed(method, url, body=b"", headers=None, trailer=False):
    """A request signed like a real client would (botocore's SigV4), to send
    by hand with deliberately broken parts. `trailer`: an unsigned
    aws-chunked body with a trailing checksum (what boto3 sends over HTTPS)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    if trailer:
        req.context["checksum"] = {"request_algorithm": {"in": "trailer", "algorithm": "crc32", "name": "x-amz-checksum-crc32"}}
    S3SigV4Auth(Credentials(AK, SK), "s3", "us-east-1").add_auth(req)
    return req.prepare()


def send_raw(port, method, path, headers, body=b"", close_early=False):
    """Sends one HTTP/1.1 request on a fresh socket; returns (status, text),
    or None when the request was cut off on purpose."""
    import http.client
    if close_early:
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode() + body)
        time.sleep(0.3)
        sock.close()
        return None
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    if body:
        conn.send(body)
    r = conn.getresponse()
    out = (r.status, r.read().decode(errors="replace"))
    conn.close()
    return out


def hostile(name, gw, up):
    """Hostile input on the wire: each gets an S3 error or a clean abort, the
    gateway keeps serving, and nothing partial becomes visible upstream."""
    ep, port = gw.endpoint, gw.port
    c = boto(ep)
    c.create_bucket(Bucket="hostile")

    def still_serving():
        assert c.head_bucket(Bucket="hostile")["ResponseMetadata"]["HTTPStatusCode"] == 200

    def absent(key):
        try:
            c.head_object(Bucket="hostile", Key=key)
            raise AssertionError(f"{key} became visible")
        except c.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] in ("404", "NoSuchKey"), e.response

    def headers_of(req):
        h = {k: v for k, v in req.headers.items()}
        h["Host"] = f"127.0.0.1:{port}"
        return h

    @check(f"{name}: malformed XML body gets MalformedXML")
    def malformed_xml():
        body = b"<Delete><Object><Key>x</Key></Object"
        md5 = __import__("base64").b64encode(hashlib.md5(body).digest()).decode()
        req = signed("POST", f"{ep}/hostile?delete", body, {"Content-MD5": md5})
        status, text = send_raw(port, "POST", "/hostile?delete", headers_of(req), body)
        assert status == 400 and "<Code>MalformedXML</Code>" in text, (status, text)
        still_serving()

    @check(f"{name}: oversized request headers are refused, the gateway keeps serving")
    def oversized_headers():
        req = signed("GET", f"{ep}/hostile/x")
        h = headers_of(req)
        h["x-amz-meta-huge"] = "a" * (1 << 20)
        try:
            status, _ = send_raw(port, "GET", "/hostile/x", h)
            assert status in (400, 431), status
        except (ConnectionError, OSError):
            pass  # closing the connection is also a clean refusal
        still_serving()

    @check(f"{name}: user metadata over 2 KB gets MetadataTooLarge, nothing stored")
    def metadata_too_large():
        try:
            c.put_object(Bucket="hostile", Key="meta-big", Body=b"x", Metadata={"big": "m" * 2100})
            raise AssertionError("accepted")
        except c.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "MetadataTooLarge", e.response
        absent("meta-big")

    @check(f"{name}: non-UTF-8 key gets an S3 error, nothing stored")
    def non_utf8_key():
        req = signed("PUT", f"{ep}/hostile/bad%FF%FEkey", b"data")
        status, text = send_raw(port, "PUT", "/hostile/bad%FF%FEkey", headers_of(req), b"data")
        assert status == 400 and "<Code>" in text, (status, text)
        still_serving()
        assert not any("bad" in k for k in [o["Key"] for o in c.list_objects_v2(Bucket="hostile").get("Contents", [])])

    @check(f"{name}: very long key gets KeyTooLongError")
    def long_key():
        try:
            c.put_object(Bucket="hostile", Key="k" * 1025, Body=b"x")
            raise AssertionError("accepted")
        except c.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "KeyTooLongError", e.response

    @check(f"{name}: unknown query parameters are ignored like S3 does, and never change the operation")
    def unknown_query():
        c.put_object(Bucket="hostile", Key="q", Body=b"query body")
        req = signed("GET", f"{ep}/hostile/q?x-sealgate-unknown=1")
        status, text = send_raw(port, "GET", "/hostile/q?x-sealgate-unknown=1", headers_of(req))
        assert status == 200 and text == "query body", (status, text)

    def chunked_put(key, chunks, declared, close_early=False):
        body = b"".join(b"%x\r\n" % len(ch) + ch + b"\r\n" for ch in chunks)
        if not close_early:
            body += b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
        hdrs = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(declared),
                "x-amz-trailer": "x-amz-checksum-crc32",
                "Content-Length": str(len(body)) if not close_early else str(len(body) + 100000)}
        req = signed("PUT", f"{ep}/hostile/{key}", b"", hdrs, trailer=True)
        assert req.headers["X-Amz-Content-SHA256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        h = headers_of(req)
        return send_raw(port, "PUT", f"/hostile/{key}", h, body, close_early=close_early)

    @check(f"{name}: aws-chunked body cut off mid-stream creates nothing")
    def truncated_chunked():
        chunked_put("cut", [b"z" * 65536, b"z" * 40000], 300000, close_early=True)
        time.sleep(0.5)
        still_serving()
        absent("cut")

    @check(f"{name}: aws-chunked body shorter than declared gets an S3 error, creates nothing")
    def short_chunked():
        status, text = chunked_put("short", [b"z" * 1000], 5000)
        assert 400 <= status < 500 and "<Code>" in text, (status, text)
        still_serving()
        absent("short")

    @check(f"{name}: aws-chunked body with a wrong trailing checksum gets BadDigest, creates nothing")
    def bad_trailer():
        status, text = chunked_put("badsum", [b"z" * 1000], 1000)
        assert status == 400 and "BadDigest" in text, (status, text)
        absent("badsum")

    malformed_xml()
    oversized_headers()
    metadata_too_large()
    non_utf8_key()
    long_key()
    unknown_query()
    truncated_chunked()
    short_chunked()
    bad_trailer()


def refusals(name, gw, up):
    """What the provider refuses reaches the client as the S3 error it gives
    directly: each case runs against the provider (the gateway's provider
    credentials) and through sealgate, and a refusal must come back with the
    same code and HTTP status; nothing answers 500 and nothing refused is
    stored. A case the provider accepts is reported, not compared. Where the
    provider itself answers wrongly (`up.DEVIATIONS`, its bug named there
    and in docs/TESTING.md), sealgate's answer must be the S3 one."""
    once = Config(retries={"total_max_attempts": 1})
    g = boto(gw.endpoint, retries={"total_max_attempts": 1})
    d = boto3.client("s3", endpoint_url=up.endpoint, aws_access_key_id=UAK, aws_secret_access_key=USK, verify=up.ca,
                     region_name="us-east-1", config=once)

    def outcome(call):
        try:
            r = call()
            return ("ok", r.get("ResponseMetadata", {}).get("HTTPStatusCode") if isinstance(r, dict) else 200)
        except g.exceptions.ClientError as e:
            return (e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"])

    def aborted(c, b):
        uid = c.create_multipart_upload(Bucket=b, Key="gone")["UploadId"]
        etag = c.upload_part(Bucket=b, Key="gone", UploadId=uid, PartNumber=1, Body=b"p" * 1000)["ETag"]
        c.abort_multipart_upload(Bucket=b, Key="gone", UploadId=uid)
        return uid, etag

    def too_small(c, b):
        uid = c.create_multipart_upload(Bucket=b, Key="small-parts")["UploadId"]
        parts = [{"PartNumber": n, "ETag": c.upload_part(Bucket=b, Key="small-parts", UploadId=uid, PartNumber=n,
                                                          Body=b"s" * 1000)["ETag"]} for n in (1, 2)]
        return c.complete_multipart_upload(Bucket=b, Key="small-parts", UploadId=uid, MultipartUpload={"Parts": parts})

    def complete_aborted(c, b):
        uid, etag = aborted(c, b)
        return c.complete_multipart_upload(Bucket=b, Key="gone", UploadId=uid,
                                           MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})

    cases = [
        ("GetObject in a missing bucket", lambda c, b: c.get_object(Bucket=b + "-missing", Key="k")),
        ("GetObject of a missing key", lambda c, b: c.get_object(Bucket=b, Key="missing")),
        ("CopyObject from a missing source", lambda c, b: c.copy_object(Bucket=b, Key="copy", CopySource={"Bucket": b, "Key": "missing"})),
        ("CompleteMultipartUpload with parts under 5 MiB", too_small),
        ("UploadPart to an aborted upload", lambda c, b: c.upload_part(Bucket=b, Key="gone", UploadId=aborted(c, b)[0], PartNumber=2, Body=b"x")),
        ("AbortMultipartUpload of an aborted upload", lambda c, b: c.abort_multipart_upload(Bucket=b, Key="gone", UploadId=aborted(c, b)[0])),
        ("ListParts of an aborted upload", lambda c, b: c.list_parts(Bucket=b, Key="gone", UploadId=aborted(c, b)[0])),
        ("CompleteMultipartUpload of an aborted upload", complete_aborted),
        # Last: s3s-fs deletes a bucket with objects in it.
        ("DeleteBucket of a bucket with objects", lambda c, b: c.delete_bucket(Bucket=b)),
    ]
    quota = getattr(up, "bucket_quota", None)
    if quota:
        cases[-1:-1] = [
            ("PutObject (100 B) over a bucket quota", lambda c, b: c.put_object(Bucket=b + "-q", Key="q-small", Body=b"q" * 100)),
            ("PutObject (3 MiB) over a bucket quota", lambda c, b: c.put_object(Bucket=b + "-q", Key="q-large", Body=b"q" * (3 << 20))),
            ("UploadPart (5 MiB) over a bucket quota", lambda c, b: c.upload_part(
                Bucket=b + "-q", Key="q-mp", UploadId=c.create_multipart_upload(Bucket=b + "-q", Key="q-mp")["UploadId"],
                PartNumber=1, Body=b"q" * (5 << 20))),
            ("CopyObject into a bucket over its quota", lambda c, b: c.copy_object(Bucket=b + "-q", Key="q-copy", CopySource={"Bucket": b, "Key": "k"})),
        ]

    @check(f"{name}: provider refusals reach the client with the provider's code and status, never 500; nothing refused is stored")
    def run_refusals():
        for c, b in ((d, "refuse-direct"), (g, "refuse-sg")):
            c.create_bucket(Bucket=b)
            c.put_object(Bucket=b, Key="k", Body=b"refusals")
            if quota:
                c.create_bucket(Bucket=b + "-q")
                c.put_object(Bucket=b + "-q", Key="first", Body=b"first")
                quota(b + "-q", 1)
        wrong, notes = [], []
        for label, fn in cases:
            want = outcome(lambda: fn(d, "refuse-direct"))
            got = outcome(lambda: fn(g, "refuse-sg"))
            up.ensure_running()
            deviation = up.DEVIATIONS.get(label)
            if deviation:
                if got != deviation[0]:
                    wrong.append(f"{label}: through sealgate {got}, want {deviation[0]} (the provider answers {want}: {deviation[1]})")
                else:
                    notes.append(f"{label}: directly {want[1]} {want[0]} ({deviation[1]}); through sealgate {got[1]} {got[0]}")
            elif got[1] == 500:
                wrong.append(f"{label}: 500 through sealgate ({got[0]}), directly {want}")
            elif want[0] == "ok":
                notes.append(f"{label}: the provider accepts it; through sealgate {got[1]} {got[0]}")
            elif got != want:
                wrong.append(f"{label}: through sealgate {got[1]} {got[0]}, directly {want[1]} {want[0]}")
        for n in notes:
            print(f"     {n}", flush=True)
        assert not wrong, "\n".join(wrong)
        for key in ("copy", "small-parts", "gone"):
            assert outcome(lambda: g.head_object(Bucket="refuse-sg", Key=key))[0] in ("404", "NoSuchKey", "NoSuchBucket"), key
        if quota:
            for key in ("q-small", "q-large", "q-mp", "q-copy"):
                assert outcome(lambda: g.head_object(Bucket="refuse-sg-q", Key=key))[1] == 404, key
    run_refusals()


def provider_down(name, gw, up):
    """The provider's S3 endpoint dies mid-run (radosgw aborting on its own
    bug): sealgate answers 503 ServiceUnavailable meanwhile — never 500 or
    a partial body — and serves the same bytes once it is back."""
    @check(f"{name}: provider dies (radosgw abort on a '%' UploadPartCopy, directly): 503 meanwhile, same bytes after its restart")
    def run_down():
        c = boto(gw.endpoint, retries={"total_max_attempts": 1})
        c.create_bucket(Bucket="down-bucket")
        body = payload(300_000, 77)
        c.put_object(Bucket="down-bucket", Key="k", Body=body)
        assert up.crash(), "radosgw survived the UploadPartCopy that kills 16.2.15 (docs/TESTING.md needs an update)"
        for call in (lambda: c.get_object(Bucket="down-bucket", Key="k")["Body"].read(),
                     lambda: c.put_object(Bucket="down-bucket", Key="k2", Body=b"x" * 1000)):
            try:
                call()
                raise AssertionError("answered while the provider was down")
            except c.exceptions.ClientError as e:
                assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 503, e.response
        assert up.ensure_running() is True, "the harness did not restart radosgw"
        assert c.get_object(Bucket="down-bucket", Key="k")["Body"].read() == body
    run_down()


def multipart(name, gws_all, up, work):
    """Multipart uploads from every client, parts spread over several
    gateway instances. Listing sizes need the provider's `-N` ETag; s3s-fs
    lists none, so sealgate HEADs its large entries (front/list.rs) and the
    listing and sync checks run on every provider. s3s-fs lists no part
    ETags either, so the wrong-ETag completion check runs on moto only."""
    gw = gws_all[0]
    ep = gw.endpoint
    lists_etags = up.lists_etags
    files = os.path.join(work, "mp-files")
    os.makedirs(files, exist_ok=True)
    data = {}
    for i, (f, n) in enumerate({"mp-a.bin": 20 * 1024 * 1024 + 5, "mp-b.bin": 17 * 1024 * 1024}.items()):
        data[f] = payload(n, 100 + i)
        with open(os.path.join(files, f), "wb") as fh:
            fh.write(data[f])
    c = boto(ep)
    c.create_bucket(Bucket="mp-bucket")

    def same(back_dir):
        for f in data:
            assert open(os.path.join(back_dir, f), "rb").read() == data[f], f

    @check(f"{name}: aws CLI multipart cp up and back; sync twice transfers nothing the second time")
    def aws_multipart():
        aws = ["aws", "--endpoint-url", ep]
        for f in data:
            run(aws + ["s3", "cp", os.path.join(files, f), f"s3://mp-bucket/cli/{f}"])
        back = os.path.join(work, "mp-cli-back")
        os.makedirs(back, exist_ok=True)
        for f in data:
            run(aws + ["s3", "cp", f"s3://mp-bucket/cli/{f}", os.path.join(back, f)])
        same(back)
        head = c.head_object(Bucket="mp-bucket", Key="cli/mp-a.bin")
        assert head["ContentLength"] == len(data["mp-a.bin"]) and head["ETag"].strip('"').endswith("-3"), head
        listing = run(aws + ["s3", "ls", "s3://mp-bucket/cli/"])
        for f, b in data.items():
            assert any(l.split()[-1] == f and int(l.split()[-2]) == len(b) for l in listing.splitlines()), listing
        run(aws + ["s3", "sync", files, "s3://mp-bucket/sync/"])
        second = run(aws + ["s3", "sync", files, "s3://mp-bucket/sync/"])
        assert "upload:" not in second, second

    @check(f"{name}: boto3 parallel multipart with 6,000,000-byte parts (not 64 KiB-aligned) and with unequal parts out of order, ranges across parts")
    def boto_unaligned():
        from boto3.s3.transfer import TransferConfig
        cfg = TransferConfig(multipart_threshold=6_000_000, multipart_chunksize=6_000_000, max_concurrency=4)
        c.upload_file(os.path.join(files, "mp-a.bin"), "mp-bucket", "boto/mp-a.bin", Config=cfg)
        body = data["mp-a.bin"]
        head = c.head_object(Bucket="mp-bucket", Key="boto/mp-a.bin")
        assert head["ContentLength"] == len(body) and head["ETag"].strip('"').endswith("-4"), head
        assert c.get_object(Bucket="mp-bucket", Key="boto/mp-a.bin")["Body"].read() == body
        for a, b in [(5_999_990, 6_000_010), (17_999_999, 18_000_000), (len(body) - 7, len(body) - 1)]:
            got = c.get_object(Bucket="mp-bucket", Key="boto/mp-a.bin", Range=f"bytes={a}-{b}")["Body"].read()
            assert got == body[a:b + 1], (a, b)
        # Parts of unequal sizes, uploaded in parallel in reverse order.
        import concurrent.futures
        sizes = [6 << 20, (5 << 20) + 3, 7 << 20, 100_000]
        blob = payload(sum(sizes), 55)
        offs = [sum(sizes[:i]) for i in range(len(sizes))]
        uid = c.create_multipart_upload(Bucket="mp-bucket", Key="boto/unequal")["UploadId"]

        def put(i):
            return {"PartNumber": i + 1, "ETag": c.upload_part(Bucket="mp-bucket", Key="boto/unequal", UploadId=uid, PartNumber=i + 1,
                                                               Body=blob[offs[i]:offs[i] + sizes[i]])["ETag"]}
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            parts = sorted(pool.map(put, reversed(range(len(sizes)))), key=lambda p: p["PartNumber"])
        c.complete_multipart_upload(Bucket="mp-bucket", Key="boto/unequal", UploadId=uid, MultipartUpload={"Parts": parts})
        assert c.get_object(Bucket="mp-bucket", Key="boto/unequal")["Body"].read() == blob
        a = len(blob) - 50_000
        assert c.get_object(Bucket="mp-bucket", Key="boto/unequal", Range=f"bytes={a}-")["Body"].read() == blob[a:]

    @check(f"{name}: boto3 multipart bad input (wrong ETag, listed upload aborted)")
    def boto_bad():
        mp = c.create_multipart_upload(Bucket="mp-bucket", Key="bad")
        uid = mp["UploadId"]
        e1 = c.upload_part(Bucket="mp-bucket", Key="bad", UploadId=uid, PartNumber=1, Body=data["mp-b.bin"][:5 << 20])["ETag"]
        try:
            c.complete_multipart_upload(Bucket="mp-bucket", Key="bad", UploadId=uid,
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e1}]})
            raise AssertionError("completed with a part never uploaded")
        except c.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidPart", e.response
        if lists_etags:
            try:
                c.complete_multipart_upload(Bucket="mp-bucket", Key="bad", UploadId=uid,
                                            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}]})
                raise AssertionError("completed with a wrong ETag")
            except c.exceptions.ClientError as e:
                assert e.response["Error"]["Code"] == "InvalidPart", e.response
            listed = [u for u in c.list_multipart_uploads(Bucket="mp-bucket").get("Uploads", []) if u["Key"] == "bad"]
            assert len(listed) == 1, listed
            # The listing lists the id the client was given (from the upload
            # record in the state bucket): it lists the upload's parts and
            # aborts it (cleanup tools), and is refused for another key
            # (docs/FORMAT.md §Upload ids).
            lid = listed[0]["UploadId"]
            assert lid == uid, (lid, uid)
            assert len(c.list_parts(Bucket="mp-bucket", Key="bad", UploadId=lid).get("Parts", [])) == 1
            try:
                c.abort_multipart_upload(Bucket="mp-bucket", Key="other", UploadId=lid)
                raise AssertionError("a listed upload id worked for another key")
            except c.exceptions.ClientError as e:
                assert e.response["Error"]["Code"] == "NoSuchUpload", e.response
            # A record the provider altered (here: another upload's id put in
            # its place) is not listed: that upload lists in the "sgl." form,
            # which still lists its parts and aborts it.
            d = up.direct()
            other = c.create_multipart_upload(Bucket="mp-bucket", Key="bad2")["UploadId"]
            provider_ids = {u["Key"]: u["UploadId"] for u in d.list_multipart_uploads(Bucket="mp-bucket").get("Uploads", [])}
            rk = record_key("mp-bucket", "bad2", provider_ids["bad2"])
            assert d.get_object(Bucket=STATE, Key=rk)["Body"].read().decode() == other
            d.put_object(Bucket=STATE, Key=rk, Body=uid.encode())
            swapped = [u["UploadId"] for u in c.list_multipart_uploads(Bucket="mp-bucket").get("Uploads", []) if u["Key"] == "bad2"]
            assert len(swapped) == 1 and swapped[0].startswith("sgl."), swapped
            c.abort_multipart_upload(Bucket="mp-bucket", Key="bad2", UploadId=swapped[0])
            # Clients cannot reach the state bucket, whatever their grants.
            assert STATE not in [b["Name"] for b in c.list_buckets()["Buckets"]]
            for call in (lambda: c.list_objects_v2(Bucket=STATE), lambda: c.get_object(Bucket=STATE, Key=rk),
                         lambda: c.put_object(Bucket=STATE, Key=rk, Body=b"x")):
                try:
                    call()
                    raise AssertionError("a client reached the state bucket")
                except c.exceptions.ClientError as e:
                    assert e.response["Error"]["Code"] == "AccessDenied", e.response
            rk_bad = record_key("mp-bucket", "bad", provider_ids["bad"])
            assert d.get_object(Bucket=STATE, Key=rk_bad)["Body"].read().decode() == uid
            c.abort_multipart_upload(Bucket="mp-bucket", Key="bad", UploadId=lid)
            # Abort removes the record.
            left = [o["Key"] for o in d.list_objects_v2(Bucket=STATE).get("Contents", [])]
            assert rk_bad not in left, left
            # Completions remove theirs too: every record left belongs to an
            # upload still in flight.
            in_flight = {record_key(b["Name"], u["Key"], u["UploadId"])
                         for b in d.list_buckets()["Buckets"] if b["Name"] != STATE
                         for u in d.list_multipart_uploads(Bucket=b["Name"]).get("Uploads", [])}
            assert set(left) <= in_flight, (set(left) - in_flight)
        else:
            # The provider lacks ListMultipartUploads: a clear error, not 500.
            try:
                c.list_multipart_uploads(Bucket="mp-bucket")
                raise AssertionError("s3s-fs listed uploads")
            except c.exceptions.ClientError as e:
                assert e.response["Error"]["Code"] == "NotImplemented", e.response
            c.abort_multipart_upload(Bucket="mp-bucket", Key="bad", UploadId=uid)
        try:
            c.head_object(Bucket="mp-bucket", Key="bad")
            raise AssertionError("object visible")
        except c.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] in ("404", "NoSuchKey"), e.response

    @check(f"{name}: boto3 multipart: a part uploaded twice with the same bytes completes only with the ETag of the upload kept (docs/COMPATIBILITY.md); part ETags end in -1, the provider's own ETag also completes")
    def boto_twice():
        uid = c.create_multipart_upload(Bucket="mp-bucket", Key="twice")["UploadId"]
        part, tail = data["mp-b.bin"][:5 << 20], data["mp-b.bin"][-1000:]
        up_part = lambda n, b: c.upload_part(Bucket="mp-bucket", Key="twice", UploadId=uid, PartNumber=n, Body=b)["ETag"]
        first, second, last = up_part(1, part), up_part(1, part), up_part(2, tail)
        for e in (first, second, last):
            assert e.strip('"').endswith("-1"), e  # s3cmd skips its MD5 check
        # On S3 both uploads have one ETag (the MD5 of the bytes); sealgate
        # seals each upload with a fresh salt, and keeps no state to know
        # that two ciphertexts hold the same bytes.
        assert first != second
        complete = lambda parts: c.complete_multipart_upload(Bucket="mp-bucket", Key="twice", UploadId=uid,
                                                             MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in parts]})
        try:
            complete([(1, first), (2, last)])
            raise AssertionError("completed with the ETag of an upload the provider no longer holds")
        except c.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidPart", e.response
        # The provider's own part ETag (what sealgate returned before the
        # -1 suffix) names the same part.
        bare = '"' + second.strip('"')[:-2] + '"'
        # Without client retries: the first answer must be the success (a
        # provider answer the SDK cannot parse, such as moto's
        # CompleteMultipartUploadResponse root, once gave a 500 that only a
        # retry turned into "already completed").
        boto(ep, retries={"total_max_attempts": 1}).complete_multipart_upload(
            Bucket="mp-bucket", Key="twice", UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": bare}, {"PartNumber": 2, "ETag": last}]})
        assert c.get_object(Bucket="mp-bucket", Key="twice")["Body"].read() == part + tail

    @check(f"{name}: s5cmd parallel multipart (5 MB parts) up and back")
    def s5_multipart():
        s5 = ["s5cmd", "--endpoint-url", ep]
        for f in data:
            run(s5 + ["cp", "-p", "5", "-c", "4", os.path.join(files, f), f"s3://mp-bucket/s5/{f}"])
        back = os.path.join(work, "mp-s5-back")
        os.makedirs(back, exist_ok=True)
        for f in data:
            run(s5 + ["cp", f"s3://mp-bucket/s5/{f}", os.path.join(back, f)])
        same(back)

    @check(f"{name}: rclone multipart (5 MiB chunks) tree up and back")
    def rclone_multipart():
        conf = os.path.join(work, "rclone-mp.conf")
        with open(conf, "w") as f:
            f.write(f"[sg]\ntype = s3\nprovider = Other\nendpoint = {ep}\naccess_key_id = {AK}\nsecret_access_key = {SK}\nregion = us-east-1\nforce_path_style = true\n")
        rc = ["rclone", "--config", conf, "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M"]
        c.create_bucket(Bucket="mp-rclone")
        run(rc + ["copy", files, "sg:mp-rclone"])
        head = c.head_object(Bucket="mp-rclone", Key="mp-a.bin")
        assert head["ETag"].strip('"').endswith("-5"), head
        back = os.path.join(work, "mp-rclone-back")
        run(rc + ["copy", "sg:mp-rclone", back])
        same(back)
        run(rc + ["check", files, "sg:mp-rclone", "--download"])

    @check(f"{name}: 200 MiB multipart, parts spread over {len(gws_all)} gateway instances, read back through each")
    def spread():
        import concurrent.futures
        clients = [boto(g.endpoint, ca=g.ca) for g in gws_all]
        part, n = 8 << 20, 25
        big = bytearray(payload(part, 7))
        h = hashlib.sha256()
        blobs = []
        for i in range(n):
            big[:8] = i.to_bytes(8, "big")
            blobs.append(bytes(big))
            h.update(blobs[-1])
        uid = clients[0].create_multipart_upload(Bucket="mp-bucket", Key="spread")["UploadId"]

        def put(i):
            cl = clients[i % len(clients)]
            return {"PartNumber": i + 1, "ETag": cl.upload_part(Bucket="mp-bucket", Key="spread", UploadId=uid, PartNumber=i + 1, Body=blobs[i])["ETag"]}
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            parts = list(pool.map(put, reversed(range(n))))
        parts.sort(key=lambda p: p["PartNumber"])
        clients[-1].complete_multipart_upload(Bucket="mp-bucket", Key="spread", UploadId=uid, MultipartUpload={"Parts": parts})
        for cl in clients:
            g = hashlib.sha256()
            body = cl.get_object(Bucket="mp-bucket", Key="spread")["Body"]
            for chunk in iter(lambda: body.read(1 << 20), b""):
                g.update(chunk)
            assert g.hexdigest() == h.hexdigest(), "object differs through an instance"

    @check(f"{name}: aws CLI s3-to-s3 copies (CopyObject; UploadPartCopy above 8 MiB), copy-object REPLACE, conditional GETs")
    def copies():
        aws = ["aws", "--endpoint-url", ep]
        c.create_bucket(Bucket="copy-bucket")
        c.put_object(Bucket="mp-bucket", Key="small.bin", Body=data["mp-b.bin"][:100_000])
        run(aws + ["s3", "cp", "s3://mp-bucket/small.bin", "s3://copy-bucket/small.bin"])
        run(aws + ["s3", "cp", "s3://mp-bucket/cli/mp-a.bin", "s3://copy-bucket/big.bin"])
        back = os.path.join(work, "copy-back")
        os.makedirs(back, exist_ok=True)
        run(aws + ["s3", "cp", "s3://copy-bucket/big.bin", os.path.join(back, "big.bin")])
        assert open(os.path.join(back, "big.bin"), "rb").read() == data["mp-a.bin"]
        assert c.get_object(Bucket="copy-bucket", Key="small.bin")["Body"].read() == data["mp-b.bin"][:100_000]
        run(aws + ["s3api", "copy-object", "--bucket", "copy-bucket", "--key", "small.bin", "--copy-source", "copy-bucket/small.bin",
                   "--metadata-directive", "REPLACE", "--metadata", "reviewed=yes", "--content-type", "text/csv"])
        head = c.head_object(Bucket="copy-bucket", Key="small.bin")
        assert head["Metadata"] == {"reviewed": "yes"} and head["ContentType"] == "text/csv", head
        etag = head["ETag"]
        for kw, status in [({"IfNoneMatch": etag}, 304), ({"IfMatch": '"stale"'}, 412), ({"IfMatch": etag}, 200)]:
            try:
                r = c.get_object(Bucket="copy-bucket", Key="small.bin", **kw)
                got = r["ResponseMetadata"]["HTTPStatusCode"]
            except c.exceptions.ClientError as e:
                got = e.response["ResponseMetadata"]["HTTPStatusCode"]
            assert got == status, (kw, got)

    @check(f"{name}: keys with '%', '+', spaces and non-ASCII: PUT, list, GET, CopyObject and UploadPartCopy from them")
    def odd_keys():
        # Directly, radosgw 16.2.15 aborts on an UploadPartCopy whose source
        # key holds a '%' (docs/TESTING.md); sealgate copies by reading and
        # re-sealing, so through it the copy works on every provider.
        body = data["mp-b.bin"][:(6 << 20) + 17]
        keys = ["odd/100% sure.bin", "odd/a+b=c&d.bin", "odd/ünï cödé ✓.bin"]
        for k in keys:
            c.put_object(Bucket="mp-bucket", Key=k, Body=body)
        listed = {o["Key"]: o["Size"] for o in c.list_objects_v2(Bucket="mp-bucket", Prefix="odd/")["Contents"]}
        assert listed == {k: len(body) for k in keys}, listed
        for i, k in enumerate(keys):
            assert c.get_object(Bucket="mp-bucket", Key=k)["Body"].read() == body, k
            c.copy_object(Bucket="mp-bucket", Key=f"odd-copy/{i}", CopySource={"Bucket": "mp-bucket", "Key": k})
            uid = c.create_multipart_upload(Bucket="mp-bucket", Key=f"odd-upc/{i}")["UploadId"]
            parts = []
            for n, (a, b) in enumerate([(0, (5 << 20) - 1), (5 << 20, len(body) - 1)], 1):
                r = c.upload_part_copy(Bucket="mp-bucket", Key=f"odd-upc/{i}", UploadId=uid, PartNumber=n,
                                       CopySource={"Bucket": "mp-bucket", "Key": k}, CopySourceRange=f"bytes={a}-{b}")
                parts.append({"PartNumber": n, "ETag": r["CopyPartResult"]["ETag"]})
            c.complete_multipart_upload(Bucket="mp-bucket", Key=f"odd-upc/{i}", UploadId=uid, MultipartUpload={"Parts": parts})
            for dst in (f"odd-copy/{i}", f"odd-upc/{i}"):
                assert c.get_object(Bucket="mp-bucket", Key=dst)["Body"].read() == body, (k, dst)
        # Keys made of or padded with spaces are legal S3 keys; the Rust SDK
        # upstream refuses a whitespace-only one unless sealgate works around
        # it (src/upstream/keys.rs).
        for k in [" ", "   ", " lead and trail "]:
            c.put_object(Bucket="mp-bucket", Key=k, Body=b"a key of spaces")
            assert c.head_object(Bucket="mp-bucket", Key=k)["ContentLength"] == 15, k
            assert c.get_object(Bucket="mp-bucket", Key=k)["Body"].read() == b"a key of spaces", k
            c.copy_object(Bucket="mp-bucket", Key=k + "copy", CopySource={"Bucket": "mp-bucket", "Key": k})
            listed = {o["Key"] for o in c.list_objects_v2(Bucket="mp-bucket", Prefix=" ")["Contents"]}
            assert k in listed and k + "copy" in listed, (k, listed)
            c.delete_objects(Bucket="mp-bucket", Delete={"Objects": [{"Key": k}, {"Key": k + "copy"}]})
            c.delete_object(Bucket="mp-bucket", Key=k)
        assert not c.list_objects_v2(Bucket="mp-bucket", Prefix=" ").get("Contents"), "space keys not deleted"

    aws_multipart()
    copies()
    odd_keys()
    boto_unaligned()
    boto_bad()
    if lists_etags:
        boto_twice()
    s5_multipart()
    rclone_multipart()  # rclone checks downloads against listing sizes
    spread()


def passthrough(name, sealgate, up, work):
    """A bucket stored unencrypted under a registered exception, driven by
    the aws CLI: plaintext byte for byte at the provider, usage records in
    the audit log, and refusal once the exception is revoked."""
    keys = os.path.join(work, "keys")
    registry = os.path.join(work, "exceptions.jsonl")
    audit = os.path.join(work, "audit.jsonl")
    env = dict(os.environ, SEALGATE_KEYS_DIR=keys, SEALGATE_REGISTRY=registry)

    def admin(*args):
        r = subprocess.run([sealgate, *args], env=env, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"sealgate {' '.join(args)}: {r.stdout}{r.stderr}")
        return r.stdout

    @check(f"{name}: passthrough bucket under an exception (aws CLI): plaintext upstream, usage records, refused after revocation")
    def run_passthrough():
        admin("exception", "register", "--id", "EX-E2E-1", "--approver", "CISO", "--decision", "e2e minutes item 1",
              "--reason", "public downloads", "--risk", "low", "--classification", "public",
              "--bucket", "open-*", "--allow", "unencrypted-writes", "--expires", "2099-01-01")
        gw = Gateway(sealgate, up, work, name="gw-policy", audit=audit,
                     extra=f'[policy]\nregistry = "{registry}"\n[[policy.passthrough]]\nbucket = "open-downloads"\nexception = "EX-E2E-1"\n')
        try:
            aws = ["aws", "--endpoint-url", gw.endpoint]
            src = os.path.join(work, "open.txt")
            with open(src, "wb") as f:
                f.write(MARKER * 100)
            run(aws + ["s3", "mb", "s3://open-downloads"])
            run(aws + ["s3", "cp", src, "s3://open-downloads/open.txt"])
            stored = dict(up.stored_blobs())
            blob = next(b for w, b in stored.items() if w.endswith("open-downloads/open.txt") or w.endswith("open-downloads" + os.sep + "open.txt"))
            assert blob.startswith(MARKER * 100), "passthrough object is not the plaintext"
            back = os.path.join(work, "open-back.txt")
            run(aws + ["s3", "cp", "s3://open-downloads/open.txt", back])
            assert open(back, "rb").read() == MARKER * 100
            admin("exception", "revoke", "EX-E2E-1", "--by", "DPO", "--reason", "e2e")
            r = subprocess.run(aws + ["s3", "cp", src, "s3://open-downloads/late.txt"], env=client_env(), capture_output=True, text=True, timeout=120)
            assert r.returncode != 0 and "AccessDenied" in r.stderr and "EX-E2E-1" in r.stderr, r.stderr
        finally:
            gw.stop()
        log = open(audit).read()
        for ev in ("exception_in_force", "exception_used", "exception_denied"):
            assert ev in log, ev
        admin("audit", "verify", "--audit-log", audit)
    run_passthrough()


def metrics(name, gw):
    @check(f"{name}: /metrics parses with the Prometheus client library and counts the traffic; health endpoints answer")
    def run_metrics():
        from prometheus_client.parser import text_string_to_metric_families
        base = f"http://127.0.0.1:{gw.admin_port}"
        assert urllib.request.urlopen(base + "/health/live").status == 200
        assert urllib.request.urlopen(base + "/health/ready").status == 200
        text = urllib.request.urlopen(base + "/metrics").read().decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        def total(fam, **labels):
            return sum(s.value for s in fams[fam].samples
                       if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items()))
        puts = total("sealgate_requests", operation="PutObject", status="200")
        assert puts > 20, puts
        assert total("sealgate_requests", operation="UploadPart", status="200") > 0
        assert total("sealgate_upstream_requests", operation="PutObject", outcome="2xx") >= puts
        for fam in ("sealgate_request_duration_seconds", "sealgate_upstream_request_duration_seconds",
                    "sealgate_connections", "sealgate_auth_failures", "sealgate_decryption_failures",
                    "sealgate_upstream_retries", "sealgate_received_bytes", "sealgate_sent_bytes"):
            assert fam in fams, (fam, list(fams))
        # The counters move with traffic: one more PUT shows at once.
        s3 = boto(gw.endpoint)
        s3.put_object(Bucket="boto-bucket", Key="one-more", Body=b"x" * 1000)
        again = {f.name: f for f in text_string_to_metric_families(
            urllib.request.urlopen(base + "/metrics").read().decode())}
        fams.clear()
        fams.update(again)
        assert total("sealgate_requests", operation="PutObject", status="200") == puts + 1
    run_metrics()


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


def client_matrix(matrix, kind, up, gw, work):
    """The client matrix (tests/e2e/clients.py) on this provider, directly and
    through the gateway. After scan(): its direct cells store plaintext at
    the provider (it scans what went through sealgate itself)."""
    direct = clients.Target("direct", up.endpoint, UAK, USK, up.ca)
    through = clients.Target("sealgate", gw.endpoint, AK, SK, gw.ca)
    results.extend(matrix.run(kind, direct, through, work, getattr(up, "stored_blobs", None),
                              select=SELECT, skipped=skipped))


CLIENT_NAMES = ["aws", "boto3", "s5cmd", "rclone", "s3cmd", "restic"]


def main():
    ap = argparse.ArgumentParser(
        description="End-to-end suite: real S3 clients -> sealgate -> s3s-fs, moto and Ceph RGW.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""filters (none: run everything, as tests/run.sh does):
  --provider NAME   only these providers (repeatable; --upstream is the same)
  --client NAME     only the checks that drive these clients, by the start of
                    the check's name, and their client-matrix cells (repeatable);
                    checks that drive no client (raw HTTP, metrics, the
                    provider's marker scan) are skipped; the matrix's own
                    plaintext scan runs whenever a matrix cell ran
  -k TEXT           only the checks whose name contains TEXT, case-insensitive
                    (repeatable: any of them); names are printed as they run,
                    'PROVIDER: what it checks'
  a check runs when it passes every filter given; what was skipped is counted
  in the closing line. A check may use what an earlier check of its section
  stored (aws CLI sync uses the bucket 'aws CLI mb/cp' made): select both.

examples:
  run_e2e.py --sealgate B --s3s-fs F --provider moto --client rclone
  run_e2e.py --sealgate B --s3s-fs F --provider s3s-fs -k 'aws CLI'
  run_e2e.py --sealgate B --s3s-fs F --provider moto -k matrix --client s3cmd""")
    ap.add_argument("--sealgate", required=True)
    ap.add_argument("--s3s-fs", required=True)
    ap.add_argument("--upstream", "--provider", dest="upstream", action="append", choices=[k for k, _ in PROVIDERS],
                    help="run only against this provider (repeatable)")
    ap.add_argument("--client", action="append", choices=CLIENT_NAMES,
                    help="run only the checks and matrix cells of this client (repeatable)")
    ap.add_argument("-k", dest="keyword", action="append", metavar="TEXT",
                    help="run only the checks whose name contains TEXT (repeatable)")
    ap.add_argument("--large-gib", type=int, default=int(os.environ.get("SEALGATE_E2E_LARGE_GIB", "5")),
                    help="size of the large-object check on s3s-fs (0 to skip)")
    ap.add_argument("--matrix-only", action="store_true", help="run only the client matrix (tests/e2e/clients.py)")
    args = ap.parse_args()
    global UP, SELECT
    if args.client or args.keyword:
        SELECT = Select(args.client, args.keyword)
    matrix = clients.Matrix()
    for kind, provider in PROVIDERS:
        if args.upstream and kind not in args.upstream:
            continue
        work = tempfile.mkdtemp(prefix=f"sealgate-e2e-{kind}-")
        up = gw = gws = gw3 = None
        try:
            pki = make_pki(work)
            up = UP = provider(kind, work, args, pki)
            gw = Gateway(args.sealgate, up, work, admin=True)
            gws = Gateway(args.sealgate, up, work, name="gw-tls", tls=pki)
            gw3 = Gateway(args.sealgate, up, work, name="gw3")
            if args.matrix_only:
                client_matrix(matrix, kind, up, gw, work)
                continue
            suite(kind, gw, gws, work)
            hostile(kind, gw, up)
            refusals(kind, gw, up)
            multipart(kind, [gw, gws, gw3], up, work)
            metrics(kind, gw)
            if hasattr(up, "crash"):
                provider_down(kind, gw, up)
            if up.large and args.large_gib > 0:
                large(kind, gw, work, args.large_gib)
            scan(kind, up)
            client_matrix(matrix, kind, up, gw, work)
            if up.passthrough:
                # After the scan: this bucket holds plaintext by decision.
                passthrough(kind, args.sealgate, up, work)
        except Exception:
            results.append((f"{kind}: setup", False))
            traceback.print_exc()
        finally:
            for p in (gw, gws, gw3, up):
                if p:
                    try:
                        p.stop()
                    except Exception:
                        pass
            if all(ok for _, ok in results):
                shutil.rmtree(work, ignore_errors=True)
            else:
                print(f"logs kept in {work}")
    print("client matrix (tests/e2e/clients.py; docs/TESTING.md):\n" + matrix.table())
    passed = sum(1 for _, ok in results if ok)
    failed = len(results) - passed
    print(f"e2e: {passed} passed, {failed} failed" + (f", {len(skipped)} skipped by the filters" if SELECT else ""))
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
