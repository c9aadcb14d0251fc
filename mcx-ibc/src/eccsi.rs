//! ECCSI signatures (RFC 6507) on NIST P-256 with SHA-256, as TS 33.180 uses
//! them to sign MIKEY-SAKKE I_MESSAGEs.
//!
//! # Roles
//! - The **KMS** holds the [`Ksak`] (KMS Secret Authentication Key) and
//!   publishes the [`Kpak`] (KMS Public Authentication Key). For each user
//!   identifier it [`issue`]s a secret [`Ssk`] and a public [`Pvt`]
//!   (RFC 6507 5.1.1).
//! - The **signer** checks its SSK/PVT against the KPAK once, building a
//!   [`SigningKey`] (RFC 6507 5.1.2), then [`SigningKey::sign`]s
//!   (RFC 6507 5.2.1).
//! - The **verifier** knows only the KPAK and the signer's identifier and
//!   calls [`verify`] (RFC 6507 5.2.2), or builds a [`VerifyingKey`] once per
//!   (KPAK, identifier, PVT) to verify many signatures of the same signer
//!   faster.
//!
//! # Encodings (RFC 6507 3.3)
//! - Points (KPAK, PVT, G inside the hashes): 65 octets `0x04 || x || y`.
//! - Scalars (KSAK, SSK, r, s): 32 octets, big-endian, in `[1, q-1]`.
//! - Signature: `r (32) || s (32) || PVT (65)`, 129 octets.
//!
//! P-256 has cofactor 1, so every point on the curve other than the point at
//! infinity is in the prime-order group: decoding a point checks the
//! encoding, that both coordinates are below p, that the point is on the
//! curve and that it is not the point at infinity.
//!
//! # Side channels
//! Operations on secrets ([`Ksak`], [`Ssk`], the ephemeral `j`) use
//! constant-time scalar arithmetic, constant-time fixed-base multiplication
//! and constant-time inversion. Verification handles only public data and
//! uses variable-time multi-scalar multiplication.
//!
//! # Implementation
//! Scalars modulo q and the on-curve check of decoded points come from the
//! `p256` crate. Point multiplication uses a dedicated P-256 backend (private
//! modules `field` and `point`: Montgomery field arithmetic, Jacobian `a = -3`
//! formulas, a fixed-base comb and wNAF multi-scalar multiplication), three
//! to four times faster than `p256` 0.14's generic arithmetic; its unit tests
//! cross-check it against `p256` and `crypto-bigint`.
//!
//! # Example
//! ```
//! use mcx_ibc::eccsi::{self, Ksak, SigningKey};
//! # fn main() -> Result<(), mcx_ibc::Error> {
//! # let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
//! // KMS
//! let ksak = Ksak::generate(&mut rng);
//! let kpak = ksak.public_key();
//! let id = b"2011-02\0tel:+447700900123\0";
//! let (ssk, pvt) = eccsi::issue(&ksak, id, &mut rng)?;
//!
//! // Signer
//! let key = SigningKey::new(&kpak, id, ssk, pvt)?;
//! let sig = key.sign(b"message", &mut rng);
//!
//! // Verifier
//! eccsi::verify(&kpak, id, b"message", &sig)?;
//! # Ok(())
//! # }
//! ```

mod field;
mod point;

use core::fmt;
use std::sync::Arc;

use p256::elliptic_curve::ops::Reduce;
use p256::elliptic_curve::point::AffineCoordinates;
use p256::elliptic_curve::{Field, PrimeField};
use p256::{AffinePoint, FieldBytes, Scalar};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use self::point::{Affine, CombTable, Jacobian, lincomb_vartime, mul_generator};
use crate::Error;

/// Length of a scalar (KSAK, SSK, r, s) and of a hash output (HS): N = 32.
pub const SCALAR_LEN: usize = 32;
/// Length of an uncompressed point (KPAK, PVT): `0x04 || x || y`.
pub const POINT_LEN: usize = 1 + 2 * SCALAR_LEN;
/// Length of an ECCSI signature: `r || s || PVT`.
pub const SIGNATURE_LEN: usize = 2 * SCALAR_LEN + POINT_LEN;

/// The P-256 base point G, uncompressed, as it enters the HS hash.
const G_BYTES: [u8; POINT_LEN] = [
    0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40,
    0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2,
    0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e,
    0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51,
    0xf5,
];

// ---------------------------------------------------------------------------
// Encoding helpers
// ---------------------------------------------------------------------------

