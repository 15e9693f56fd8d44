"""Client matrix: every real client, unchanged, on every provider, directly and
through sealgate (docs/TESTING.md shows the table).

run_e2e.py's main() starts each provider and a gateway in front of it, then
calls `Matrix.run(provider, direct, through)` with two `Target`s: the
provider itself (its own endpoint, credentials and CA) and the gateway. Each
client runs the same steps against both; a cell is `pass` or the step that
failed and why. A step that fails *directly* because of the provider is
listed in KNOWN with the provider's bug: it is expected to fail on that
provider whichever target runs it (and an unexpected pass is reported, so
KNOWN stays true). Anything else that fails fails the run; a cell that fails
through sealgate while it passes directly is a sealgate bug.

Files are small and thresholds low (5 MiB parts, an 11 MiB file) so every
client uploads above its multipart threshold while the whole matrix stays
fast. What each client checks in more depth through sealgate stays in
run_e2e.py's suites (aws CLI over HTTPS, boto3 unequal parts, hostile input,
spread uploads...); the matrix is the same steps on both sides of the
gateway.

After the cells, everything the provider stores is scanned: what was
written through sealgate carries a marker of its own, and neither it nor the
MD5 of any file written through sealgate (s3cmd and rclone store the MD5 in
user metadata) may appear at the provider.
"""

import base64
import concurrent.futures
import hashlib
import os
import random
import shutil
import ssl
import subprocess
import time
import traceback
import urllib.parse
import urllib.request

import boto3
from botocore.config import Config

# Only files written through sealgate contain it (direct files do not), so
# the scan can tell a leak from a direct cell's own data.
VIA_MARKER = b"MATRIX-VIA-SEALGATE-MARKER-5e0a"
MIB = 1 << 20
PART = 5 * MIB
FILES = {"a.txt": 1000, "b.bin": 300_000, "big.bin": 11 * MIB + 3}
CLIENTS = ["aws CLI", "s3cmd", "rclone", "s5cmd", "restic", "boto3"]

# (client, provider, step) -> the provider's bug that makes the step fail
# when run directly against that provider (and so through sealgate too).
# (client, provider, step, target) -> the same, for one target only.
KNOWN = {
    ("s3cmd", "s3s-fs", "sync", "direct"):
        "s3s-fs lists objects without ETags; s3cmd's sync reads every listed entry's ETag (KeyError: 'ETag'); "
        "sealgate HEADs such entries and lists their ETags",
    ("restic", "s3s-fs", "check --read-data", "direct"):
        "s3s-fs takes restic's empty `delimiter=` as a real delimiter, so the listing of data/ misses every pack "
        "(\"pack ...: does not exist\"); sealgate forwards no empty delimiter",
    ("boto3", "moto", "wrong checksum refused", "direct"):
        "moto stores a PUT whose x-amz-checksum-sha256 does not match the body; sealgate verifies it (BadDigest)",
    ("boto3", "rgw", "wrong checksum refused", "direct"):
        "RGW 16.2.15 (Pacific) predates S3's additional checksums and stores a PUT whose x-amz-checksum-sha256 "
        "does not match the body; sealgate verifies it (BadDigest)",
}


class Target:
    """Where a client points: the provider directly, or sealgate."""

    def __init__(self, label, endpoint, access_key, secret_key, ca=None):
        self.label, self.endpoint, self.ak, self.sk, self.ca = label, endpoint, access_key, secret_key, ca
        u = urllib.parse.urlparse(endpoint)
        self.https, self.netloc = u.scheme == "https", u.netloc

    def env(self, work):
        env = dict(os.environ)
        env.update(AWS_ACCESS_KEY_ID=self.ak, AWS_SECRET_ACCESS_KEY=self.sk, AWS_DEFAULT_REGION="us-east-1",
                   AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true", RESTIC_PASSWORD="matrix-restic-pass",
                   RESTIC_CACHE_DIR=os.path.join(work, "restic-cache"))
        cfg = os.path.join(work, "aws-config")
        with open(cfg, "w") as f:
            f.write(f"[default]\ns3 =\n  multipart_threshold = {PART}\n  multipart_chunksize = {PART}\n")
        env["AWS_CONFIG_FILE"] = cfg
        env.pop("AWS_CA_BUNDLE", None)
        if self.ca:
            env["AWS_CA_BUNDLE"] = self.ca  # aws CLI
            env["SSL_CERT_FILE"] = self.ca  # Go clients: s5cmd, restic
        return env

    def boto(self):
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.ak, aws_secret_access_key=self.sk,
                            region_name="us-east-1", verify=self.ca,
                            config=Config(s3={"addressing_style": "path"}, signature_version="s3v4",
                                          retries={"total_max_attempts": 2},
                                          connect_timeout=10, read_timeout=60))


