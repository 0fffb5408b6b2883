//! The token signing keys: Ed25519, generated on first start, each stored in its own file
//! with mode 0600 in a 0700 directory, rotated on demand.
//!
//! ```text
//!  <data_dir>/identity/keys/<kid>.json   { kid, created_at, retired_at, pkcs8_hex }
//!  open: load every key (a file readable by others is refused) ─▶ no active key? generate one
//!  rotate: a new active key; the old one retires now and still verifies until the tokens it
//!          signed have expired (15 min + leeway); files retired longer ago are deleted
//! ```
//! Private keys never leave this module: not in the log, not in a log line. The public half
//! goes to the verifier, the JWKS and `identity.SigningKeyRotated` events.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use haven_authz::TokenVerifier;
use haven_authz::token::{Claims, LEEWAY_S, MAX_ACCESS_TOKEN_TTL_S};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

/// The fixed DER prefix of an Ed25519 private key in PKCS#8 v1 (RFC 8410), before the seed.
const PKCS8_ED25519_PREFIX: [u8; 16] =
    [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
/// The fixed DER prefix of an Ed25519 SubjectPublicKeyInfo, before the 32 key bytes.
pub const SPKI_ED25519_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key directory {path}: {reason}")]
    Storage { path: PathBuf, reason: String },
    #[error("key file {path} is readable by others (mode {mode:o}); it must be 0600")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is not a signing key: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("signing a token failed: {0}")]
    Signing(String),
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    kid: String,
    created_at: i64,
    retired_at: Option<i64>,
    pkcs8_hex: String,
}

/// One signing key.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    encoding: EncodingKey,
    /// The 32 raw bytes of the public key.
    pub public_key: [u8; 32],
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("retired_at", &self.retired_at).finish()
    }
}

impl SigningKey {
    fn from_pkcs8(kid: String, created_at: i64, retired_at: Option<i64>, pkcs8: &[u8]) -> Result<Self, String> {
        let encoding = EncodingKey::from_ed_der(pkcs8);
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::EdDSA).map_err(|e| e.to_string())?;
        let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else {
            return Err("not an Ed25519 key".into());
        };
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&params.x).map_err(|e| e.to_string())?;
        let public_key: [u8; 32] = raw.as_slice().try_into().map_err(|_| "public key is not 32 bytes".to_owned())?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::EdDSA);
        Ok(SigningKey { kid, created_at, retired_at, encoding, public_key, jwk })
    }

    /// Whether it still verifies tokens at `now`.
    pub fn verifies_at(&self, now: i64) -> bool {
        self.retired_at.is_none_or(|retired| retired + MAX_ACCESS_TOKEN_TTL_S + LEEWAY_S as i64 >= now)
    }

    /// The public key as SubjectPublicKeyInfo DER (what `SigningKeyRotated` carries).
    pub fn public_key_der(&self) -> Vec<u8> {
        [SPKI_ED25519_PREFIX.as_slice(), self.public_key.as_slice()].concat()
    }
}

/// Every signing key this identity instance holds, the newest active.
#[derive(Debug)]
pub struct KeyRing {
    dir: PathBuf,
    keys: Vec<SigningKey>,
}

fn storage(path: &Path, error: impl std::fmt::Display) -> KeyError {
    KeyError::Storage { path: path.to_owned(), reason: error.to_string() }
}

impl KeyRing {
    /// Opens (creating when absent) the key directory; generates a key if none is active.
    pub fn open(dir: &Path, now: i64) -> Result<KeyRing, KeyError> {
        fs::create_dir_all(dir).map_err(|e| storage(dir, e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| storage(dir, e))?;
        let mut keys = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| storage(dir, e))? {
            let path = entry.map_err(|e| storage(dir, e))?.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            keys.push(load(&path)?);
        }
        keys.sort_by_key(|key| key.created_at);
        let mut ring = KeyRing { dir: dir.to_owned(), keys };
        if ring.keys.iter().all(|key| key.retired_at.is_some()) {
            ring.rotate(now)?;
        }
        ring.forget_expired(now)?;
        Ok(ring)
    }

    /// A new active key; the current one retires now.
    pub fn rotate(&mut self, now: i64) -> Result<&SigningKey, KeyError> {
        let seed: [u8; 32] = crate::secret::random_bytes();
        let pkcs8 = [PKCS8_ED25519_PREFIX.as_slice(), seed.as_slice()].concat();
        let kid = format!("k{now}-{}", crate::secret::random_token(4));
        let key = SigningKey::from_pkcs8(kid, now, None, &pkcs8).map_err(|reason| storage(&self.dir, reason))?;
        write_key(&self.dir, &key, &pkcs8)?;
        let retiring: Vec<usize> = (0..self.keys.len()).filter(|&i| self.keys[i].retired_at.is_none()).collect();
        for index in retiring {
            self.keys[index].retired_at = Some(now);
            let path = self.dir.join(format!("{}.json", self.keys[index].kid));
            let mut file: KeyFile = serde_json::from_slice(&fs::read(&path).map_err(|e| storage(&path, e))?)
                .map_err(|e| storage(&path, e))?;
            file.retired_at = Some(now);
            write_file(&path, &file)?;
        }
        self.keys.push(key);
        Ok(self.keys.last().expect("just pushed"))
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &SigningKey {
        self.keys.iter().rev().find(|key| key.retired_at.is_none()).expect("a key ring always has an active key")
    }

    /// Every key that still verifies at `now`, oldest first.
    pub fn verifying(&self, now: i64) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter().filter(move |key| key.verifies_at(now))
    }

