//! Entry points for the fuzz targets (fuzz/) and for `tests/it/fuzz_corpus.rs`,
//! which replays the committed corpus on every test run. Not an API.
//!
//! Each entry takes arbitrary bytes, feeds them to one parser that reads
//! untrusted input, and checks what must hold for *any* input: no panic, no
//! unbounded allocation, and the parser's own promises (an object opens
//! the same whether it arrives whole or in pieces; a parsed range is
//! ordered; a registry that loads re-verifies). A broken promise panics,
//! which the fuzzer reports as a crash.
//!
//! The key used here is the committed test vectors' key (tests/vectors/),
//! public by design: it lets vector ciphertexts seed the object corpus.

use crate::config::Config;
use crate::format::envelope::Kek;
use crate::format::stream::{NameCheck, ObjectOpener, open_all};
use crate::format::{KeyId, ObjectName, upload_id};
use crate::keys::KeyStore;
use crate::policy::registry::Registry;
use std::path::Path;
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// Id of the test vectors' key.
pub const KEK_ID: &str = "ee57978793a702664ba343d7e18486fa";
/// The test vectors' key (public test material, never a real key).
pub const KEK_HEX: &str = "60dfd956c391e12487377a5eb95c2b4dd1b8aec26668131c373108431194a77e";
/// The object name most vectors are bound to.
pub const NAME: ObjectName<'static> = ObjectName {
    bucket: "sealgate-vectors",
    key: "objects/sample.bin",
};

/// The vectors' key.
pub fn kek() -> Kek {
    let mut key = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(KEK_HEX, key.as_mut()).expect("constant");
    Kek::new(KeyId::from_hex(KEK_ID).expect("constant"), key)
}

/// A stored object: opened whole, and again fed in pieces whose sizes come
/// from the first input byte; both must agree, and a success must be a
/// well-formed plaintext of the length the header promised.
pub fn object(data: &[u8]) {
    let Some((&step, stored)) = data.split_first() else {
        return;
    };
    let kek = kek();
    let whole = open_all(&kek, NameCheck::Inline(NAME), stored);
    let mut opener = ObjectOpener::new(&kek, NameCheck::Inline(NAME));
    let mut out = Vec::new();
    let step = usize::from(step) * 97 + 1;
    let pieces: Result<(), _> = stored
        .chunks(step)
        .try_for_each(|c| opener.push(c, &mut out));
    let pieces = pieces.and_then(|()| opener.finish()).map(|_| out);
    match (&whole, &pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "an object opened differently in pieces"),
        (Err(_), Err(_)) => {}
        _ => panic!(
            "whole and piecewise opening disagree: {:?} vs {:?}",
            whole.as_ref().map(Vec::len),
            pieces.as_ref().map(Vec::len)
        ),
    }
    if let Ok(plain) = whole {
        assert!(
            plain.len() <= stored.len(),
            "plaintext longer than ciphertext"
        );
    }
}

/// A multipart upload id as a client presents it: it must never
/// authenticate unless it is exactly one sealgate issued for this name.
pub fn upload_id(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let kek = kek();
    if let Ok(id) = upload_id::decode(text, NAME, &kek) {
        // Whatever decoded must re-encode to the very same id.
        let again = upload_id::encode(&id.envelope, &id.dek, NAME, &id.upstream);
        assert_eq!(
            again, text,
            "an upload id decoded that sealgate did not issue"
        );
        let other = ObjectName {
            bucket: NAME.bucket,
            key: "another/key",
        };
        assert!(
            upload_id::decode(text, other, &kek).is_err(),
            "an upload id authenticated for another object"
        );
    }
}

