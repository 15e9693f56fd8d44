//! History the host administrator might rewrite (issue 14, finding 6), with
//! the real binary: a registry cut back below, or forked from, the line
//! sealgate last verified is refused by the CLI and by a running gateway
//! (docs/EXCEPTIONS.md §Verified state); exceptions signed by an approver
//! key kept off the host, required by policy (§Approver signatures); the
//! audit log's and the registry's heads anchored off the host through the
//! webhook and checked by `audit verify --anchors` (docs/INCIDENTS.md §Anchors).

use crate::gw_common;
use crate::gw_common::process::{Serving, bin, sealgate, serve_command, start};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use gw_common::client_for;
use sealgate::serve::embedded;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

const UAK: &str = "hist-upstream";
const USK: &str = "hist-upstream-secret-0123";
const AK: &str = "hist-client";
const SK: &str = "hist-client-secret-0123";

fn register_args<'a>(id: &'a str, bucket: &'a str) -> Vec<&'a str> {
    vec![
        "exception",
        "register",
        "--id",
        id,
        "--approver",
        "CISO",
        "--decision",
        "minutes 2026-11-02 item 4",
        "--reason",
        "public assets",
        "--risk",
        "low",
        "--classification",
        "public",
        "--bucket",
        bucket,
        "--allow",
        "unencrypted-writes",
        "--starts",
        "2026-01-01",
        "--expires",
        "2099-01-01",
    ]
}

fn register(d: &Path, id: &str, bucket: &str) {
    let (ok, out) = sealgate(d, &register_args(id, bucket));
    assert!(ok, "{out}");
}

fn revoke(d: &Path, id: &str) {
    let (ok, out) = sealgate(
        d,
        &[
            "exception",
            "revoke",
            id,
            "--by",
            "DPO",
            "--reason",
            "ended",
        ],
    );
    assert!(ok, "{out}");
}

/// Removes the registry's last line, as an administrator could by hand.
fn drop_last_line(d: &Path) {
    let p = d.join("exceptions.jsonl");
    let text = std::fs::read_to_string(&p).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&p, lines[..lines.len() - 1].join("\n") + "\n").unwrap();
}

#[test]
fn a_registry_cut_back_below_its_verified_line_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-1", "www-assets");
    revoke(d, "EX-1");
    let (ok, out) = sealgate(d, &["exception", "verify"]);
    assert!(ok && out.contains("verified up to line 2"), "{out}");
    let state = std::fs::read_to_string(d.join("exceptions.jsonl.verified")).unwrap();
    assert!(state.contains("\"seq\":2"), "{state}");

    // The revocation is removed by hand: the chain alone still verifies,
    // and EX-1 would be active again.
    drop_last_line(d);
    for args in [
        &["exception", "verify"][..],
        &["exception", "list"][..],
        &["exception", "show", "EX-1"][..],
    ] {
        let (ok, out) = sealgate(d, args);
        assert!(
            !ok && out.contains("the registry has 1 line(s)")
                && out.contains("verified line 2")
                && out.contains("exceptions.jsonl.verified")
                && out.contains("restore the registry from its backup"),
            "{args:?}: {out}"
        );
    }
    // Nothing is appended to a cut-back registry.
    let before = std::fs::read(d.join("exceptions.jsonl")).unwrap();
    let (ok, out) = sealgate(d, &register_args("EX-2", "www-assets"));
    assert!(!ok && out.contains("verified line 2"), "{out}");
    assert_eq!(std::fs::read(d.join("exceptions.jsonl")).unwrap(), before);
    // An emptied or deleted registry is refused alike.
    std::fs::remove_file(d.join("exceptions.jsonl")).unwrap();
    let (ok, out) = sealgate(d, &["exception", "list"]);
    assert!(!ok && out.contains("the registry has 0 line(s)"), "{out}");
}

