//! The load generator of the end-to-end benchmark (`benches/e2e.py` drives
//! it against the provider directly, sealgate, and a peer gateway).
//!
//! One run does one measurement and prints one JSON object: bytes moved,
//! seconds, operations and latency percentiles. It uses the Rust AWS SDK
//! with unsigned payloads and no request checksums, so the client's own CPU
//! stays small beside the systems under test.
//!
//! ```text
//! s3bench ENDPOINT AK SK BUCKET MODE [key=value ...]
//!   put-large  size= count= concurrency= part= [prefix=]  multipart PUT of {prefix}{i} (large/{i})
//!   get-large  size= count= concurrency=           GET of large/{i}
//!   put-small  size= ops= concurrency=             PUT small/{size}/{i}, each key once
//!   get-small  size= ops= concurrency=             GET small/{size}/{i} (after put-small)
//!   ranged     key= size= range= ops= concurrency= random ranges of one object
//!   fill       prefix= count= concurrency=         tiny objects for LIST
//!   list       prefix=                             ListObjectsV2, every page
//!   (every mode: timeout= seconds per request attempt, default 120; no retries)
//! ```

// A command-line tool: its result is what it prints.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args {
    bucket: String,
    opts: HashMap<String, String>,
}

impl Args {
    fn num(&self, k: &str, default: u64) -> u64 {
        self.opts
            .get(k)
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{k}={v}: not a number"))
            })
            .unwrap_or(default)
    }
    fn text(&self, k: &str, default: &str) -> String {
        self.opts
            .get(k)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }
}

fn pattern(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

/// Latencies (seconds) → (p50, p99) in milliseconds.
fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize] * 1e3;
    (at(0.50), at(0.99))
}

/// Runs `ops` operations, `concurrency` at a time; each returns the bytes
/// it moved. Returns (bytes, latencies).
async fn run_ops<F, Fut>(ops: u64, concurrency: u64, f: F) -> Res<(u64, Vec<f64>)>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Res<u64>> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (f, next) = (f.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut bytes = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= ops {
                    return Ok::<_, Box<dyn std::error::Error + Send + Sync>>((bytes, lat));
                }
                let t = Instant::now();
                bytes += f(i).await?;
                lat.push(t.elapsed().as_secs_f64());
            }
        }));
    }
    let (mut bytes, mut lat) = (0, Vec::new());
    for t in tasks {
        let (b, l) = t.await??;
        bytes += b;
        lat.extend(l);
    }
    Ok((bytes, lat))
}

async fn put_large(c: Client, bucket: String, key: String, size: u64, part: u64) -> Res<u64> {
    if part >= size {
        return put_single(&c, &bucket, &key, size).await;
    }
    let up = c
        .create_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await?;
    let id = up.upload_id().unwrap_or_default().to_owned();
    let body = pattern(part as usize, 7);
    let mut parts = Vec::new();
    let mut off = 0;
    let mut n = 1;
    while off < size {
        let len = part.min(size - off);
        let r = c
            .upload_part()
            .bucket(&bucket)
            .key(&key)
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body.slice(..len as usize)))
            .customize()
            .disable_payload_signing()
            .send()
            .await?;
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().unwrap_or_default())
                .build(),
        );
        off += len;
        n += 1;
    }
    c.complete_multipart_upload()
        .bucket(&bucket)
        .key(&key)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await?;
    Ok(size)
}

/// One PutObject of `size` bytes, streamed in 1 MiB chunks (for systems
/// whose multipart answers the SDK cannot read).
async fn put_single(c: &Client, bucket: &str, key: &str, size: u64) -> Res<u64> {
    let chunk = pattern(1 << 20, 7);
    let mut left = size;
    let chunks = std::iter::from_fn(move || {
        (left > 0).then(|| {
            let n = left.min(chunk.len() as u64);
            left -= n;
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(chunk.slice(..n as usize)))
        })
    });
    let body = http_body_util::StreamBody::new(futures::stream::iter(chunks));
    c.put_object()
        .bucket(bucket)
        .key(key)
        .content_length(size as i64)
        .body(ByteStream::from_body_1_x(body))
        .customize()
        .disable_payload_signing()
        .send()
        .await?;
    Ok(size)
}

async fn get(c: &Client, bucket: &str, key: &str, range: Option<String>) -> Res<u64> {
    let mut r = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_range(range)
        .send()
        .await?;
    let mut n = 0u64;
    while let Some(chunk) = r.body.try_next().await? {
        n += chunk.len() as u64;
    }
    Ok(n)
}

