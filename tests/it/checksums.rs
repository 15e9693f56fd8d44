//! Full-object checksums (x-amz-checksum-*) and GetObjectAttributes
//! (issue 15 point 4), through the gateway in front of a real s3s-fs, with
//! the AWS SDK: checksums a client sent come back as S3 returns them only
//! when asked, are kept only inside the sealed metadata, and
//! GetObjectAttributes answers from the authenticated object as HEAD does.

use crate::gw_common;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ObjectAttributes};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextMut, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use base64::Engine;
use gw_common::{Env, client, gateway, walk};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

const B: &str = "sums";

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Every algorithm's base64 value for `data`, by lower-case name.
fn expected(data: &[u8]) -> BTreeMap<&'static str, String> {
    let mut h = s3s::checksum::ChecksumHasher {
        crc32: Some(Default::default()),
        crc32c: Some(Default::default()),
        sha1: Some(Default::default()),
        sha256: Some(Default::default()),
        crc64nvme: Some(Default::default()),
    };
    h.update(data);
    let c = h.finalize();
    BTreeMap::from([
        ("crc32", c.checksum_crc32.unwrap()),
        ("crc32c", c.checksum_crc32c.unwrap()),
        ("crc64nvme", c.checksum_crc64nvme.unwrap()),
        ("sha1", c.checksum_sha1.unwrap()),
        ("sha256", c.checksum_sha256.unwrap()),
    ])
}

/// The checksum fields of a HEAD, GET or PUT answer, by algorithm name.
macro_rules! returned {
    ($out:expr) => {{
        let o = &$out;
        let mut m = BTreeMap::new();
        for (n, v) in [
            ("crc32", o.checksum_crc32()),
            ("crc32c", o.checksum_crc32_c()),
            ("crc64nvme", o.checksum_crc64_nvme()),
            ("sha1", o.checksum_sha1()),
            ("sha256", o.checksum_sha256()),
        ] {
            if let Some(v) = v {
                m.insert(n, v.to_owned());
            }
        }
        (m, o.checksum_type().map(|t| t.as_str().to_owned()))
    }};
}

fn algorithm(name: &str) -> ChecksumAlgorithm {
    match name {
        "crc32" => ChecksumAlgorithm::Crc32,
        "crc32c" => ChecksumAlgorithm::Crc32C,
        "crc64nvme" => ChecksumAlgorithm::Crc64Nvme,
        "sha1" => ChecksumAlgorithm::Sha1,
        "sha256" => ChecksumAlgorithm::Sha256,
        _ => unreachable!(),
    }
}

/// Records the headers of every request a client sends.
#[derive(Debug, Clone, Default)]
struct SeenHeaders(Arc<Mutex<Vec<(String, String)>>>);

impl Intercept for SeenHeaders {
    fn name(&self) -> &'static str {
        "seen-headers"
    }
    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let mut seen = self.0.lock().unwrap();
        for (k, v) in ctx.request().headers().iter() {
            seen.push((k.to_ascii_lowercase(), v.to_owned()));
        }
        Ok(())
    }
}

impl SeenHeaders {
    fn get(&self, name: &str) -> Option<String> {
        let seen = self.0.lock().unwrap();
        seen.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }
}

/// Sends x-amz-object-attributes as one comma-separated header, as
/// botocore does (the Rust SDK sends one header per name).
#[derive(Debug)]
struct OneAttributesHeader;

impl Intercept for OneAttributesHeader {
    fn name(&self) -> &'static str {
        "one-attributes-header"
    }
    fn modify_before_signing(
        &self,
        ctx: &mut BeforeTransmitInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let h = ctx.request_mut().headers_mut();
        let all: Vec<String> = h
            .get_all("x-amz-object-attributes")
            .map(str::to_owned)
            .collect();
        assert!(all.len() > 1, "{all:?}");
        h.remove("x-amz-object-attributes");
        h.insert("x-amz-object-attributes", all.join(","));
        Ok(())
    }
}

