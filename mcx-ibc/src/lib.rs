//! Identity-based cryptography for 3GPP mission-critical security (TS 33.180).
//!
//! This crate implements, in pure Rust and without I/O:
//!
//! - **ECCSI** (RFC 6507) signatures on NIST P-256 with SHA-256: KMS key pair
//!   (KSAK/KPAK), issuing a user's SSK and PVT, validating them, signing and
//!   verifying. See [`eccsi`].
//! - **SAKKE** (RFC 6508) key encapsulation with parameter set 1 of RFC 6509:
//!   KMS master secret and public key, RSK extraction, encapsulation and
//!   decapsulation. See [`sakke`].
//! - **MC identities** (TS 33.180 Annex F.2.1): the MIKEY-SAKKE UID and key
//!   periods. See [`uid`].
//! - **KMS communities**: generating a KMS's secrets and issuing a user's
//!   UID-bound keys for a key period. See [`kms`].
//!
//! The crate never reads a clock or the operating system's RNG: randomness is
//! passed in as a [`rand_core::CryptoRng`], time as a number of seconds.
//!
//! # Non-features
//! - No other SAKKE parameter sets or ECCSI curves: TS 33.180 uses only these.
//! - No key storage or transport: see the KMS role in `mcx-server`.
#![forbid(unsafe_code)]

pub mod eccsi;
mod error;
pub mod kms;
pub mod sakke;
pub mod uid;

pub use error::Error;
