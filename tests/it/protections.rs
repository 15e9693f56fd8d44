//! Protections a client asks for that sealgate does not carry out are
//! refused with an S3 error naming the header, before anything is stored
//! (issue 14, finding 9); in passthrough buckets SSE-S3/SSE-KMS are
//! forwarded to the provider, and kept only when the provider applied them.
//! Against real s3s-fs providers behind the in-process gateway.

use crate::gw_common;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ObjectCannedAcl, ObjectLockLegalHoldStatus,
    ObjectLockMode, ServerSideEncryption,
};
use gw_common::{client, client_for, gateway, walk};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Every file under the provider's directory with its contents.
fn provider_state(data: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<_> = walk(data)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect();
    v.sort();
    v
}

/// Asserts a refusal: NotImplemented, a message naming `header`.
fn assert_refused<E: ProvideErrorMetadata + std::fmt::Debug>(
    r: Result<impl Sized, E>,
    header: &str,
) {
    let e = match r {
        Ok(_) => panic!("{header}: accepted"),
        Err(e) => e,
    };
    assert_eq!(e.code(), Some("NotImplemented"), "{header}: {e:?}");
    assert!(
        e.message().is_some_and(|m| m.contains(header)),
        "{header}: {e:?}"
    );
}

const SSE_C_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
const SSE_C_MD5: &str = "hRasmdxgYDKV3nvbahU1MA==";