/// Returns `bytes` as a fixed-size array, or a length error naming `what`.
fn fixed<'a, const N: usize>(bytes: &'a [u8], what: &'static str) -> Result<&'a [u8; N], Error> {
    bytes.try_into().map_err(|_| Error::InvalidLength {
        what,
        expected: N,
        actual: bytes.len(),
    })
}

/// Decodes a scalar in `[1, q-1]` from exactly 32 big-endian octets.
///
/// The comparison with q is constant time; only whether the value is in
/// range is branched on.
fn decode_nonzero_scalar(bytes: &[u8], what: &'static str) -> Result<Scalar, Error> {
    let bytes: &[u8; SCALAR_LEN] = fixed(bytes, what)?;
    match Option::<Scalar>::from(Scalar::from_repr(FieldBytes::from(*bytes))) {
        Some(scalar) if !bool::from(scalar.is_zero()) => Ok(scalar),
        _ => Err(Error::ScalarOutOfRange(what)),
    }
}

/// Encodes a scalar as 32 big-endian octets.
fn encode_scalar(scalar: &Scalar) -> [u8; SCALAR_LEN] {
    scalar.to_repr().into()
}

/// Decodes a 65-octet uncompressed point that must be on the curve and not
/// the point at infinity.
///
/// Public data only: this is not constant time.
fn decode_point(bytes: &[u8], what: &'static str) -> Result<Affine, Error> {
    let bytes: &[u8; POINT_LEN] = fixed(bytes, what)?;
    let (tag, coordinates) = bytes.split_at(1);
    let all_zero = coordinates.iter().all(|&b| b == 0);
    match tag {
        // SEC1 encodes the point at infinity as the single octet 0x00; in a
        // fixed-size field it appears padded with zeros.
        [0x00] if all_zero => return Err(Error::PointAtInfinity(what)),
        [0x04] => {}
        _ => return Err(Error::InvalidPointEncoding(what)),
    }
    let (x, y) = coordinates.split_at(SCALAR_LEN);
    let x = FieldBytes::try_from(x).map_err(|_| Error::PointNotOnCurve(what))?;
    let y = FieldBytes::try_from(y).map_err(|_| Error::PointNotOnCurve(what))?;
    // The `p256` crate checks x < p, y < p and y^2 = x^3 - 3x + b. (0, 0) is
    // not on P-256, so no on-curve point decodes to the identity here.
    let checked: AffinePoint =
        Option::from(AffinePoint::from_coordinates(&x, &y)).ok_or(Error::PointNotOnCurve(what))?;
    Affine::from_validated_coordinates(&checked.x().into(), &checked.y().into())
        .ok_or(Error::PointNotOnCurve(what))
}

fn hex_fmt(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// Draws a uniformly random scalar in `[1, q-1]` by rejection sampling.
fn random_nonzero_scalar<R: CryptoRng + ?Sized>(rng: &mut R) -> Scalar {
    let mut bytes = Zeroizing::new([0u8; SCALAR_LEN]);
    loop {
        rng.fill_bytes(bytes.as_mut());
        // Rejects 0 and values >= q: probability about 2^-32 per draw.
        if let Ok(scalar) = decode_nonzero_scalar(bytes.as_ref(), "random scalar") {
            return scalar;
        }
    }
}

/// `[k]G` for a secret, non-zero scalar, in affine form (constant time).
fn mul_affine_generator(k: &Scalar) -> Affine {
    let k = Zeroizing::new(encode_scalar(k));
    // k in [1, q-1]: never the point at infinity.
    mul_generator(&k)
        .to_affine()
        .unwrap_or_else(Affine::generator)
}

// ---------------------------------------------------------------------------
// Hashes (RFC 6507 5.1.1 step 3, 5.2.1 step 3)
// ---------------------------------------------------------------------------

/// `HS = hash(G || KPAK || ID || PVT)`, kept as the N-octet string it is in
/// RFC 6507 (it enters HE unreduced).
fn hash_hs(kpak: &Kpak, id: &[u8], pvt: &Pvt) -> [u8; SCALAR_LEN] {
    Sha256::new()
        .chain_update(G_BYTES)
        .chain_update(kpak.bytes)
        .chain_update(id)
        .chain_update(pvt.bytes)
        .finalize()
        .into()
}

/// An N-octet hash output as an integer modulo q.
fn reduce(hash: &[u8; SCALAR_LEN]) -> Scalar {
    <Scalar as Reduce<FieldBytes>>::reduce(&FieldBytes::from(*hash))
}

/// `HE = hash(HS || r || M)` as an integer modulo q.
fn hash_he(hs: &[u8; SCALAR_LEN], r: &[u8; SCALAR_LEN], msg: &[u8]) -> Scalar {
    let he: [u8; SCALAR_LEN] = Sha256::new()
        .chain_update(hs)
        .chain_update(r)
        .chain_update(msg)
        .finalize()
        .into();
    reduce(&he)
}

// ---------------------------------------------------------------------------
// KMS keys
// ---------------------------------------------------------------------------

/// KMS Secret Authentication Key (KSAK): the KMS's ECCSI root secret, an
/// integer in `[1, q-1]`.
///
/// Zeroized on drop; `Debug` prints only the type name; equality is constant
/// time.
pub struct Ksak(Scalar);

impl Ksak {
    /// Generates a fresh KSAK uniformly in `[1, q-1]`.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(random_nonzero_scalar(rng))
    }

    /// Decodes a KSAK from 32 big-endian octets.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] if `bytes` is not 32 octets,
    /// [`Error::ScalarOutOfRange`] if the value is 0 or not below q.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        decode_nonzero_scalar(bytes, "ECCSI KSAK").map(Self)
    }

    /// Encodes the KSAK as 32 big-endian octets.
    ///
    /// # ⚠️ Warning: This value is key material
    /// It is the KMS's root secret: whoever holds it can issue signing keys
    /// for any identity. Store it only encrypted.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SCALAR_LEN]> {
        Zeroizing::new(encode_scalar(&self.0))
    }

    /// Derives the KMS Public Authentication Key, `KPAK = [KSAK]G`.
    pub fn public_key(&self) -> Kpak {
        // Constant-time fixed-base multiplication; the result is never the
        // identity because KSAK is in [1, q-1].
        Kpak::from_affine(mul_affine_generator(&self.0))
    }
}