#[test]
fn a_registry_forked_from_its_verified_line_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-1", "www-assets");
    // The same key store builds another chain of the same length elsewhere.
    let other = tempfile::tempdir().unwrap();
    let o = other.path();
    std::fs::create_dir(o.join("keys")).unwrap();
    for f in std::fs::read_dir(d.join("keys")).unwrap() {
        let f = f.unwrap().path();
        if f.is_file() {
            std::fs::copy(&f, o.join("keys").join(f.file_name().unwrap())).unwrap();
        }
    }
    register(o, "EX-9", "*");
    std::fs::copy(o.join("exceptions.jsonl"), d.join("exceptions.jsonl")).unwrap();
    let (ok, out) = sealgate(d, &["exception", "verify"]);
    assert!(
        !ok && out.contains("line 1 has SHA-256") && out.contains("another chain"),
        "{out}"
    );
}

#[test]
fn a_registry_from_before_the_verified_state_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-1", "www-assets");
    register(d, "EX-2", "cdn-*");
    // As written by a version without the state file: same bytes, no state.
    std::fs::remove_file(d.join("exceptions.jsonl.verified")).unwrap();
    let (ok, out) = sealgate(d, &["exception", "verify"]);
    assert!(
        ok && out.contains("2 records") && out.contains("verified up to line 2"),
        "{out}"
    );
    assert!(d.join("exceptions.jsonl.verified").exists());
    // A state file kept elsewhere (a registry on a read-only volume).
    let elsewhere = d.join("state-elsewhere");
    let out = Command::new(bin())
        .args(["exception", "verify", "--registry-state"])
        .arg(&elsewhere)
        .env("SEALGATE_KEYS_DIR", d.join("keys"))
        .env("SEALGATE_REGISTRY", d.join("exceptions.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read_to_string(&elsewhere)
            .unwrap()
            .contains("\"seq\":2")
    );
}

fn config(d: &Path, upstream: std::net::SocketAddr) -> std::path::PathBuf {
    config_with(d, upstream, "EX-1", "")
}

fn config_with(
    d: &Path,
    upstream: std::net::SocketAddr,
    exception: &str,
    policy: &str,
) -> std::path::PathBuf {
    let text = format!(
        "listen = \"127.0.0.1:0\"\nkeys_dir = {:?}\n[upstream]\nendpoint = \"http://{upstream}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\"\n[[credentials]]\naccess_key = \"{AK}\"\nsecret_key = \"{SK}\"\n[policy]\nregistry = {:?}\n{policy}[[policy.passthrough]]\nbucket = \"public-site\"\nexception = \"{exception}\"\n",
        d.join("keys"),
        d.join("exceptions.jsonl")
    );
    let p = d.join("sealgate.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Starts the gateway; Err(its output) when it refuses.
fn serve(d: &Path, cfg: &Path) -> Result<Serving, String> {
    let mut cmd = serve_command(d, cfg, &[]);
    cmd.env("SEALGATE_LOG", "warn");
    start(cmd, false)
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_revocation_does_not_revive_an_exception_at_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-1", "public-*");
    let gw = serve(d, &config(d, up)).unwrap();
    let addr = gw.addr.clone();
    let c = client_for(format!("http://{addr}"), AK, SK);
    c.create_bucket()
        .bucket("public-site")
        .send()
        .await
        .unwrap();
    let put = |key: &'static str| {
        c.put_object()
            .bucket("public-site")
            .key(key)
            .body(ByteStream::from_static(b"plain page"))
            .send()
    };
    put("before.html").await.unwrap();

    revoke(d, "EX-1");
    let err = put("revoked.html").await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");

    // The administrator deletes the revocation line (no key needed).
    drop_last_line(d);
    let err = put("revived.html").await.unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"), "{err:?}");
    assert!(
        err.message().unwrap_or("").contains("verified line 2"),
        "{err:?}"
    );
    assert!(!d.join("data/public-site/revived.html").exists());
    gw.stop();

    // Nor after a restart: the gateway refuses to start, saying why.
    let err = serve(d, &config(d, up)).unwrap_err();
    assert!(
        err.contains("the registry has 1 line(s)") && err.contains("verified line 2"),
        "{err}"
    );

    // What was verified is in the audit log.
    let log = std::fs::read_to_string(d.join("audit.jsonl")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.contains("\"registry_verified\"") && l.contains("\"seq\":1")),
        "{log}"
    );
}

