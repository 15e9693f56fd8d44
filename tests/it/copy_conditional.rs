//! Server-side copies (no re-encryption: the stored bytes are identical)
//! and conditional requests, against a real s3s-fs.

use crate::gw_common;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use gw_common::{Env, client, client_for, gateway};
use sealgate::serve::{Options, start};

async fn put(c: &Client, b: &str, k: &str, data: &[u8]) -> String {
    c.put_object()
        .bucket(b)
        .key(k)
        .body(ByteStream::from(data.to_vec()))
        .metadata("owner", "ops")
        .content_type("text/plain")
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned()
}

async fn get(c: &Client, b: &str, k: &str) -> Vec<u8> {
    c.get_object()
        .bucket(b)
        .key(k)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec()
}

fn stored(env: &Env, b: &str, k: &str) -> Vec<u8> {
    std::fs::read(env.data.join(b).join(k)).unwrap()
}

fn code<E: ProvideErrorMetadata, R>(r: Result<R, E>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.code().unwrap_or("?").to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_are_server_side_and_rebound() {
    let env = gateway().await;
    let c = client(&env);
    for b in ["src-bucket", "dst-bucket"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    let data = b"copy me, PLAINTEXT-MARKER ".repeat(10_000);
    put(&c, "src-bucket", "a.txt", &data).await;

    // Across buckets, metadata copied.
    let out = c
        .copy_object()
        .bucket("dst-bucket")
        .key("b.txt")
        .copy_source("src-bucket/a.txt")
        .send()
        .await
        .unwrap();
    assert!(out.copy_object_result().unwrap().e_tag().is_some());
    assert_eq!(get(&c, "dst-bucket", "b.txt").await, data);
    let h = c
        .head_object()
        .bucket("dst-bucket")
        .key("b.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_type(), Some("text/plain"));
    assert_eq!(
        h.metadata().unwrap().get("owner").map(String::as_str),
        Some("ops")
    );
    // No re-encryption: the provider holds the same ciphertext bytes.
    assert_eq!(
        stored(&env, "dst-bucket", "b.txt"),
        stored(&env, "src-bucket", "a.txt")
    );

    // Copy to itself without REPLACE is refused, as on S3; with REPLACE the
    // metadata changes and the body stays.
    assert_eq!(
        code(
            c.copy_object()
                .bucket("src-bucket")
                .key("a.txt")
                .copy_source("src-bucket/a.txt")
                .send()
                .await
        ),
        "InvalidRequest"
    );
    c.copy_object()
        .bucket("src-bucket")
        .key("a.txt")
        .copy_source("src-bucket/a.txt")
        .metadata_directive(MetadataDirective::Replace)
        .metadata("owner", "finance")
        .content_type("application/json")
        .send()
        .await
        .unwrap();
    let h = c
        .head_object()
        .bucket("src-bucket")
        .key("a.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.metadata().unwrap().get("owner").map(String::as_str),
        Some("finance")
    );
    assert_eq!(h.content_type(), Some("application/json"));
    assert_eq!(get(&c, "src-bucket", "a.txt").await, data);

    // The provider moving the copy back under the source name is detected:
    // the copy is bound to its own name.
    std::fs::copy(
        env.data.join("dst-bucket").join("b.txt"),
        env.data.join("src-bucket").join("swapped.txt"),
    )
    .unwrap();
    assert!(
        c.head_object()
            .bucket("src-bucket")
            .key("swapped.txt")
            .send()
            .await
            .is_err()
    );

    // A copy condition that fails is 412.
    assert_eq!(
        code(
            c.copy_object()
                .bucket("dst-bucket")
                .key("c.txt")
                .copy_source("src-bucket/a.txt")
                .copy_source_if_match("\"nope\"")
                .send()
                .await
        ),
        "PreconditionFailed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multipart_source_is_copied_part_by_part() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("mp-copy").send().await.unwrap();
    let data: Vec<u8> = (0..(11 << 20) + 99).map(|i| (i % 241) as u8).collect();
    let id = c
        .create_multipart_upload()
        .bucket("mp-copy")
        .key("src")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let mut parts = Vec::new();
    for (i, chunk) in data.chunks(5 << 20).enumerate() {
        let n = i as i32 + 1;
        let e = c
            .upload_part()
            .bucket("mp-copy")
            .key("src")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(e.e_tag().unwrap())
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket("mp-copy")
        .key("src")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = c
        .copy_object()
        .bucket("mp-copy")
        .key("dst")
        .copy_source("mp-copy/src")
        .send()
        .await
        .unwrap();
    let etag = out
        .copy_object_result()
        .unwrap()
        .e_tag()
        .unwrap()
        .trim_matches('"')
        .to_owned();
    assert!(etag.ends_with("-3"), "{etag}");
    let h = c
        .head_object()
        .bucket("mp-copy")
        .key("dst")
        .send()
        .await
        .unwrap();
    assert_eq!(h.content_length(), Some(data.len() as i64));
    assert_eq!(get(&c, "mp-copy", "dst").await, data);
    assert_eq!(
        stored(&env, "mp-copy", "dst"),
        stored(&env, "mp-copy", "src")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_needs_the_source_bucket_grant() {
    let env = gateway().await;
    let (up, uak, usk) = env.gw.upstream.clone().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sealgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\nkeys_dir = {:?}\n[upstream]\nendpoint = \"http://{up}\"\naccess_key = \"{uak}\"\nsecret_key = \"{usk}\"\n[[credentials]]\naccess_key = \"alice\"\nsecret_key = \"alice-secret\"\nbuckets = [\"alice-bucket\"]\n",
            env._dir.path().join("keys")
        ),
    )
    .unwrap();
    let gw2 = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let admin = client(&env);
    for b in ["alice-bucket", "secret-bucket"] {
        admin.create_bucket().bucket(b).send().await.unwrap();
    }
    put(&admin, "secret-bucket", "payroll", b"salaries").await;
    let alice = client_for(format!("http://{}", gw2.addr), "alice", "alice-secret");
    assert_eq!(
        code(
            alice
                .copy_object()
                .bucket("alice-bucket")
                .key("stolen")
                .copy_source("secret-bucket/payroll")
                .send()
                .await
        ),
        "AccessDenied"
    );
    assert!(!env.data.join("alice-bucket").join("stolen").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn conditional_reads_and_writes() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("cond").send().await.unwrap();
    let etag = put(&c, "cond", "k", b"v1").await;
    let past = DateTime::from_secs(1_000_000_000);
    let future = DateTime::from_secs(4_000_000_000);

    let g = |m: Option<&str>, nm: Option<&str>, ms: Option<DateTime>, us: Option<DateTime>| {
        let c = c.clone();
        let (m, nm) = (m.map(str::to_owned), nm.map(str::to_owned));
        async move {
            let r = c
                .get_object()
                .bucket("cond")
                .key("k")
                .set_if_match(m)
                .set_if_none_match(nm)
                .set_if_modified_since(ms)
                .set_if_unmodified_since(us)
                .send()
                .await;
            match r {
                Ok(_) => 200,
                Err(e) => e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0),
            }
        }
    };
    assert_eq!(g(Some(&etag), None, None, None).await, 200);
    assert_eq!(g(Some("\"other\""), None, None, None).await, 412);
    assert_eq!(g(None, Some(&etag), None, None).await, 304);
    assert_eq!(g(None, Some("\"other\""), None, None).await, 200);
    assert_eq!(g(None, None, Some(future), None).await, 304);
    assert_eq!(g(None, None, Some(past), None).await, 200);
    assert_eq!(g(None, None, None, Some(past)).await, 412);
    assert_eq!(g(Some(&etag), None, None, Some(past)).await, 200);

    let h = c
        .head_object()
        .bucket("cond")
        .key("k")
        .if_none_match(&etag)
        .send()
        .await;
    assert_eq!(
        h.unwrap_err().raw_response().unwrap().status().as_u16(),
        304
    );

    // Conditional writes.
    let create_only = c
        .put_object()
        .bucket("cond")
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"v2"))
        .send()
        .await;
    assert_eq!(code(create_only), "PreconditionFailed");
    let wrong = c
        .put_object()
        .bucket("cond")
        .key("k")
        .if_match("\"stale\"")
        .body(ByteStream::from_static(b"v2"))
        .send()
        .await;
    assert_eq!(code(wrong), "PreconditionFailed");
    assert_eq!(get(&c, "cond", "k").await, b"v1");
    c.put_object()
        .bucket("cond")
        .key("k")
        .if_match(&etag)
        .body(ByteStream::from_static(b"v2"))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "cond", "k").await, b"v2");
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_part_copy_reseals_ranges_of_a_source() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("upc").send().await.unwrap();
    let src: Vec<u8> = (0..(7 << 20) + 5).map(|i| (i % 239) as u8).collect();
    put(&c, "upc", "src", &src).await;
    let id = c
        .create_multipart_upload()
        .bucket("upc")
        .key("dst")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let mut parts = Vec::new();
    for (n, range) in [(1, "bytes=0-5242879"), (2, "bytes=5242880-7340036")] {
        let out = c
            .upload_part_copy()
            .bucket("upc")
            .key("dst")
            .upload_id(&id)
            .part_number(n)
            .copy_source("upc/src")
            .copy_source_range(range)
            .send()
            .await
            .unwrap();
        let e = out.copy_part_result().unwrap().e_tag().unwrap().to_owned();
        parts.push(CompletedPart::builder().part_number(n).e_tag(e).build());
    }
    c.complete_multipart_upload()
        .bucket("upc")
        .key("dst")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(get(&c, "upc", "dst").await, src);
    // A malformed range is refused before anything is written.
    assert_eq!(
        code(
            c.upload_part_copy()
                .bucket("upc")
                .key("dst")
                .upload_id(&id)
                .part_number(3)
                .copy_source("upc/src")
                .copy_source_range("bytes=5-")
                .send()
                .await
        ),
        "InvalidArgument"
    );
}
