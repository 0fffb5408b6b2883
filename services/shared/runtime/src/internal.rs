//! The internal credential: what the event log's own gRPC (the log, raft, cluster
//! operations, backup) asks of its callers when a deployment configures one
//! (`internal_key_file`). Those methods are below people's authorisation — they read and
//! write every record — so outside a single machine they must not answer whoever can reach
//! the port.
//!
//! ```text
//!  key file (32+ random bytes, 0600, the same in every process of a deployment)
//!    └─ token = hex(HMAC-SHA-256(key, "haven-internal-v1"))   (the key itself never leaves)
//!  client: header `x-haven-internal: <token>` on every call (installed once per process)
//!  server: haven-authz refuses a call without it, or with another, as UNAUTHENTICATED
//! ```
//! With no key configured nothing is sent or asked: a log bound to loopback (`haven up`'s
//! default) is reachable only from its own machine.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The metadata header carrying the credential.
pub const HEADER: &str = "x-haven-internal";

/// Why the key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("internal_key_file {path}: {reason}")]
pub struct KeyError {
    pub path: String,
    pub reason: String,
}

/// The credential derived from the deployment's internal key.
#[derive(Clone)]
pub struct InternalCredential {
    token: String,
}

impl std::fmt::Debug for InternalCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalCredential(..)")
    }
}

impl InternalCredential {
    /// From the key's bytes (at least 32).
    pub fn from_key(key: &[u8]) -> Option<Self> {
        if key.len() < 32 {
            return None;
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(b"haven-internal-v1");
        let token = mac.finalize().into_bytes().iter().map(|byte| format!("{byte:02x}")).collect();
        Some(InternalCredential { token })
    }

    /// Reads the key file: at least 32 bytes, readable by its owner only.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let fail = |reason: String| KeyError { path: path.display().to_string(), reason };
        let mode = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(fail(format!("readable by others (mode {mode:o}); it must be 0600")));
        }
        let key = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        InternalCredential::from_key(&key).ok_or_else(|| fail(format!("{} bytes; at least 32 are needed", key.len())))
    }

    /// Loads the key at `path`, first making it (32 random bytes, 0600) when there is none.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let fail = |reason: String| KeyError { path: path.display().to_string(), reason };
        if !path.exists() {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
            }
            let mut key = [0u8; 32];
            getrandom::fill(&mut key).map_err(|e| fail(format!("no randomness: {e}")))?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| fail(e.to_string()))?;
            file.write_all(&key).and_then(|()| file.sync_all()).map_err(|e| fail(e.to_string()))?;
        }
        InternalCredential::load(path)
    }

    /// The header value callers send.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether `presented` is this credential, compared without an early exit.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let expected = self.token.as_bytes();
        if presented.len() != expected.len() {
            return false;
        }
        let difference = expected.iter().zip(presented).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(difference) == 0
    }
}

static INSTALLED: OnceLock<InternalCredential> = OnceLock::new();

/// Makes `credential` the one this process sends and asks for. Once per process; a second,
/// different credential is refused (false).
pub fn install(credential: InternalCredential) -> bool {
    let token = credential.token.clone();
    INSTALLED.get_or_init(|| credential).token == token
}

/// The process's credential, if one is installed.
pub fn installed() -> Option<&'static InternalCredential> {
    INSTALLED.get()
}

/// Adds the process's credential (if any) to an outgoing gRPC request.
pub fn attach<T>(request: &mut tonic::Request<T>) {
    if let Some(credential) = installed()
        && let Ok(value) = credential.token().parse()
    {
        request.metadata_mut().insert(HEADER, value);
    }
}

/// `request` with the process's credential (if any).
pub fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    attach(&mut request);
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_derived_and_compared_whole() {
        let credential = InternalCredential::from_key(&[7; 32]).unwrap();
        assert_eq!(credential.token().len(), 64);
        assert!(!credential.token().contains("0707"), "the key itself is not sent");
        assert!(credential.accepts(credential.token().as_bytes()));
        assert!(!credential.accepts(&credential.token().as_bytes()[..63]));
        let other = InternalCredential::from_key(&[8; 32]).unwrap();
        assert!(!credential.accepts(other.token().as_bytes()));
        assert!(InternalCredential::from_key(&[7; 31]).is_none(), "short keys are refused");
    }

    #[test]
    fn a_key_file_others_can_read_or_too_short_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("haven-internal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("internal.key");
        std::fs::write(&file, [1u8; 32]).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = InternalCredential::load(&file).unwrap_err().to_string();
        assert!(error.contains("internal_key_file") && error.contains("0600"), "{error}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(InternalCredential::load(&file).is_ok());
        std::fs::write(&file, [1u8; 16]).unwrap();
        assert!(InternalCredential::load(&file).unwrap_err().to_string().contains("16 bytes"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_key_is_made_once_owner_only_and_kept() {
        let dir = std::env::temp_dir().join(format!("haven-internal-new-{}", std::process::id()));
        let file = dir.join("data").join("internal.key");
        let first = InternalCredential::load_or_create(&file).unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(std::fs::read(&file).unwrap().len(), 32);
        let again = InternalCredential::load_or_create(&file).unwrap();
        assert_eq!(first.token(), again.token(), "the same key on the next start");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
