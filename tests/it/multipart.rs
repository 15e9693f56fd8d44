//! Multipart uploads through the gateway, in-process against a real s3s-fs,
//! driven by aws-sdk-s3: parts sealed out of order and in parallel,
//! re-uploaded parts, unaligned part sizes, and the bad completions S3
//! refuses. Every test checks what the provider stored.

use crate::gw_common;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use gw_common::{client, gateway};
use std::path::Path;

const MARKER: &[u8] = b"MULTIPART-PLAINTEXT-MARKER";

/// Deterministic bytes with the marker every 4 KiB.
fn body(len: usize, seed: u8) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    for at in (0..len.saturating_sub(MARKER.len())).step_by(4096) {
        v[at..at + MARKER.len()].copy_from_slice(MARKER);
    }
    v
}

fn assert_no_plaintext(dir: &Path) {
    gw_common::assert_no_plaintext(dir, MARKER);
}

async fn get(c: &Client, b: &str, k: &str, range: Option<&str>) -> Vec<u8> {
    c.get_object()
        .bucket(b)
        .key(k)
        .set_range(range.map(str::to_owned))
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec()
}

async fn put_part(c: &Client, b: &str, k: &str, id: &str, n: i32, data: &[u8]) -> String {
    c.upload_part()
        .bucket(b)
        .key(k)
        .upload_id(id)
        .part_number(n)
        .body(ByteStream::from(data.to_vec()))
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned()
}

fn completed(parts: &[(i32, &str)]) -> CompletedMultipartUpload {
    CompletedMultipartUpload::builder()
        .set_parts(Some(
            parts
                .iter()
                .map(|(n, e)| CompletedPart::builder().part_number(*n).e_tag(*e).build())
                .collect(),
        ))
        .build()
}

/// Uploads `data` in parts of `part` bytes, all in parallel, in reverse
/// order; returns (upload id, [(n, etag)]).
async fn upload_parallel(
    c: &Client,
    b: &str,
    k: &str,
    data: &[u8],
    part: usize,
) -> (String, Vec<(i32, String)>) {
    let id = c
        .create_multipart_upload()
        .bucket(b)
        .key(k)
        .metadata("owner", "MULTIPART-PLAINTEXT-MARKER")
        .content_type("application/x-test")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let chunks: Vec<Vec<u8>> = data.chunks(part).map(<[u8]>::to_vec).collect();
    let mut tasks = Vec::new();
    for (i, chunk) in chunks.into_iter().enumerate().rev() {
        let (c, b, k, id) = (c.clone(), b.to_owned(), k.to_owned(), id.clone());
        tasks.push(tokio::spawn(async move {
            let n = i as i32 + 1;
            (n, put_part(&c, &b, &k, &id, n, &chunk).await)
        }));
    }
    let mut parts = Vec::new();
    for t in tasks {
        parts.push(t.await.unwrap());
    }
    parts.sort();
    (id, parts)
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_out_of_order_parts_aligned_and_unaligned() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("mpu").send().await.unwrap();
    // 8 MiB parts (aws CLI, boto3) and 6,000,000-byte parts (not a multiple
    // of 64 KiB), each with a short last part.
    for (key, part, len) in [
        ("aligned", 8usize << 20, (8usize << 20) * 2 + 777_777),
        ("unaligned", 6_000_000, 6_000_000 * 3 + 12_345),
    ] {
        let data = body(len, key.len() as u8);
        let (id, parts) = upload_parallel(&c, "mpu", key, &data, part).await;
        let listed = c
            .list_parts()
            .bucket("mpu")
            .key(key)
            .upload_id(&id)
            .send()
            .await
            .unwrap();
        let sizes: Vec<i64> = listed.parts().iter().map(|p| p.size().unwrap()).collect();
        let want: Vec<i64> = data.chunks(part).map(|c| c.len() as i64).collect();
        assert_eq!(sizes, want, "ListParts reports plaintext sizes");
        let refs: Vec<(i32, &str)> = parts.iter().map(|(n, e)| (*n, e.as_str())).collect();
        let done = c
            .complete_multipart_upload()
            .bucket("mpu")
            .key(key)
            .upload_id(&id)
            .multipart_upload(completed(&refs))
            .send()
            .await
            .unwrap();
        let etag = done.e_tag().unwrap().trim_matches('"').to_owned();
        assert!(etag.ends_with(&format!("-{}", parts.len())), "{etag}");

        let head = c.head_object().bucket("mpu").key(key).send().await.unwrap();
        assert_eq!(head.content_length(), Some(len as i64), "{key}");
        assert_eq!(
            head.e_tag().map(|e| e.trim_matches('"')),
            Some(etag.as_str())
        );
        assert_eq!(head.content_type(), Some("application/x-test"));
        assert_eq!(get(&c, "mpu", key, None).await, data, "{key}");
        // Ranges across a part boundary, inside the last part, a suffix.
        let b = part as u64;
        for (r, s, e) in [
            (format!("bytes={}-{}", b - 10, b + 10), b - 10, b + 11),
            (
                format!("bytes={}-", len as u64 - 5),
                len as u64 - 5,
                len as u64,
            ),
            ("bytes=-100".to_owned(), len as u64 - 100, len as u64),
        ] {
            assert_eq!(
                get(&c, "mpu", key, Some(&r)).await,
                data[s as usize..e as usize],
                "{key} {r}"
            );
        }
        // (Listing sizes of multipart objects need the provider's `-N`
        // ETag in listings; s3s-fs lists none, so the e2e suite checks them
        // against moto.)
    }
    assert_no_plaintext(&env.data);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reuploaded_part_replaces_the_earlier_one() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let id = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let (a, b, z) = (body(5 << 20, 1), body(5 << 20, 2), body(1000, 3));
    put_part(&c, "mpu", "k", &id, 1, &a).await;
    let e1 = put_part(&c, "mpu", "k", &id, 1, &b).await;
    let e2 = put_part(&c, "mpu", "k", &id, 2, &z).await;
    c.complete_multipart_upload()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "mpu", "k", None).await, [b, z].concat());
}

