//! The real `sealgate` binary as a child process: one-shot commands and
//! `sealgate serve` started from a configuration file.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The binary under test: `SEALGATE_TEST_BIN` when set (a copy kept apart
/// from a target directory that other builds share), else Cargo's.
pub fn bin() -> String {
    std::env::var("SEALGATE_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sealgate").into())
}

/// `sealgate ARGS` with the key store and exception registry in `d`:
/// whether it succeeded, and its stdout followed by its stderr.
pub fn sealgate(d: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin())
        .args(args)
        .env("SEALGATE_KEYS_DIR", d.join("keys"))
        .env("SEALGATE_REGISTRY", d.join("exceptions.jsonl"))
        .env_remove("SEALGATE_REGISTRY_STATE")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A running `sealgate serve`, killed on drop.
#[derive(Debug)]
pub struct Serving {
    pub child: Child,
    /// The S3 endpoint, `host:port`.
    pub addr: String,
    /// The admin listener, `host:port`, when `start` waited for it.
    pub admin: Option<String>,
}

impl Serving {
    /// Stops the gateway, which must still be running.
    pub fn stop(mut self) {
        self.child.kill().expect("the gateway is still running");
        let _ = self.child.wait();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sealgate serve --config CFG --audit-log D/audit.jsonl`, run through
/// `wrap` (e.g. `prlimit …`) when given, with no credentials, configuration
/// or registry state from the test's environment.
pub fn serve_command(d: &Path, cfg: &Path, wrap: &[&str]) -> Command {
    let mut cmd = match wrap.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin());
            c
        }
        None => Command::new(bin()),
    };
    cmd.arg("serve")
        .arg("--config")
        .arg(cfg)
        .arg("--audit-log")
        .arg(d.join("audit.jsonl"))
        .env_remove("SEALGATE_ACCESS_KEY")
        .env_remove("SEALGATE_SECRET_KEY")
        .env_remove("SEALGATE_CONFIG")
        .env_remove("SEALGATE_REGISTRY_STATE");
    cmd
}

/// Starts `cmd` (a [`serve_command`]): Ok once it says where it listens
/// (and, with `admin`, where its admin listener is), its output drained
/// from then on; Err(its stderr) when it exits first.
pub fn start(mut cmd: Command, admin: bool) -> Result<Serving, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut addr = None;
    loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(a) = l.strip_prefix("sealgate is listening on http://") {
                    addr = Some(a.to_owned());
                }
                let admin_addr = l.strip_prefix("admin (health, metrics) on http://");
                if let Some(a) = &addr
                    && (!admin || admin_addr.is_some())
                {
                    let addr = a.clone();
                    let stderr = child.stderr.take().unwrap();
                    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});
                    std::thread::spawn(move || for _ in lines {});
                    return Ok(Serving {
                        child,
                        addr,
                        admin: admin_addr.map(str::to_owned),
                    });
                }
            }
            _ => {
                let mut err = String::new();
                std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
                let _ = child.wait();
                return Err(err);
            }
        }
    }
}