impl ConstantTimeEq for Ksak {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for Ksak {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Ksak {}

impl fmt::Debug for Ksak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ksak").finish_non_exhaustive()
    }
}

impl Drop for Ksak {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for Ksak {}

/// KMS Public Authentication Key (KPAK), `[KSAK]G`: the public key every
/// verifier in the user community trusts.
#[derive(Clone, Copy)]
pub struct Kpak {
    point: Affine,
    bytes: [u8; POINT_LEN],
}

impl Kpak {
    fn from_affine(point: Affine) -> Self {
        Self {
            point,
            bytes: point.to_uncompressed(),
        }
    }

    /// Decodes a KPAK from 65 octets `0x04 || x || y`.
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::InvalidPointEncoding`],
    /// [`Error::PointNotOnCurve`] or [`Error::PointAtInfinity`] (all naming
    /// "ECCSI KPAK").
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        decode_point(bytes, "ECCSI KPAK").map(Self::from_affine)
    }

    /// Encodes the KPAK as 65 octets `0x04 || x || y`.
    pub fn to_bytes(&self) -> [u8; POINT_LEN] {
        self.bytes
    }
}

impl PartialEq for Kpak {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Kpak {}

impl fmt::Debug for Kpak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kpak(")?;
        hex_fmt(f, &self.bytes)?;
        f.write_str(")")
    }
}

// ---------------------------------------------------------------------------
// User keys
// ---------------------------------------------------------------------------

/// Secret Signing Key (SSK) issued by the KMS to one identifier, an integer
/// in `[1, q-1]`.
///
/// Zeroized on drop; `Debug` prints only the type name; equality is constant
/// time. Turn it into a [`SigningKey`] to sign.
pub struct Ssk(Scalar);

impl Ssk {
    /// Decodes an SSK from 32 big-endian octets.
    ///
    /// This only checks the range; [`SigningKey::new`] checks the SSK against
    /// the KPAK, identifier and PVT.
    ///
    /// # Errors
    /// [`Error::InvalidLength`] if `bytes` is not 32 octets,
    /// [`Error::ScalarOutOfRange`] if the value is 0 or not below q.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        decode_nonzero_scalar(bytes, "ECCSI SSK").map(Self)
    }

    /// Encodes the SSK as 32 big-endian octets.
    ///
    /// # ⚠️ Warning: This value is key material
    /// Whoever holds it can sign as the identifier it was issued to.
    pub fn to_bytes(&self) -> Zeroizing<[u8; SCALAR_LEN]> {
        Zeroizing::new(encode_scalar(&self.0))
    }
}

impl ConstantTimeEq for Ssk {
    fn ct_eq(&self, other: &Self) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for Ssk {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Ssk {}

impl fmt::Debug for Ssk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ssk").finish_non_exhaustive()
    }
}

impl Drop for Ssk {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for Ssk {}

/// Public Validation Token (PVT) issued by the KMS with an [`Ssk`]: the point
/// `[v]G`, carried in every signature.
#[derive(Clone, Copy)]
pub struct Pvt {
    point: Affine,
    bytes: [u8; POINT_LEN],
}

impl Pvt {
    fn from_affine(point: Affine) -> Self {
        Self {
            point,
            bytes: point.to_uncompressed(),
        }
    }

    /// Decodes a PVT from 65 octets `0x04 || x || y`.
    ///
    /// # Errors
    /// [`Error::InvalidLength`], [`Error::InvalidPointEncoding`],
    /// [`Error::PointNotOnCurve`] or [`Error::PointAtInfinity`] (all naming
    /// "ECCSI PVT").
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        decode_point(bytes, "ECCSI PVT").map(Self::from_affine)
    }

    /// Encodes the PVT as 65 octets `0x04 || x || y`.
    pub fn to_bytes(&self) -> [u8; POINT_LEN] {
        self.bytes
    }
}

impl PartialEq for Pvt {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for Pvt {}

impl fmt::Debug for Pvt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pvt(")?;
        hex_fmt(f, &self.bytes)?;
        f.write_str(")")
    }
}

// ---------------------------------------------------------------------------
// Issuing (KMS side, RFC 6507 5.1.1)
// ---------------------------------------------------------------------------

/// Issues the SSK and PVT for identifier `id` (RFC 6507 5.1.1).
///
/// Picks a random `v` in `[1, q-1]`, sets `PVT = [v]G`,
/// `HS = hash(G || KPAK || ID || PVT)` and `SSK = (KSAK + HS * v) mod q`,
/// starting again with a new `v` in the negligible case that SSK is 0. `v`
/// is erased before returning.
///
/// Before returning, the KMS checks the pair as the user will
/// (RFC 6507 5.1.2), so that a computation fault never leaves the KMS.
///
/// # Errors
/// [`Error::KeyValidationFailed`] if that self-check fails, which only a
/// hardware or memory fault can cause.
pub fn issue<R: CryptoRng + ?Sized>(
    ksak: &Ksak,
    id: &[u8],
    rng: &mut R,
) -> Result<(Ssk, Pvt), Error> {
    let kpak = ksak.public_key();
    loop {
        let v = Zeroizing::new(random_nonzero_scalar(rng));
        if let Some(issued) = issue_inner(ksak, &kpak, id, &v) {
            return issued;
        }
    }
}

/// One issuing attempt with a given `v`; `None` if SSK would be 0.
fn issue_inner(
    ksak: &Ksak,
    kpak: &Kpak,
    id: &[u8],
    v: &Scalar,
) -> Option<Result<(Ssk, Pvt), Error>> {
    let pvt = Pvt::from_affine(mul_affine_generator(v));
    let hs = hash_hs(kpak, id, &pvt);
    let ssk = Ssk(ksak.0 + reduce(&hs) * v);
    if bool::from(ssk.0.is_zero()) {
        return None;
    }
    // Self-check: [SSK]G == KPAK + [HS]PVT.
    if bool::from(validate(kpak, &pvt, &hs, &ssk.0).0) {
        Some(Ok((ssk, pvt)))
    } else {
        Some(Err(Error::KeyValidationFailed("ECCSI SSK/PVT")))
    }
}

/// RFC 6507 5.1.2: whether `[SSK]G == KPAK + [HS]PVT`; also returns
/// `Y = [SSK]G`.
fn validate(kpak: &Kpak, pvt: &Pvt, hs: &[u8; SCALAR_LEN], ssk: &Scalar) -> (Choice, Jacobian) {
    // Secret scalar: constant-time fixed-base multiplication.
    let ssk = Zeroizing::new(encode_scalar(ssk));
    let lhs = mul_generator(&ssk);
    // Public scalars and points: variable time is fine.
    let hs = encode_scalar(&reduce(hs));
    let rhs = lincomb_vartime(&[0; SCALAR_LEN], [(&pvt.point, &hs), (&kpak.point, &ONE)]);
    (lhs.ct_eq(&rhs), lhs)
}

/// The scalar 1, big-endian.
const ONE: [u8; SCALAR_LEN] = {
    let mut one = [0u8; SCALAR_LEN];
    one[SCALAR_LEN - 1] = 1;
    one
};

// ---------------------------------------------------------------------------
// Signing (RFC 6507 5.1.2, 5.2.1)
// ---------------------------------------------------------------------------

/// A validated ECCSI signing key: the SSK and PVT issued to one identifier,
/// checked against the KPAK, with HS precomputed.
///
/// Zeroized on drop; `Debug` prints only the type name.
pub struct SigningKey {
    ssk: Scalar,
    pvt: Pvt,
    /// `HS = hash(G || KPAK || ID || PVT)`, the N-octet string.
    hs: [u8; SCALAR_LEN],
    /// `Y = [SSK]G = [HS]PVT + KPAK`, public; kept for [`SigningKey::verifying_key`].
    y: Affine,
}

impl SigningKey {
    /// Validates an SSK and PVT received from the KMS for identifier `id`
    /// (RFC 6507 5.1.2) and builds a signing key from them.
    ///
    /// Computes `HS = hash(G || KPAK || ID || PVT)` and checks that
    /// `[SSK]G = KPAK + [HS]PVT`. The SSK is consumed (and erased if the
    /// check fails).
    ///
    /// # Errors
    /// `Error::KeyValidationFailed("ECCSI SSK/PVT")` if the check fails:
    /// the SSK and PVT were not issued by this KMS for this identifier.
    pub fn new(kpak: &Kpak, id: &[u8], ssk: Ssk, pvt: Pvt) -> Result<Self, Error> {
        let hs = hash_hs(kpak, id, &pvt);
        let (valid, y) = validate(kpak, &pvt, &hs, &ssk.0);
        // Y = [SSK]G with SSK != 0: never the point at infinity.
        let (true, Some(y)) = (bool::from(valid), y.to_affine()) else {
            return Err(Error::KeyValidationFailed("ECCSI SSK/PVT"));
        };
        Ok(Self {
            ssk: ssk.0,
            pvt,
            hs,
            y,
        })
    }

    /// The PVT this key signs with; it is carried in every signature.
    pub fn pvt(&self) -> &Pvt {
        &self.pvt
    }

    /// `HS = hash(G || KPAK || ID || PVT)` (RFC 6507 5.1.1 step 3), the
    /// 32-octet hash output; public.
    pub fn hs(&self) -> &[u8; SCALAR_LEN] {
        &self.hs
    }

    /// A [`VerifyingKey`] for this signer. Y is already known, so this only
    /// builds the precomputed table (see [`VerifyingKey::new`]).
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::from_y(self.pvt, self.hs, &self.y)
    }

    /// Signs `msg` (RFC 6507 5.2.1).
    ///
    /// Draws an ephemeral `j` in `[1, q-1]`, computes `J = [j]G` and
    /// `r = Jx`, `HE = hash(HS || r || M)` and
    /// `s = ((HE + r * SSK)^-1 * j) mod q`. It draws a new `j` whenever
    /// `r = 0`, `r >= q` or `HE + r * SSK = 0 (mod q)`, so every signature it
    /// outputs has `r` and `s` in `[1, q-1]` and passes [`Signature::from_bytes`].
    ///
    /// RFC 6507 5.2.1 sets `s = q - s'` only when `s'` does not fit in an
    /// N-octet string, which cannot happen for P-256 (`s' < q < 2^256`): so
    /// `s = s'`, as the RFC 6507 Appendix A vector confirms (there `s'` is
    /// above q/2 and is not replaced).
    pub fn sign<R: CryptoRng + ?Sized>(&self, msg: &[u8], rng: &mut R) -> Signature {
        loop {
            if let Some(sig) = self.sign_with(Ephemeral(random_nonzero_scalar(rng)), msg) {
                return sig;
            }
        }
    }