    /// Signs claims with the active key, naming it in `kid`.
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let active = self.active();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(active.kid.clone());
        header.typ = Some("JWT".into());
        jsonwebtoken::encode(&header, claims, &active.encoding).map_err(|e| KeyError::Signing(e.to_string()))
    }

    /// The JSON Web Key Set of every key that still verifies.
    pub fn jwks(&self, now: i64) -> JwkSet {
        JwkSet { keys: self.verifying(now).map(|key| key.jwk.clone()).collect() }
    }

    /// Puts every key that still verifies into a verifier, in order, so retirements match.
    pub fn load_into(&self, verifier: &TokenVerifier, now: i64) {
        for key in self.verifying(now) {
            verifier.rotate_in(&key.kid, &key.public_key, key.created_at);
        }
        verifier.prune(now);
    }

    /// Deletes the files of keys that no longer verify anything.
    fn forget_expired(&mut self, now: i64) -> Result<(), KeyError> {
        for key in self.keys.iter().filter(|key| !key.verifies_at(now)) {
            let path = self.dir.join(format!("{}.json", key.kid));
            fs::remove_file(&path).map_err(|e| storage(&path, e))?;
        }
        self.keys.retain(|key| key.verifies_at(now));
        Ok(())
    }
}

fn load(path: &Path) -> Result<SigningKey, KeyError> {
    let metadata = fs::metadata(path).map_err(|e| storage(path, e))?;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions { path: path.to_owned(), mode });
    }
    let corrupt = |reason: String| KeyError::Corrupt { path: path.to_owned(), reason };
    let file: KeyFile =
        serde_json::from_slice(&fs::read(path).map_err(|e| storage(path, e))?).map_err(|e| corrupt(e.to_string()))?;
    let pkcs8 = hex_decode(&file.pkcs8_hex).ok_or_else(|| corrupt("pkcs8_hex is not hex".into()))?;
    if pkcs8.len() != 48 || pkcs8[..16] != PKCS8_ED25519_PREFIX {
        return Err(corrupt("not an Ed25519 PKCS#8 key".into()));
    }
    SigningKey::from_pkcs8(file.kid, file.created_at, file.retired_at, &pkcs8).map_err(corrupt)
}

fn write_key(dir: &Path, key: &SigningKey, pkcs8: &[u8]) -> Result<(), KeyError> {
    let file = KeyFile {
        kid: key.kid.clone(),
        created_at: key.created_at,
        retired_at: key.retired_at,
        pkcs8_hex: pkcs8.iter().map(|byte| format!("{byte:02x}")).collect(),
    };
    write_file(&dir.join(format!("{}.json", key.kid)), &file)
}

/// Writes a key file with mode 0600 from its creation, via a temporary file and a rename.
fn write_file(path: &Path, file: &KeyFile) -> Result<(), KeyError> {
    let temporary = path.with_extension("tmp");
    let body = serde_json::to_vec_pretty(file).map_err(|e| storage(path, e))?;
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| storage(&temporary, e))?;
    out.write_all(&body).and_then(|()| out.sync_all()).map_err(|e| storage(&temporary, e))?;
    fs::rename(&temporary, path).map_err(|e| storage(path, e))
}

fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_generated_once_stored_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        let ring = KeyRing::open(&keys_dir, 1_000).unwrap();
        let kid = ring.active().kid.clone();
        let file = keys_dir.join(format!("{kid}.json"));
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&keys_dir).unwrap().permissions().mode() & 0o777, 0o700);
        let again = KeyRing::open(&keys_dir, 1_001).unwrap();
        assert_eq!(again.active().kid, kid, "the stored key is reused, not replaced");
        assert_eq!(again.active().public_key, ring.active().public_key);
    }

    #[test]
    fn a_key_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(dir.path(), 1_000).unwrap();
        let file = dir.path().join(format!("{}.json", ring.active().kid));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(KeyRing::open(dir.path(), 1_000), Err(KeyError::Permissions { mode: 0o644, .. })));
    }

    #[test]
    fn a_rotated_out_key_verifies_until_its_tokens_expire_then_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = KeyRing::open(dir.path(), 1_000).unwrap();
        let old = ring.active().kid.clone();
        ring.rotate(2_000).unwrap();
        let new = ring.active().kid.clone();
        assert_ne!(old, new);
        let ids = |ring: &KeyRing, now| ring.verifying(now).map(|key| key.kid.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&ring, 2_000 + MAX_ACCESS_TOKEN_TTL_S), vec![old.clone(), new.clone()]);
        assert_eq!(ring.jwks(2_000).keys.len(), 2, "the JWKS keeps the old key while its tokens live");
        let later = 2_000 + MAX_ACCESS_TOKEN_TTL_S + LEEWAY_S as i64 + 1;
        assert_eq!(ids(&ring, later), vec![new.clone()]);
        let reopened = KeyRing::open(dir.path(), later).unwrap();
        assert_eq!(ids(&reopened, later), vec![new]);
        assert!(!dir.path().join(format!("{old}.json")).exists(), "the expired key's file is gone");
    }
}
