//! What the provider refuses reaches the client as the S3 error it would
//! have got directly: same code, same HTTP status, never 500 InternalError.
//!
//! A real provider refuses requests for reasons of its own — a quota
//! (Ceph RGW answers 403 QuotaExceeded, seen in the e2e suite), a bucket
//! policy (403 AccessDenied), a limit (400 TooManyBuckets), a conflict
//! (409 OperationAborted). Through a fault-injecting proxy in front of a real
//! s3s-fs, each such answer is injected on the provider request an operation
//! makes, and the client's error is compared. Refusals of what the gateway
//! itself made are the exception: its provider credentials (passing
//! SignatureDoesNotMatch on would tell the client its own secret is wrong)
//! and the sealed body (BadDigest would blame data sealgate had verified)
//! stay a server error that names the cause.

use crate::gw_common;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use gw_common::fault_proxy::{self, Fault, Faults};
use gw_common::{AK, SK, client_no_retry, gateway_config};
use sealgate::serve::{Options, embedded, start};
use std::sync::Arc;

const BUCKET: &str = "refuse";

/// (status, code, message) of a failed call, or "succeeded".
fn outcome<T, E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    r: Result<T, SdkError<E, R>>,
    status: impl Fn(&R) -> u16,
) -> Result<(u16, String, String), String> {
    match r {
        Ok(_) => Err("succeeded".to_owned()),
        Err(SdkError::ServiceError(se)) => Ok((
            status(se.raw()),
            se.err().code().unwrap_or("").to_owned(),
            se.err().message().unwrap_or("").to_owned(),
        )),
        Err(e) => Err(format!("not a service error: {e:?}")),
    }
}