/// The checksums of `key` as HEAD returns them with ChecksumMode ENABLED.
async fn head_sums(c: &Client, key: &str) -> (BTreeMap<&'static str, String>, Option<String>) {
    let h = c
        .head_object()
        .bucket(B)
        .key(key)
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    returned!(h)
}

/// Fails if the provider stores any of `values` (base64 as sent, or as
/// hex) in any file: checksums describe plaintext.
fn assert_not_at_provider(env: &Env, values: &[String]) {
    for v in values {
        let raw = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
        let hex = hex::encode(&raw);
        for f in walk(&env.data) {
            let bytes = std::fs::read(&f).unwrap();
            for needle in [v.as_bytes(), hex.as_bytes()] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "checksum {v} in clear at the provider: {}",
                    f.display()
                );
            }
            if raw.len() >= 20 {
                assert!(
                    !bytes.windows(raw.len()).any(|w| w == raw.as_slice()),
                    "checksum {v} (raw bytes) at the provider: {}",
                    f.display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn checksums_sent_with_a_put_come_back_only_when_asked() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket(B).send().await.unwrap();
    let data = body(200_000, 7);
    let want = expected(&data);
    let mut stored = Vec::new();

    // Header form: the value is sent before the body.
    for (alg, value) in &want {
        let key = format!("header-{alg}");
        let put = c.put_object().bucket(B).key(&key);
        let put = match *alg {
            "crc32" => put.checksum_crc32(value),
            "crc32c" => put.checksum_crc32_c(value),
            "crc64nvme" => put.checksum_crc64_nvme(value),
            "sha1" => put.checksum_sha1(value),
            _ => put.checksum_sha256(value),
        };
        let out = put
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        let (sums, kind) = returned!(out);
        assert_eq!(sums.get(alg), Some(value), "{alg}: PutObject answer");
        assert_eq!(
            kind.as_deref(),
            Some("FULL_OBJECT"),
            "{alg}: PutObject type"
        );

        // Not without ChecksumMode.
        let h = c.head_object().bucket(B).key(&key).send().await.unwrap();
        let (sums, kind) = returned!(h);
        assert!(
            sums.is_empty() && kind.is_none(),
            "{alg}: HEAD without ChecksumMode: {sums:?}"
        );
        // (The SDK asks for checksums on every GET unless told not to.)
        let seen = SeenHeaders::default();
        let g = c
            .get_object()
            .bucket(B)
            .key(&key)
            .customize()
            .config_override(
                aws_sdk_s3::config::Config::builder().response_checksum_validation(
                    aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
                ),
            )
            .interceptor(seen.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(seen.get("x-amz-checksum-mode"), None);
        let (sums, kind) = returned!(g);
        assert!(
            sums.is_empty() && kind.is_none(),
            "{alg}: GET without ChecksumMode"
        );

        // With it: exactly what the client sent, of type FULL_OBJECT.
        let (sums, kind) = head_sums(&c, &key).await;
        assert_eq!(sums.get(alg), Some(value), "{alg}: HEAD with ChecksumMode");
        for (a, v) in &sums {
            assert_eq!(Some(v), want.get(a), "{alg}: HEAD returned a wrong {a}");
        }
        assert_eq!(kind.as_deref(), Some("FULL_OBJECT"), "{alg}: HEAD type");
        // GET: the SDK validates the body against what it is given.
        let g = c
            .get_object()
            .bucket(B)
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let (sums, kind) = returned!(g);
        assert_eq!(sums.get(alg), Some(value), "{alg}: GET with ChecksumMode");
        assert_eq!(kind.as_deref(), Some("FULL_OBJECT"), "{alg}: GET type");
        assert_eq!(g.body.collect().await.unwrap().to_vec(), data);
        // A range: no full-object checksum, as S3.
        let r = c
            .get_object()
            .bucket(B)
            .key(&key)
            .range("bytes=10-99")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let (sums, kind) = returned!(r);
        assert!(
            sums.is_empty() && kind.is_none(),
            "{alg}: ranged GET: {sums:?}"
        );
        assert_eq!(r.body.collect().await.unwrap().to_vec(), data[10..100]);
        let h = c
            .head_object()
            .bucket(B)
            .key(&key)
            .range("bytes=10-99")
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let (sums, kind) = returned!(h);
        assert!(
            sums.is_empty() && kind.is_none(),
            "{alg}: ranged HEAD: {sums:?}"
        );
        stored.push(value.clone());
    }

    // Trailer form: the SDK streams a file as aws-chunked and sends the
    // value after the body (x-amz-trailer).
    let file = env._dir.path().join("upload.bin");
    std::fs::write(&file, &data).unwrap();
    for alg in ["crc32", "crc64nvme", "sha256"] {
        let key = format!("trailer-{alg}");
        let seen = SeenHeaders::default();
        let out = c
            .put_object()
            .bucket(B)
            .key(&key)
            .checksum_algorithm(algorithm(alg))
            .body(ByteStream::from_path(&file).await.unwrap())
            .customize()
            .interceptor(seen.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(
            seen.get("x-amz-trailer").as_deref(),
            Some(format!("x-amz-checksum-{alg}").as_str()),
            "{alg}: the SDK sent the checksum in a trailer"
        );
        assert_eq!(seen.get(&format!("x-amz-checksum-{alg}")), None);
        let (sums, _) = returned!(out);
        assert_eq!(sums.get(alg), want.get(alg), "{alg}: PutObject answer");
        let (sums, kind) = head_sums(&c, &key).await;
        assert_eq!(
            sums.get(alg),
            want.get(alg),
            "{alg}: trailer checksum on HEAD"
        );
        assert_eq!(kind.as_deref(), Some("FULL_OBJECT"));
        // The object is unchanged by adding it (ETag, bytes).
        let h = c.head_object().bucket(B).key(&key).send().await.unwrap();
        assert_eq!(h.e_tag(), out.e_tag(), "{alg}: the PUT's ETag is HEAD's");
        assert_eq!(gw_common::get_bytes(&c, B, &key).await, data);
    }

    // A wrong checksum stores nothing (header and trailer forms).
    let wrong = c
        .put_object()
        .bucket(B)
        .key("wrong")
        .checksum_sha256(&want["sha1"].repeat(2)[..44])
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Some("BadDigest"), "{wrong:?}");
    assert!(c.head_object().bucket(B).key("wrong").send().await.is_err());

    // The provider never sees a value in clear.
    let mut all: Vec<String> = want.values().cloned().collect();
    all.extend(stored);
    assert_not_at_provider(&env, &all);
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_keep_the_checksum_and_multipart_objects_have_none() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket(B).send().await.unwrap();
    let data = body(100_000, 3);
    let want = expected(&data);
    c.put_object()
        .bucket(B)
        .key("src")
        .checksum_sha256(&want["sha256"])
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    for (dest, replace) in [("copy", false), ("copy-replace", true)] {
        let mut r = c
            .copy_object()
            .bucket(B)
            .key(dest)
            .copy_source(format!("{B}/src"));
        if replace {
            r = r
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .metadata("fresh", "yes");
        }
        r.send().await.unwrap();
        let (sums, kind) = head_sums(&c, dest).await;
        assert_eq!(sums.get("sha256"), Some(&want["sha256"]), "{dest}");
        assert_eq!(kind.as_deref(), Some("FULL_OBJECT"), "{dest}");
    }
    // Copy asking for another algorithm: sealgate does not read the
    // plaintext back to compute it, so the copy has none (documented).
    c.copy_object()
        .bucket(B)
        .key("copy-crc32")
        .copy_source(format!("{B}/src"))
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap();
    let (sums, _) = head_sums(&c, "copy-crc32").await;
    assert!(sums.is_empty(), "{sums:?}");

    // Multipart: no checksum comes back (documented deviation), though the
    // parts were sent with checksums.
    let (p1, p2) = (body(5 << 20, 1), body(1000, 2));
    let id = c
        .create_multipart_upload()
        .bucket(B)
        .key("mp")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let mut parts = Vec::new();
    let mut part_sums = vec![want["sha256"].clone()];
    for (n, p) in [(1, &p1), (2, &p2)] {
        part_sums.push(expected(p)["crc32"].clone());
        let e = c
            .upload_part()
            .bucket(B)
            .key("mp")
            .upload_id(&id)
            .part_number(n)
            .checksum_crc32(&expected(p)["crc32"])
            .body(ByteStream::from(p.clone()))
            .send()
            .await
            .unwrap();
        parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(n)
                .e_tag(e.e_tag().unwrap())
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket(B)
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (sums, kind) = head_sums(&c, "mp").await;
    assert!(sums.is_empty() && kind.is_none(), "multipart: {sums:?}");
    let g = c
        .get_object()
        .bucket(B)
        .key("mp")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(g.body.collect().await.unwrap().to_vec(), [p1, p2].concat());
    assert_not_at_provider(&env, &part_sums);
}

#[tokio::test(flavor = "multi_thread")]
async fn get_object_attributes_answers_from_the_authenticated_object() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket(B).send().await.unwrap();
    let data = body(70_000, 9);
    let want = expected(&data);
    c.put_object()
        .bucket(B)
        .key("one")
        .checksum_crc32_c(&want["crc32c"])
        .body(ByteStream::from(data.clone()))
        .send()
        .await
        .unwrap();
    let all = [
        ObjectAttributes::Etag,
        ObjectAttributes::ObjectSize,
        ObjectAttributes::StorageClass,
        ObjectAttributes::Checksum,
        ObjectAttributes::ObjectParts,
    ];
    let attrs = |key: &str| {
        c.get_object_attributes()
            .bucket(B)
            .key(key)
            .set_object_attributes(Some(all.to_vec()))
    };
    let head = c.head_object().bucket(B).key("one").send().await.unwrap();
    let a = attrs("one").send().await.unwrap();
    assert_eq!(a.object_size(), Some(data.len() as i64), "plaintext size");
    assert_eq!(a.e_tag(), head.e_tag(), "the ETag HEAD returns");
    assert_eq!(a.storage_class().map(|s| s.as_str()), Some("STANDARD"));
    let sum = a.checksum().expect("the checksum the client sent");
    assert_eq!(sum.checksum_crc32_c(), Some(want["crc32c"].as_str()));
    assert_eq!(sum.checksum_type().map(|t| t.as_str()), Some("FULL_OBJECT"));
    assert!(a.object_parts().is_none(), "a single PUT has no parts");
    assert!(a.last_modified().is_some());
    // Several names in one header (botocore).
    let a = attrs("one")
        .customize()
        .interceptor(OneAttributesHeader)
        .send()
        .await
        .unwrap();
    assert_eq!(a.object_size(), Some(data.len() as i64));
    assert_eq!(a.e_tag(), head.e_tag());
    assert!(a.checksum().is_some());
    // Only what was asked for.
    let a = c
        .get_object_attributes()
        .bucket(B)
        .key("one")
        .object_attributes(ObjectAttributes::ObjectSize)
        .send()
        .await
        .unwrap();
    assert!(a.e_tag().is_none() && a.checksum().is_none());
    assert_eq!(a.object_size(), Some(data.len() as i64));

    // Multipart: the plaintext size of every part, paged; a completion
    // record (last part of 5 MiB or more) is not a part.
    for (key, sizes) in [
        ("mp3", vec![5 << 20, 5 << 20, 1234]),
        ("mp2-record", vec![5 << 20, (5 << 20) + 1]),
    ] {
        let parts: Vec<Vec<u8>> = sizes.iter().map(|&n| body(n, n as u8)).collect();
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        gw_common::put_multipart(&c, B, key, &refs).await;
        let total: usize = sizes.iter().sum();
        let a = attrs(key).send().await.unwrap();
        assert_eq!(a.object_size(), Some(total as i64), "{key}");
        let head = c.head_object().bucket(B).key(key).send().await.unwrap();
        assert_eq!(a.e_tag(), head.e_tag(), "{key}");
        assert!(
            a.checksum().is_none(),
            "{key}: multipart objects carry none"
        );
        let p = a.object_parts().expect("parts");
        assert_eq!(p.total_parts_count(), Some(sizes.len() as i32), "{key}");
        let got: Vec<(i32, i64)> = p
            .parts()
            .iter()
            .map(|x| (x.part_number().unwrap(), x.size().unwrap()))
            .collect();
        let expect: Vec<(i32, i64)> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| (i as i32 + 1, n as i64))
            .collect();
        assert_eq!(got, expect, "{key}");
        assert_eq!(p.is_truncated(), Some(false));
    }
    let page = attrs("mp3")
        .max_parts(1)
        .part_number_marker("1")
        .send()
        .await
        .unwrap();
    let p = page.object_parts().unwrap();
    assert_eq!(p.parts().len(), 1);
    assert_eq!(p.parts()[0].part_number(), Some(2));
    assert_eq!(p.parts()[0].size(), Some(5 << 20));
    assert_eq!(p.is_truncated(), Some(true));
    assert_eq!(p.next_part_number_marker(), Some("2"));
    assert_eq!(p.total_parts_count(), Some(3));

    // Missing objects, versions and SSE-C are S3 errors.
    let e = attrs("nope").send().await.unwrap_err();
    assert_eq!(e.code(), Some("NoSuchKey"), "{e:?}");
    let e = attrs("one").version_id("v1").send().await.unwrap_err();
    assert_eq!(e.code(), Some("NotImplemented"), "{e:?}");
    let e = attrs("one")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("NotImplemented"), "{e:?}");

    // Integrity holds as for HEAD: the provider swapping in another
    // object, or altering the sealed metadata, gets an error, not an answer.
    let s3fs = |key: &str| {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        [
            env.data.join(B).join(key),
            env.data
                .join(format!(".bucket-{}.object-{}.metadata.json", e(B), e(key))),
            env.data
                .join(format!(".bucket-{}.object-{}.internal.json", e(B), e(key))),
        ]
    };
    c.put_object()
        .bucket(B)
        .key("victim")
        .body(ByteStream::from(body(10, 1)))
        .send()
        .await
        .unwrap();
    for (a, b) in s3fs("one").iter().zip(s3fs("victim")) {
        if a.exists() {
            std::fs::copy(a, b).unwrap();
        }
    }
    let e = attrs("victim").send().await.unwrap_err();
    assert_integrity_failure(&e, "object moved by the provider");

    let meta = &s3fs("one")[1];
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
    let sealed = doc["user_metadata"]["sealgate-meta"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut blob = base64::engine::general_purpose::STANDARD
        .decode(&sealed)
        .unwrap();
    let n = blob.len();
    blob[n - 20] ^= 1;
    doc["user_metadata"]["sealgate-meta"] = base64::engine::general_purpose::STANDARD
        .encode(blob)
        .into();
    std::fs::write(meta, serde_json::to_vec(&doc).unwrap()).unwrap();
    let e = attrs("one").send().await.unwrap_err();
    assert_integrity_failure(&e, "sealed metadata altered");
}

/// The gateway refused to answer for a stored object that failed
/// authentication (the code and message every integrity failure gets).
fn assert_integrity_failure<E: ProvideErrorMetadata + std::fmt::Debug>(e: &E, case: &str) {
    assert_eq!(e.code(), Some("InternalError"), "{case}: {e:?}");
    assert_eq!(
        e.message(),
        Some("stored object failed authentication"),
        "{case}: {e:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_clients_metadata_comes_before_its_checksums_in_the_budget() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket(B).send().await.unwrap();
    let want = expected(b"x");
    let put = |key: &str, meta: String, sha256: Option<&str>| {
        c.put_object()
            .bucket(B)
            .key(key)
            .metadata("m", meta)
            .set_checksum_sha256(sha256.map(str::to_owned))
            .body(ByteStream::from_static(b"x"))
            .customize()
            .config_override(
                aws_sdk_s3::config::Config::builder().request_checksum_calculation(
                    aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
                ),
            )
            .send()
    };
    // The largest metadata that fits without a checksum (FORMAT.md §Limits).
    let mut len = 1300;
    loop {
        match put("probe", "v".repeat(len), None).await {
            Ok(_) => break,
            Err(e) => {
                assert_eq!(e.code(), Some("MetadataTooLarge"), "{e:?}");
                len -= 1;
            }
        }
    }
    assert!(len >= 1100, "budget shrank to {len}");
    // With a checksum on top: stored, the metadata whole, no checksum kept.
    put("full", "v".repeat(len), Some(&want["sha256"]))
        .await
        .unwrap();
    let h = c
        .head_object()
        .bucket(B)
        .key("full")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(h.metadata().unwrap()["m"].len(), len);
    assert_eq!(h.checksum_sha256(), None);
    // With room for it, it is kept.
    put("room", "v".repeat(len - 100), Some(&want["sha256"]))
        .await
        .unwrap();
    let (sums, _) = head_sums(&c, "room").await;
    assert_eq!(sums.get("sha256"), Some(&want["sha256"]));
}

/// A trailer checksum is added after the upload (a CopyObject of the
/// object onto itself); when the provider refuses that copy, the PUT is
/// still done and the object, intact, has no checksum.
#[tokio::test(flavor = "multi_thread")]
async fn a_trailer_checksum_the_provider_will_not_take_leaves_the_put_done() {
    use gw_common::fault_proxy::{self, Fault, Faults, Rule};
    let dir = tempfile::tempdir().unwrap();
    let (uak, usk) = ("sums-up", "sums-up-secret-0123456789");
    let up = sealgate::serve::embedded::start(&dir.path().join("up"), uak, usk)
        .await
        .unwrap();
    let faults = Arc::new(Faults::default());
    let via = fault_proxy::start(up, faults.clone()).await;
    let cfg = gw_common::gateway_config_with(dir.path(), via, (uak, usk), "", "");
    let gw = sealgate::serve::start(sealgate::serve::Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = gw_common::client_for(format!("http://{}", gw.addr), gw_common::AK, gw_common::SK);
    c.create_bucket().bucket(B).send().await.unwrap();
    let data = body(100_000, 5);
    let file = dir.path().join("upload.bin");
    std::fs::write(&file, &data).unwrap();
    // The upload passes; the copy that follows it (a PUT too) is refused.
    faults.arm(Rule {
        method: "PUT",
        contains: format!("/{B}/trailer"),
        skip: 1,
        times: 1,
        fault: Fault::Status(403, "AccessDenied"),
    });
    let out = c
        .put_object()
        .bucket(B)
        .key("trailer")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from_path(&file).await.unwrap())
        .send()
        .await
        .unwrap();
    assert!(faults.all_fired(), "the copy was not attempted");
    assert_eq!(
        out.checksum_sha256(),
        Some(expected(&data)["sha256"].as_str())
    );
    let (sums, _) = head_sums(&c, "trailer").await;
    assert!(sums.is_empty(), "{sums:?}");
    assert_eq!(gw_common::get_bytes(&c, B, "trailer").await, data);
}