class StepFailed(Exception):
    pass


def payload(size, seed, marker):
    rng = random.Random(seed)
    out = bytearray(rng.randbytes(size))
    if marker:
        for pos in range(0, max(size - len(marker), 0), 4096):
            out[pos:pos + len(marker)] = marker
    return bytes(out[:size])


def make_files(root, via):
    os.makedirs(root, exist_ok=True)
    data = {}
    for i, (name, n) in enumerate(FILES.items()):
        data[name] = payload(n, 700 + i + (50 if via else 0), VIA_MARKER if via else None)
        with open(os.path.join(root, name), "wb") as f:
            f.write(data[name])
    return data


def same_tree(want, got_dir):
    for name, body in want.items():
        path = os.path.join(got_dir, name)
        if not os.path.exists(path):
            raise AssertionError(f"{name} missing after the round trip")
        if open(path, "rb").read() != body:
            raise AssertionError(f"{name} differs after the round trip")


class Cell:
    """One client on one target: steps run in order; the first unexpected
    failure ends the cell."""

    def __init__(self, client, provider, target, work):
        self.client, self.provider, self.target = client, provider, target
        self.work = work
        self.env = target.env(work)
        self.notes = []  # known provider failures seen
        self.unexpected_pass = []

    def run(self, cmd, timeout=180):
        r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.work)
        if r.returncode != 0:
            tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-3:]
            raise AssertionError(f"{os.path.basename(cmd[0])} {cmd[1] if len(cmd) > 1 else ''} exited {r.returncode}: {' | '.join(tail)}")
        return r.stdout + r.stderr

    def step(self, name, fn):
        known = KNOWN.get((self.client, self.provider, name, self.target.label)) or KNOWN.get((self.client, self.provider, name))
        try:
            fn()
        except Exception as e:
            if known:
                self.notes.append(f"{name}: {known}")
                return
            traceback.print_exc()
            raise StepFailed(f"{name}: {str(e).splitlines()[0][:160] if str(e) else type(e).__name__}")
        if known:
            self.unexpected_pass.append(name)


def aws_cell(cell, bucket, files, data):
    aws = ["aws", "--endpoint-url", cell.target.endpoint]
    back = os.path.join(cell.work, "back")
    cell.step("mb", lambda: cell.run(aws + ["s3", "mb", f"s3://{bucket}"]))
    cell.step("cp up", lambda: [cell.run(aws + ["s3", "cp", os.path.join(files, f), f"s3://{bucket}/cp/{f}"]) for f in FILES])

    def ls():
        out = cell.run(aws + ["s3", "ls", f"s3://{bucket}/cp/"])
        for f, n in FILES.items():
            assert any(l.split()[-1] == f and int(l.split()[-2]) == n for l in out.splitlines()), f"ls size of {f}: {out}"
    cell.step("ls sizes", ls)

    def cp_back():
        os.makedirs(back, exist_ok=True)
        for f in FILES:
            cell.run(aws + ["s3", "cp", f"s3://{bucket}/cp/{f}", os.path.join(back, f)])
        same_tree(data, back)
    cell.step("cp back", cp_back)

    def sync_twice():
        cell.run(aws + ["s3", "sync", files, f"s3://{bucket}/sync/"])
        second = cell.run(aws + ["s3", "sync", files, f"s3://{bucket}/sync/"])
        assert "upload:" not in second, f"second sync moved files: {second.strip()[:200]}"
    cell.step("sync twice", sync_twice)

    def s3_to_s3():
        # Above the threshold: UploadPartCopy of each part.
        cell.run(aws + ["s3", "cp", f"s3://{bucket}/cp/big.bin", f"s3://{bucket}/copy/big.bin"])
        cell.run(aws + ["s3", "cp", f"s3://{bucket}/cp/a.txt", f"s3://{bucket}/copy/a.txt"])
        out = os.path.join(cell.work, "copied")
        os.makedirs(out, exist_ok=True)
        cell.run(aws + ["s3", "cp", "--recursive", f"s3://{bucket}/copy/", out])
        same_tree({k: data[k] for k in ("big.bin", "a.txt")}, out)
    cell.step("s3-to-s3 copy", s3_to_s3)