fn status_of(r: &aws_sdk_s3::config::http::HttpResponse) -> u16 {
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_refusals_reach_the_client_with_their_code_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let (uak, usk) = ("refuse-up", "refuse-up-secret-0123456789");
    let up = embedded::start(&dir.path().join("up"), uak, usk)
        .await
        .unwrap();
    let faults = Arc::new(Faults::default());
    let via = fault_proxy::start(up, faults.clone()).await;
    let cfg = gateway_config(dir.path(), via, (uak, usk), "");
    let gw = start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap();
    let c: Client = client_no_retry(format!("http://{}", gw.addr), AK, SK);
    c.create_bucket().bucket(BUCKET).send().await.unwrap();
    c.put_object()
        .bucket(BUCKET)
        .key("src")
        .body(ByteStream::from(vec![7u8; 1000]))
        .send()
        .await
        .unwrap();
    let uid = c
        .create_multipart_upload()
        .bucket(BUCKET)
        .key("mp")
        .send()
        .await
        .unwrap()
        .upload_id
        .unwrap();

    let mut failed = Vec::new();
    let mut cases = 0;
    // (name, method and path substring of the provider request, injected
    // status and code, the client call)
    type Call<'a> = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(u16, String, String), String>> + 'a>,
    >;
    let small = || ByteStream::from(vec![1u8; 100]);
    let large = || ByteStream::from(vec![2u8; 3 << 20]);
    let part = || ByteStream::from(vec![3u8; 5 << 20]);
    let calls: Vec<(&str, &'static str, &str, u16, &'static str, Call)> = vec![
        (
            "PutObject, small body, quota exceeded",
            "PUT",
            "/refuse/q-small",
            403,
            "QuotaExceeded",
            Box::pin(async {
                outcome(
                    c.put_object()
                        .bucket(BUCKET)
                        .key("q-small")
                        .body(small())
                        .send()
                        .await,
                    status_of,
                )
            }),
        ),
        (
            "PutObject, 3 MiB body refused before it is read, quota exceeded",
            "PUT",
            "/refuse/q-large",
            403,
            "QuotaExceeded",
            Box::pin(async {
                outcome(
                    c.put_object()
                        .bucket(BUCKET)
                        .key("q-large")
                        .body(large())
                        .send()
                        .await,
                    status_of,
                )
            }),
        ),
        (
            "UploadPart, quota exceeded",
            "PUT",
            "partNumber=1",
            403,
            "QuotaExceeded",
            Box::pin(async {
                outcome(
                    c.upload_part()
                        .bucket(BUCKET)
                        .key("mp")
                        .upload_id(&uid)
                        .part_number(1)
                        .body(part())
                        .send()
                        .await,
                    status_of,
                )
            }),
        ),
        (
            "CreateMultipartUpload, denied by a bucket policy",
            "POST",
            "/refuse/denied?uploads",
            403,
            "AccessDenied",
            Box::pin(async {
                outcome(
                    c.create_multipart_upload()
                        .bucket(BUCKET)
                        .key("denied")
                        .send()
                        .await,
                    status_of,
                )
            }),
        ),
        (
            "CopyObject, quota exceeded on the destination",
            "PUT",
            "/refuse/copy-dst",
            403,
            "QuotaExceeded",
            Box::pin(async {
                outcome(
                    c.copy_object()
                        .bucket(BUCKET)
                        .key("copy-dst")
                        .copy_source(format!("{BUCKET}/src"))
                        .send()
                        .await,
                    status_of,
                )
            }),
        ),
        (
            "CreateBucket, over the provider's bucket limit",
            "PUT",
            "/one-too-many",
            400,
            "TooManyBuckets",
            Box::pin(async {
                outcome(
                    c.create_bucket().bucket("one-too-many").send().await,
                    status_of,
                )
            }),
        ),
        (
            "DeleteObject, denied by a bucket policy",
            "DELETE",
            "/refuse/src",
            403,
            "AccessDenied",
            Box::pin(async {
                outcome(
                    c.delete_object().bucket(BUCKET).key("src").send().await,
                    status_of,
                )
            }),
        ),
        (
            "PutObject, a conflicting operation in progress",
            "PUT",
            "/refuse/conflict",
            409,
            "OperationAborted",
            Box::pin(async {
                outcome(
                    c.put_object()
                        .bucket(BUCKET)
                        .key("conflict")
                        .body(small())
                        .send()
                        .await,
                    status_of,
                )
            }),
        ),
    ];
    for (name, method, path, status, code, call) in calls {
        cases += 1;
        faults.clear();
        faults.next(method, path, 1, Fault::Status(status, code));
        let got = call.await;
        let fired = faults.all_fired();
        match got {
            Ok((s, c, _)) if s == status && c == code && fired => {}
            other => failed.push(format!(
                "{name}: want {status} {code}, got {other:?} (fault fired: {fired})"
            )),
        }
    }

    // The gateway's own credentials refused: never passed on as the
    // client's authentication failure; a server error that says why.
    for (code, names) in [
        ("SignatureDoesNotMatch", "credentials"),
        ("InvalidAccessKeyId", "credentials"),
        ("BadDigest", "request"),
    ] {
        cases += 1;
        faults.clear();
        faults.next("PUT", "/refuse/creds", 1, Fault::Status(403, code));
        let got = outcome(
            c.put_object()
                .bucket(BUCKET)
                .key("creds")
                .body(small())
                .send()
                .await,
            status_of,
        );
        match got {
            Ok((500, c, m)) if c == "InternalError" && m.contains(names) => {}
            other => failed.push(format!(
                "provider refuses the gateway's {names} ({code}): want 500 InternalError naming the {names}, got {other:?}"
            )),
        }
    }
    faults.clear();
    // The gateway still serves, and the refused keys were never stored.
    c.head_object()
        .bucket(BUCKET)
        .key("src")
        .send()
        .await
        .unwrap();
    for key in ["q-small", "q-large", "copy-dst", "conflict", "creds"] {
        assert!(
            c.head_object()
                .bucket(BUCKET)
                .key(key)
                .send()
                .await
                .is_err(),
            "{key} stored although the provider refused it"
        );
    }
    assert!(
        failed.is_empty(),
        "{} of {cases} refusals misreported:\n{}",
        failed.len(),
        failed.join("\n")
    );
}
