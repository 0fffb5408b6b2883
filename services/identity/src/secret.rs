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
    subject_id_from(random_bytes::<16>())
}

/// The subject id of 128 given bits (the demo derives its learners' ids from its keys).
pub fn subject_id_from(bits: [u8; 16]) -> String {
    let value = u128::from_be_bytes(bits);
    let mut id = String::with_capacity(28);
    id.push_str("s-");
    for index in (0..26).rev() {
        let digit = ((value >> (index * 5)) & 0x1f) as usize;
        id.push(BASE32[digit] as char);
    }
    id
}