def s3cmd_cell(cell, bucket, files, data):
    t = cell.target
    cfg = os.path.join(cell.work, "s3cfg")
    with open(cfg, "w") as f:
        f.write(f"""[default]
access_key = {t.ak}
secret_key = {t.sk}
host_base = {t.netloc}
host_bucket = {t.netloc}
use_https = {t.https}
check_ssl_certificate = True
{f'ca_certs_file = {t.ca}' if t.ca else ''}
signature_v2 = False
bucket_location = us-east-1
multipart_chunk_size_mb = {PART // MIB}
""")
    s3 = ["s3cmd", "-c", cfg]
    back = os.path.join(cell.work, "back")
    cell.step("mb", lambda: cell.run(s3 + ["mb", f"s3://{bucket}"]))

    def put():
        for f in FILES:
            cell.run(s3 + ["put", os.path.join(files, f), f"s3://{bucket}/put/{f}"])
        # Above the multipart threshold (s3cmd checks each part's ETag).
        etag = t.boto().head_object(Bucket=bucket, Key="put/big.bin")["ETag"]
        assert etag.strip('"').endswith("-3"), etag
    cell.step("put (multipart)", put)

    def ls():
        out = cell.run(s3 + ["ls", f"s3://{bucket}/put/"])
        for f, n in FILES.items():
            assert any(l.split()[-1] == f"s3://{bucket}/put/{f}" and int(l.split()[-2]) == n for l in out.splitlines()), out
    cell.step("ls sizes", ls)

    def get():
        os.makedirs(back, exist_ok=True)
        for f in FILES:
            out = cell.run(s3 + ["get", "--force", f"s3://{bucket}/put/{f}", os.path.join(back, f)])
            assert "MD5 signatures do not match" not in out, out
        same_tree(data, back)
    cell.step("get", get)

    def sync():
        cell.run(s3 + ["sync", files + "/", f"s3://{bucket}/sync/"])
        second = cell.run(s3 + ["sync", files + "/", f"s3://{bucket}/sync/"])
        assert "upload:" not in second, f"second sync moved files: {second.strip()[:200]}"
        down = os.path.join(cell.work, "sync-back")
        os.makedirs(down, exist_ok=True)
        cell.run(s3 + ["sync", f"s3://{bucket}/sync/", down + "/"])
        same_tree(data, down)
    cell.step("sync", sync)

    def delete():
        for f in FILES:
            cell.run(s3 + ["del", f"s3://{bucket}/put/{f}"])
        out = cell.run(s3 + ["ls", f"s3://{bucket}/put/"])
        assert "put/" not in out, out
    cell.step("del", delete)


def rclone_cell(cell, bucket, files, data):
    t = cell.target
    conf = os.path.join(cell.work, "rclone.conf")
    with open(conf, "w") as f:
        f.write(f"[m]\ntype = s3\nprovider = Other\nendpoint = {t.endpoint}\naccess_key_id = {t.ak}\n"
                f"secret_access_key = {t.sk}\nregion = us-east-1\nforce_path_style = true\n")
    rc = ["rclone", "--config", conf, "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", "--retries", "1"]
    if t.ca:
        rc += ["--ca-cert", t.ca]
    cell.step("mkdir", lambda: cell.run(rc + ["mkdir", f"m:{bucket}"]))
    # The bucket root: s3s-fs answers HEAD on a "directory" key with 500.
    cell.step("sync up", lambda: cell.run(rc + ["sync", files, f"m:{bucket}"]))

    def check():
        # With hashes where both sides have MD5 (else rclone says the hashes
        # could not be checked and compares sizes), then by content.
        cell.run(rc + ["check", files, f"m:{bucket}"])
        cell.run(rc + ["check", files, f"m:{bucket}", "--download"])
    cell.step("check", check)

    def sync_back():
        back = os.path.join(cell.work, "back")
        cell.run(rc + ["sync", f"m:{bucket}", back])
        same_tree(data, back)
        again = cell.run(rc + ["sync", files, f"m:{bucket}", "-v"])
        assert "Copied" not in again, f"second sync copied: {again.strip()[:200]}"
    cell.step("sync back", sync_back)


def s5cmd_cell(cell, bucket, files, data):
    s5 = ["s5cmd", "--endpoint-url", cell.target.endpoint]
    cell.step("mb", lambda: cell.run(s5 + ["mb", f"s3://{bucket}"]))
    cell.step("cp parallel multipart",
              lambda: [cell.run(s5 + ["cp", "-p", "5", "-c", "4", os.path.join(files, f), f"s3://{bucket}/{f}"]) for f in FILES])

    def ls():
        out = cell.run(s5 + ["ls", f"s3://{bucket}/*"])
        for f, n in FILES.items():
            assert any(l.split()[-1] == f and int(l.split()[-2]) == n for l in out.splitlines()), out
    cell.step("ls sizes", ls)

    def back():
        d = os.path.join(cell.work, "back")
        os.makedirs(d, exist_ok=True)
        cell.run(s5 + ["cp", "-c", "4", f"s3://{bucket}/*", d + "/"])
        same_tree(data, d)
    cell.step("cp back", back)


