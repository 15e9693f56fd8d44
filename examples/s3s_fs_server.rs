//! A standalone s3s-fs server used as an upstream by the end-to-end suites
//! (tests/e2e): the same real S3 server the embedded default runs, as its own
//! process. `cargo run --example s3s_fs_server -- ROOT ADDR ACCESS_KEY SECRET_KEY [CERT KEY]`
//! prints `listening on HOST:PORT` once ready; with CERT and KEY (PEM) it
//! serves HTTPS.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 && args.len() != 7 {
        eprintln!("usage: s3s_fs_server ROOT ADDR ACCESS_KEY SECRET_KEY [CERT KEY]");
        std::process::exit(2);
    }
    let addr = sealgate::serve::embedded::start_at(
        std::path::Path::new(&args[1]),
        &args[2],
        &args[3],
        &args[4],
        args.get(5)
            .map(std::path::Path::new)
            .zip(args.get(6).map(std::path::Path::new)),
    )
    .await
    .unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    println!("listening on {addr}");
    std::future::pending::<()>().await;
}