/// Runs the binary in `cwd` without a key store; (success, stdout, stderr).
fn offhost(cwd: &Path, args: &[&str]) -> (bool, Vec<u8>, String) {
    let out = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("SEALGATE_KEYS_DIR")
        .env_remove("SEALGATE_REGISTRY")
        .output()
        .unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// On the approver's own machine (a directory with no key store): a key,
/// the request for `register_args(id, bucket)` signed with `key`: the
/// signature file.
fn approver_signs(a: &Path, key: &str, id: &str, bucket: &str) -> std::path::PathBuf {
    let mut args = register_args(id, bucket);
    args[1] = "request";
    let (ok, request, err) = offhost(a, &args);
    assert!(ok, "{err}");
    let req = a.join(format!("{id}.request"));
    std::fs::write(&req, &request).unwrap();
    let (ok, sig, err) = offhost(
        a,
        &["exception", "sign", "--key", key, req.to_str().unwrap()],
    );
    assert!(ok && err.contains(id), "{err}");
    let sig_file = a.join(format!("{id}.sig"));
    std::fs::write(&sig_file, &sig).unwrap();
    sig_file
}

fn approver_key(a: &Path, key: &str) -> String {
    let (ok, public, err) = offhost(a, &["exception", "approver-key", "--out", key]);
    assert!(ok, "{err}");
    let public = String::from_utf8(public).unwrap().trim().to_owned();
    assert!(public.starts_with("ed25519:"), "{public}");
    std::fs::write(a.join(format!("{key}.pub")), &public).unwrap();
    public
}

#[test]
fn an_exception_is_signed_off_host_and_checked_at_registration() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let approver = tempfile::tempdir().unwrap();
    let a = approver.path();
    assert!(sealgate(d, &["keys", "generate"]).0);
    let public = approver_key(a, "approver.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(a.join("approver.key"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o077, 0, "approver key readable by others");
    // Never overwritten.
    let (ok, _, err) = offhost(a, &["exception", "approver-key", "--out", "approver.key"]);
    assert!(!ok && err.contains("exists"), "{err}");

    let sig = approver_signs(a, "approver.key", "EX-1", "www-assets");
    // A signature over other fields (a later expiry) is refused; nothing written.
    let mut changed = register_args("EX-1", "www-assets");
    *changed.last_mut().unwrap() = "2199-01-01";
    changed.extend(["--signature", sig.to_str().unwrap()]);
    let (ok, out) = sealgate(d, &changed);
    assert!(!ok && out.contains("does not verify"), "{out}");
    assert!(
        !d.join("exceptions.jsonl").exists()
            || std::fs::read(d.join("exceptions.jsonl"))
                .unwrap()
                .is_empty()
    );
    // The same fields as signed: registered, with the approval kept.
    let mut args = register_args("EX-1", "www-assets");
    args.extend(["--signature", sig.to_str().unwrap()]);
    let (ok, out) = sealgate(d, &args);
    assert!(ok && out.contains(&public), "{out}");
    let (ok, out) = sealgate(d, &["exception", "show", "EX-1"]);
    assert!(
        ok && out.contains("\"approval\"") && out.contains(&public),
        "{out}"
    );
    let (ok, out) = sealgate(d, &["exception", "verify"]);
    assert!(ok, "{out}");
    // A request needs an explicit start (register must reproduce it).
    let mut no_start = register_args("EX-2", "www-assets");
    no_start[1] = "request";
    let at = no_start.iter().position(|a| *a == "--starts").unwrap();
    no_start.drain(at..at + 2);
    let (ok, _, err) = offhost(a, &no_start);
    assert!(!ok && err.contains("--starts"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_requires_an_approver_signature_when_the_policy_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let approver = tempfile::tempdir().unwrap();
    let a = approver.path();
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    assert!(sealgate(d, &["keys", "generate"]).0);
    let trusted = approver_key(a, "approver.key");
    approver_key(a, "stranger.key");
    let sig = approver_signs(a, "approver.key", "EX-S", "public-*");
    let other = approver_signs(a, "stranger.key", "EX-O", "public-*");
    for (id, sig) in [("EX-S", Some(&sig)), ("EX-O", Some(&other)), ("EX-U", None)] {
        let mut args = register_args(id, "public-*");
        if let Some(s) = sig {
            args.extend(["--signature", s.to_str().unwrap()]);
        }
        let (ok, out) = sealgate(d, &args);
        assert!(ok, "{out}");
    }
    // The public key as a file, as an operator might deploy it.
    std::fs::write(d.join("approver.pub"), format!("{trusted}\n")).unwrap();
    let policy = format!(
        "approver_keys = [{:?}]\nrequire_approver_signature = true\n",
        d.join("approver.pub")
    );
    // Unsigned, or signed by a key the policy does not list: refused.
    let err = serve(d, &config_with(d, up, "EX-U", &policy)).unwrap_err();
    assert!(err.contains("EX-U is not signed by an approver"), "{err}");
    let err = serve(d, &config_with(d, up, "EX-O", &policy)).unwrap_err();
    assert!(err.contains("not among policy.approver_keys"), "{err}");
    // Required without a key: a configuration error.
    let err = serve(
        d,
        &config_with(d, up, "EX-S", "require_approver_signature = true\n"),
    )
    .unwrap_err();
    assert!(err.contains("lists no key"), "{err}");
    // Signed by the listed approver: in force.
    let gw = serve(d, &config_with(d, up, "EX-S", &policy)).unwrap();
    let addr = gw.addr.clone();
    let c = client_for(format!("http://{addr}"), AK, SK);
    c.create_bucket()
        .bucket("public-site")
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket("public-site")
        .key("signed.html")
        .body(ByteStream::from_static(b"plain page"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(d.join("data/public-site/signed.html")).unwrap(),
        b"plain page"
    );
    gw.stop();
}

/// `sealgate audit verify` with extra arguments: (success, output).
fn audit_verify(d: &Path, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["audit", "verify", "--audit-log"];
    let log = d.join("audit.jsonl");
    args.push(log.to_str().unwrap());
    args.extend(extra);
    sealgate(d, &args)
}

#[tokio::test(flavor = "multi_thread")]
async fn heads_anchored_off_the_host_catch_a_rechained_or_cut_back_log_and_registry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    let (hook, received) = gw_common::webhook::receiver("anchors").await;
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-1", "public-*");
    register(d, "EX-2", "other-*");
    let cfg = config(d, up);
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .arg("--audit-log")
        .arg(d.join("audit.jsonl"))
        .args(["--incident-webhook", &hook])
        .env_remove("SEALGATE_ACCESS_KEY")
        .env_remove("SEALGATE_SECRET_KEY")
        .env_remove("SEALGATE_REGISTRY_STATE")
        .env("SEALGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("gateway exited").unwrap();
        if let Some(a) = l.strip_prefix("sealgate is listening on http://") {
            break a.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let c = client_for(format!("http://{addr}"), AK, SK);
    c.create_bucket()
        .bucket("public-site")
        .send()
        .await
        .unwrap();
    for i in 0..4 {
        c.put_object()
            .bucket("public-site")
            .key(format!("page-{i}.html"))
            .body(ByteStream::from_static(b"plain page"))
            .send()
            .await
            .unwrap();
    }
    // EX-2 is revoked; the reload records the registry's new head (line 3).
    revoke(d, "EX-2");
    assert!(
        Command::new("kill")
            .args(["-HUP", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    // Wait until the webhook has the head of the whole log.
    let mut waited = 0;
    loop {
        let n = std::fs::read_to_string(d.join("audit.jsonl"))
            .unwrap()
            .lines()
            .count();
        let got = received.lock().unwrap().clone();
        let anchored = got
            .iter()
            .any(|b| b.contains("\"chain_head\"") && b.contains(&format!("\"seq\":{n},")));
        let reg = got
            .iter()
            .any(|b| b.contains("\"registry_verified\"") && b.contains("\"seq\":3"));
        if anchored && reg && n > 8 {
            break;
        }
        assert!(waited < 100, "no anchor for line {n}: {got:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let _ = child.kill();
    let _ = child.wait();
    let anchors = d.join("anchors");
    std::fs::create_dir(&anchors).unwrap();
    std::fs::write(
        anchors.join("webhook.jsonl"),
        received.lock().unwrap().join("\n") + "\n",
    )
    .unwrap();
    let a = anchors.to_str().unwrap();
    let reg = d.join("exceptions.jsonl");
    let r = reg.to_str().unwrap();
    let (ok, out) = audit_verify(d, &["--anchors", a, "--registry", r]);
    assert!(
        ok && out.contains("anchored heads") && out.contains("holds every verified head"),
        "{out}"
    );
    let good = std::fs::read_to_string(d.join("audit.jsonl")).unwrap();

    // 1. Whoever holds the key store removes an exception_used line and
    // re-chains the rest: the log verifies on its own, not against anchors.
    let kept: Vec<&str> = good.lines().collect();
    let victim = kept
        .iter()
        .position(|l| l.contains("\"exception_used\""))
        .unwrap();
    let keys = sealgate::keys::KeyStore::load(&d.join("keys")).unwrap();
    let forged = d.join("forged.jsonl");
    std::fs::write(&forged, kept[..victim].join("\n") + "\n").unwrap();
    {
        let log = sealgate::audit::AuditLog::open(&forged, &keys).unwrap();
        for l in &kept[victim + 1..] {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            log.append(v["event"].as_object().unwrap().clone()).unwrap();
        }
    }
    std::fs::rename(&forged, d.join("audit.jsonl")).unwrap();
    let (ok, out) = audit_verify(d, &[]);
    assert!(ok, "the re-chained log verifies alone: {out}");
    let (ok, out) = audit_verify(d, &["--anchors", a]);
    assert!(
        !ok && out.contains("anchored off the host") && out.contains("SHA-256"),
        "{out}"
    );

    // 2. The log cut back below an anchored head.
    std::fs::write(
        d.join("audit.jsonl"),
        kept[..kept.len() - 2].join("\n") + "\n",
    )
    .unwrap();
    let (ok, out) = audit_verify(d, &[]);
    assert!(ok, "a cut-back log verifies alone: {out}");
    let (ok, out) = audit_verify(d, &["--anchors", a]);
    assert!(
        !ok && out.contains(&format!("it has {} line(s)", kept.len() - 2)),
        "{out}"
    );

    // 3. The registry's revocation and its verified-state file both
    // removed: the registry loads again, but not against the anchors.
    std::fs::write(d.join("audit.jsonl"), &good).unwrap();
    drop_last_line(d);
    std::fs::remove_file(d.join("exceptions.jsonl.verified")).unwrap();
    let (ok, out) = sealgate(d, &["exception", "verify"]);
    assert!(ok, "{out}");
    let (ok, out) = audit_verify(d, &["--anchors", a, "--registry", r]);
    assert!(
        !ok && out.contains("registry") && out.contains("it has 2 line(s)"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn heads_are_anchored_write_once_in_a_bucket_at_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let up = embedded::start(&d.join("data"), UAK, USK).await.unwrap();
    let provider = client_for(format!("http://{up}"), UAK, USK);
    provider
        .create_bucket()
        .bucket("anchors")
        .send()
        .await
        .unwrap();

    // The write path: If-None-Match: * never overwrites an anchor.
    use sealgate::audit::anchor::{Put, chain_head, put_once};
    let upstream: sealgate::config::UpstreamConfig = toml::from_str(&format!(
        "endpoint = \"http://{up}\"\naccess_key = \"{UAK}\"\nsecret_key = \"{USK}\""
    ))
    .unwrap();
    let provider_up = sealgate::upstream::Upstream::connect(&upstream, None)
        .await
        .unwrap();
    let first = chain_head(Path::new("a.jsonl"), 7, &[1; 32]);
    let second = chain_head(Path::new("a.jsonl"), 7, &[2; 32]);
    assert_eq!(
        put_once(&provider_up, "anchors", "t/", &first, None).await,
        Ok(Put::Written)
    );
    assert_eq!(
        put_once(&provider_up, "anchors", "t/", &second, None).await,
        Ok(Put::AlreadyThere)
    );
    let kept = std::fs::read_to_string(d.join("data/anchors/t/00000000000000000007.json")).unwrap();
    assert!(kept.contains(&hex::encode([1u8; 32])), "{kept}");

    // A gateway anchoring its audit head there every second.
    assert!(sealgate(d, &["keys", "generate"]).0);
    register(d, "EX-1", "public-*");
    let mut child = Command::new(bin())
        .args(["serve", "--config"])
        .arg(config(d, up))
        .arg("--audit-log")
        .arg(d.join("audit.jsonl"))
        .args([
            "--anchor-bucket",
            "anchors",
            "--anchor-prefix",
            "gw/",
            "--anchor-every-secs",
            "1",
        ])
        .env_remove("SEALGATE_ACCESS_KEY")
        .env_remove("SEALGATE_SECRET_KEY")
        .env_remove("SEALGATE_REGISTRY_STATE")
        .env("SEALGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let l = lines.next().expect("gateway exited").unwrap();
        if let Some(a) = l.strip_prefix("sealgate is listening on http://") {
            break a.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let c = client_for(format!("http://{addr}"), AK, SK);
    c.create_bucket()
        .bucket("public-site")
        .send()
        .await
        .unwrap();
    for i in 0..3 {
        c.put_object()
            .bucket("public-site")
            .key(format!("page-{i}.html"))
            .body(ByteStream::from_static(b"plain page"))
            .send()
            .await
            .unwrap();
    }
    // No client reaches the anchor bucket, whatever its grants: one that
    // could would pre-empt the write-once slots with anchors of its own.
    let pre_empt = c
        .put_object()
        .bucket("anchors")
        .key("gw/00000000000000000099.json")
        .body(ByteStream::from_static(b"{}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        pre_empt
            .as_service_error()
            .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code),
        Some("AccessDenied"),
        "{pre_empt:?}"
    );
    let listed = c.list_buckets().send().await.unwrap();
    assert!(
        listed.buckets().iter().all(|b| b.name() != Some("anchors")),
        "the anchor bucket is listed to a client"
    );
    let anchors = d.join("data/anchors/gw");
    let mut waited = 0;
    loop {
        let n = std::fs::read_to_string(d.join("audit.jsonl"))
            .unwrap()
            .lines()
            .count();
        if anchors.join(format!("{n:020}.json")).exists() && n >= 5 {
            break;
        }
        assert!(
            waited < 100,
            "no anchor of line {n} in {}",
            anchors.display()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let _ = child.kill();
    let _ = child.wait();
    let a = anchors.to_str().unwrap();
    // Checked from a copy, or straight from the bucket.
    let cfg = d.join("sealgate.toml");
    let bucket = [
        "--anchors",
        "s3://anchors/gw/",
        "--config",
        cfg.to_str().unwrap(),
    ];
    for how in [&["--anchors", a][..], &bucket[..]] {
        let (ok, out) = audit_verify(d, how);
        assert!(ok && out.contains("anchored heads"), "{how:?}: {out}");
    }
    let good = std::fs::read_to_string(d.join("audit.jsonl")).unwrap();
    let kept: Vec<&str> = good.lines().collect();
    std::fs::write(
        d.join("audit.jsonl"),
        kept[..kept.len() - 1].join("\n") + "\n",
    )
    .unwrap();
    for how in [&["--anchors", a][..], &bucket[..]] {
        let (ok, out) = audit_verify(d, how);
        assert!(
            !ok && out.contains("anchored off the host"),
            "{how:?}: {out}"
        );
    }
}
