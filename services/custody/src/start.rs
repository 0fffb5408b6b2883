//! Starting custody in a process: open (or on first start create) the key that signs trail
//! exports, start the read model and the end-of-day schedule, and build the service. The
//! binary wraps the service in haven-authz's `AuthLayer` with the same authenticator as
//! identity.
//!
//! The signing key is a 32-byte Ed25519 seed in one file, mode 0600 from its creation; its
//! public half travels in every export and is printed for people to compare.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use haven_authz::AccessState;
use haven_eventlog_client::EventLog;
use haven_runtime::{Readiness, Shutdown};
use sha2::{Digest, Sha256};

use crate::export::TrailSigner;
use crate::{CustodyApp, CustodyConfig, CustodyIndex, CustodyService};

/// Custody, running.
#[derive(Debug)]
pub struct Running {
    pub service: CustodyService,
    pub app: CustodyApp,
    pub index: CustodyIndex,
    /// The export signing key's public half, hex.
    pub public_key_hex: String,
    /// The read model's follower and the sweep's schedule; they end on shutdown.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The trail signer whose seed is in `path`; a new seed is generated and written (0600) when
/// the file does not exist. Its key id is `custody-` and the first 16 hex digits of the
/// SHA-256 of its public key.
pub fn open_signer(path: &Path) -> std::io::Result<TrailSigner> {
    let seed: [u8; 32] = match std::fs::read(path) {
        Ok(bytes) => bytes.try_into().map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is not a 32-byte key", path.display()))
        })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut seed = [0u8; 32];
            getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
            let temporary = path.with_extension("tmp");
            let mut out =
                std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
            out.write_all(&seed).and_then(|()| out.sync_all())?;
            std::fs::rename(&temporary, path)?;
            seed
        }
        Err(error) => return Err(error),
    };
    let public = TrailSigner::from_seed("", &seed).public_key();
    let key_id = format!("custody-{}", &hex::encode(Sha256::digest(public))[..16]);
    Ok(TrailSigner::from_seed(key_id, &seed))
}

/// Starts the read model (registered with `readiness` as `custody`) and the end-of-day sweep.
pub fn start(
    log: Arc<dyn EventLog>,
    config: &CustodyConfig,
    signer: TrailSigner,
    access: AccessState,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> Running {
    let public_key_hex = hex::encode(signer.public_key());
    let app = CustodyApp::new(Arc::clone(&log), Arc::new(signer));
    let index = CustodyIndex::default();
    let index_ready = readiness.register("custody", "custody read model catching up");
    let tasks = vec![
        tokio::spawn(index.clone().follow(Arc::clone(&log), index_ready.clone(), shutdown.clone())),
        tokio::spawn(crate::schedule::run(app.clone(), index.clone(), config.clone(), index_ready, shutdown.clone())),
    ];
    let service = CustodyService::new(app.clone(), index.clone(), access);
    Running { service, app, index, public_key_hex, tasks }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_key_is_made_once_kept_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custody").join("trail-signing.key");
        let first = open_signer(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = open_signer(&path).unwrap();
        assert_eq!((first.key_id(), first.public_key()), (again.key_id(), again.public_key()));
        assert!(first.key_id().starts_with("custody-"));
        std::fs::write(&path, b"short").unwrap();
        assert!(open_signer(&path).is_err(), "a damaged key file is an error, not a new key");
    }
}