    /// One signing attempt with ephemeral `j` (consumed and erased); `None`
    /// if `j` must be replaced.
    fn sign_with(&self, j: Ephemeral, msg: &[u8]) -> Option<Signature> {
        // J = [j]G with the constant-time comb. r = Jx is public; J is never
        // the point at infinity as j is in [1, q-1].
        let r_bytes = mul_generator(&j.bytes()).affine_x_bytes()?;
        // Restart if r = 0 or r >= q (probability about 2^-32): a strict
        // verifier rejects such r.
        let r = decode_nonzero_scalar(&r_bytes, "ECCSI signature r").ok()?;
        let he = hash_he(&self.hs, &r_bytes, msg);
        // t = HE + r * SSK reveals SSK given the public r and HE: erase it.
        let t = Zeroizing::new(he + r * self.ssk);
        let t_inv = Zeroizing::new(Option::<Scalar>::from(t.invert())?);
        let s = j.finish(&t_inv);
        // s = t^-1 * j with t, j != 0, so s != 0.
        Some(Signature::from_parts(r, s, self.pvt))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").finish_non_exhaustive()
    }
}

impl Drop for SigningKey {
    fn drop(&mut self) {
        self.ssk.zeroize();
    }
}

impl ZeroizeOnDrop for SigningKey {}

/// The single-use ephemeral `j` of one signing attempt: consumed by
/// [`Ephemeral::finish`], erased on drop either way.
struct Ephemeral(Scalar);

impl Ephemeral {
    /// `j` as 32 big-endian octets, erased on drop.
    fn bytes(&self) -> Zeroizing<[u8; SCALAR_LEN]> {
        Zeroizing::new(encode_scalar(&self.0))
    }

