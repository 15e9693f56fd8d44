//! Seal/open throughput of the object format against the raw AEAD.
//!
//! `cargo bench --bench format` (aws-lc-rs; add `--no-default-features
//! --features backend-ring` for ring, `--no-default-features --features
//! backend-rustcrypto` for the RustCrypto backend). The raw group calls the
//! AEAD on 64 KiB buffers with nothing around it; the seal and open groups run
//! the whole format (key derivation, header, segmenting, buffering, tag
//! checks) on objects of 64 KiB to 16 MiB pushed in 256 KiB chunks, the way
//! the gateway feeds network buffers. Their ratio is the format's overhead
//! (docs/BENCHMARKS.md).
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sealgate::format::aead::SegmentCipher;
use sealgate::format::stream::{NameCheck, ObjectOpener, PartSealer};
use sealgate::format::{Algorithm, Envelope, Kek, KeyId, ObjectName, OsRandom, SEGMENT_LEN};
use std::hint::black_box;
use std::time::Duration;
use zeroize::Zeroizing;

const NAME: ObjectName<'static> = ObjectName {
    bucket: "bench",
    key: "object",
};
const CHUNK: usize = 256 * 1024;
const ALGS: [Algorithm; 2] = [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305];
const SIZES: [usize; 4] = [64 << 10, 256 << 10, 1 << 20, 16 << 20];

fn kek() -> Kek {
    Kek::new(KeyId([1; 16]), Zeroizing::new([2; 32]))
}

fn label(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{}MiB", n >> 20)
    } else {
        format!("{}KiB", n >> 10)
    }
}

/// Seals `pt` as the gateway does: chunk by chunk, handing each chunk's
/// output on (here: to `sink`) and reusing one output buffer.
fn seal(kek: &Kek, alg: Algorithm, pt: &[u8], out: &mut Vec<u8>, mut sink: impl FnMut(&[u8])) {
    out.clear();
    let (env, dek) = Envelope::create(kek, alg, &mut OsRandom).unwrap();
    let tag = env.binding_tag(&dek, NAME);
    let (mut s, h) = PartSealer::start(
        &env,
        &dek,
        tag,
        (1, sealgate::format::header::PartKind::Last),
        pt.len() as u64,
        &mut OsRandom,
    )
    .unwrap();
    sink(&h);
    for c in pt.chunks(CHUNK) {
        out.clear();
        s.push(c, out).unwrap();
        sink(out);
    }
    out.clear();
    s.finish(out).unwrap();
    sink(out);
}

/// Baselines. `in_place`: the AEAD alone on one cache-hot 64 KiB buffer (the
/// cipher's peak). `seal`/`open` per object size: the same bytes, in the same
/// memory, segment by segment, copied out of the source buffer and sealed or
/// opened with no format logic around them — the fair denominator for the
/// format's overhead, since any in-place AEAD API must copy out of an
/// immutable network buffer.
fn raw(c: &mut Criterion) {
    let mut g = c.benchmark_group("raw_aead");
    g.throughput(Throughput::Bytes(SEGMENT_LEN as u64));
    for alg in ALGS {
        let cipher = SegmentCipher::new(alg, &Zeroizing::new([7; 32]));
        let mut buf = vec![0u8; SEGMENT_LEN];
        g.bench_function(BenchmarkId::new("in_place", alg.name()), |b| {
            b.iter(|| black_box(cipher.seal([0; 12], &[], &mut buf)))
        });
    }
    g.finish();
    for alg in ALGS {
        let cipher = SegmentCipher::new(alg, &Zeroizing::new([7; 32]));
        let mut g = c.benchmark_group(format!("raw_seal/{}", alg.name()));
        for n in SIZES {
            let pt = vec![0x5a; n];
            let mut out = Vec::with_capacity(CHUNK + CHUNK / 64);
            g.throughput(Throughput::Bytes(n as u64));
            g.bench_function(label(n), |b| {
                b.iter(|| {
                    for (i, seg) in pt.chunks(SEGMENT_LEN).enumerate() {
                        if i % (CHUNK / SEGMENT_LEN) == 0 {
                            out.clear();
                        }
                        let at = out.len();
                        out.extend_from_slice(seg);
                        let tag = cipher.seal([i as u8; 12], &[], &mut out[at..]);
                        out.extend_from_slice(&tag);
                    }
                    black_box(&out);
                })
            });
        }
        g.finish();
        let mut g = c.benchmark_group(format!("raw_open/{}", alg.name()));
        for n in SIZES {
            let mut ct = vec![0x5a; n];
            let tags: Vec<_> = ct
                .chunks_mut(SEGMENT_LEN)
                .enumerate()
                .map(|(i, s)| cipher.seal([i as u8; 12], &[], s))
                .collect();
            let mut out = Vec::with_capacity(CHUNK);
            g.throughput(Throughput::Bytes(n as u64));
            g.bench_function(label(n), |b| {
                b.iter(|| {
                    for (i, seg) in ct.chunks(SEGMENT_LEN).enumerate() {
                        if i % (CHUNK / SEGMENT_LEN) == 0 {
                            out.clear();
                        }
                        let at = out.len();
                        out.extend_from_slice(seg);
                        cipher
                            .open([i as u8; 12], &[], &mut out[at..], &tags[i])
                            .unwrap();
                    }
                    black_box(&out);
                })
            });
        }
        g.finish();
    }
}

fn seal_group(c: &mut Criterion) {
    let k = kek();
    let mut g = c.benchmark_group("seal");
    for alg in ALGS {
        for n in SIZES {
            let pt = vec![0x5a; n];
            let mut out = Vec::with_capacity(n + n / 64 + 1024);
            g.throughput(Throughput::Bytes(n as u64));
            g.bench_function(BenchmarkId::new(alg.name(), label(n)), |b| {
                b.iter(|| {
                    seal(&k, alg, &pt, &mut out, |c| {
                        black_box(c);
                    })
                })
            });
        }
    }
    g.finish();
}

fn open_group(c: &mut Criterion) {
    let k = kek();
    let mut g = c.benchmark_group("open");
    for alg in ALGS {
        for n in SIZES {
            let mut ct = Vec::new();
            seal(&k, alg, &vec![0x5a; n], &mut Vec::new(), |c| {
                ct.extend_from_slice(c)
            });
            let mut out = Vec::with_capacity(CHUNK + SEGMENT_LEN);
            g.throughput(Throughput::Bytes(n as u64));
            g.bench_function(BenchmarkId::new(alg.name(), label(n)), |b| {
                b.iter(|| {
                    let mut o = ObjectOpener::new(&k, NameCheck::Inline(NAME));
                    for c in ct.chunks(CHUNK) {
                        out.clear();
                        o.push(c, &mut out).unwrap();
                    }
                    black_box(o.finish().unwrap())
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)).sample_size(20);
    targets = raw, seal_group, open_group
}
criterion_main!(benches);
