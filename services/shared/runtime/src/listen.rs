//! Binding a listening socket, with an error that says which setting to change.

use std::net::SocketAddr;

use tokio::net::TcpListener;

/// The port could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen on {addr} ({setting}): {source}; is another haven running? choose another address with {setting}"
)]
pub struct ListenError {
    pub addr: SocketAddr,
    /// The flag or config key that chose the address, e.g. `--grpc-addr`.
    pub setting: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Listens on `addr`, chosen by `setting`.
pub async fn listen(addr: SocketAddr, setting: &'static str) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr).await.map_err(|source| ListenError { addr, setting, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_names_the_setting() {
        let taken = listen("127.0.0.1:0".parse().unwrap(), "--grpc-addr").await.unwrap();
        let error = listen(taken.local_addr().unwrap(), "--grpc-addr").await.unwrap_err();
        let message = error.to_string();
        assert!(message.contains("--grpc-addr") && message.contains("in use"), "{message}");
    }
}
