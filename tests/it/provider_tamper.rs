//! The provider is untrusted: every way it could alter stored data, done to
//! the real s3s-fs files behind a running gateway, is detected on read,
//! reported as a `sealgate::security` event, and releases no byte that was
//! not authenticated (what the client got before the abort is a prefix of
//! what was written). docs/SECURITY.md tabulates these cases.

use crate::gw_common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use base64::Engine;
use gw_common::security::events;
use gw_common::{Env, Suite, client, gateway, put_multipart};
use sealgate::format::metadata::{META_BINDING, META_ENVELOPE, META_HEADER, META_SEALED};
use sealgate::format::size::part_ciphertext_len;
use std::path::PathBuf;

const BUCKET: &str = "tamper-suite";
const SEG: usize = 65536;

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13).wrapping_add(seed))
        .collect()
}

fn data_path(env: &Env, key: &str) -> PathBuf {
    env.data.join(BUCKET).join(key)
}

/// s3s-fs keeps user metadata and its own bookkeeping beside the data.
fn side_paths(env: &Env, key: &str) -> [PathBuf; 2] {
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    [
        env.data.join(format!(
            ".bucket-{}.object-{}.metadata.json",
            e(BUCKET),
            e(key)
        )),
        env.data.join(format!(
            ".bucket-{}.object-{}.internal.json",
            e(BUCKET),
            e(key)
        )),
    ]
}

/// The provider replaces object `to` with everything of object `from`.
fn copy_object(env: &Env, from: &str, to: &str) {
    std::fs::copy(data_path(env, from), data_path(env, to)).unwrap();
    for (a, b) in side_paths(env, from).iter().zip(side_paths(env, to)) {
        if a.exists() {
            std::fs::copy(a, b).unwrap();
        }
    }
}

fn edit_metadata(
    env: &Env,
    key: &str,
    f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let path = &side_paths(env, key)[0];
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let m = doc["user_metadata"]
        .as_object_mut()
        .expect("s3s-fs keeps user metadata under user_metadata");
    f(m);
    std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
}

async fn put(c: &Client, key: &str, body: &[u8]) {
    c.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap();
}

