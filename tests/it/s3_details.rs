//! S3 details SDKs and tools check (issue 15): each answered as S3 does,
//! through the gateway in front of a real s3s-fs, with the AWS SDK.

use crate::gw_common;

use aws_sdk_s3::primitives::ByteStream;
use gw_common::{client, gateway};

#[tokio::test(flavor = "multi_thread")]
async fn not_modified_acls_location_and_listing_details() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("details").send().await.unwrap();
    let put = c
        .put_object()
        .bucket("details")
        .key("a/obj.txt")
        .body(ByteStream::from_static(b"details"))
        .send()
        .await
        .unwrap();
    let etag = put.e_tag().unwrap().to_owned();

    // 304 Not Modified carries the ETag it matched (raw HTTP: the SDK turns
    // a 304 into an error without headers).
    let head = c
        .head_object()
        .bucket("details")
        .key("a/obj.txt")
        .send()
        .await
        .unwrap();
    let presigned = c
        .get_object()
        .bucket("details")
        .key("a/obj.txt")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let http = reqwest_like_get(presigned.uri(), &[("if-none-match", etag.as_str())]).await;
    assert_eq!(http.0, 304, "If-None-Match on the current ETag");
    assert_eq!(
        http.1.get("etag").map(|v| v.to_str().unwrap().to_owned()),
        Some(etag.clone()),
        "a 304 carries the ETag"
    );
    assert!(
        http.1.get("last-modified").is_some(),
        "a 304 carries Last-Modified"
    );
    let _ = head;

    // ACLs: the owner has FULL_CONTROL; changes are refused.
    let acl = c
        .get_object_acl()
        .bucket("details")
        .key("a/obj.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(acl.grants().len(), 1);
    assert_eq!(
        acl.grants()[0].permission().map(|p| p.as_str()),
        Some("FULL_CONTROL")
    );
    assert!(acl.owner().and_then(|o| o.id()).is_some());
    let bacl = c.get_bucket_acl().bucket("details").send().await.unwrap();
    assert_eq!(
        bacl.grants()[0].permission().map(|p| p.as_str()),
        Some("FULL_CONTROL")
    );
    let missing = c
        .get_object_acl()
        .bucket("details")
        .key("nope")
        .send()
        .await;
    assert!(missing.is_err(), "ACL of a missing object");
    let change = c
        .put_object_acl()
        .bucket("details")
        .key("a/obj.txt")
        .acl(aws_sdk_s3::types::ObjectCannedAcl::PublicRead)
        .send()
        .await;
    let e = change.expect_err("an ACL change must be refused");
    use aws_sdk_s3::error::ProvideErrorMetadata;
    assert_eq!(e.code(), Some("NotImplemented"));

    // GetBucketLocation answers (s3s-fs has no location: empty = us-east-1).
    let loc = c
        .get_bucket_location()
        .bucket("details")
        .send()
        .await
        .unwrap();
    assert!(
        loc.location_constraint()
            .is_none_or(|l| l.as_str().is_empty())
    );

    // An empty delimiter is not echoed; FetchOwner=true lists owners.
    let l = c
        .list_objects_v2()
        .bucket("details")
        .delimiter("")
        .fetch_owner(true)
        .send()
        .await
        .unwrap();
    assert_eq!(l.delimiter(), None, "empty delimiter echoed");
    assert!(
        l.contents()[0].owner().is_some(),
        "FetchOwner=true lists the owner"
    );
    let l = c.list_objects_v2().bucket("details").send().await.unwrap();
    assert!(l.contents()[0].owner().is_none(), "owner only when asked");
}

/// A GET with extra headers over a plain TCP connection: (status, headers).
/// s3s-fs (the embedded default) lists no ETags: the gateway fills every
/// entry's from a HEAD, so listings carry the ETag HEAD gives (s3cmd sync
/// compares them) for small objects as for multipart ones.
#[tokio::test(flavor = "multi_thread")]
async fn listings_carry_the_etag_head_gives_on_a_provider_that_lists_none() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("etags").send().await.unwrap();
    for (key, len) in [("empty", 0usize), ("small", 100), ("segment", 65_537)] {
        c.put_object()
            .bucket("etags")
            .key(key)
            .body(ByteStream::from(vec![7u8; len]))
            .send()
            .await
            .unwrap();
    }
    let v2 = c.list_objects_v2().bucket("etags").send().await.unwrap();
    let v1 = c.list_objects().bucket("etags").send().await.unwrap();
    assert_eq!(v2.contents().len(), 3);
    for (key, etag, size) in v2
        .contents()
        .iter()
        .map(|o| (o.key(), o.e_tag(), o.size()))
        .chain(v1.contents().iter().map(|o| (o.key(), o.e_tag(), o.size())))
    {
        let head = c
            .head_object()
            .bucket("etags")
            .key(key.unwrap())
            .send()
            .await
            .unwrap();
        assert!(
            etag.is_some_and(|e| !e.is_empty()),
            "{key:?}: no ETag listed"
        );
        assert_eq!(
            etag,
            head.e_tag(),
            "{key:?}: listed ETag differs from HEAD's"
        );
        assert_eq!(size, head.content_length(), "{key:?}: listed size");
    }
}

async fn reqwest_like_get(uri: &str, headers: &[(&str, &str)]) -> (u16, http::HeaderMap) {
    use http_body_util::Empty;
    use hyper_util::rt::TokioIo;
    let uri: http::Uri = uri.parse().unwrap();
    let host = uri.authority().unwrap().to_string();
    let stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get(uri.path_and_query().unwrap().as_str()).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Empty::<bytes::Bytes>::new()).unwrap())
        .await
        .unwrap();
    (resp.status().as_u16(), resp.headers().clone())
}
