#!/usr/bin/env python3
"""Independent decoder for the sealgate object format, versions 1 and 3.

Written from docs/FORMAT.md alone, with the `cryptography` package, to check
that the specification is complete and that the Rust implementation follows
it. It shares no code with sealgate.

    python3 tests/interop/decode.py --vectors tests/vectors
        Decodes every committed vector: `ok` vectors must give their
        plaintext, `fail` vectors must be rejected for the stated reason.

    python3 tests/interop/decode.py --sample 40 --sealgate target/debug/sealgate
        Encrypts random files with `sealgate encrypt` and decodes them here.

Exit status is 0 only when every check passed.
"""

import argparse
import base64
import glob
import hashlib
import hmac
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"SEALGATE"
HEADER_LEN = 212
SEGMENT = 65536
TAG = 16
AEADS = {0x01: AESGCM, 0x02: ChaCha20Poly1305}
VERSIONS = (1, 3)
KINDS = {0x00: "data", 0x01: "last", 0x02: "completion"}


class Reject(Exception):
    """The object must not be accepted; args[0] is the FORMAT.md category."""


def hkdf(ikm, salt, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def parse_header(b):
    if len(b) < 104:
        if not MAGIC.startswith(b[:8]):
            raise Reject("not sealed")
        raise Reject("truncated header")
    if b[0:8] != MAGIC:
        raise Reject("not sealed")
    if b[8] not in VERSIONS:
        raise Reject("unsupported version")
    if b[9] not in AEADS:
        raise Reject("unknown algorithm")
    if b[10] != 16:
        raise Reject("unsupported segment size")
    if b[11] != 0:
        raise Reject("unsupported flags")
    if len(b) < HEADER_LEN:
        raise Reject("truncated header")
    if b[8] == 1:
        kind = "data"
        part_number, plaintext_len = struct.unpack(">IQ", b[104:116])
    else:
        if b[104] not in KINDS:
            raise Reject("unknown part kind")
        kind = KINDS[b[104]]
        part_number = int.from_bytes(b[105:108], "big")
        (plaintext_len,) = struct.unpack(">Q", b[108:116])
    if not 1 <= part_number <= 10000:
        raise Reject("invalid part number")
    if plaintext_len > 1 << 50:
        raise Reject("part too large")
    return {
        "raw": bytes(b[:HEADER_LEN]),
        "envelope": bytes(b[0:104]),
        "version": b[8],
        "kind": kind,
        "alg": b[9],
        "kek_id": bytes(b[12:28]),
        "wrap_nonce": bytes(b[28:40]),
        "wrapped_dek": bytes(b[40:88]),
        "object_id": bytes(b[88:104]),
        "part_number": part_number,
        "plaintext_len": plaintext_len,
        "stream_salt": bytes(b[116:148]),
        "binding_tag": bytes(b[148:180]),
        "commitment": bytes(b[180:212]),
    }


def unwrap_dek(h, keks):
    kek = keks.get(h["kek_id"])
    if kek is None:
        raise Reject("unknown key")
    wrap_key = hkdf(kek, h["object_id"], b"sealgate/v1/wrap")
    aad = h["raw"][0:28] + h["object_id"]
    try:
        return AESGCM(wrap_key).decrypt(h["wrap_nonce"], h["wrapped_dek"], aad)
    except InvalidTag:
        raise Reject("unwrap failed")


def binding_tag(dek, object_id, bucket, key):
    k = hkdf(dek, object_id, b"sealgate/v1/binding")
    b, n = bucket.encode(), key.encode()
    msg = b"sealgate/v1/name" + struct.pack(">I", len(b)) + b + struct.pack(">I", len(n)) + n
    return hmac.new(k, msg, hashlib.sha256).digest()


def content_key(dek, h):
    context = h["raw"][0:148]
    if h["kind"] == "completion":
        commit = hkdf(dek, h["stream_salt"], b"sealgate/v3/completion" + context)
        if not hmac.compare_digest(commit, h["commitment"]):
            raise Reject("commitment mismatch")
        return None
    commit = hkdf(dek, h["stream_salt"], b"sealgate/v1/commit" + context)
    if not hmac.compare_digest(commit, h["commitment"]):
        raise Reject("commitment mismatch")
    return hkdf(dek, h["stream_salt"], b"sealgate/v1/content" + context)


def decode_object(data, keks, bucket=None, key=None, binding=None):
    """Returns the plaintext of a stored object, or raises Reject."""
    pos, out, first, last_part, ended = 0, bytearray(), None, 0, False
    while True:
        if pos == len(data):
            if first is None:
                raise Reject("truncated header")
            if first["version"] != 1 and not ended:
                # Version 3: the last part must end the object.
                raise Reject("completion missing")
            return bytes(out)
        if ended:
            raise Reject("trailing data")
        h = parse_header(data[pos:pos + HEADER_LEN])
        pos += HEADER_LEN
        if first is None:
            if h["part_number"] != 1:
                raise Reject("part mismatch")
            dek = unwrap_dek(h, keks)
            ckey = content_key(dek, h)
            if bucket is not None:
                expected = binding if binding is not None else h["binding_tag"]
                if not hmac.compare_digest(binding_tag(dek, h["object_id"], bucket, key), expected):
                    raise Reject("binding mismatch")
            if h["kind"] == "completion":
                raise Reject("part mismatch")
            first = h
        else:
            if (h["envelope"] != first["envelope"] or h["binding_tag"] != first["binding_tag"]
                    or h["part_number"] != last_part + 1):
                raise Reject("part mismatch")
            ckey = content_key(dek, h)
            if h["kind"] == "completion":
                # A bare header committing the total of the parts before it.
                if h["plaintext_len"] != len(out):
                    raise Reject("completion mismatch")
                last_part, ended = h["part_number"], True
                continue
        last_part = h["part_number"]
        ended = h["kind"] == "last"
        aead = AEADS[h["alg"]](ckey)
        p = h["plaintext_len"]
        n = max(1, -(-p // SEGMENT))
        for i in range(n):
            seg_len = SEGMENT if i < n - 1 else p - (n - 1) * SEGMENT
            ct = data[pos:pos + seg_len + TAG]
            if len(ct) < seg_len + TAG:
                raise Reject("truncated")
            nonce = struct.pack(">Q", i) + b"\x00\x00\x00" + (b"\x01" if i == n - 1 else b"\x00")
            try:
                out += aead.decrypt(nonce, bytes(ct), b"")
            except InvalidTag:
                raise Reject("segment authentication")
            pos += seg_len + TAG
        if pos < len(data) and data[pos:pos + 8] != MAGIC[:len(data) - pos]:
            raise Reject("trailing data")
        if pos < len(data) and len(data) - pos < HEADER_LEN:
            raise Reject("trailing data")


def open_metadata(data, keks, sealed, bucket, key):
    h = parse_header(data[:HEADER_LEN])
    dek = unwrap_dek(h, keks)
    try:
        blob = base64.b64decode(sealed, validate=True)
    except ValueError:
        raise Reject("metadata authentication")
    if len(blob) < 1 + 32 + TAG or blob[0] not in (1, 2):
        raise Reject("metadata authentication")
    if blob[0] == 1:
        if h["version"] != 1:
            # Version-3 objects carry only name-bound blobs.
            raise Reject("metadata authentication")
        blob_key = hkdf(dek, blob[1:33], b"sealgate/v1/metadata" + h["object_id"])
        aad = b""
    else:
        blob_key = hkdf(dek, blob[1:33], b"sealgate/v3/metadata" + h["object_id"])
        b, n = bucket.encode(), key.encode()
        aad = b"sealgate/v3/metadata-name" + struct.pack(">I", len(b)) + b + struct.pack(">I", len(n)) + n
    try:
        plain = AEADS[h["alg"]](blob_key).decrypt(b"\x00" * 12, blob[33:], aad)
    except InvalidTag:
        raise Reject("metadata authentication")
    doc = json.loads(plain)
    return {"user": doc.get("user", {}), "headers": doc.get("headers", {})}


def pattern(n):
    return bytes(i % 251 for i in range(n))


def check_vector(v):
    keks = {bytes.fromhex(k["id"]): bytes.fromhex(k["key"]) for k in v["keks"]}
    data = bytes.fromhex(v["ciphertext"])
    binding = bytes.fromhex(v["binding"]) if v.get("binding") else None
    try:
        pt = decode_object(data, keks, v["bucket"], v["key"], binding)
        meta = (open_metadata(data, keks, v["metadata"]["sealed"], v["bucket"], v["key"])
                if v.get("metadata") else None)
    except Reject as r:
        if v["expect"] == "fail":
            if r.args[0] != v["failure"]:
                return f"rejected for {r.args[0]!r}, vector says {v['failure']!r}"
            return None
        return f"rejected a valid object: {r.args[0]}"
    if v["expect"] == "fail":
        return "accepted a damaged object"
    expected = bytes.fromhex(v["plaintext_hex"]) if "plaintext_hex" in v else pattern(v["plaintext_len"])
    if pt != expected:
        return "plaintext differs"
    if v.get("metadata") and meta != v["metadata"]["plaintext"]:
        return "metadata differs"
    return None


def run_vectors(directory):
    passed = failed = 0
    files = sorted(glob.glob(os.path.join(directory, "*.json")))
    if not files:
        print(f"no vectors in {directory}")
        return 0, 1
    for path in files:
        with open(path) as f:
            v = json.load(f)
        problem = check_vector(v)
        if problem:
            failed += 1
            print(f"FAIL {v['vector']}: {problem}")
        else:
            passed += 1
            print(f"ok   {v['vector']} ({v['expect']})")
    return passed, failed


def load_keys(keys_dir):
    keks = {}
    for path in glob.glob(os.path.join(keys_dir, "*.kek")):
        with open(path) as f:
            k = json.load(f)
        keks[bytes.fromhex(k["id"])] = bytes.fromhex(k["key"])
    return keks


def run_sample(count, sealgate, seed):
    rng = random.Random(seed)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        keys = os.path.join(tmp, "keys")
        subprocess.run([sealgate, "keys", "generate", "--keys-dir", keys], check=True, capture_output=True)
        keks = load_keys(keys)
        boundaries = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT]
        for i in range(count):
            size = boundaries[i] if i < len(boundaries) else rng.randrange(0, 5 * SEGMENT)
            alg = rng.choice(["AES-256-GCM", "ChaCha20-Poly1305"])
            key = f"sample/{i}/" + "".join(rng.choice("abcé ✓/_-") for _ in range(rng.randrange(1, 30)))
            plain = rng.randbytes(size)
            src, dst = os.path.join(tmp, "in"), os.path.join(tmp, "out")
            with open(src, "wb") as f:
                f.write(plain)
            subprocess.run([sealgate, "encrypt", "--keys-dir", keys, "--bucket", "sample-bucket", "--key", key,
                            "--algorithm", alg, src, dst], check=True, capture_output=True)
            with open(dst, "rb") as f:
                stored = f.read()
            try:
                ok = decode_object(stored, keks, "sample-bucket", key) == plain
                # The same object under another name must be refused.
                try:
                    decode_object(stored, keks, "sample-bucket", key + "x")
                    ok = False
                except Reject:
                    pass
            except Reject as r:
                ok = False
                print(f"FAIL sample {i}: {r.args[0]}")
            passed, failed = (passed + 1, failed) if ok else (passed, failed + 1)
            if not ok:
                print(f"FAIL sample {i} ({size} bytes, {alg})")
    print(f"random objects: {passed} decoded, {failed} failed")
    return passed, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vectors", help="directory of JSON test vectors")
    ap.add_argument("--sample", type=int, default=0, help="random objects to encrypt with sealgate and decode")
    ap.add_argument("--sealgate", default="target/debug/sealgate", help="sealgate binary for --sample")
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    passed = failed = 0
    if args.vectors:
        p, f = run_vectors(args.vectors)
        passed, failed = passed + p, failed + f
    if args.sample:
        p, f = run_sample(args.sample, args.sealgate, args.seed)
        passed, failed = passed + p, failed + f
    if not args.vectors and not args.sample:
        ap.error("give --vectors DIR and/or --sample N")
    print(f"interop: {passed} passed, {failed} failed")
    sys.exit(0 if failed == 0 and passed > 0 else 1)


if __name__ == "__main__":
    main()
