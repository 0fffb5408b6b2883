//! `haven custody verify FILE`: check an exported custody trail offline — every entry's hash
//! and link, the Ed25519 signature, and that not one byte of the file was edited.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use haven_custody::export::{MAX_DOCUMENT_BYTES, VerifyOptions, verify};

pub fn run(file: &Path, trusted_public_key: Option<&str>) -> anyhow::Result<ExitCode> {
    let trusted_public_key = match trusted_public_key {
        None => None,
        Some(raw) => Some(
            hex::decode(raw)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .context("--public-key is not a 32-byte Ed25519 key in hex")?,
        ),
    };
    let size = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.len();
    if size > MAX_DOCUMENT_BYTES as u64 {
        println!("BROKEN: the file is {size} bytes; at most {MAX_DOCUMENT_BYTES} are read");
        return Ok(ExitCode::from(2));
    }
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    match verify(&bytes, &VerifyOptions { trusted_public_key }) {
        Ok(verified) => {
            let document = &verified.trail.document;
            println!(
                "OK: custody record {}, {} entries, last entry hash {}, signed by key {} (Ed25519 public key {}){}",
                document.custody_id,
                document.entries.len(),
                document.last_entry_hash,
                verified.key_id,
                hex::encode(verified.public_key),
                if trusted_public_key.is_some() {
                    ", the trusted key"
                } else {
                    "; compare it with Haven's published key"
                },
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            println!("BROKEN: {error}");
            Ok(ExitCode::from(2))
        }
    }
}

#[cfg(test)]
mod tests {
    use haven_custody::export::{TrailHeader, TrailSigner, export};

    use super::*;

    #[test]
    fn intact_exits_zero_and_an_edited_byte_exits_two() {
        let signer = TrailSigner::from_seed("k1", &[3u8; 32]);
        let header = TrailHeader {
            custody_id: "c1".into(),
            school_id: "elm-academy".into(),
            case_id: String::new(),
            device_description: "tablet".into(),
            generated_at: 1_700_000_000,
            generated_by_user_id: "dsl-1".into(),
            purpose: "police evidence".into(),
            head_position: 1,
            head_hash: vec![0; 32],
        };
        let bytes = export(&header, &[], &signer).to_json();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("trail.json");
        std::fs::write(&file, &bytes).unwrap();
        assert_eq!(run(&file, None).unwrap(), ExitCode::SUCCESS);
        let key = hex::encode(signer.public_key());
        assert_eq!(run(&file, Some(&key)).unwrap(), ExitCode::SUCCESS);
        assert_eq!(run(&file, Some(&"00".repeat(32))).unwrap(), ExitCode::from(2));
        let mut edited = bytes;
        let middle = edited.len() / 2;
        edited[middle] ^= 0x01;
        std::fs::write(&file, &edited).unwrap();
        assert_eq!(run(&file, None).unwrap(), ExitCode::from(2));
    }
}
