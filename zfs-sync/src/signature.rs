//! Webhook signatures: HMAC-SHA256 (RFC 2104 over SHA-256) of `"<timestamp>.<body>"` keyed by
//! the webhook's secret, sent as `X-Zfs-Sync-Signature: sha256=<hex>` beside
//! `X-Zfs-Sync-Timestamp: <timestamp>`. A receiver recomputes it over the raw body and the
//! timestamp header, compares in constant time, and rejects old timestamps (replays).

use sha2::{Digest, Sha256};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Zfs-Sync-Signature";
/// The header carrying the signed time (Unix seconds).
pub const TIMESTAMP_HEADER: &str = "X-Zfs-Sync-Timestamp";
/// The header carrying the event's id (the same event may arrive more than once: a receiver
/// de-duplicates by it).
pub const EVENT_ID_HEADER: &str = "X-Zfs-Sync-Event-Id";

const BLOCK: usize = 64;

/// HMAC-SHA256 of `message` keyed by `key` (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// The value of [`SIGNATURE_HEADER`]: `sha256=` and the lower-case hex HMAC-SHA256 of
/// `"<timestamp>.<body>"` keyed by `secret`.
pub fn sign_delivery(secret: &str, timestamp: i64, body: &str) -> String {
    let mut message = Vec::with_capacity(body.len() + 21);
    message.extend_from_slice(timestamp.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body.as_bytes());
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &message))
    )
}

/// Whether `signature` (a [`SIGNATURE_HEADER`] value) signs `timestamp` and `body` with
/// `secret`, compared in constant time: what a receiver does.
pub fn verify_delivery(secret: &str, timestamp: i64, body: &str, signature: &str) -> bool {
    use subtle::ConstantTimeEq;
    let expected = sign_delivery(secret, timestamp, body);
    expected.len() == signature.len() && bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    /// RFC 4231, section 4: the HMAC-SHA-256 test vectors (case 5, a truncated output, is not
    /// a different computation).
    #[test]
    fn rfc_4231_known_answers() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (i, (key, data, want)) in cases.iter().enumerate() {
            assert_eq!(hex::encode(hmac_sha256(key, data)), *want, "case {}", i + 1);
        }
    }

    #[test]
    fn a_delivery_signs_timestamp_dot_body() {
        let body = r#"{"id":7,"type":"rpo_breached"}"#;
        let sig = sign_delivery("Jefe", 1_700_000_000, body);
        let direct = hmac_sha256(b"Jefe", format!("1700000000.{body}").as_bytes());
        assert_eq!(sig, format!("sha256={}", hex::encode(direct)));
        assert!(verify_delivery("Jefe", 1_700_000_000, body, &sig));
        assert!(!verify_delivery("Jefe", 1_700_000_001, body, &sig));
        assert!(!verify_delivery("jefe", 1_700_000_000, body, &sig));
        assert!(!verify_delivery("Jefe", 1_700_000_000, "{}", &sig));
        assert!(!verify_delivery("Jefe", 1_700_000_000, body, "sha256="));
    }
}
