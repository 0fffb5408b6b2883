//! A real `nats-server` per test: a free loopback port, a temporary store directory, stopped
//! (SIGKILL) when dropped. `scripts/test` installs the pinned server when it is missing.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use haven_bus::{Nats, NatsUrl};
use tokio::process::{Child, Command};

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut server = NatsServer { child: None, port, store: dir.path().join("jetstream"), _dir: dir };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> NatsUrl {
        NatsUrl::parse(&format!("nats://127.0.0.1:{}", self.port)).unwrap()
    }

    pub async fn connect(&self) -> Nats {
        Nats::connect(&self.url()).await.unwrap()
    }

    /// SIGKILL, then wait for the process to go.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }

    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }

    /// Kills the server, deletes its whole JetStream store (streams, consumers, KV), starts it.
    pub async fn restart_with_empty_store(&mut self) {
        self.kill().await;
        std::fs::remove_dir_all(&self.store).unwrap();
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server on PATH (scripts/test installs it)");
        self.child = Some(child);
        // Ready when JetStream answers.
        for _ in 0..200 {
            if let Ok(Ok(nats)) = tokio::time::timeout(Duration::from_secs(1), Nats::connect(&self.url())).await
                && nats.jetstream().query_account().await.is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nats-server did not start on port {}", self.port);
    }
}