/// Reads the object as a client would, keeping whatever arrived before an
/// error: (bytes, whether the read completed).
async fn read(c: &Client, key: &str) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let Ok(mut r) = c.get_object().bucket(BUCKET).key(key).send().await else {
        return (got, false);
    };
    loop {
        match r.body.try_next().await {
            Ok(Some(b)) => got.extend_from_slice(&b),
            Ok(None) => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

/// The read fails, released only authenticated bytes, and raised a
/// security event naming the object. Returns the bytes released (the
/// prefix checked against what was written), for the suite's summary line.
async fn assert_detected(c: &Client, key: &str, original: &[u8], case: &str) -> u64 {
    let (got, complete) = read(c, key).await;
    assert!(
        !complete,
        "{case}: the altered object was returned as complete"
    );
    assert!(
        original.starts_with(&got),
        "{case}: {} bytes released that were not written",
        got.len()
    );
    assert!(
        got.len() <= original.len(),
        "{case}: more bytes than written"
    );
    let seen = events();
    let mut waited = 0;
    while !seen
        .lock()
        .unwrap()
        .iter()
        .any(|(ev, k)| k == key && matches!(ev.as_str(), "integrity_failure" | "unknown_key"))
    {
        assert!(
            waited < 50,
            "{case}: no security event for {key}: {:?}",
            seen.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        waited += 1;
    }
    got.len() as u64
}

/// A gateway over s3s-fs with the suite's bucket; security events captured
/// from here on.
async fn tamper_gateway() -> (Env, Client) {
    events();
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    (env, c)
}

/// Records a case that held. Bytes verified: the prefix released before the
/// abort, checked against what was written. Each test is one group of
/// cases with its own summary line (tests/run.sh adds the groups up).
fn detected(suite: &mut Suite, case: &str, prefix: u64) {
    suite.record(&format!("{case} -> detected and reported"), Ok(prefix));
}

#[tokio::test(flavor = "multi_thread")]
async fn byte_level_changes_to_a_stored_object_are_detected() {
    let (env, c) = tamper_gateway().await;
    let mut suite = Suite::new("provider tampering [byte-level changes]");
    let len = 3 * SEG + 777;
    let header = sealgate::format::header::HEADER_LEN;
    let seg = SEG + 16; // a stored segment: plaintext and tag

    // Byte-level changes to one stored object.
    type Alter = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Alter)> = vec![
        (
            "bit flip in the first segment",
            Box::new(move |b: &mut Vec<u8>| b[header + 10] ^= 0x01),
        ),
        (
            "bit flip in the last segment",
            Box::new(|b: &mut Vec<u8>| {
                let n = b.len();
                b[n - 20] ^= 0x80
            }),
        ),
        (
            "bit flip in the stored header",
            Box::new(|b: &mut Vec<u8>| b[100] ^= 0x04),
        ),
        (
            "truncated at a segment boundary",
            Box::new(move |b: &mut Vec<u8>| b.truncate(header + 3 * seg)),
        ),
        (
            "truncated inside a segment",
            Box::new(move |b: &mut Vec<u8>| b.truncate(header + seg + 1000)),
        ),
        (
            "truncated inside the header",
            Box::new(|b: &mut Vec<u8>| b.truncate(100)),
        ),
        (
            "data appended",
            Box::new(|b: &mut Vec<u8>| b.extend_from_slice(&[0u8; 100])),
        ),
        (
            "two segments swapped",
            Box::new(move |b: &mut Vec<u8>| {
                let (s0, s1) = (header, header + seg);
                let first: Vec<u8> = b[s0..s1].to_vec();
                let second: Vec<u8> = b[s1..s1 + seg].to_vec();
                b[s0..s1].copy_from_slice(&second);
                b[s1..s1 + seg].copy_from_slice(&first);
            }),
        ),
        ("emptied", Box::new(|b: &mut Vec<u8>| b.clear())),
    ];
    for (i, (case, alter)) in cases.iter().enumerate() {
        let key = format!("bytes-{i}");
        let original = payload(len, i as u8);
        put(&c, &key, &original).await;
        let path = data_path(&env, &key);
        let mut stored = std::fs::read(&path).unwrap();
        assert_eq!(
            stored.len() as u64,
            part_ciphertext_len(len as u64),
            "{case}: stored layout"
        );
        alter(&mut stored);
        std::fs::write(&path, &stored).unwrap();
        let prefix = assert_detected(&c, &key, &original, case).await;
        detected(&mut suite, case, prefix);
    }
    suite.finish();
}

/// Whole objects swapped, moved or replayed under another name.
#[tokio::test(flavor = "multi_thread")]
async fn objects_swapped_or_replayed_under_another_name_are_detected() {
    let (env, c) = tamper_gateway().await;
    let mut suite = Suite::new("provider tampering [objects swapped or replayed]");
    let a = payload(100_000, 1);
    let b = payload(100_000, 2);
    put(&c, "swap-a", &a).await;
    put(&c, "swap-b", &b).await;
    copy_object(&env, "swap-b", "swap-a");
    let case = "object replaced by another of the same size";
    let prefix = assert_detected(&c, "swap-a", &a, case).await;
    detected(&mut suite, case, prefix);
    put(&c, "old-name", &payload(5000, 3)).await;
    let fresh = payload(5000, 4);
    put(&c, "new-name", &fresh).await;
    copy_object(&env, "old-name", "new-name");
    let case = "an object replayed under a new name";
    let prefix = assert_detected(&c, "new-name", &fresh, case).await;
    detected(&mut suite, case, prefix);

    // Nothing else was disturbed: an untouched object still reads.
    let (got, complete) = read(&c, "swap-b").await;
    assert!(complete && got == b, "an intact object must still read");
    suite.record("untouched object still reads", Ok(got.len() as u64));
    suite.finish();
}

/// Metadata fields: the wrapped key and header, the name binding, the
/// sealed user metadata.
#[tokio::test(flavor = "multi_thread")]
async fn altered_metadata_fields_are_detected() {
    let (env, c) = tamper_gateway().await;
    let mut suite = Suite::new("provider tampering [metadata fields altered]");
    let meta_cases: Vec<(&str, &str)> = vec![
        ("wrapped key and header in metadata altered", META_HEADER),
        ("name binding altered", META_BINDING),
        ("sealed user metadata altered", META_SEALED),
    ];
    for (i, (case, field)) in meta_cases.iter().enumerate() {
        let key = format!("meta-{i}");
        let original = payload(70_000, 10 + i as u8);
        c.put_object()
            .bucket(BUCKET)
            .key(&key)
            .metadata("owner", "finance")
            .body(ByteStream::from(original.clone()))
            .send()
            .await
            .unwrap();
        edit_metadata(&env, &key, |m| {
            let name = m
                .keys()
                .find(|k| k.ends_with(field))
                .cloned()
                .unwrap_or_else(|| panic!("{field} not stored: {m:?}"));
            let v = m[&name].as_str().unwrap().to_owned();
            let altered = if *field == META_BINDING {
                // hex: change one digit
                let mut s: Vec<char> = v.chars().collect();
                s[3] = if s[3] == '0' { '1' } else { '0' };
                s.into_iter().collect::<String>()
            } else {
                let e = base64::engine::general_purpose::STANDARD;
                let mut raw = e.decode(v.trim()).unwrap();
                let n = raw.len();
                raw[n - 20] ^= 0x01;
                e.encode(raw)
            };
            m.insert(name, altered.into());
        });
        let prefix = assert_detected(&c, &key, &original, case).await;
        detected(&mut suite, case, prefix);
    }
    suite.finish();
}

/// Parts swapped between two multipart objects with the same layout.
#[tokio::test(flavor = "multi_thread")]
async fn a_part_taken_from_another_multipart_object_is_detected() {
    let (env, c) = tamper_gateway().await;
    let mut suite = Suite::new("provider tampering [multipart part swapped]");
    let five = 5 * 1024 * 1024;
    let pa = [payload(five, 20), payload(SEG * 2 + 5, 21)];
    let pb = [payload(five, 22), payload(SEG * 2 + 5, 23)];
    put_multipart(&c, BUCKET, "mp-a", &[&pa[0], &pa[1]]).await;
    put_multipart(&c, BUCKET, "mp-b", &[&pb[0], &pb[1]]).await;
    let first = part_ciphertext_len(five as u64) as usize;
    let mut stored_a = std::fs::read(data_path(&env, "mp-a")).unwrap();
    let stored_b = std::fs::read(data_path(&env, "mp-b")).unwrap();
    assert_eq!(stored_a.len(), stored_b.len());
    stored_a[first..].copy_from_slice(&stored_b[first..]);
    std::fs::write(data_path(&env, "mp-a"), &stored_a).unwrap();
    let whole_a: Vec<u8> = pa.concat();
    let case = "part 2 taken from another multipart object";
    let prefix = assert_detected(&c, "mp-a", &whole_a, case).await;
    detected(&mut suite, case, prefix);
    suite.finish();
}

/// An object naming a key the store does not hold (written under a key
/// that was later removed from the store).
#[tokio::test(flavor = "multi_thread")]
async fn an_object_wrapped_with_a_key_the_store_lacks_is_detected() {
    let (env, c) = tamper_gateway().await;
    let mut suite = Suite::new("provider tampering [key the store lacks]");
    let dir = env.gw.keys_dir.clone();
    let old = sealgate::keys::KeyStore::load(&dir).unwrap().active().id();
    let new = sealgate::keys::KeyStore::rotate(&dir).unwrap();
    env.gw.keys.reload().unwrap();
    let orphan = payload(10_000, 30);
    put(&c, "orphan", &orphan).await;
    sealgate::keys::KeyStore::activate(&dir, old).unwrap();
    std::fs::remove_file(dir.join(format!("{new}.kek"))).unwrap();
    env.gw.keys.reload().unwrap();
    let case = "object wrapped with a key the store lacks";
    let prefix = assert_detected(&c, "orphan", &orphan, case).await;
    detected(&mut suite, case, prefix);
    assert!(
        events()
            .lock()
            .unwrap()
            .iter()
            .any(|(ev, k)| ev == "unknown_key" && k == "orphan")
    );
    suite.finish();
}

/// s3s-fs keeps an object's ETag in its bookkeeping file: the provider
/// rewrites it to match what it did to the data.
fn edit_etag(env: &Env, key: &str, f: impl FnOnce(&str) -> String) {
    let path = &side_paths(env, key)[1];
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let old = doc["e_tag"]
        .as_str()
        .expect("s3s-fs keeps e_tag")
        .to_owned();
    doc["e_tag"] = f(&old).into();
    std::fs::write(path, serde_json::to_vec(&doc).unwrap()).unwrap();
}

/// `etag` with its `-N` suffix replaced by `-n` (or dropped for `None`).
fn with_parts(etag: &str, n: Option<u32>) -> String {
    let hex = etag.trim_matches('"').split('-').next().unwrap().to_owned();
    match n {
        Some(n) => format!("{hex}-{n}"),
        None => hex,
    }
}

/// Every reader refuses the object: GET whole and ranged, HEAD (no size
/// from unverified bytes), CopyObject and UploadPartCopy (no laundering into
/// a fresh object), and `sealgate decrypt` on the stored bytes; each refusal
/// raises `integrity_failure`.
async fn assert_refused_by_every_reader(
    c: &Client,
    env: &Env,
    key: &str,
    original: &[u8],
    case: &str,
) {
    // Refused before any byte: the GET itself fails, no body starts.
    assert!(
        c.get_object().bucket(BUCKET).key(key).send().await.is_err(),
        "{case}: GET started a response"
    );
    assert_detected(c, key, original, case).await;
    let head = c.head_object().bucket(BUCKET).key(key).send().await;
    assert!(
        head.is_err(),
        "{case}: HEAD answered {:?} bytes",
        head.ok().and_then(|h| h.content_length())
    );
    let ranged = c
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .range("bytes=0-99")
        .send()
        .await;
    assert!(ranged.is_err(), "{case}: a ranged GET was answered");
    let dest = format!("{key}-copy");
    let copy = c
        .copy_object()
        .bucket(BUCKET)
        .key(&dest)
        .copy_source(format!("{BUCKET}/{key}"))
        .send()
        .await;
    assert!(copy.is_err(), "{case}: CopyObject laundered the object");
    assert!(
        c.head_object()
            .bucket(BUCKET)
            .key(&dest)
            .send()
            .await
            .is_err(),
        "{case}: a copy was stored"
    );
    let upload = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(&dest)
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part_copy = c
        .upload_part_copy()
        .bucket(BUCKET)
        .key(&dest)
        .upload_id(upload_id)
        .part_number(1)
        .copy_source(format!("{BUCKET}/{key}"))
        .send()
        .await;
    assert!(part_copy.is_err(), "{case}: UploadPartCopy read the object");
    c.abort_multipart_upload()
        .bucket(BUCKET)
        .key(&dest)
        .upload_id(upload_id)
        .send()
        .await
        .unwrap();
    let out = env._dir.path().join("decrypted");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_sealgate"))
        .arg("decrypt")
        .arg("--keys-dir")
        .arg(&env.gw.keys_dir)
        .args(["--bucket", BUCKET, "--key", key])
        .arg(data_path(env, key))
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        !cli.status.success() && !out.exists(),
        "{case}: sealgate decrypt accepted the stored bytes"
    );
}

/// The provider drops trailing parts of multipart objects and rewrites the
/// stored size and the ETag's `-N` to match (or drops `-N`), or forges the
/// last part's length: the completion commitment (FORMAT.md §Completion)
/// makes every reader refuse.
#[tokio::test(flavor = "multi_thread")]
async fn multipart_truncation_is_refused_by_every_reader() {
    events();
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let five = 5 * 1024 * 1024;
    let stride = part_ciphertext_len(five as u64) as u64;
    let header_len = sealgate::format::header::HEADER_LEN;
    let mut suite = Suite::new("multipart truncation");

    // A small last part: it carries the end-of-object mark itself.
    let small = [payload(five, 40), payload(five, 41), payload(100_000, 42)];
    // A last part of 5 MiB or more: completion adds a record after it.
    let large = [payload(five, 43), payload(five + 1, 44)];
    // (case, parts uploaded, stored bytes the provider keeps, the `-N` it
    // leaves in the ETag)
    type Truncation<'a> = (&'a str, &'a [Vec<u8>], u64, Option<u32>);
    let cases: Vec<Truncation<'_>> = vec![
        (
            "last part dropped, size and -N rewritten",
            &small,
            2 * stride,
            Some(2),
        ),
        ("last parts dropped, -N removed", &small, stride, None),
        (
            "record dropped, size and -N rewritten",
            &large,
            stride + part_ciphertext_len(five as u64 + 1),
            Some(2),
        ),
        (
            "record and last part dropped, -N removed",
            &large,
            stride,
            None,
        ),
    ];
    for (i, (case, parts, keep, etag_parts)) in cases.into_iter().enumerate() {
        let key = format!("trunc-{i}");
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        put_multipart(&c, BUCKET, &key, &refs).await;
        let whole = parts.concat();
        let path = data_path(&env, &key);
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(keep).unwrap();
        drop(f);
        edit_etag(&env, &key, |e| with_parts(e, etag_parts));
        assert_refused_by_every_reader(&c, &env, &key, &whole, case).await;
        suite.record(&format!("{case} -> refused by every reader"), Ok(0));
    }

    // The last part's header claims 1 GiB and the stored size is extended to
    // match (a sparse file): HEAD must not report a size from it.
    let key = "forged-length";
    let refs: Vec<&[u8]> = small.iter().map(|p| p.as_slice()).collect();
    put_multipart(&c, BUCKET, key, &refs).await;
    let path = data_path(&env, key);
    let mut stored = std::fs::read(&path).unwrap();
    let last_at = 2 * stride as usize;
    let forged: u64 = 1 << 30;
    stored[last_at + 108..last_at + 116].copy_from_slice(&forged.to_be_bytes());
    std::fs::write(&path, &stored).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(2 * stride + part_ciphertext_len(forged)).unwrap();
    drop(f);
    assert_refused_by_every_reader(
        &c,
        &env,
        key,
        &small.concat(),
        "last header's length forged",
    )
    .await;
    suite.record(
        "last header's length forged -> refused by every reader",
        Ok(0),
    );

    // Leading parts dropped: only the last part's bytes kept, its header
    // put where a single-part object's header goes, `-N` removed.
    let key = "leading-parts-dropped";
    put_multipart(&c, BUCKET, key, &refs).await;
    let path = data_path(&env, key);
    let stored = std::fs::read(&path).unwrap();
    let tail = stored[2 * stride as usize..].to_vec();
    std::fs::write(&path, &tail).unwrap();
    edit_etag(&env, key, |e| with_parts(e, None));
    edit_metadata(&env, key, |m| {
        let env_name = m
            .keys()
            .find(|k| k.ends_with(META_ENVELOPE))
            .cloned()
            .unwrap();
        let hdr_name = env_name.replace(META_ENVELOPE, META_HEADER);
        let e = base64::engine::general_purpose::STANDARD;
        m.insert(hdr_name, e.encode(&tail[..header_len]).into());
    });
    assert_refused_by_every_reader(&c, &env, key, &small.concat(), "leading parts dropped").await;
    suite.record("leading parts dropped -> refused by every reader", Ok(0));
    suite.finish();
}

