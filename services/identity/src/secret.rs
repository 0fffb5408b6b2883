//! Random secrets from the operating system: salts, refresh-token and client secrets, ids.

/// `N` random bytes. The OS generator failing is not something a caller can recover from.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator");
    bytes
}

/// A URL-safe random token of `bytes` random bytes, hex encoded.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the operating system's random number generator");
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}
