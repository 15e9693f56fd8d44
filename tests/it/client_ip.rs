//! Behind a trusted load balancer, the client's address comes from
//! `X-Forwarded-For`: repeated failed logins are reported against the
//! client, not the balancer. From an untrusted peer the header is ignored,
//! so a client cannot pick the address its failures count against.

use crate::gw_common;

use gw_common::security::{events, events_by_access_key};
use gw_common::{client_for, gateway_config};
use sealgate::serve::{Options, Running, embedded, start};

async fn gateway(dir: &std::path::Path, trusted: &str) -> Running {
    let (uak, usk) = ("xff-up", "xff-up-secret-0123456789");
    let up = embedded::start(&dir.join("up"), uak, usk).await.unwrap();
    let extra =
        format!("security.auth_failure_threshold = 2\nsecurity.trusted_proxies = [{trusted}]\n");
    let cfg = gateway_config(dir, up, (uak, usk), &extra);
    start(Options {
        config: Some(cfg),
        ..Default::default()
    })
    .await
    .unwrap()
}

/// Two requests with a wrong secret, each claiming `xff` as the client.
async fn fail_twice(gw: &Running, xff: &'static str) {
    let c = client_for(
        format!("http://{}", gw.addr),
        ACCESS_KEY,
        "not-the-secret-0123456789",
    );
    for _ in 0..2 {
        let r = c
            .list_buckets()
            .customize()
            .mutate_request(move |r| {
                r.headers_mut().insert("x-forwarded-for", xff);
            })
            .send()
            .await;
        assert!(r.is_err(), "a wrong secret was accepted");
    }
}

/// The access key this test's failing clients claim (unknown to the
/// gateway): the integration tests share one process, and other tests' wrong
/// secrets also come from 127.0.0.1.
const ACCESS_KEY: &str = "client-ip-test-key";

fn reported(ip: &str) -> bool {
    events_by_access_key()
        .lock()
        .unwrap()
        .iter()
        .any(|(e, who, ak)| e == "auth_failures" && who == ip && ak == ACCESS_KEY)
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_count_against_the_forwarded_client_only_behind_trusted_proxies() {
    events();
    let dir = tempfile::tempdir().unwrap();
    let behind = gateway(&dir.path().join("a"), "\"127.0.0.0/8\"").await;
    fail_twice(&behind, "203.0.113.7, 127.0.0.1").await;
    assert!(reported("203.0.113.7"), "{:?}", events().lock().unwrap());
    assert!(!reported("127.0.0.1"), "the balancer was blamed");
    behind.shutdown().await;

    let direct = gateway(&dir.path().join("b"), "").await;
    fail_twice(&direct, "198.51.100.99").await;
    assert!(
        !reported("198.51.100.99"),
        "an untrusted peer chose its address"
    );
    assert!(reported("127.0.0.1"), "{:?}", events().lock().unwrap());
    direct.shutdown().await;
}