/// s3cmd compares every UploadPart ETag that has no `-` with the MD5 of the
/// part it sent and gives up on a mismatch; a sealgate part ETag is the MD5
/// of *ciphertext*, so it carries a `-1` suffix everywhere a client sees it
/// (UploadPart, UploadPartCopy, ListParts), is never the MD5 of the
/// plaintext part, and completes the upload (docs/TESTING.md, S3 deviations).
#[tokio::test(flavor = "multi_thread")]
async fn part_etags_are_never_taken_for_the_md5_of_the_part() {
    use md5::{Digest, Md5};
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("petag").send().await.unwrap();
    let (first, second) = (body(5 << 20, 7), body(1000, 8));
    c.put_object()
        .bucket("petag")
        .key("src")
        .body(ByteStream::from(second.clone()))
        .send()
        .await
        .unwrap();
    let id = c
        .create_multipart_upload()
        .bucket("petag")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let e1 = put_part(&c, "petag", "k", &id, 1, &first).await;
    let e2 = c
        .upload_part_copy()
        .bucket("petag")
        .key("k")
        .upload_id(&id)
        .part_number(2)
        .copy_source("petag/src")
        .send()
        .await
        .unwrap()
        .copy_part_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    for (e, plain) in [(&e1, &first), (&e2, &second)] {
        let v = e.trim_matches('"');
        assert!(v.ends_with("-1"), "a part ETag s3cmd would check: {e}");
        assert_ne!(v.trim_end_matches("-1"), hex::encode(Md5::digest(plain)));
    }
    let listed = c
        .list_parts()
        .bucket("petag")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let listed: Vec<&str> = listed.parts().iter().filter_map(|p| p.e_tag()).collect();
    // s3s-fs lists parts without ETags; where listed they are the same.
    if !listed.is_empty() {
        assert_eq!(listed, [e1.as_str(), e2.as_str()]);
    }
    c.complete_multipart_upload()
        .bucket("petag")
        .key("k")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "petag", "k", None).await, [first, second].concat());
    assert_no_plaintext(&env.data);
}