/// Sealed metadata is bound to the object's name and required on version-3
/// objects: the provider can neither strip it (content headers silently
/// gone) nor move it between an object and its copies, which share a data
/// key (a copy saved as text/plain turned back into text/html).
#[tokio::test(flavor = "multi_thread")]
async fn sealed_metadata_strip_and_swap_are_refused() {
    events();
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    let page = b"<script>alert(1)</script>".repeat(100);
    let put_html = |key: &'static str| {
        c.put_object()
            .bucket(BUCKET)
            .key(key)
            .content_type("text/html")
            .content_encoding("gzip")
            .body(ByteStream::from(page.clone()))
            .send()
    };
    put_html("stripped").await.unwrap();
    edit_metadata(&env, "stripped", |m| {
        let name = m
            .keys()
            .find(|k| k.ends_with(META_SEALED))
            .cloned()
            .unwrap();
        m.remove(&name);
    });
    assert_detected(&c, "stripped", &page, "sealed metadata removed").await;
    assert!(
        c.head_object()
            .bucket(BUCKET)
            .key("stripped")
            .send()
            .await
            .is_err(),
        "HEAD answered an object whose sealed metadata was removed"
    );

    put_html("page.html").await.unwrap();
    c.copy_object()
        .bucket(BUCKET)
        .key("page.txt")
        .copy_source(format!("{BUCKET}/page.html"))
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .content_type("text/plain")
        .content_disposition("attachment")
        .send()
        .await
        .unwrap();
    let copy = c
        .head_object()
        .bucket(BUCKET)
        .key("page.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(copy.content_type(), Some("text/plain"));
    // The provider puts the source's sealed metadata on the copy.
    let mut source_meta = String::new();
    edit_metadata(&env, "page.html", |m| {
        let name = m
            .keys()
            .find(|k| k.ends_with(META_SEALED))
            .cloned()
            .unwrap();
        source_meta = m[&name].as_str().unwrap().to_owned();
    });
    edit_metadata(&env, "page.txt", |m| {
        let name = m
            .keys()
            .find(|k| k.ends_with(META_SEALED))
            .cloned()
            .unwrap();
        m.insert(name, source_meta.clone().into());
    });
    assert_detected(
        &c,
        "page.txt",
        &page,
        "sealed metadata of the source put on its copy",
    )
    .await;
    let head = c.head_object().bucket(BUCKET).key("page.txt").send().await;
    assert!(
        head.is_err(),
        "HEAD served the swapped metadata: {:?}",
        head.ok().and_then(|h| h.content_type().map(str::to_owned))
    );
    // The source itself is untouched and still reads with its own headers.
    let src = c
        .get_object()
        .bucket(BUCKET)
        .key("page.html")
        .send()
        .await
        .unwrap();
    assert_eq!(src.content_type(), Some("text/html"));
    let mut suite = Suite::new("sealed metadata");
    suite.record("sealed metadata removed -> refused", Ok(0));
    suite.record("source's sealed metadata put on its copy -> refused", Ok(0));
    suite.finish();
}