def restic_cell(cell, bucket, files, data):
    t = cell.target
    repo = ["restic", "-r", f"s3:{t.endpoint}/{bucket}"] + (["--cacert", t.ca] if t.ca else [])
    cell.step("init", lambda: cell.run(repo + ["init"]))
    cell.step("backup", lambda: cell.run(repo + ["backup", files]))
    cell.step("check --read-data", lambda: cell.run(repo + ["check", "--read-data"]))

    def restore():
        out = os.path.join(cell.work, "restore")
        cell.run(repo + ["restore", "latest", "--target", out])
        same_tree(data, os.path.join(out, files.lstrip("/")))
    cell.step("restore", restore)


def boto3_cell(cell, bucket, files, data):
    from boto3.s3.transfer import TransferConfig
    t = cell.target
    c = t.boto()
    cell.step("create bucket", lambda: c.create_bucket(Bucket=bucket))

    def metadata():
        c.put_object(Bucket=bucket, Key="meta", Body=data["a.txt"], Metadata={"owner": "matrix", "n": "1"},
                     ContentType="text/x-matrix", CacheControl="no-cache")
        h = c.head_object(Bucket=bucket, Key="meta")
        assert h["Metadata"] == {"owner": "matrix", "n": "1"}, h["Metadata"]
        assert h["ContentType"] == "text/x-matrix" and h["CacheControl"] == "no-cache", h
        assert h["ContentLength"] == len(data["a.txt"]), h
    cell.step("metadata", metadata)

    def ranges():
        cfg = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=3)
        c.upload_file(os.path.join(files, "big.bin"), bucket, "big", Config=cfg)
        body = data["big.bin"]
        assert c.get_object(Bucket=bucket, Key="big")["Body"].read() == body
        for rng, want in [("bytes=0-0", body[:1]), (f"bytes={PART - 5}-{PART + 5}", body[PART - 5:PART + 6]),
                          ("bytes=-7", body[-7:]), (f"bytes={2 * PART}-", body[2 * PART:])]:
            assert c.get_object(Bucket=bucket, Key="big", Range=rng)["Body"].read() == want, rng
    cell.step("ranges (multipart)", ranges)

    def presigned():
        url = c.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "meta"}, ExpiresIn=300)
        ctx = ssl.create_default_context(cafile=t.ca) if t.ca else None
        assert urllib.request.urlopen(url, context=ctx, timeout=60).read() == data["a.txt"]
        put = c.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "presigned-put"}, ExpiresIn=300)
        # urllib would send Content-Type: application/x-www-form-urlencoded,
        # which moto takes as a form (and stores an empty body).
        req = urllib.request.Request(put, data=data["b.bin"], method="PUT", headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(req, context=ctx, timeout=60).read()
        assert c.get_object(Bucket=bucket, Key="presigned-put")["Body"].read() == data["b.bin"]
    cell.step("presigned", presigned)

    def pagination():
        for i in range(5):
            c.put_object(Bucket=bucket, Key=f"page/{i}", Body=data["b.bin"][:i * 1000])
        seen = {}
        pages = 0
        for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="page/", PaginationConfig={"PageSize": 2}):
            pages += 1
            seen.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        assert seen == {f"page/{i}": i * 1000 for i in range(5)} and pages == 3, (seen, pages)
    cell.step("pagination", pagination)

    def checksums():
        for algo in ("CRC32", "SHA256"):
            c.put_object(Bucket=bucket, Key=f"sum/{algo}", Body=data["b.bin"], ChecksumAlgorithm=algo)
            r = c.get_object(Bucket=bucket, Key=f"sum/{algo}", ChecksumMode="ENABLED")
            assert r["Body"].read() == data["b.bin"], algo  # botocore checks a returned checksum
    cell.step("checksums", checksums)

    def wrong_checksum():
        wrong = base64.b64encode(hashlib.sha256(b"not the body").digest()).decode()
        try:
            c.put_object(Bucket=bucket, Key="sum/wrong", Body=data["b.bin"], ChecksumSHA256=wrong)
            raise AssertionError("a wrong x-amz-checksum-sha256 was accepted")
        except c.exceptions.ClientError as e:
            assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
    cell.step("wrong checksum refused", wrong_checksum)


CELLS = {"aws CLI": aws_cell, "s3cmd": s3cmd_cell, "rclone": rclone_cell, "s5cmd": s5cmd_cell,
         "restic": restic_cell, "boto3": boto3_cell}