    /// `s = t_inv * j`, consuming (and so erasing) `j`.
    fn finish(self, t_inv: &Scalar) -> Scalar {
        *t_inv * self.0
    }
}

impl Drop for Ephemeral {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

// ---------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------

/// An ECCSI signature, `r (32) || s (32) || PVT (65)` = 129 octets
/// (RFC 6507 3.3).
///
/// A decoded signature always has `r` and `s` in `[1, q-1]` and a PVT on the
/// curve and not the point at infinity.
#[derive(Clone, PartialEq, Eq)]
pub struct Signature {
    r: Scalar,
    s: Scalar,
    pvt: Pvt,
}

impl Signature {
    fn from_parts(r: Scalar, s: Scalar, pvt: Pvt) -> Self {
        Self { r, s, pvt }
    }

    /// Decodes a 129-octet signature.
    ///
    /// # Errors
    /// - `Error::InvalidLength { what: "ECCSI signature", .. }` if `bytes` is
    ///   not 129 octets;
    /// - `Error::ScalarOutOfRange("ECCSI signature r")` (or `"... s"`) if r
    ///   (or s) is 0 or not below q;
    /// - [`Error::InvalidPointEncoding`], [`Error::PointNotOnCurve`] or
    ///   [`Error::PointAtInfinity`] naming "ECCSI PVT" if the PVT is bad.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let bytes: &[u8; SIGNATURE_LEN] = fixed(bytes, "ECCSI signature")?;
        let (r, rest) = bytes.split_at(SCALAR_LEN);
        let (s, pvt) = rest.split_at(SCALAR_LEN);
        Ok(Self {
            r: decode_nonzero_scalar(r, "ECCSI signature r")?,
            s: decode_nonzero_scalar(s, "ECCSI signature s")?,
            pvt: Pvt::from_bytes(pvt)?,
        })
    }

