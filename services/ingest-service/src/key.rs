//! The key behind `url_path_hmac`: 32 random bytes made on first start and kept 0600 in
//! `<data_dir>/ingest/path-hmac.key`; each school's key is derived from it, so equal paths
//! compare equal within a school but cannot be read back, or matched across schools.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use haven_kernel::SchoolId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The deployment's path key.
#[derive(Clone)]
pub struct PathKey([u8; 32]);

impl std::fmt::Debug for PathKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PathKey(..)")
    }
}

/// Why the key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
}

impl PathKey {
    /// A key from given bytes (tests, and a key supplied by a secret store).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        PathKey(bytes)
    }

    /// Loads the key from `file`, making it (0600) when it does not exist. A key file that
    /// others can read, or of the wrong size, is refused.
    pub fn open(file: &Path) -> Result<Self, KeyError> {
        let fail = |reason: String| KeyError::File { path: file.display().to_string(), reason };
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
        }
        if !file.exists() {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| fail(format!("no randomness: {e}")))?;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(file)
                .map_err(|e| fail(e.to_string()))?;
            out.write_all(&bytes).and_then(|()| out.sync_all()).map_err(|e| fail(e.to_string()))?;
        }
        let mode = std::fs::metadata(file).map_err(|e| fail(e.to_string()))?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(fail(format!("readable by others (mode {mode:o}); it must be 0600")));
        }
        let bytes = std::fs::read(file).map_err(|e| fail(e.to_string()))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| fail("not a 32-byte key".into()))?;
        Ok(PathKey(key))
    }

    /// HMAC-SHA-256 of `path` under `school`'s key.
    pub fn path_hmac(&self, school: &SchoolId, path: &str) -> [u8; 32] {
        let mut school_key = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("any key length");
        school_key.update(school.as_str().as_bytes());
        let derived = school_key.finalize().into_bytes();
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&derived).expect("any key length");
        mac.update(path.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_made_once_0600_and_paths_hash_per_school() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ingest").join("path-hmac.key");
        let key = PathKey::open(&file).unwrap();
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let again = PathKey::open(&file).unwrap();
        let oak = SchoolId::parse("oak").unwrap();
        let elm = SchoolId::parse("elm").unwrap();
        assert_eq!(key.path_hmac(&oak, "/a"), again.path_hmac(&oak, "/a"), "reloaded, the same key");
        assert_ne!(key.path_hmac(&oak, "/a"), key.path_hmac(&oak, "/b"));
        assert_ne!(key.path_hmac(&oak, "/a"), key.path_hmac(&elm, "/a"), "schools cannot be matched");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(PathKey::open(&file).unwrap_err().to_string().contains("0600"));
    }
}
