//! Request smuggling: with Content-Length and Transfer-Encoding together,
//! hyper reads the body as chunked and closes the connection after the
//! response (RFC 9112 §6.1), so bytes after the chunked body are never read
//! as a request; two different Content-Lengths are refused with 400. Either
//! way nothing is stored or deleted.

use crate::gw_common;

use gw_common::{client, gateway};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends raw bytes on a fresh connection; returns everything the gateway
/// answers until it closes the connection (or 5 s pass).
async fn exchange(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn ambiguous_framing_is_refused_and_nothing_is_smuggled() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("smuggle").send().await.unwrap();
    let addr = env.gw.addr;

    // CL.TE: the chunked body ends early and the rest would be read as a
    // second request by a server that trusted Content-Length.
    let smuggled = "DELETE /smuggle HTTP/1.1\r\nHost: x\r\n\r\n";
    let body = format!("0\r\n\r\n{smuggled}");
    let clte = format!(
        "PUT /smuggle/a HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{body}",
        body.len()
    );
    let answer = exchange(addr, clte.as_bytes()).await;
    let responses = answer.matches("HTTP/1.1 ").count();
    assert!(
        answer.starts_with("HTTP/1.1 400") || answer.starts_with("HTTP/1.1 403"),
        "{answer}"
    );
    assert_eq!(
        responses, 1,
        "a second (smuggled) request was answered:\n{answer}"
    );

    // Two different Content-Lengths.
    let dup =
        "PUT /smuggle/b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc";
    let answer = exchange(addr, dup.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    // Nothing was stored or deleted by any of it.
    for key in ["a", "b"] {
        assert!(
            c.head_object()
                .bucket("smuggle")
                .key(key)
                .send()
                .await
                .is_err()
        );
    }
    assert!(c.head_bucket().bucket("smuggle").send().await.is_ok());
}

/// botocore sends `Expect: 100-continue` and, when the answer comes before
/// any 100 Continue (a refusal from the headers), never sends the body,
/// then reuses the connection. Unless the gateway closes it, the next
/// request's bytes are read as the unsent body and the client gets a
/// bodiless 400 for its next call (seen in the e2e suite).
#[tokio::test(flavor = "multi_thread")]
async fn an_error_to_an_expect_continue_request_closes_the_connection() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("expect").send().await.unwrap();
    let mut s = tokio::net::TcpStream::connect(env.gw.addr).await.unwrap();
    // Unsigned: refused (403) from its headers, before the body is asked for.
    s.write_all(
        b"PUT /expect/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // The body is never sent; the next request follows on the connection.
    let _ = s
        .write_all(b"GET /expect HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(3), s.read_to_end(&mut out)).await;
    let answer = String::from_utf8_lossy(&out).to_string();
    let finals = answer
        .matches("HTTP/1.1 ")
        .count()
        .saturating_sub(answer.matches("HTTP/1.1 100").count());
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "the connection stays open after the refusal:\n{answer}"
    );
    assert_eq!(
        finals, 1,
        "the next request's bytes were read on that connection:\n{answer}"
    );
}

/// A refusal answered before the request's body was read (here an unsigned
/// PUT, refused from its headers, with most of its body still unsent)
/// says `Connection: close`: hyper closes such a connection after the
/// answer (it cannot tell where the next request starts), and a client that
/// saw no `Connection: close` puts it back in its pool and loses its next
/// request to the closed socket (seen in CI: an SDK's CreateMultipartUpload
/// right after an UploadPart the provider refused failed with
/// IncompleteMessage).
#[tokio::test(flavor = "multi_thread")]
async fn an_error_answered_before_the_body_was_read_closes_the_connection() {
    let env = gateway().await;
    let c = client(&env);
    c.create_bucket().bucket("early").send().await.unwrap();
    let mut s = tokio::net::TcpStream::connect(env.gw.addr).await.unwrap();
    s.write_all(b"PUT /early/k HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[b'x'; 1024]).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let answer = String::from_utf8_lossy(&out).to_string();
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "an answer before the body was read does not say the connection closes:\n{answer}"
    );
}