    /// Encodes the signature as 129 octets `r || s || PVT`.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out[..SCALAR_LEN].copy_from_slice(&encode_scalar(&self.r));
        out[SCALAR_LEN..2 * SCALAR_LEN].copy_from_slice(&encode_scalar(&self.s));
        out[2 * SCALAR_LEN..].copy_from_slice(&self.pvt.bytes);
        out
    }

    /// The signer's PVT carried in the signature.
    pub fn pvt(&self) -> &Pvt {
        &self.pvt
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signature(")?;
        hex_fmt(f, &self.to_bytes())?;
        f.write_str(")")
    }
}

impl TryFrom<&[u8]> for Signature {
    type Error = Error;

    fn try_from(bytes: &[u8]) -> Result<Self, Error> {
        Self::from_bytes(bytes)
    }
}

// ---------------------------------------------------------------------------
// Verification (RFC 6507 5.2.2)
// ---------------------------------------------------------------------------

/// Verifies signature `sig` over `msg` by identifier `id` under `kpak`
/// (RFC 6507 5.2.2).
///
/// The PVT is checked on the curve when `sig` is decoded. Then
/// `HS = hash(G || KPAK || ID || PVT)`, `HE = hash(HS || r || M)`,
/// `Y = [HS]PVT + KPAK` and `J = [s]([HE]G + [r]Y)`, computed as the single
/// multi-scalar multiplication `[s*HE]G + [s*r*HS]PVT + [s*r]KPAK`. The
/// signature is valid iff J is not the point at infinity and `Jx = r`.
///
/// To verify many signatures by the same signer, a [`VerifyingKey`] is
/// two to three times faster per signature.
///
/// # Errors
/// [`Error::SignatureInvalid`], which says nothing about which check failed.
pub fn verify(kpak: &Kpak, id: &[u8], msg: &[u8], sig: &Signature) -> Result<(), Error> {
    verify_parts(kpak, id, msg, &sig.r, &sig.s, &sig.pvt)
}

/// [`verify`] on a signature still in its 129-octet encoding.
///
/// # Errors
/// The decoding errors of [`Signature::from_bytes`], then
/// [`Error::SignatureInvalid`].
pub fn verify_bytes(kpak: &Kpak, id: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), Error> {
    verify(kpak, id, msg, &Signature::from_bytes(sig)?)
}

/// The verification equation on already-decoded parts. It does not rely on
/// r, s being non-zero: a zero r or s makes J the identity, which is
/// rejected.
fn verify_parts(
    kpak: &Kpak,
    id: &[u8],
    msg: &[u8],
    r: &Scalar,
    s: &Scalar,
    pvt: &Pvt,
) -> Result<(), Error> {
    let hs = hash_hs(kpak, id, pvt);
    let r_bytes = encode_scalar(r);
    let he = hash_he(&hs, &r_bytes, msg);
    let sr = *s * r;
    let j = lincomb_vartime(
        &encode_scalar(&(*s * he)),
        [
            (&pvt.point, &encode_scalar(&(sr * reduce(&hs)))),
            (&kpak.point, &encode_scalar(&sr)),
        ],
    );
    check_j(&j, &r_bytes)
}

/// RFC 6507 5.2.2 step 6: accept iff J is not the point at infinity and
/// `Jx = r`.
///
/// The identity check matters: the point at infinity's affine x is
/// conventionally encoded as zero (and `X = r Z^2` holds for `Z = 0`
/// whenever `X = 0`), so without it `r = s = 0` would verify for every
/// message.
fn check_j(j: &Jacobian, r_bytes: &[u8; SCALAR_LEN]) -> Result<(), Error> {
    if bool::from(j.is_identity()) {
        return Err(Error::SignatureInvalid);
    }
    // Public values: a variable-time comparison is fine. Compares
    // X = r Z^2, which saves an inversion.
    if j.affine_x_equals_vartime(r_bytes) {
        Ok(())
    } else {
        Err(Error::SignatureInvalid)
    }
}

/// A verifier for one signer: the KPAK, identifier and PVT fixed, with
/// `HS = hash(G || KPAK || ID || PVT)`, `Y = [HS]PVT + KPAK` and a table of
/// multiples of Y precomputed.
///
/// Each verification then costs one hash and two fixed-base
/// multiplications, `[s*HE]G + [s*r]Y`: roughly a third of [`verify`].
/// Building one costs about as much as seven verifications and holds a
/// 52 KiB table (shared by clones), so it pays off for a signer whose
/// messages are verified repeatedly. A signature carrying a different PVT
/// is rejected; verify it with [`verify`] or a new `VerifyingKey`.
#[derive(Clone)]
pub struct VerifyingKey {
    pvt: Pvt,
    hs: [u8; SCALAR_LEN],
    y_table: Arc<CombTable>,
}

impl VerifyingKey {
    /// Precomputes verification for signer `id` using `pvt`, under `kpak`.
    ///
    /// # Errors
    /// `Error::PointAtInfinity("ECCSI Y = [HS]PVT + KPAK")` if Y is the point
    /// at infinity (no valid signing key exists for such a PVT).
    pub fn new(kpak: &Kpak, id: &[u8], pvt: &Pvt) -> Result<Self, Error> {
        let hs = hash_hs(kpak, id, pvt);
        let hs_scalar = encode_scalar(&reduce(&hs));
        let y = lincomb_vartime(
            &[0; SCALAR_LEN],
            [(&pvt.point, &hs_scalar), (&kpak.point, &ONE)],
        )
        .to_affine()
        .ok_or(Error::PointAtInfinity("ECCSI Y = [HS]PVT + KPAK"))?;
        Ok(Self::from_y(*pvt, hs, &y))
    }