#[tokio::test(flavor = "multi_thread")]
async fn unsupported_protections_are_refused_before_anything_is_stored() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("prot").send().await.unwrap();
    let body = || ByteStream::from(b"PROTECT-ME ".repeat(100));
    let until = aws_smithy_types::DateTime::from_secs(4_102_444_800); // 2100
    let before = provider_state(&env.data);

    // PutObject: each protection alone.
    let put = || c.put_object().bucket("prot").key("k").body(body());
    assert_refused(
        put()
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await,
        "x-amz-server-side-encryption",
    );
    assert_refused(
        put()
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id("alias/x")
            .send()
            .await,
        "x-amz-server-side-encryption",
    );
    assert_refused(
        put()
            .sse_customer_algorithm("AES256")
            .sse_customer_key(SSE_C_KEY)
            .sse_customer_key_md5(SSE_C_MD5)
            .send()
            .await,
        "x-amz-server-side-encryption-customer-",
    );
    assert_refused(
        put()
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(until)
            .send()
            .await,
        "x-amz-object-lock-",
    );
    assert_refused(
        put()
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await,
        "x-amz-object-lock-legal-hold",
    );
    assert_refused(
        put().acl(ObjectCannedAcl::PublicRead).send().await,
        "x-amz-acl",
    );
    assert_refused(
        put()
            .grant_read("uri=\"http://acs.amazonaws.com/groups/global/AllUsers\"")
            .send()
            .await,
        "x-amz-grant-read",
    );
    assert_refused(put().tagging("team=hr").send().await, "x-amz-tagging");

    // CreateMultipartUpload.
    let mpu = || c.create_multipart_upload().bucket("prot").key("big");
    assert_refused(
        mpu()
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await,
        "x-amz-server-side-encryption",
    );
    assert_refused(
        mpu()
            .object_lock_mode(ObjectLockMode::Governance)
            .object_lock_retain_until_date(until)
            .send()
            .await,
        "x-amz-object-lock-",
    );
    assert_refused(mpu().tagging("a=b").send().await, "x-amz-tagging");
    assert_refused(
        mpu().acl(ObjectCannedAcl::PublicReadWrite).send().await,
        "x-amz-acl",
    );
    assert_eq!(
        provider_state(&env.data),
        before,
        "a refused request stored something"
    );

    // A source to copy and an upload to add parts to, made normally.
    c.put_object()
        .bucket("prot")
        .key("src")
        .body(body())
        .send()
        .await
        .unwrap();
    let upload = c
        .create_multipart_upload()
        .bucket("prot")
        .key("big")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let before = provider_state(&env.data);

    // CopyObject.
    let copy = || {
        c.copy_object()
            .bucket("prot")
            .key("dst")
            .copy_source("prot/src")
    };
    assert_refused(
        copy()
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await,
        "x-amz-server-side-encryption",
    );
    assert_refused(
        copy()
            .copy_source_sse_customer_algorithm("AES256")
            .copy_source_sse_customer_key(SSE_C_KEY)
            .copy_source_sse_customer_key_md5(SSE_C_MD5)
            .send()
            .await,
        "x-amz-copy-source-server-side-encryption-customer-",
    );
    assert_refused(
        copy()
            .tagging("a=b")
            .tagging_directive(aws_sdk_s3::types::TaggingDirective::Replace)
            .send()
            .await,
        "x-amz-tagging",
    );
    assert_refused(
        copy().acl(ObjectCannedAcl::AuthenticatedRead).send().await,
        "x-amz-acl",
    );
    assert_refused(
        copy()
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await,
        "x-amz-object-lock-legal-hold",
    );

    // UploadPart and UploadPartCopy with SSE-C.
    assert_refused(
        c.upload_part()
            .bucket("prot")
            .key("big")
            .upload_id(&upload)
            .part_number(1)
            .sse_customer_algorithm("AES256")
            .sse_customer_key(SSE_C_KEY)
            .sse_customer_key_md5(SSE_C_MD5)
            .body(body())
            .send()
            .await,
        "x-amz-server-side-encryption-customer-",
    );
    assert_refused(
        c.upload_part_copy()
            .bucket("prot")
            .key("big")
            .upload_id(&upload)
            .part_number(1)
            .copy_source("prot/src")
            .copy_source_sse_customer_algorithm("AES256")
            .copy_source_sse_customer_key(SSE_C_KEY)
            .copy_source_sse_customer_key_md5(SSE_C_MD5)
            .send()
            .await,
        "x-amz-copy-source-server-side-encryption-customer-",
    );
    assert_eq!(
        provider_state(&env.data),
        before,
        "a refused request stored something"
    );
    let parts = c
        .list_parts()
        .bucket("prot")
        .key("big")
        .upload_id(&upload)
        .send()
        .await
        .unwrap();
    assert!(parts.parts().is_empty(), "{parts:?}");
    for k in ["k", "dst"] {
        assert!(
            c.head_object().bucket("prot").key(k).send().await.is_err(),
            "{k} exists"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn buckets_asking_for_object_lock_or_a_public_acl_are_refused_and_not_created() {
    let env = gateway().await;
    let c = client(&env);
    assert_refused(
        c.create_bucket()
            .bucket("locked")
            .object_lock_enabled_for_bucket(true)
            .send()
            .await,
        "x-amz-bucket-object-lock-enabled",
    );
    assert_refused(
        c.create_bucket()
            .bucket("public")
            .acl(aws_sdk_s3::types::BucketCannedAcl::PublicRead)
            .send()
            .await,
        "x-amz-acl",
    );
    assert_refused(
        c.create_bucket()
            .bucket("granted")
            .grant_write("id=\"someone\"")
            .send()
            .await,
        "x-amz-grant-write",
    );
    for b in ["locked", "public", "granted"] {
        assert!(!env.data.join(b).exists(), "{b} was created");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acl_private_is_accepted_as_what_happens_anyway() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket()
        .bucket("acl")
        .acl(aws_sdk_s3::types::BucketCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let body = b"private by default".to_vec();
    c.put_object()
        .bucket("acl")
        .key("k")
        .acl(ObjectCannedAcl::Private)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    c.copy_object()
        .bucket("acl")
        .key("k2")
        .copy_source("acl/k")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let u = c
        .create_multipart_upload()
        .bucket("acl")
        .key("mp")
        .acl(ObjectCannedAcl::Private)
        .send()
        .await
        .unwrap();
    let id = u.upload_id().unwrap();
    let p = c
        .upload_part()
        .bucket("acl")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket("acl")
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(p.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    for k in ["k", "k2", "mp"] {
        assert_eq!(gw_common::get_bytes(&c, "acl", k).await, body, "{k}");
    }
    gw_common::assert_no_plaintext(&env.data, b"private by default");
}

// ---- passthrough buckets: SSE forwarded to the provider ----

const UAK: &str = "prot-upstream";
const USK: &str = "prot-upstream-secret-0123";
const AK: &str = "prot-client";
const SK: &str = "prot-client-secret-0123";

/// What the provider was asked for: (key, x-amz-server-side-encryption, KMS key id).
type Asked = Arc<Mutex<Vec<(String, Option<String>, Option<String>)>>>;

/// s3s-fs that records the SSE it is asked for, and (like S3 with SSE
/// support) applies and confirms it in buckets named `confirm-*`; elsewhere
/// it ignores it, as s3s-fs does.
struct Provider {
    fs: s3s_fs::FileSystem,
    asked: Asked,
}

#[async_trait::async_trait]
impl s3s::S3 for Provider {
    async fn create_bucket(
        &self,
        req: s3s::S3Request<s3s::dto::CreateBucketInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::CreateBucketOutput>> {
        self.fs.create_bucket(req).await
    }
    async fn put_object(
        &self,
        req: s3s::S3Request<s3s::dto::PutObjectInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::PutObjectOutput>> {
        let i = &req.input;
        let sse = i.server_side_encryption.clone();
        let kms = i.ssekms_key_id.clone();
        let confirm = i.bucket.starts_with("confirm-");
        self.asked.lock().unwrap().push((
            i.key.clone(),
            sse.as_ref().map(|s| s.as_str().to_owned()),
            kms.clone(),
        ));
        let mut out = self.fs.put_object(req).await?;
        if confirm {
            out.output.server_side_encryption = sse;
            out.output.ssekms_key_id = kms;
        }
        Ok(out)
    }
    async fn delete_object(
        &self,
        req: s3s::S3Request<s3s::dto::DeleteObjectInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteObjectOutput>> {
        self.fs.delete_object(req).await
    }
    async fn head_object(
        &self,
        req: s3s::S3Request<s3s::dto::HeadObjectInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::HeadObjectOutput>> {
        self.fs.head_object(req).await
    }
    async fn get_object(
        &self,
        req: s3s::S3Request<s3s::dto::GetObjectInput>,
    ) -> s3s::S3Result<s3s::S3Response<s3s::dto::GetObjectOutput>> {
        self.fs.get_object(req).await
    }
}

async fn start_provider(data: &Path, asked: Asked) -> std::net::SocketAddr {
    std::fs::create_dir_all(data).unwrap();
    let mut b = s3s::service::S3ServiceBuilder::new(Provider {
        fs: s3s_fs::FileSystem::new(data).unwrap(),
        asked,
    });
    b.set_auth(s3s::auth::SimpleAuth::from_single(UAK, USK));
    let service = b.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let svc = service.clone();
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread")]
async fn passthrough_forwards_sse_and_keeps_the_object_only_if_the_provider_applied_it() {
    use sealgate::policy::registry::{Allowance, Exception, Registry};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("data");
    let asked: Asked = Arc::default();
    let up = start_provider(&data, asked.clone()).await;
    let keys = d.join("keys");
    sealgate::keys::KeyStore::generate(&keys, false).unwrap();
    let reg = d.join("exceptions.jsonl");
    Registry::register(
        &reg,
        &sealgate::keys::KeyStore::load(&keys).unwrap(),
        Exception {
            id: "EX-SSE".into(),
            approver: "CISO".into(),
            decision_ref: "minutes".into(),
            reason: "public".into(),
            risk: "low".into(),
            classification: "public".into(),
            buckets: vec!["confirm-pt".into(), "plain-pt".into()],
            allows: vec![Allowance::UnencryptedWrites],
            domains: vec![],
            starts: chrono::Utc::now() - chrono::Duration::days(1),
            expires: chrono::Utc::now() + chrono::Duration::days(30),
        },
    )
    .unwrap();
    let cfg = d.join("sealgate.toml");
    let mut text = format!(
        "listen = \"127.0.0.1:0\"\nkeys_dir = {keys:?}\n[upstream]\nendpoint = \"http://{up}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n[policy]\nregistry = {reg:?}\n"
    );
    for b in ["confirm-pt", "plain-pt"] {
        text += &format!("[[policy.passthrough]]\nbucket = \"{b}\"\nexception = \"EX-SSE\"\n");
    }
    std::fs::write(&cfg, text).unwrap();
    let gw = sealgate::serve::start(sealgate::serve::Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let c = client_for(format!("http://{}", gw.addr), AK, SK);
    for b in ["confirm-pt", "plain-pt", "confirm-enc"] {
        c.create_bucket().bucket(b).send().await.unwrap();
    }
    let body = b"PUBLIC-BUT-AT-REST-ENCRYPTED ".repeat(50);

    // A provider that applies SSE-KMS: forwarded, confirmed, answered.
    let out = c
        .put_object()
        .bucket("confirm-pt")
        .key("kms")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id("alias/public-assets")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(out.ssekms_key_id(), Some("alias/public-assets"));
    assert_eq!(std::fs::read(data.join("confirm-pt/kms")).unwrap(), body);
    assert!(asked.lock().unwrap().contains(&(
        "kms".into(),
        Some("aws:kms".into()),
        Some("alias/public-assets".into())
    )));
    // SSE-S3 the same way.
    let out = c
        .put_object()
        .bucket("confirm-pt")
        .key("s3")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    // Without SSE asked, none is claimed.
    let out = c
        .put_object()
        .bucket("confirm-pt")
        .key("none")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(out.server_side_encryption(), None);

    // A provider that ignores it (s3s-fs as it is): refused, object removed.
    let err = c
        .put_object()
        .bucket("plain-pt")
        .key("kms")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NotImplemented"), "{err:?}");
    assert!(
        err.message()
            .is_some_and(|m| m.contains("x-amz-server-side-encryption: aws:kms")
                && m.contains("did not apply")),
        "{err:?}"
    );
    assert!(
        !data.join("plain-pt/kms").exists(),
        "kept without the SSE asked for"
    );

    // Not forwarded, refused before anything is sent: SSE-C, ACL, tagging,
    // Object Lock in a passthrough bucket; SSE in an encrypted bucket.
    let n = asked.lock().unwrap().len();
    let put = |b: &str| {
        c.put_object()
            .bucket(b)
            .key("refused")
            .body(ByteStream::from(body.clone()))
    };
    assert_refused(
        put("confirm-pt")
            .sse_customer_algorithm("AES256")
            .sse_customer_key(SSE_C_KEY)
            .sse_customer_key_md5(SSE_C_MD5)
            .send()
            .await,
        "x-amz-server-side-encryption-customer-",
    );
    assert_refused(
        put("confirm-pt")
            .acl(ObjectCannedAcl::PublicRead)
            .send()
            .await,
        "x-amz-acl",
    );
    assert_refused(
        put("confirm-pt").tagging("a=b").send().await,
        "x-amz-tagging",
    );
    assert_refused(
        put("confirm-pt")
            .object_lock_legal_hold_status(ObjectLockLegalHoldStatus::On)
            .send()
            .await,
        "x-amz-object-lock-legal-hold",
    );
    assert_refused(
        put("confirm-enc")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
            .await,
        "x-amz-server-side-encryption",
    );
    assert_eq!(
        asked.lock().unwrap().len(),
        n,
        "a refused request reached the provider"
    );
    for b in ["confirm-pt", "confirm-enc"] {
        assert!(!data.join(b).join("refused").exists(), "{b}");
    }
    gw.shutdown().await;
}