class Matrix:
    def __init__(self):
        self.cells = {}  # (client, provider, target label) -> text
        self.providers = []
        self.seconds = {}

    def run(self, provider, direct, through, work, stored_blobs=None, select=None, skipped=None):
        """Runs every client against `direct` and `through` (Targets) on
        `provider` (a name); returns [(check name, ok)] for the run's
        results. `stored_blobs()` yields (where, bytes) of everything the
        provider stores, for the leak scan. `select(name)` (run_e2e.py's
        --client and -k) picks the cells to run by name; the others are
        named in `skipped` and shown as "not run"."""
        start = time.time()
        self.providers.append(provider)
        root = os.path.join(work, "matrix")
        results = []
        via_md5s = set()
        jobs = []
        for target in (direct, through):
            via = target is through
            for client in CLIENTS:
                if select is not None and not select(f"{provider}: matrix {client} {target.label}"):
                    skipped.append(f"{provider}: matrix {client} {target.label}")
                    continue
                tag = f"{client.split()[0].lower()}-{'s' if via else 'd'}"
                cwork = os.path.join(root, tag)
                files = os.path.join(cwork, "files")
                data = make_files(files, via)
                if via:
                    for b in data.values():
                        d = hashlib.md5(b).digest()
                        via_md5s.update({d.hex().encode(), base64.b64encode(d)})
                jobs.append((client, target, f"mx-{tag}", cwork, files, data))

        def one(job):
            client, target, bucket, cwork, files, data = job
            cell = Cell(client, provider, target, cwork)
            t = time.time()
            try:
                CELLS[client](cell, bucket, files, data)
                if cell.unexpected_pass:
                    text = f"FAIL: {', '.join(cell.unexpected_pass)} passed but KNOWN says the provider breaks it: update KNOWN"
                else:
                    text = "pass" + (", except " + "; ".join(cell.notes) if cell.notes else "")
                ok = not cell.unexpected_pass
            except StepFailed as e:
                text, ok = f"FAIL: {e}", False
            except Exception as e:  # setup of the cell itself
                traceback.print_exc()
                text, ok = f"FAIL: {type(e).__name__}: {e}", False
            return client, target.label, text, ok, time.time() - t

        # Two cells at a time: the clients spend most of their time waiting
        # on the provider and the gateway.
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for client, label, text, ok, secs in pool.map(one, jobs):
                self.cells[(client, provider, label)] = text
                name = f"{provider}: matrix {client} {label}"
                results.append((name, ok))
                print(f"{'ok  ' if ok else 'FAIL'} {name}: {text} ({secs:.1f}s)", flush=True)
        for client in CLIENTS:
            if (client, provider, direct.label) not in self.cells or (client, provider, through.label) not in self.cells:
                continue
            d, s = self.cells[(client, provider, direct.label)], self.cells[(client, provider, through.label)]
            if d.startswith("pass") and not s.startswith("pass"):
                print(f"     sealgate bug: {client} on {provider} passes directly and fails through sealgate", flush=True)
        name = f"{provider}: matrix upstream holds no plaintext or plaintext MD5 of what went through sealgate"
        if stored_blobs is not None and not jobs:  # every cell filtered out
            skipped.append(name)
        elif stored_blobs is not None:
            try:
                n = 0
                for where, blob in stored_blobs():
                    n += 1
                    assert VIA_MARKER not in blob, f"plaintext at {where}"
                    for m in via_md5s:
                        assert m not in blob, f"a plaintext MD5 at {where}"
                assert n > 0
                results.append((name, True))
                print(f"ok   {name} ({n} stored objects)", flush=True)
            except Exception:
                traceback.print_exc()
                results.append((name, False))
                print(f"FAIL {name}", flush=True)
        self.seconds[provider] = time.time() - start
        print(f"     matrix on {provider}: {self.seconds[provider]:.0f}s", flush=True)
        shutil.rmtree(root, ignore_errors=True)
        return results

    def table(self, direct="direct", through="sealgate"):
        """The matrix as a Markdown table: a row per client, two columns per
        provider."""
        head = ["client"] + [f"{p} {t}" for p in self.providers for t in (direct, through)]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for client in CLIENTS:
            row = [client] + [self.cells.get((client, p, t), "not run") for p in self.providers for t in (direct, through)]
            lines.append("| " + " | ".join(row) + " |")
        secs = ", ".join(f"{p} {s:.0f}s" for p, s in self.seconds.items())
        return "\n".join(lines) + f"\n\nmatrix time: {secs}"
