//! Issuing tokens: access tokens (JWT, EdDSA, at most 15 minutes) signed by the key ring, and
//! refresh tokens (opaque, `rt.<user>.<session>.<secret>`, only the secret's SHA-256 stored).

use std::path::Path;
use std::sync::{Arc, Mutex};

use haven_authz::token::{AUDIENCE, ISSUER, MAX_ACCESS_TOKEN_TTL_S};
use haven_authz::{Claims, RoleGrant, TokenVerifier, UserId};
use haven_kernel::SchoolId;
use sha2::{Digest, Sha256};

use crate::keys::{KeyError, KeyRing, SigningKey};

/// What sign-in, refresh and the client-credentials exchange return.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenPair {
    pub access_token: String,
    pub access_expires_at: i64,
    /// Absent for school systems.
    pub refresh_token: Option<String>,
    pub refresh_expires_at: i64,
    /// Until the AUP in force is accepted, only AUP calls are allowed.
    pub aup_required: bool,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_expires_at", &self.access_expires_at)
            .field("aup_required", &self.aup_required)
            .finish_non_exhaustive()
    }
}

/// A refresh token, parsed.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    pub user_id: UserId,
    pub session_id: String,
    pub secret: String,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken").field("session_id", &self.session_id).finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// A new refresh token for a new session.
    pub fn generate(user_id: &UserId) -> RefreshToken {
        RefreshToken {
            user_id: user_id.clone(),
            session_id: uuid::Uuid::now_v7().simple().to_string(),
            secret: crate::secret::random_token(32),
        }
    }

    /// The token that replaces this one at a refresh: the same session, a new secret.
    pub fn rotated(&self) -> RefreshToken {
        RefreshToken {
            user_id: self.user_id.clone(),
            session_id: self.session_id.clone(),
            secret: crate::secret::random_token(32),
        }
    }

    pub fn parse(raw: &str) -> Option<RefreshToken> {
        let mut parts = raw.splitn(4, '.');
        let (prefix, user, session, secret) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if prefix != "rt" || session.is_empty() || secret.len() != 64 || secret.contains('.') {
            return None;
        }
        Some(RefreshToken {
            user_id: UserId::parse(user).ok()?,
            session_id: session.to_owned(),
            secret: secret.to_owned(),
        })
    }

    pub fn secret_sha256(&self) -> [u8; 32] {
        Sha256::digest(self.secret.as_bytes()).into()
    }

    pub fn encode(&self) -> String {
        format!("rt.{}.{}.{}", self.user_id, self.session_id, self.secret)
    }
}

/// How long tokens live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenLifetimes {
    /// At most 900 (15 minutes).
    pub access_s: i64,
    pub refresh_s: i64,
}

/// Signs tokens and keeps the verifier's keys in step with the ring.
#[derive(Clone, Debug)]
pub struct Tokens {
    ring: Arc<Mutex<KeyRing>>,
    verifier: TokenVerifier,
    lifetimes: TokenLifetimes,
}

impl Tokens {
    /// Opens the key ring in `keys_dir` (a key is generated on first start) and loads its
    /// public keys into `verifier`.
    pub fn open(
        keys_dir: &Path,
        now: i64,
        verifier: TokenVerifier,
        lifetimes: TokenLifetimes,
    ) -> Result<Tokens, KeyError> {
        assert!(
            lifetimes.access_s > 0 && lifetimes.access_s <= MAX_ACCESS_TOKEN_TTL_S,
            "access tokens live 1..=900 s (checked when the configuration is loaded)"
        );
        let ring = KeyRing::open(keys_dir, now)?;
        ring.load_into(&verifier, now);
        Ok(Tokens { ring: Arc::new(Mutex::new(ring)), verifier, lifetimes })
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    pub fn lifetimes(&self) -> TokenLifetimes {
        self.lifetimes
    }

    /// Rotates in a new signing key; returns it (its public half, for the log).
    pub fn rotate(&self, now: i64) -> Result<SigningKey, KeyError> {
        let mut ring = self.ring.lock().expect("key ring lock");
        let key = ring.rotate(now)?.clone();
        ring.load_into(&self.verifier, now);
        Ok(key)
    }

    /// The keys that still verify, oldest first (for `SigningKeyRotated` announcements).
    pub fn verifying_keys(&self, now: i64) -> Vec<SigningKey> {
        self.ring.lock().expect("key ring lock").verifying(now).cloned().collect()
    }

    /// The JWKS, as JSON.
    pub fn jwks_json(&self, now: i64) -> String {
        let jwks = self.ring.lock().expect("key ring lock").jwks(now);
        serde_json::to_string(&jwks).expect("a JWKS serialises")
    }

    /// An access token for a person's session.
    pub fn for_user(
        &self,
        user_id: &UserId,
        session_id: &str,
        grants: &[RoleGrant],
        aup_version: u32,
        now: i64,
    ) -> Result<(String, i64), KeyError> {
        let mut claims = self.claims(user_id.principal_id(), "user", now);
        claims.sid = Some(session_id.to_owned());
        claims.aup = aup_version;
        claims.grants = Claims::grant_claims(grants);
        self.sign(&claims)
    }

    /// An access token for a school system: one school, no roles, no refresh.
    pub fn for_school_system(
        &self,
        system_id: &str,
        school_id: &SchoolId,
        now: i64,
    ) -> Result<(String, i64), KeyError> {
        let mut claims = self.claims(format!("system-{system_id}"), "school_system", now);
        claims.school = Some(school_id.to_string());
        self.sign(&claims)
    }

    fn claims(&self, sub: String, kind: &str, now: i64) -> Claims {
        Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub,
            exp: now + self.lifetimes.access_s,
            nbf: now,
            iat: now,
            jti: uuid::Uuid::now_v7().simple().to_string(),
            kind: kind.into(),
            sid: None,
            aup: 0,
            grants: vec![],
            school: None,
        }
    }

    fn sign(&self, claims: &Claims) -> Result<(String, i64), KeyError> {
        let token = self.ring.lock().expect("key ring lock").sign(claims)?;
        Ok((token, claims.exp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_round_trip_and_odd_ones_are_refused() {
        let token = RefreshToken::generate(&UserId::parse("r-ahmed").unwrap());
        assert_eq!(RefreshToken::parse(&token.encode()), Some(token.clone()));
        for bad in
            ["", "rt", "rt.r-ahmed.s", "xx.r-ahmed.s.secret", "rt.R.s.secret", &format!("rt.r-ahmed..{}", token.secret)]
        {
            assert_eq!(RefreshToken::parse(bad), None, "{bad}");
        }
        assert!(!format!("{token:?}").contains(&token.secret), "Debug never shows the secret");
    }
}