    fn from_y(pvt: Pvt, hs: [u8; SCALAR_LEN], y: &Affine) -> Self {
        Self {
            pvt,
            hs,
            y_table: Arc::new(CombTable::new(y)),
        }
    }

    /// The PVT this verifier accepts signatures with.
    pub fn pvt(&self) -> &Pvt {
        &self.pvt
    }

    /// Verifies `sig` over `msg` (RFC 6507 5.2.2, with HS and Y cached).
    ///
    /// # Errors
    /// [`Error::SignatureInvalid`], also when `sig` carries another PVT.
    pub fn verify(&self, msg: &[u8], sig: &Signature) -> Result<(), Error> {
        if sig.pvt != self.pvt {
            return Err(Error::SignatureInvalid);
        }
        let r_bytes = encode_scalar(&sig.r);
        let he = hash_he(&self.hs, &r_bytes, msg);
        let j = self.y_table.mul_add_generator_vartime(
            &encode_scalar(&(sig.s * he)),
            &encode_scalar(&(sig.s * sig.r)),
        );
        check_j(&j, &r_bytes)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("pvt", &self.pvt)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Deterministic variants for known-answer tests
// ---------------------------------------------------------------------------

/// Deterministic issuing and signing with caller-chosen `v` and `j`, for
/// reproducing the RFC 6507 Appendix A vector.
///
/// # ⚠️ Not for production
/// Reusing a `j` for two messages, or a predictable `j` or `v`, reveals the
/// SSK or the KSAK. Use [`issue`](crate::eccsi::issue) and
/// [`SigningKey::sign`](crate::eccsi::SigningKey::sign).
#[doc(hidden)]
pub mod hazmat {
    use super::{
        Ephemeral, Error, Ksak, Pvt, Signature, SigningKey, Ssk, decode_nonzero_scalar, issue_inner,
    };
    use zeroize::Zeroizing;

    /// RFC 6507 5.1.1 with the given `v` (32 octets, in `[1, q-1]`).
    ///
    /// # Errors
    /// `ScalarOutOfRange("ECCSI v")` if `v` is out of range,
    /// `InvalidParameter` if this `v` gives SSK = 0.
    pub fn issue_with_v(ksak: &Ksak, id: &[u8], v: &[u8]) -> Result<(Ssk, Pvt), Error> {
        let v = Zeroizing::new(decode_nonzero_scalar(v, "ECCSI v")?);
        issue_inner(ksak, &ksak.public_key(), id, &v)
            .unwrap_or(Err(Error::InvalidParameter("ECCSI v gives SSK = 0")))
    }

    /// RFC 6507 5.2.1 with the given ephemeral `j` (32 octets, in `[1, q-1]`).
    ///
    /// # Errors
    /// `ScalarOutOfRange("ECCSI j")` if `j` is out of range,
    /// `InvalidParameter` if this `j` gives `r = 0`, `r >= q` or
    /// `HE + r * SSK = 0`.
    pub fn sign_with_j(key: &SigningKey, msg: &[u8], j: &[u8]) -> Result<Signature, Error> {
        let j = Ephemeral(decode_nonzero_scalar(j, "ECCSI j")?);
        key.sign_with(j, msg).ok_or(Error::InvalidParameter(
            "ECCSI j gives r = 0, r >= q or HE + r * SSK = 0",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_bytes_is_the_generator() {
        assert_eq!(G_BYTES, Affine::generator().to_uncompressed());
        assert_eq!(
            decode_point(&G_BYTES, "G").map(Affine::to_uncompressed),
            Ok(G_BYTES)
        );
    }

    /// The universal-forgery pin: with decoding bypassed, r = s = 0 makes
    /// J the identity, whose affine x encodes as zero = r. It must fail for
    /// any message.
    #[test]
    fn zero_r_and_s_rejected_below_decoding() {
        let kpak = Kpak::from_affine(Affine::generator());
        let pvt = Pvt::from_affine(Affine::generator());
        for msg in [&b""[..], b"message", b"anything else"] {
            assert_eq!(
                verify_parts(&kpak, b"id", msg, &Scalar::ZERO, &Scalar::ZERO, &pvt),
                Err(Error::SignatureInvalid)
            );
        }
    }

    #[test]
    fn identity_j_rejected_even_when_x_matches() {
        for identity in [Jacobian::IDENTITY, Jacobian::IDENTITY_X_ZERO] {
            assert_eq!(
                check_j(&identity, &[0u8; SCALAR_LEN]),
                Err(Error::SignatureInvalid)
            );
        }
        // An identity reached by arithmetic: [1]G + [q-1]G.
        let q_minus_1 = encode_scalar(&-Scalar::ONE);
        let identity = lincomb_vartime(&ONE, [(&Affine::generator(), &q_minus_1)]);
        assert!(bool::from(identity.is_identity()));
        assert_eq!(
            check_j(&identity, &[0u8; SCALAR_LEN]),
            Err(Error::SignatureInvalid)
        );
    }

    #[test]
    fn zero_s_rejected_below_decoding() {
        let kpak = Kpak::from_affine(Affine::generator());
        let pvt = Pvt::from_affine(Affine::generator());
        assert_eq!(
            verify_parts(&kpak, b"id", b"m", &Scalar::ONE, &Scalar::ZERO, &pvt),
            Err(Error::SignatureInvalid)
        );
    }
}
