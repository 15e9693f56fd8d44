//! A throwaway moto server (`moto_server`, installed by tests/run.sh): S3
//! and KMS on one port, in memory, killed on drop.

use std::net::SocketAddr;
use std::time::Duration;

/// A running moto server.
pub struct Moto {
    child: std::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts one on a free loopback port; the test fails if `moto_server`
    /// is missing or does not answer within 30 s.
    pub async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server is needed (pip install 'moto[s3]' flask flask-cors)");
        let moto = Moto {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(moto.addr).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "moto did not start in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// Its endpoint URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}
