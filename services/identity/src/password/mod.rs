//! Passwords: the policy a new password must meet, and argon2id hashing and verification.
//!
//! ```text
//!  new password ─▶ check_policy (length 12..=128, not common, not the login) ─▶ hash ─▶ PHC string
//!  sign-in      ─▶ verify(password, PHC string)   (argon2 compares its output in constant time)
//!  unknown login ─▶ verify against a dummy hash, so the answer takes as long either way
//! ```
//! Hashing is deliberately slow (tens of milliseconds with the default cost): callers run it
//! on a blocking thread. Passwords are never logged, stored or put in an error message.

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// The shortest password accepted, in characters.
pub const MIN_CHARS: usize = 12;
/// The longest password accepted, in characters: a bound on the work one request can ask for.
pub const MAX_CHARS: usize = 128;

/// Common passwords, one per line (comments start with `#`).
const COMMON: &str = include_str!("common.txt");
/// Words that make a password guessable whatever digits and symbols surround them.
const BASE_WORDS: [&str; 24] = [
    "password",
    "passw0rd",
    "qwerty",
    "letmein",
    "welcome",
    "iloveyou",
    "admin",
    "football",
    "monkey",
    "dragon",
    "sunshine",
    "princess",
    "baseball",
    "trustno1",
    "starwars",
    "liverpool",
    "chelsea",
    "arsenal",
    "summer",
    "winter",
    "spring",
    "autumn",
    "haven",
    "changeme",
];

/// Why a new password is refused. Never repeats the password.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    #[error("is shorter than {MIN_CHARS} characters")]
    TooShort,
    #[error("is longer than {MAX_CHARS} characters")]
    TooLong,
    #[error("is on the list of common passwords")]
    Common,
    #[error("is a common word with digits or symbols around it")]
    CommonWord,
    #[error("contains the login")]
    ContainsLogin,
    #[error("repeats one character")]
    OneCharacter,
}

/// Whether `password` may be set for the account with `login`.
pub fn check_policy(password: &str, login: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordError::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PasswordError::TooLong);
    }
    let lowered = password.to_lowercase();
    let mut distinct = lowered.chars().collect::<Vec<_>>();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() <= 2 {
        return Err(PasswordError::OneCharacter);
    }
    if COMMON.lines().filter(|line| !line.starts_with('#')).any(|common| common.trim() == lowered) {
        return Err(PasswordError::Common);
    }
    let core = lowered.trim_matches(|c: char| !c.is_alphabetic());
    if BASE_WORDS.iter().any(|word| core == *word || core.trim_end_matches(|c: char| !c.is_alphabetic()) == *word) {
        return Err(PasswordError::CommonWord);
    }
    let login_name = login.split('@').next().unwrap_or(login).to_lowercase();
    if login_name.chars().count() >= 3 && lowered.contains(&login_name) {
        return Err(PasswordError::ContainsLogin);
    }
    Ok(())
}

/// The argon2id cost. The default is OWASP's first recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordCost {
    fn default() -> Self {
        PasswordCost { memory_kib: 19 * 1024, iterations: 2, parallelism: 1 }
    }
}

impl PasswordCost {
    /// The cheapest cost argon2 allows: for tests only, never for real accounts.
    pub const fn for_tests() -> Self {
        PasswordCost { memory_kib: 8, iterations: 1, parallelism: 1 }
    }
}

/// Hashes and verifies passwords with argon2id.
#[derive(Clone, Debug)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// A hash of a random secret, verified against when the login is unknown.
    dummy_hash: String,
}

impl PasswordHasher {
    pub fn new(cost: PasswordCost) -> Result<Self, String> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(|e| format!("argon2 cost: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut hasher = PasswordHasher { argon2, dummy_hash: String::new() };
        hasher.dummy_hash = hasher.hash(&crate::secret::random_token(24)).map_err(|e| format!("argon2: {e}"))?;
        Ok(hasher)
    }

    /// The PHC string (`$argon2id$v=19$m=…`) of a password, with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, String> {
        let salt_bytes: [u8; 16] = crate::secret::random_bytes();
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
        let hash = self.argon2.hash_password(password.as_bytes(), &salt).map_err(|e| e.to_string())?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches `phc`. A malformed hash matches nothing. The comparison of
    /// the computed and stored outputs is constant-time (password-hash's `Output` uses `subtle`).
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else { return false };
        self.argon2.verify_password(password.as_bytes(), &parsed).is_ok()
    }

    /// Spends the time of one verification and always fails: for a login that does not exist
    /// or an account without a password, so timing does not tell them apart.
    pub fn verify_nothing(&self, password: &str) -> bool {
        let _ = self.verify(password, &self.dummy_hash);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_refuses_short_long_common_and_login_passwords() {
        let login = "r.ahmed@example.org";
        assert_eq!(check_policy("short-pass1", login), Err(PasswordError::TooShort));
        assert_eq!(check_policy(&"ab1".repeat(50), login), Err(PasswordError::TooLong));
        assert_eq!(check_policy("Password1234", login), Err(PasswordError::Common));
        assert_eq!(check_policy("QWERTYUIOPAS", login), Err(PasswordError::Common));
        assert_eq!(check_policy("!!Password2026!!", login), Err(PasswordError::CommonWord));
        assert_eq!(check_policy("Liverpool99999", login), Err(PasswordError::CommonWord));
        assert_eq!(check_policy("aaaaaaaaaaaaaaaa", login), Err(PasswordError::OneCharacter));
        assert_eq!(check_policy("ababababababab", login), Err(PasswordError::OneCharacter));
        assert_eq!(check_policy("my-r.ahmed-secret", login), Err(PasswordError::ContainsLogin));
        assert_eq!(check_policy("heron lamp orchard 42", login), Ok(()));
        assert_eq!(check_policy("ünïcödé-lång-pässwörd", login), Ok(()), "length counts characters");
    }

    #[test]
    fn every_listed_password_is_refused() {
        for common in COMMON.lines().filter(|line| !line.starts_with('#')) {
            assert!(check_policy(common, "someone").is_err(), "{common} was accepted");
        }
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hasher = PasswordHasher::new(PasswordCost::for_tests()).unwrap();
        let hash = hasher.hash("heron lamp orchard 42").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert!(hasher.verify("heron lamp orchard 42", &hash));
        assert!(!hasher.verify("heron lamp orchard 43", &hash));
        assert!(!hasher.verify("heron lamp orchard 42", "not a hash"));
        assert!(!hasher.verify_nothing("heron lamp orchard 42"));
        assert_ne!(hash, hasher.hash("heron lamp orchard 42").unwrap(), "every hash has its own salt");
    }

    #[test]
    fn the_default_cost_is_argon2id_at_owasp_strength() {
        let hasher = PasswordHasher::new(PasswordCost::default()).unwrap();
        let hash = hasher.hash("heron lamp orchard 42").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    }
}
