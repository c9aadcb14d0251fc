//! Proof Key for Code Exchange (RFC 7636) with the S256 method, which TS
//! 33.180 B.4.2 requires of native clients.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A fresh code verifier: 32 random octets, base64url (43 characters, the
/// RFC 7636 4.1 minimum length and recommended form).
pub fn new_verifier(rng: &mut impl CryptoRng) -> Zeroizing<String> {
    let mut raw = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(raw.as_mut());
    Zeroizing::new(B64.encode(raw.as_ref()))
}

/// `BASE64URL(SHA256(ASCII(code_verifier)))` (RFC 7636 4.2).
pub fn s256_challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` is well-formed (RFC 7636 4.1: 43 to 128 characters
/// of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`) and matches
/// `challenge`, compared in constant time.
pub fn verifies(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    well_formed
        && bool::from(
            s256_challenge(verifier)
                .as_bytes()
                .ct_eq(challenge.as_bytes()),
        )
}