/// A part's Content-MD5 (s5cmd and rclone send one) is verified on the
/// plaintext of the part: the per-part MD5 check for clients that want one.
#[tokio::test(flavor = "multi_thread")]
async fn a_part_with_a_wrong_content_md5_is_refused() {
    use base64::Engine;
    use md5::{Digest, Md5};
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("pmd5").send().await.unwrap();
    let id = c
        .create_multipart_upload()
        .bucket("pmd5")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let part = body(100_000, 5);
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(Md5::digest(d));
    let send = |md5: String| {
        c.upload_part()
            .bucket("pmd5")
            .key("k")
            .upload_id(&id)
            .part_number(1)
            .content_md5(md5)
            .body(ByteStream::from(part.clone()))
            .send()
    };
    let err = send(b64(b"other bytes")).await.unwrap_err();
    assert_eq!(err.code(), Some("BadDigest"), "{err:?}");
    let listed = c
        .list_parts()
        .bucket("pmd5")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert!(listed.parts().is_empty(), "a refused part was stored");
    send(b64(&part)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_completions_and_upload_ids_get_s3_errors_and_create_nothing() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let id = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let big = body(5 << 20, 4);
    let e1 = put_part(&c, "mpu", "k", &id, 1, &big).await;
    let e2 = put_part(&c, "mpu", "k", &id, 2, &big[..1000]).await;
    let e3 = put_part(&c, "mpu", "k", &id, 3, &big[..1000]).await;
    let e5 = put_part(&c, "mpu", "k", &id, 5, &big).await;

    let complete = |parts: Vec<(i32, String)>, id: String, key: &'static str| {
        let c = c.clone();
        async move {
            let refs: Vec<(i32, &str)> = parts.iter().map(|(n, e)| (*n, e.as_str())).collect();
            c.complete_multipart_upload()
                .bucket("mpu")
                .key(key)
                .upload_id(id)
                .multipart_upload(completed(&refs))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| e.code().unwrap_or("?").to_owned())
        }
    };
    let cases: Vec<(Vec<(i32, String)>, &str)> = vec![
        (vec![(2, e2.clone()), (1, e1.clone())], "InvalidPartOrder"),
        // (A wrong ETag is refused by the e2e suite against moto: s3s-fs
        // lists parts without ETags and does not compare them.)
        (vec![(1, e1.clone()), (4, e2.clone())], "InvalidPart"), // never uploaded
        (vec![(1, e1.clone()), (5, e5.clone())], "InvalidPart"), // gap
        (
            vec![(1, e1.clone()), (2, e2.clone()), (3, e3.clone())],
            "EntityTooSmall",
        ),
    ];
    for (parts, want) in cases {
        assert_eq!(
            complete(parts.clone(), id.clone(), "k").await,
            Err(want.to_owned()),
            "{parts:?}"
        );
    }
    // The same id for another key, or altered, is no upload at all.
    assert_eq!(
        complete(vec![(1, e1.clone())], id.clone(), "other").await,
        Err("NoSuchUpload".to_owned())
    );
    let mut altered = id.clone().into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).unwrap();
    assert_eq!(
        complete(vec![(1, e1.clone())], altered.clone(), "k").await,
        Err("NoSuchUpload".to_owned())
    );
    let err = c
        .upload_part()
        .bucket("mpu")
        .key("k")
        .upload_id(&altered)
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchUpload"));
    for n in [0, 10_001] {
        let err = c
            .upload_part()
            .bucket("mpu")
            .key("k")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("InvalidArgument"), "part {n}");
    }
    // Nothing became visible.
    assert!(c.head_object().bucket("mpu").key("k").send().await.is_err());
    // (ListMultipartUploads and aborting by a listed id run in the e2e
    // suite against moto: s3s-fs does not implement ListMultipartUploads.)
    c.abort_multipart_upload()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let err = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("k")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1)]))
        .send()
        .await
        .unwrap_err();
    // S3 says NoSuchUpload; s3s-fs lists an aborted upload as having no
    // parts, so the gateway finds part 1 missing: InvalidPart.
    assert!(
        matches!(err.code(), Some("NoSuchUpload" | "InvalidPart")),
        "{err:?}"
    );
    assert!(c.head_object().bucket("mpu").key("k").send().await.is_err());
    assert_no_plaintext(&env.data);
}

