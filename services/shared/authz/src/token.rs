//! Access tokens: the claims identity signs and every service verifies.
//!
//! ```text
//!  token ─▶ header: alg must be EdDSA, kid must name a known key that is not retired
//!        ─▶ signature (that key) ─▶ iss, aud, exp, nbf, sub present and valid
//!        ─▶ lifetime (exp − nbf) at most 15 minutes ─▶ Claims ─▶ Principal
//! ```
//! `alg: none`, HS256 signed with a public key and any other algorithm are refused before a
//! key is touched: only EdDSA is ever accepted, and keys are Ed25519 public keys only.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use haven_kernel::SchoolId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::{Principal, PrincipalKind, Role, RoleGrant, Scope};

/// The `iss` of every Haven access token.
pub const ISSUER: &str = "haven-identity";
/// The `aud` of every Haven access token.
pub const AUDIENCE: &str = "haven";
/// The longest an access token may live, in seconds (15 minutes).
pub const MAX_ACCESS_TOKEN_TTL_S: i64 = 15 * 60;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_S: u64 = 5;

/// A role grant as a token carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantClaim {
    pub role: String,
    /// The school; absent for the trust.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school: Option<String>,
}

/// The claims of a Haven access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The principal: `user-<id>` or `system-<id>`.
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    /// The token's own id.
    pub jti: String,
    /// `user` or `school_system`.
    pub kind: String,
    /// A user's session (refresh-token family); revoking it ends the token at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The AUP version the user had accepted when the token was issued (0: none).
    #[serde(default)]
    pub aup: u32,
    #[serde(default)]
    pub grants: Vec<GrantClaim>,
    /// A school system's school.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school: Option<String>,
}

impl Claims {
    /// The principal these claims describe; `None` when a field does not parse (a token
    /// signed by us never has one, so this is a refusal, not a repair).
    pub fn principal(&self) -> Option<Principal> {
        let kind = match self.kind.as_str() {
            "user" => PrincipalKind::User,
            "school_system" => PrincipalKind::SchoolSystem,
            _ => return None,
        };
        let mut grants = Vec::with_capacity(self.grants.len());
        for claim in &self.grants {
            let role = Role::from_name(&claim.role)?;
            let scope = match &claim.school {
                None => Scope::Trust,
                Some(school) => Scope::School(SchoolId::parse(school).ok()?),
            };
            grants.push(RoleGrant { role, scope });
        }
        let school = match &self.school {
            None => None,
            Some(school) => Some(SchoolId::parse(school).ok()?),
        };
        if kind == PrincipalKind::SchoolSystem && (school.is_none() || !grants.is_empty()) {
            return None;
        }
        Some(Principal {
            id: self.sub.clone(),
            kind,
            grants,
            session_id: self.sid.clone(),
            aup_version: self.aup,
            school,
            expires_at: self.exp,
        })
    }

    /// Grants in token form.
    pub fn grant_claims(grants: &[RoleGrant]) -> Vec<GrantClaim> {
        grants
            .iter()
            .map(|grant| GrantClaim {
                role: grant.role.as_str().to_owned(),
                school: grant.scope.school().map(ToString::to_string),
            })
            .collect()
    }
}

/// Why a token is refused. The gRPC and HTTP answer is always Unauthenticated; the kind is
/// for tests and for counting, never echoed with the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not EdDSA")]
    WrongAlgorithm,
    #[error("the token names no key")]
    MissingKeyId,
    #[error("the token's key is unknown or retired")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is wrong")]
    WrongIssuer,
    #[error("the token's audience is wrong")]
    WrongAudience,
    #[error("the token lacks a required claim")]
    MissingClaim,
    #[error("the token lives longer than 15 minutes")]
    TooLong,
    #[error("the token's claims do not describe a principal")]
    BadClaims,
    #[error("the token's session was revoked")]
    Revoked,
    #[error("the account is disabled")]
    Disabled,
}

/// An Ed25519 public key that verifies tokens, and when it stops (a rotated-out key
/// verifies until the tokens it signed have expired).
#[derive(Clone)]
struct VerifyingKey {
    key: DecodingKey,
    /// Unix seconds after which it no longer verifies; `None` while it is the active key.
    retire_after: Option<i64>,
}

/// The public keys tokens are verified against, by key id. Shared: identity adds a key when
/// it rotates one in; other processes learn keys from `identity.SigningKeyRotated` events.
#[derive(Clone, Default)]
pub struct TokenVerifier {
    keys: Arc<RwLock<BTreeMap<String, VerifyingKey>>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys.read().expect("keys lock");
        f.debug_struct("TokenVerifier").field("key_ids", &keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl TokenVerifier {
    /// Adds the active key (32 raw Ed25519 public key bytes) rotated in at `rotated_at`: every
    /// other key retires once the tokens it signed can have expired.
    pub fn rotate_in(&self, key_id: &str, public_key: &[u8; 32], rotated_at: i64) {
        let mut keys = self.keys.write().expect("keys lock");
        let retire_after = rotated_at + MAX_ACCESS_TOKEN_TTL_S + LEEWAY_S as i64;
        for (other_id, other) in keys.iter_mut() {
            if other_id != key_id && other.retire_after.is_none() {
                other.retire_after = Some(retire_after);
            }
        }
        keys.entry(key_id.to_owned())
            .or_insert(VerifyingKey { key: DecodingKey::from_ed_der(public_key), retire_after: None });
    }

    /// Forgets keys retired before `now` (they verify nothing any more).
    pub fn prune(&self, now: i64) {
        self.keys.write().expect("keys lock").retain(|_, key| key.retire_after.is_none_or(|at| at >= now));
    }

    /// Whether a key id is known and not retired at `now`.
    pub fn knows(&self, key_id: &str, now: i64) -> bool {
        let keys = self.keys.read().expect("keys lock");
        keys.get(key_id).is_some_and(|key| key.retire_after.is_none_or(|at| at >= now))
    }

    /// Verifies a token's header, signature and registered claims; `now` (Unix seconds) decides
    /// whether its key has retired. `exp` and `nbf` are checked against the system clock.
    pub fn verify(&self, token: &str, now: i64) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|error| match error.kind() {
            ErrorKind::InvalidAlgorithmName | ErrorKind::UnsupportedAlgorithm => TokenError::WrongAlgorithm,
            _ => TokenError::Malformed,
        })?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::WrongAlgorithm);
        }
        let key_id = header.kid.ok_or(TokenError::MissingKeyId)?;
        let key = {
            let keys = self.keys.read().expect("keys lock");
            let key = keys.get(&key_id).ok_or(TokenError::UnknownKey)?;
            if key.retire_after.is_some_and(|at| at < now) {
                return Err(TokenError::UnknownKey);
            }
            key.key.clone()
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = LEEWAY_S;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|error| match error.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
            ErrorKind::InvalidAudience => TokenError::WrongAudience,
            ErrorKind::MissingRequiredClaim(_) => TokenError::MissingClaim,
            ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
            _ => TokenError::Malformed,
        })?;
        let claims = data.claims;
        if claims.exp - claims.nbf > MAX_ACCESS_TOKEN_TTL_S {
            return Err(TokenError::TooLong);
        }
        Ok(claims)
    }
}