/// The request fields sealgate parses itself (everything else is parsed
/// and signature-checked by s3s first). The first byte picks the parser.
pub fn request(data: &[u8]) {
    use s3s::host::S3Host;
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match which % 6 {
        0 => {
            if let Ok(s3s::dto::Range::Int {
                first,
                last: Some(last),
            }) = crate::front::parse_copy_range(&text)
            {
                assert!(first <= last, "copy range {first}-{last} out of order");
            }
        }
        1 => {
            let host = crate::serve::host::GatewayHost::new(["s3.example.internal".to_owned()])
                .expect("constant");
            if let Some(b) = host
                .parse_host_header(&text)
                .ok()
                .and_then(|v| v.bucket().map(str::to_owned))
            {
                assert!(!b.is_empty(), "empty bucket from host {text:?}");
            }
        }
        2 => {
            // An Authorization header and a query, as a client sends them.
            let (auth, query) = text.split_once('\n').unwrap_or((&text, ""));
            let uri = format!("/b/k?{query}");
            let mut req = http::Request::new(());
            if let Ok(u) = uri.parse() {
                *req.uri_mut() = u;
            }
            if let Ok(v) = http::HeaderValue::from_str(auth) {
                req.headers_mut().insert(http::header::AUTHORIZATION, v);
            }
            if let Some(k) = crate::serve::listener::claimed_access_key(&req) {
                assert!(auth.contains(k) || query.contains(k));
            }
            // The header gate (SigV2, presigned lifetime) never panics.
            let _ = crate::serve::gate::refusal(&req);
        }
        3 => {
            let _ = crate::auth::has_dot_segment(&text);
            assert_eq!(
                crate::auth::check_key(&text).is_err(),
                crate::auth::key_escapes_bucket(&text)
            );
        }
        4 => {
            let mut h = http::HeaderMap::new();
            if let Ok(v) = http::HeaderValue::from_str(&text) {
                h.insert("x-amz-decoded-content-length", v);
            }
            if let Ok(n) = crate::front::plaintext_length(None, &h) {
                // Only a whole non-negative number is a length.
                assert_eq!(text.trim().parse::<i64>().ok(), i64::try_from(n).ok());
            }
        }
        _ => {
            let out = crate::front::strip_aws_chunked(&text);
            assert!(
                !out.split(',')
                    .any(|t| t.eq_ignore_ascii_case("aws-chunked")),
                "aws-chunked survived in {out:?}"
            );
        }
    }
}

/// Configuration text: parsed and checked as `sealgate` does at startup.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut cfg) = Config::parse(text, Path::new("fuzz.toml")) {
        let _ = cfg.upstream.jurisdiction();
        let _ = cfg.apply_env(|_| None);
        let _ = cfg.policy.registry.as_os_str();
    }
}

/// The exception registry file: verified line by line (hash chain and
/// MACs under the key store); a file that loads must load again the same.
pub fn registry(data: &[u8]) {
    let keys = fuzz_key_store();
    let path = Path::new("exceptions.jsonl");
    if let Ok(reg) = Registry::parse(data, path, keys) {
        let again = Registry::parse(data, path, keys).expect("a registry loaded once");
        assert_eq!(reg.len(), again.len());
    }
}

/// A key store holding only the vectors' key, created once per process.
pub fn fuzz_key_store() -> &'static KeyStore {
    static STORE: OnceLock<(tempfile::TempDir, KeyStore)> = OnceLock::new();
    &STORE
        .get_or_init(|| {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let dir = tempfile::tempdir().expect("temp dir");
            let keys = dir.path().join("keys");
            std::fs::create_dir(&keys).expect("keys dir");
            std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))
                .expect("keys dir mode");
            let write = |name: &str, body: String| {
                use std::io::Write;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(keys.join(name))
                    .and_then(|mut f| f.write_all(body.as_bytes()))
                    .expect("key file");
            };
            write(
                &format!("{KEK_ID}.kek"),
                format!(
                    "{{\"format\":\"sealgate-kek/1\",\"id\":\"{KEK_ID}\",\"created\":\"2026-01-01T00:00:00Z\",\"key\":\"{KEK_HEX}\"}}\n"
                ),
            );
            write(crate::keys::ACTIVE_FILE, format!("{KEK_ID}\n"));
            let store = KeyStore::load(&keys).expect("the fuzz key store loads");
            (dir, store)
        })
        .1
}