#[tokio::main]
async fn main() -> Res<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.len() < 5 {
        eprintln!("usage: s3bench ENDPOINT AK SK BUCKET MODE [key=value ...]");
        std::process::exit(2);
    }
    let (endpoint, ak, sk, mode) = (&argv[0], &argv[1], &argv[2], argv[4].clone());
    let args = Args {
        bucket: argv[3].clone(),
        opts: argv[5..]
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    };
    let timeout = args.num("timeout", 120);
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(ak, sk, None, None, "bench"))
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        // A gateway may take a while to start reading a large body.
        .stalled_stream_protection(aws_sdk_s3::config::StalledStreamProtectionConfig::disabled())
        // A system that stops answering fails the measurement instead of
        // stalling the run.
        // No retries: a failure is a result, not something to hide.
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .operation_attempt_timeout(std::time::Duration::from_secs(timeout))
                .build(),
        )
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(1))
        .build();
    let c = Client::from_conf(conf);
    let bucket = args.bucket.clone();
    let _ = c.create_bucket().bucket(&bucket).send().await;
    let concurrency = args.num("concurrency", 1);
    let started = Instant::now();
    let (bytes, lat, extra) = match mode.as_str() {
        "put-large" => {
            let (size, part) = (args.num("size", 1 << 30), args.num("part", 16 << 20));
            let prefix = args.text("prefix", "large/");
            let (c, b) = (c.clone(), bucket.clone());
            let (bytes, lat) = run_ops(args.num("count", 1), concurrency, move |i| {
                put_large(c.clone(), b.clone(), format!("{prefix}{i}"), size, part)
            })
            .await?;
            (bytes, lat, serde_json::json!({}))
        }
        "get-large" => {
            let size = args.num("size", 1 << 30);
            let (c, b) = (c.clone(), bucket.clone());
            let (bytes, lat) = run_ops(args.num("count", 1), concurrency, move |i| {
                let (c, b) = (c.clone(), b.clone());
                async move {
                    let n = get(&c, &b, &format!("large/{i}"), None).await?;
                    if n != size {
                        return Err(format!("large/{i}: read {n} bytes, expected {size}").into());
                    }
                    Ok(n)
                }
            })
            .await?;
            (bytes, lat, serde_json::json!({}))
        }
        "put-small" | "get-small" => {
            let size = args.num("size", 4096);
            let body = pattern(size as usize, 3);
            let (c, b) = (c.clone(), bucket.clone());
            let put = mode == "put-small";
            let (bytes, lat) = run_ops(args.num("ops", 100), concurrency, move |i| {
                let (c, b, body) = (c.clone(), b.clone(), body.clone());
                async move {
                    if put {
                        c.put_object()
                            .bucket(&b)
                            .key(format!("small/{size}/{i}"))
                            .body(ByteStream::from(body))
                            .customize()
                            .disable_payload_signing()
                            .send()
                            .await?;
                        Ok(size)
                    } else {
                        get(&c, &b, &format!("small/{size}/{i}"), None).await
                    }
                }
            })
            .await?;
            (bytes, lat, serde_json::json!({}))
        }
        "ranged" => {
            let key = args.text("key", "large/0");
            let (size, range) = (args.num("size", 1 << 30), args.num("range", 1 << 20));
            let (c, b) = (c.clone(), bucket.clone());
            let (bytes, lat) = run_ops(args.num("ops", 100), concurrency, move |i| {
                let (c, b, key) = (c.clone(), b.clone(), key.clone());
                async move {
                    // A fixed pseudo-random sequence (splitmix64), the same
                    // for every system.
                    let mut z = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                    z ^= z >> 31;
                    let start = z % (size - range);
                    let n = get(
                        &c,
                        &b,
                        &key,
                        Some(format!("bytes={start}-{}", start + range - 1)),
                    )
                    .await?;
                    if n != range {
                        return Err(format!("range read {n} bytes, expected {range}").into());
                    }
                    Ok(n)
                }
            })
            .await?;
            (bytes, lat, serde_json::json!({}))
        }
        "fill" => {
            let prefix = args.text("prefix", "list/");
            let (c, b) = (c.clone(), bucket.clone());
            let (bytes, lat) = run_ops(args.num("count", 10_000), concurrency, move |i| {
                let (c, b, p) = (c.clone(), b.clone(), prefix.clone());
                async move {
                    c.put_object()
                        .bucket(&b)
                        .key(format!("{p}{i:06}"))
                        .body(ByteStream::from_static(b"x"))
                        .send()
                        .await?;
                    Ok(1)
                }
            })
            .await?;
            (bytes, lat, serde_json::json!({}))
        }
        "list" => {
            let prefix = args.text("prefix", "list/");
            let mut pages = 0u64;
            let mut keys = 0u64;
            let mut lat = Vec::new();
            let mut token = None;
            loop {
                let t = Instant::now();
                let r = c
                    .list_objects_v2()
                    .bucket(&bucket)
                    .prefix(&prefix)
                    .set_continuation_token(token)
                    .send()
                    .await?;
                lat.push(t.elapsed().as_secs_f64());
                pages += 1;
                keys += r.contents().len() as u64;
                token = r.next_continuation_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            (0, lat, serde_json::json!({"pages": pages, "keys": keys}))
        }
        other => return Err(format!("unknown mode {other}").into()),
    };
    let seconds = started.elapsed().as_secs_f64();
    let ops = lat.len();
    let (p50, p99) = percentiles(lat);
    let mut out = serde_json::json!({
        "mode": mode,
        "bytes": bytes,
        "seconds": seconds,
        "ops": ops,
        "p50_ms": p50,
        "p99_ms": p99,
    });
    if let (Some(o), Some(e)) = (out.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    println!("{out}");
    Ok(())
}