/// A last part of 5 MiB or more is not known to be last when it is sealed:
/// completion adds a completion record (FORMAT.md §Completion). The object
/// reads back whole and by ranges, sizes are exact on HEAD and in listings,
/// the ETag counts the record everywhere alike, and a copy keeps it.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_last_part_gets_a_completion_record() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let part = 5 << 20;
    let data = body(2 * part, 77);
    let id = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("even")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let e1 = put_part(&c, "mpu", "even", &id, 1, &data[..part]).await;
    let e2 = put_part(&c, "mpu", "even", &id, 2, &data[part..]).await;
    let done = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("even")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await
        .unwrap();
    let etag = done.e_tag().unwrap().trim_matches('"').to_owned();
    assert!(
        etag.ends_with("-3"),
        "the record is the third stored part: {etag}"
    );
    let stored = std::fs::metadata(env.data.join("mpu/even")).unwrap().len();
    assert_eq!(
        stored,
        2 * sealgate::format::size::part_ciphertext_len(part as u64) + 212,
        "two data parts and a 212-byte record"
    );
    let head = c
        .head_object()
        .bucket("mpu")
        .key("even")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(
        head.e_tag().map(|e| e.trim_matches('"')),
        Some(etag.as_str())
    );
    assert_eq!(get(&c, "mpu", "even", None).await, data);
    let (a, b) = (part - 10, part + 10);
    assert_eq!(
        get(&c, "mpu", "even", Some(&format!("bytes={a}-{b}"))).await,
        &data[a..=b]
    );
    let tail = get(&c, "mpu", "even", Some("bytes=-5")).await;
    assert_eq!(tail, &data[data.len() - 5..]);
    // s3s-fs lists no ETags: the gateway HEADs large entries for theirs.
    let listed = c.list_objects_v2().bucket("mpu").send().await.unwrap();
    let entry = listed
        .contents()
        .iter()
        .find(|o| o.key() == Some("even"))
        .unwrap();
    assert_eq!(entry.size(), Some(data.len() as i64), "listing size");
    assert_eq!(
        entry.e_tag().map(|e| e.trim_matches('"')),
        Some(etag.as_str()),
        "the listing shows the same ETag, record counted"
    );
    let v1 = c.list_objects().bucket("mpu").send().await.unwrap();
    let entry = v1
        .contents()
        .iter()
        .find(|o| o.key() == Some("even"))
        .unwrap();
    assert_eq!(
        entry.size(),
        Some(data.len() as i64),
        "ListObjects (v1) size"
    );
    c.copy_object()
        .bucket("mpu")
        .key("even-copy")
        .copy_source("mpu/even")
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "mpu", "even-copy", None).await, data);
    assert_no_plaintext(&env.data);
}

/// A completion that is known to fail (If-None-Match: * on a key that
/// exists) is refused before a completion record is sealed, so no record of
/// that part list is left in the upload; the upload then continues and
/// completes with more parts.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_completion_leaves_no_completion_record() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("mpu").send().await.unwrap();
    c.put_object()
        .bucket("mpu")
        .key("taken")
        .body(ByteStream::from_static(b"already here"))
        .send()
        .await
        .unwrap();
    let part = 5 << 20;
    let data = body(2 * part + 1000, 78);
    let id = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("taken")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let e1 = put_part(&c, "mpu", "taken", &id, 1, &data[..part]).await;
    let e2 = put_part(&c, "mpu", "taken", &id, 2, &data[part..2 * part]).await;
    // A declared object size that is not the parts' total is refused.
    let wrong_size = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("taken")
        .upload_id(&id)
        .mpu_object_size(2 * part as i64 + 1)
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await
        .expect_err("x-amz-mp-object-size differs from the parts");
    assert_eq!(wrong_size.code(), Some("InvalidRequest"));
    let refused = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("taken")
        .upload_id(&id)
        .if_none_match("*")
        .multipart_upload(completed(&[(1, &e1), (2, &e2)]))
        .send()
        .await
        .expect_err("the key exists");
    assert_eq!(refused.code(), Some("PreconditionFailed"));
    let parts = c
        .list_parts()
        .bucket("mpu")
        .key("taken")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let numbers: Vec<i32> = parts
        .parts()
        .iter()
        .filter_map(|p| p.part_number())
        .collect();
    assert_eq!(numbers, vec![1, 2], "no record was left as part 3");
    let e3 = put_part(&c, "mpu", "taken", &id, 3, &data[2 * part..]).await;
    c.complete_multipart_upload()
        .bucket("mpu")
        .key("taken")
        .upload_id(&id)
        .multipart_upload(completed(&[(1, &e1), (2, &e2), (3, &e3)]))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "mpu", "taken", None).await, data);
}
