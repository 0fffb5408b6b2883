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

/// Crockford's base32 alphabet, lowercase (no i, l, o, u).
const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A pseudonymous subject id: `s-` and 26 base32 characters of 128 random bits. It says
/// nothing about the learner and cannot be guessed.
pub fn random_subject_id() -> String {
    let value = u128::from_be_bytes(random_bytes::<16>());
    let mut id = String::with_capacity(28);
    id.push_str("s-");
    for index in (0..26).rev() {
        let digit = ((value >> (index * 5)) & 0x1f) as usize;
        id.push(BASE32[digit] as char);
    }
    id
}
