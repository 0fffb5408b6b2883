//! Identity's configuration: token lifetimes and the password hashing cost. Nested under
//! `identity` in `haven`'s configuration (`HAVEN_IDENTITY__ACCESS_TOKEN_TTL_S=600`).

use serde::{Deserialize, Serialize};

use crate::password::PasswordCost;
use crate::tokens::TokenLifetimes;

/// Everything identity can be configured with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// How long an access token lives, in seconds: 1..=900 (15 minutes at most).
    pub access_token_ttl_s: i64,
    /// How long a session (its refresh token) lives, in seconds: 60..=2 592 000 (30 days).
    pub refresh_token_ttl_s: i64,
    /// argon2id memory, in KiB (at least 8 × parallelism; OWASP: 19 456).
    pub password_memory_kib: u32,
    /// argon2id passes (OWASP: 2).
    pub password_iterations: u32,
    /// argon2id lanes (OWASP: 1).
    pub password_parallelism: u32,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        let cost = PasswordCost::default();
        IdentityConfig {
            access_token_ttl_s: 900,
            refresh_token_ttl_s: 12 * 3600,
            password_memory_kib: cost.memory_kib,
            password_iterations: cost.iterations,
            password_parallelism: cost.parallelism,
        }
    }
}

impl IdentityConfig {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        if !(1..=900).contains(&self.access_token_ttl_s) {
            return Err(("access_token_ttl_s", "must be 1 to 900 (access tokens live at most 15 minutes)"));
        }
        if !(60..=30 * 24 * 3600).contains(&self.refresh_token_ttl_s) {
            return Err(("refresh_token_ttl_s", "must be 60 to 2592000"));
        }
        if self.password_parallelism == 0 || self.password_iterations == 0 {
            return Err(("password_iterations", "and password_parallelism must be at least 1"));
        }
        if self.password_memory_kib < 8 * self.password_parallelism {
            return Err(("password_memory_kib", "must be at least 8 × password_parallelism"));
        }
        Ok(())
    }

    pub fn lifetimes(&self) -> TokenLifetimes {
        TokenLifetimes { access_s: self.access_token_ttl_s, refresh_s: self.refresh_token_ttl_s }
    }

    pub fn password_cost(&self) -> PasswordCost {
        PasswordCost {
            memory_kib: self.password_memory_kib,
            iterations: self.password_iterations,
            parallelism: self.password_parallelism,
        }
    }
}
