//! SAKKE: Sakai–Kasahara Key Encryption (RFC 6508) with parameter set 1 of
//! RFC 6509, as TS 33.180 uses it in MIKEY-SAKKE.
//!
//! - The KMS holds a [`MasterSecret`] z and publishes the [`KmsPublicKey`]
//!   Z = \[z\]P; it issues each identity its receiver secret key with
//!   [`extract_rsk`].
//! - A sender builds a [`Recipient`] from the KMS public key and the
//!   receiver's identifier (caching \[b\]P + Z, optionally with a
//!   precomputed table) and calls [`Recipient::encapsulate`] to wrap a
//!   shared secret value ([`Ssv`]) into 273 octets of encapsulated data.
//! - A receiver loads its RSK into a [`ReceiverKey`], which validates it
//!   (RFC 6508 6.1.2) with the Miller-loop lines of P and Z that every
//!   receiver of the community shares, and calls
//!   [`ReceiverKey::decapsulate`], which always performs the mandatory
//!   check that R = \[r\](\[b\]P + Z) (as the equivalent R of order q
//!   and w = g^r). The first decapsulation walks R's Miller loop
//!   directly; the second builds the RSK's lines and keeps them, so that
//!   a receiver that decapsulates often pays about a quarter per pairing
//!   while one that decapsulates once (a client's GMK at start-up) keeps
//!   no lines ([`ReceiverKey::with_lines`] builds them at once).
//!
//! Identifiers are octet strings read as big-endian integers (RFC 6508 2.2);
//! in TS 33.180 they are the 32-octet UIDs of [`crate::uid`].
//!
//! Every operation on secrets (z, the RSK, r, the SSV) runs in constant
//! time; the pairing walks a fixed schedule, scalar multiplications use
//! fixed windows with full table scans.

// Field elements are 128-octet Copy values: hot paths take them by reference,
// and limb loops index several arrays in step.
#[allow(clippy::wrong_self_convention, clippy::needless_range_loop)]
mod curve;
#[allow(clippy::wrong_self_convention, clippy::needless_range_loop)]
mod fp;
#[allow(clippy::wrong_self_convention)]
mod fp2;
mod hash;
mod jacobi;
mod pairing;
mod params;

use core::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};

use crypto_bigint::{NonZero, Odd, U1024, U2048};
use rand_core::CryptoRng;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeLess};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::Error;
use curve::{
    Affine, FixedBaseTable, Jacobian, POINT_BYTES, SIGNED_ENTRIES, SIGNED_WINDOWS, signed_digits,
};
use fp::{Fp, LIMBS};
use fp2::{Fp2, batch_invert};
use pairing::{
    MillerLines, final_exponentiation, miller_product, pairing_and_order_check, pairing_direct,
};
use params::{BASE, G, Q, SSV_BYTES};

/// Octets of an encoded point (0x04 || x || y): Z, RSK and R.
pub const POINT_LEN: usize = POINT_BYTES;
/// Octets of the shared secret value (n = 128 bits).
pub const SSV_LEN: usize = SSV_BYTES;
/// Octets of the encapsulated data R || H (RFC 6509: 257 + 16).
pub const SED_LEN: usize = POINT_BYTES + SSV_BYTES;
/// Longest identifier accepted, in octets (TS 33.180 UIDs have 32).
pub const MAX_ID_LEN: usize = 256;

/// Multiples of P for RSK extraction and \[b\]P.
static BASE_TABLE: LazyLock<FixedBaseTable> = LazyLock::new(|| FixedBaseTable::new(&BASE));
/// Powers of g for encapsulation.
static G_TABLE: LazyLock<GPowTable> = LazyLock::new(GPowTable::new);
/// The Miller-loop lines of P, for RSK validation.
static BASE_LINES: LazyLock<MillerLines> = LazyLock::new(|| MillerLines::new(&BASE));
/// RSK validations done by this process ([`internal::rsk_validations`]).
static RSK_VALIDATIONS: AtomicU64 = AtomicU64::new(0);

fn q_u1024() -> U1024 {
    U1024::from_words(Q)
}

/// The identifier as an integer mod q, for \[b\]P.
fn id_scalar(id: &[u8]) -> Result<U1024, Error> {
    if id.is_empty() {
        return Err(Error::InvalidParameter("SAKKE identifier is empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(Error::InvalidLength {
            what: "SAKKE identifier (at most)",
            expected: MAX_ID_LEN,
            actual: id.len(),
        });
    }
    let mut wide = [0u8; 256];
    wide[256 - id.len()..].copy_from_slice(id);
    let q = NonZero::new(q_u1024()).expect("q is non-zero");
    Ok(U2048::from_be_slice(&wide).rem(&q))
}

/// \[b\]P + Z, which must not be the point at infinity.
fn public_point(kms: &KmsPublicKey, id: &[u8]) -> Result<Affine, Error> {
    let b = id_scalar(id)?;
    let t = BASE_TABLE.mul(&b.to_words()).add(&kms.point.to_jacobian());
    Option::from(t.to_affine()).ok_or(Error::InvalidParameter(
        "identifier maps to the point at infinity under this KMS key",
    ))
}

/// The KMS master secret z (RFC 6508 2.2), an integer in [2, q − 1].
pub struct MasterSecret {
    z: [u64; LIMBS],
}

impl MasterSecret {
    /// Draws z uniformly from [2, q − 1].
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        loop {
            let mut bytes = Zeroizing::new([0u8; 128]);
            rng.fill_bytes(bytes.as_mut());
            // q has 1022 bits: clear the top two so rejection succeeds often.
            bytes[0] &= 0x3f;
            if let Ok(s) = Self::from_bytes(bytes.as_ref()) {
                return s;
            }
        }
    }

    /// Reads z as a big-endian integer of at most 128 octets.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() || bytes.len() > 128 {
            return Err(Error::InvalidLength {
                what: "SAKKE master secret (at most)",
                expected: 128,
                actual: bytes.len(),
            });
        }
        let mut full = Zeroizing::new([0u8; 128]);
        full[128 - bytes.len()..].copy_from_slice(bytes);
        let z = U1024::from_be_slice(full.as_ref());
        let in_range = U1024::from_u8(1).ct_lt(&z) & z.ct_lt(&q_u1024());
        if !bool::from(in_range) {
            return Err(Error::ScalarOutOfRange("SAKKE master secret"));
        }
        Ok(Self { z: z.to_words() })
    }

    /// z as 128 big-endian octets.
    ///
    /// # ⚠️ Warning: This value is key material
    pub fn to_bytes(&self) -> Zeroizing<[u8; 128]> {
        Zeroizing::new(limbs_to_bytes(&self.z))
    }

    /// Z = \[z\]P.
    pub fn public_key(&self) -> KmsPublicKey {
        let z = BASE_TABLE.mul(&self.z);
        let point = Option::from(z.to_affine()).unwrap_or(BASE);
        KmsPublicKey::from_point(point)
    }
}

impl Drop for MasterSecret {
    fn drop(&mut self) {
        self.z.zeroize();
    }
}
impl ZeroizeOnDrop for MasterSecret {}

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterSecret").finish_non_exhaustive()
    }
}

fn limbs_to_bytes(limbs: &[u64; LIMBS]) -> [u8; 128] {
    let mut out = [0u8; 128];
    for (i, chunk) in out.rchunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&limbs[i].to_be_bytes());
    }
    out
}

/// The KMS public key Z (RFC 6508 2.2): a point of order q.
///
/// The first encapsulation under a key builds a table of multiples of Z
/// (about 1 MB, shared by clones), so that encapsulating to any identity of
/// the community costs two fixed-base multiplications; the first RSK
/// validation builds Z's Miller-loop lines (about 350 kB, shared by clones),
/// so that each validation is two line evaluations.
#[derive(Clone)]
pub struct KmsPublicKey {
    point: Affine,
    table: Arc<OnceLock<FixedBaseTable>>,
    lines: Arc<OnceLock<MillerLines>>,
}

impl KmsPublicKey {
    /// Decodes 0x04 || x || y (257 octets) and checks that the point is on
    /// the curve and of order q: by the order test of `Affine::has_order_q`
    /// (a square root and a Jacobi symbol, about 0.5 ms) rather than \[q\]Z
    /// (about 4.8 ms), which every client paid once per start-up.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let point = Affine::from_bytes(bytes, "SAKKE KMS public key")?;
        if !bool::from(point.has_order_q_public()) {
            return Err(Error::PointNotInSubgroup("SAKKE KMS public key"));
        }
        Ok(Self::from_point(point))
    }

    fn from_point(point: Affine) -> Self {
        Self {
            point,
            table: Arc::new(OnceLock::new()),
            lines: Arc::new(OnceLock::new()),
        }
    }

    fn table(&self) -> &FixedBaseTable {
        self.table.get_or_init(|| FixedBaseTable::new(&self.point))
    }

    fn lines(&self) -> &MillerLines {
        self.lines.get_or_init(|| MillerLines::new(&self.point))
    }

    /// 0x04 || x || y.
    pub fn to_bytes(&self) -> [u8; POINT_LEN] {
        self.point.to_bytes()
    }
}

impl fmt::Debug for KmsPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KmsPublicKey(")?;
        for b in &self.to_bytes()[..9] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl PartialEq for KmsPublicKey {
    fn eq(&self, other: &Self) -> bool {
        (self.point.x.ct_eq(&other.point.x) & self.point.y.ct_eq(&other.point.y)).into()
    }
}
impl Eq for KmsPublicKey {}

/// A receiver secret key K_b = [(b + z)⁻¹]P (RFC 6508 2.2).
pub struct Rsk {
    point: Affine,
}

impl Rsk {
    /// Decodes 0x04 || x || y and checks the point is on the curve. Whether
    /// it belongs to an identity is checked by [`ReceiverKey::new`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        Ok(Self {
            point: Affine::from_bytes(bytes, "SAKKE RSK")?,
        })
    }

    /// 0x04 || x || y.
    ///
    /// # ⚠️ Warning: This value is key material
    pub fn to_bytes(&self) -> Zeroizing<[u8; POINT_LEN]> {
        Zeroizing::new(self.point.to_bytes())
    }
}

impl Drop for Rsk {
    fn drop(&mut self) {
        self.point.x.zeroize();
        self.point.y.zeroize();
    }
}
impl ZeroizeOnDrop for Rsk {}

impl fmt::Debug for Rsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rsk").finish_non_exhaustive()
    }
}

/// RSK extraction by the KMS (RFC 6508 6.1.1): K_b = [(b + z)⁻¹ mod q]P.
///
/// Fails only if b + z ≡ 0 (mod q), for which no key exists.
pub fn extract_rsk(master: &MasterSecret, id: &[u8]) -> Result<Rsk, Error> {
    let b = id_scalar(id)?;
    let q = q_u1024();
    let q_nz = NonZero::new(q).expect("q is non-zero");
    let sum = Zeroizing::new(b.add_mod(&U1024::from_words(master.z), &q_nz));
    let modulus = Odd::new(q).expect("q is odd");
    let inv: Option<U1024> = sum.invert_odd_mod(&modulus).into();
    let Some(inv) = inv else {
        return Err(Error::ScalarOutOfRange("SAKKE b + z (mod q)"));
    };
    let mut k = inv.to_words();
    let point = Option::from(BASE_TABLE.mul(&k).to_affine());
    k.zeroize();
    point
        .map(|point| Rsk { point })
        .ok_or(Error::ScalarOutOfRange("SAKKE b + z (mod q)"))
}

/// A shared secret value: the 128-bit key SAKKE transports.
pub struct Ssv([u8; SSV_LEN]);

impl Ssv {
    /// A fresh random SSV.
    pub fn generate(rng: &mut impl CryptoRng) -> Self {
        let mut v = [0u8; SSV_LEN];
        rng.fill_bytes(&mut v);
        Self(v)
    }

    /// Wraps given octets.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let v: [u8; SSV_LEN] = bytes.try_into().map_err(|_| Error::InvalidLength {
            what: "SAKKE SSV",
            expected: SSV_LEN,
            actual: bytes.len(),
        })?;
        Ok(Self(v))
    }

    /// The octets.
    ///
    /// # ⚠️ Warning: This value is key material
    pub fn as_bytes(&self) -> &[u8; SSV_LEN] {
        &self.0
    }
}

impl Drop for Ssv {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}
impl ZeroizeOnDrop for Ssv {}

impl fmt::Debug for Ssv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ssv").finish_non_exhaustive()
    }
}

impl PartialEq for Ssv {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for Ssv {}

/// The sender's view of a receiver: its identifier as a scalar and the
/// KMS public key, optionally with a table of multiples of \[b\]P + Z.
pub struct Recipient {
    id: Vec<u8>,
    b: U1024,
    kms: KmsPublicKey,
    table: Option<FixedBaseTable>,
}

impl Recipient {
    /// Prepares encapsulation to identifier `id` under `kms`.
    pub fn new(kms: &KmsPublicKey, id: &[u8]) -> Result<Self, Error> {
        Ok(Self {
            id: id.to_vec(),
            b: id_scalar(id)?,
            kms: kms.clone(),
            table: None,
        })
    }

    /// Also precomputes multiples of \[b\]P + Z (about 1 MB, tens of
    /// milliseconds once), halving the cost of each encapsulation to this
    /// recipient. Worth it for a recipient written to often.
    pub fn with_table(mut self) -> Result<Self, Error> {
        let point = public_point(&self.kms, &self.id)?;
        self.table = Some(FixedBaseTable::new(&point));
        Ok(self)
    }

    /// The identifier this recipient was built for.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// Encapsulates `ssv` to this recipient (RFC 6508 6.2.1): returns
    /// R_(b,S) || H, 273 octets.
    pub fn encapsulate(&self, ssv: &Ssv) -> Result<[u8; SED_LEN], Error> {
        let r_int = Zeroizing::new(hash::to_scalar_mod_q(&[&ssv.0, &self.id]));
        if bool::from(r_int.is_zero()) {
            // Probability 2^-1022; R would be the point at infinity.
            return Err(Error::ScalarOutOfRange("SAKKE r"));
        }
        let r = Zeroizing::new(r_int.to_words());
        let big_r = match &self.table {
            Some(t) => t.mul(&r),
            // Two fixed-base multiplications instead of one variable-base one.
            None => mul_public_point(&r_int, &self.b, &self.kms),
        };
        let big_r: Affine =
            Option::from(big_r.to_affine()).ok_or(Error::ScalarOutOfRange("SAKKE r"))?;
        let g_r = Zeroizing::new(G_TABLE.pow(&r).to_bytes());
        let mask = Zeroizing::new(hash::to_mask_128(g_r.as_ref()));
        let mut out = [0u8; SED_LEN];
        out[..POINT_LEN].copy_from_slice(&big_r.to_bytes());
        for (o, (s, m)) in out[POINT_LEN..]
            .iter_mut()
            .zip(ssv.0.iter().zip(mask.iter()))
        {
            *o = s ^ m;
        }
        Ok(out)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipient")
            .field("id_len", &self.id.len())
            .field("table", &self.table.is_some())
            .finish()
    }
}

/// Encapsulates `ssv` for identifier `id` without caching anything.
pub fn encapsulate(kms: &KmsPublicKey, id: &[u8], ssv: &Ssv) -> Result<[u8; SED_LEN], Error> {
    Recipient::new(kms, id)?.encapsulate(ssv)
}

/// A receiver's validated key, ready to decapsulate; with the RSK's
/// Miller-loop lines once it decapsulated twice (or
/// [`ReceiverKey::with_lines`]).
pub struct ReceiverKey {
    id: Vec<u8>,
    kms: KmsPublicKey,
    rsk: Affine,
    lines: OnceLock<MillerLines>,
    /// Set by the first decapsulation: the next one builds the lines.
    decapsulated: AtomicBool,
    /// \[b\]P + Z, computed when first asked for (neither the validation nor
    /// a decapsulation needs it).
    own_point: OnceLock<Affine>,
}

impl ReceiverKey {
    /// Validates `rsk` for identifier `id` under `kms` (RFC 6508 6.1.2:
    /// ⟨\[b\]P + Z, K_b⟩ = g).
    ///
    /// By bilinearity and symmetry the check is ⟨P, \[b\]K_b⟩·⟨Z, K_b⟩ = g:
    /// two evaluations of Miller-loop lines shared by every receiver (P's
    /// per process, Z's per [`KmsPublicKey`] and its clones) with their
    /// squarings in common, and one multiplication of the RSK by b (public).
    /// With the order check on K_b (below), about half of walking the RSK's
    /// own loop and evaluating it.
    ///
    /// The reduced pairing ignores a component of order 2 or 4 added to
    /// K_b, so K_b's order q is checked separately (a square root and a
    /// Legendre symbol, about 0.5 ms): such a key (only a KMS could make
    /// one) is rejected here.
    ///
    /// \[b\]P + Z is not computed here (the check does not need it): for an
    /// identifier that maps it to infinity (b ≡ −z mod q, for which no RSK
    /// exists) the check fails with [`Error::KeyValidationFailed`].
    pub fn new(kms: &KmsPublicKey, id: &[u8], rsk: &Rsk) -> Result<Self, Error> {
        let b = id_scalar(id)?;
        let own_point = OnceLock::new();
        RSK_VALIDATIONS.fetch_add(1, Ordering::Relaxed);
        let k = rsk.point;
        let bk: Option<Affine> = k.to_jacobian().mul_public(&b.to_words()).to_affine().into();
        let value = match bk {
            Some(bk) => {
                final_exponentiation(miller_product(&[(&BASE_LINES, &bk), (kms.lines(), &k)]))
            }
            // [b]K_b = O: b ≡ 0 (mod q), or a key of small order. The
            // definition, walking K_b itself.
            None => {
                let q = public_point(kms, id)?;
                let _ = own_point.set(q);
                pairing_direct(&k, &q)
            }
        };
        // The pairing check cannot see a component of order 2 or 4 added to
        // K_b (the reduced pairing ignores it where K_b is evaluated, not
        // walked), so K_b's order is checked too: a first decapsulation,
        // which walks R and evaluates at K_b, relies on it.
        if !bool::from(value.ct_eq(&G) & k.has_order_q()) {
            return Err(Error::KeyValidationFailed("SAKKE RSK"));
        }
        Ok(Self {
            id: id.to_vec(),
            kms: kms.clone(),
            rsk: k,
            lines: OnceLock::new(),
            decapsulated: AtomicBool::new(false),
            own_point,
        })
    }

    /// Precomputes the RSK's Miller-loop lines now (about 330 kB, some five
    /// decapsulations' time once), rather than at the second
    /// decapsulation: with them each pairing evaluates stored window
    /// functions (about a quarter of the cost of walking a loop). For a
    /// receiver that will decapsulate often (an MC server receiving CSKs).
    pub fn with_lines(self) -> Self {
        self.lines.get_or_init(|| MillerLines::new(&self.rsk));
        self
    }

    /// \[b\]P + Z. Never at infinity for a validated key (it pairs with K_b
    /// to g ≠ 1), so the fallback is unreachable.
    fn own_point(&self) -> &Affine {
        self.own_point
            .get_or_init(|| public_point(&self.kms, &self.id).unwrap_or(BASE))
    }

    /// The identifier this key belongs to.
    pub fn id(&self) -> &[u8] {
        &self.id
    }

    /// \[b\]P + Z for this receiver, 0x04 || x || y.
    pub fn public_point(&self) -> [u8; POINT_LEN] {
        self.own_point().to_bytes()
    }

    /// Decapsulates R || H (RFC 6508 6.2.2), checking \[r\](\[b\]P + Z) == R in
    /// the equivalent form R of order q and ⟨R, K_b⟩ = g^r.
    ///
    /// Malformed input gets an error naming what was wrong; data not made
    /// for this key, or altered, gets the opaque
    /// [`Error::DecapsulationFailed`].
    pub fn decapsulate(&self, sed: &[u8]) -> Result<Ssv, Error> {
        if sed.len() != SED_LEN {
            return Err(Error::InvalidLength {
                what: "SAKKE encapsulated data",
                expected: SED_LEN,
                actual: sed.len(),
            });
        }
        let big_r = Affine::from_bytes(&sed[..POINT_LEN], "SAKKE R")?;
        // Whether lines exist depends on how often this key decapsulated
        // (public), never on the secrets. The first decapsulation walks R
        // (public) and evaluates at K_b, which also tells whether R has
        // order q; the others evaluate K_b's lines at R.
        let (w, first_r_has_order_q) = match self.lines.get() {
            Some(lines) => (lines.pairing(&big_r), None),
            None if self.decapsulated.swap(true, Ordering::Relaxed) => (
                self.lines
                    .get_or_init(|| MillerLines::new(&self.rsk))
                    .pairing(&big_r),
                None,
            ),
            None => {
                let (w, order_q) = pairing_and_order_check(&big_r, &self.rsk);
                (w, Some(order_q))
            }
        };
        let w = Zeroizing::new(w);
        let w_bytes = Zeroizing::new(w.to_bytes());
        let mask = Zeroizing::new(hash::to_mask_128(w_bytes.as_ref()));
        let mut ssv = Ssv([0u8; SSV_LEN]);
        for (s, (h, m)) in ssv
            .0
            .iter_mut()
            .zip(sed[POINT_LEN..].iter().zip(mask.iter()))
        {
            *s = h ^ m;
        }
        let r_int = Zeroizing::new(hash::to_scalar_mod_q(&[&ssv.0, &self.id]));
        let r = Zeroizing::new(r_int.to_words());
        // RFC 6508 6.2.2's R == [r]([b]P + Z), in the equivalent form R of
        // order q and w == g^r, which costs g^r (~0.2 ms, compared without
        // forming its ratio) and R's order (free on the first
        // decapsulation, which walked R; a square root and a Jacobi
        // symbol, ~0.2 ms, otherwise) instead of two fixed-base
        // multiplications (~1.1 ms; a table of [b]P + Z, once kept for
        // one multiplication, ~0.55 ms, is no longer worth its 1 MB).
        // Equivalence: Q_b = [b]P + Z has order q (⟨Q_b, K_b⟩ = g ≠ 1 for
        // a validated key, whose K_b has order q), so R of order q is
        // [s]Q_b for one s mod q, and w = ⟨R, K_b⟩ = g^s. g has order q in
        // PF_p, so g^s == g^r exactly when s ≡ r (mod q), i.e. when
        // R == [r]Q_b; PF_p elements are compared by their representations
        // b/a, which are unique (a ≠ 0 on the order-q subgroup: a = 0 is
        // i, of order 2). Without the order test, R plus a point of order 2
        // or 4 would pass: the pairing evaluated at R does not see that
        // component.
        let r_has_order_q = first_r_has_order_q.unwrap_or_else(|| big_r.has_order_q_public());
        let valid = r_has_order_q & G_TABLE.is_power(&r, &w);
        if bool::from(valid) {
            Ok(ssv)
        } else {
            Err(Error::DecapsulationFailed)
        }
    }
}

/// \[r\](\[b\]P + Z) as [r·b mod q]P + \[r\]Z: two fixed-base multiplications
/// over tables shared by every identity of the community.
fn mul_public_point(r: &U1024, b: &U1024, kms: &KmsPublicKey) -> Jacobian {
    let q = NonZero::new(q_u1024()).expect("q is non-zero");
    let rb = Zeroizing::new(r.mul_mod(b, &q).to_words());
    let r = Zeroizing::new(r.to_words());
    BASE_TABLE.mul(&rb).add(&kms.table().mul(&r))
}

impl Drop for ReceiverKey {
    fn drop(&mut self) {
        self.rsk.x.zeroize();
        self.rsk.y.zeroize();
    }
}
impl ZeroizeOnDrop for ReceiverKey {}

impl fmt::Debug for ReceiverKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverKey").finish_non_exhaustive()
    }
}

/// Powers of g in PF_p for signed 6-bit digits: entry [w][m−1] =
/// g^(m·64^w) normalised to 1 + x·i and stored as x. The inverse of 1 + x·i
/// is 1 − x·i in PF_p, so negative digits cost a negation.
struct GPowTable {
    windows: Vec<[Fp; SIGNED_ENTRIES]>,
}

impl GPowTable {
    fn new() -> Self {
        let mut elems = Vec::with_capacity(SIGNED_WINDOWS * SIGNED_ENTRIES);
        let mut base = Fp2 { a: Fp::ONE, b: G };
        for _ in 0..SIGNED_WINDOWS {
            let mut m = base;
            elems.push(m);
            for _ in 2..=SIGNED_ENTRIES {
                m = m.mul(&base);
                elems.push(m);
            }
            base = m.square();
        }
        let mut inv_a: Vec<Fp> = elems.iter().map(|e| e.a).collect();
        batch_invert(&mut inv_a);
        let xs: Vec<Fp> = elems
            .iter()
            .zip(inv_a.iter())
            .map(|(e, ia)| e.b.mul(ia))
            .collect();
        let windows = xs
            .chunks_exact(SIGNED_ENTRIES)
            .map(|c| {
                let mut w = [Fp::ZERO; SIGNED_ENTRIES];
                w.copy_from_slice(c);
                w
            })
            .collect();
        Self { windows }
    }

    /// g^k (k below q) in its PF_p representation, in constant time.
    fn pow(&self, k: &[u64; LIMBS]) -> Fp {
        self.pow_unreduced(k).to_projective_ratio()
    }

    /// Whether the PF_p element represented by `ratio` (b/a) is g^k, in
    /// constant time: compared as ratio·a == b on an unreduced
    /// representative a + b·i of g^k, which saves the inversion that its
    /// ratio would cost (a ≠ 0: g^k has odd order, and the only PF_p class
    /// with a = 0, that of i, has order 2).
    fn is_power(&self, k: &[u64; LIMBS], ratio: &Fp) -> Choice {
        let v = self.pow_unreduced(k);
        ratio.mul(&v.a).ct_eq(&v.b)
    }

    /// A representative a + b·i of g^k, in constant time.
    fn pow_unreduced(&self, k: &[u64; LIMBS]) -> Fp2 {
        let (mut mag, mut neg) = signed_digits(k);
        let mut v = Fp2::ONE;
        for (w, entries) in self.windows.iter().enumerate() {
            let digit = u32::from(mag[w]);
            // Digit 0 selects nothing: x = 0 multiplies by 1 + 0·i = 1. One
            // mask per entry (through subtle's barrier), applied to all limbs.
            let mut limbs = [0u64; LIMBS];
            for (m, e) in entries.iter().enumerate() {
                let mask = 0u64.wrapping_sub(u64::from(((m + 1) as u32).ct_eq(&digit).unwrap_u8()));
                for (l, el) in limbs.iter_mut().zip(e.0.iter()) {
                    *l |= el & mask;
                }
            }
            let mut x = Fp(limbs);
            let neg_x = x.neg();
            x.conditional_assign(&neg_x, Choice::from(neg[w]));
            v = v.mul_by_one_plus(&x);
        }
        mag.zeroize();
        neg.zeroize();
        v
    }
}

#[doc(hidden)]
/// Test and benchmark hooks exposing intermediate values of RFC 6508's
/// example; not part of the stable API.
pub mod internal {
    use super::*;

    /// HashToIntegerRange(SSV || id, q) as 128 big-endian octets.
    pub fn r_for(ssv: &Ssv, id: &[u8]) -> [u8; 128] {
        limbs_to_bytes(&hash::to_scalar_mod_q(&[&ssv.0, id]).to_words())
    }

    /// g^r for r given as 128 big-endian octets.
    pub fn g_pow(r: &[u8; 128]) -> [u8; 128] {
        let k = U1024::from_be_slice(r).to_words();
        G_TABLE.pow(&k).to_bytes()
    }

    /// ⟨P, P⟩ computed from scratch, to pin it to RFC 6509's g.
    pub fn pairing_of_base() -> [u8; 128] {
        MillerLines::new(&BASE).pairing(&BASE).to_bytes()
    }

    /// Forces the lazily built tables (for benchmarks that should not time them).
    pub fn warm_up() {
        LazyLock::force(&BASE_TABLE);
        LazyLock::force(&G_TABLE);
        LazyLock::force(&BASE_LINES);
    }

    /// How many RSKs this process has validated ([`ReceiverKey::new`]):
    /// lets a test show that a key is validated once.
    pub fn rsk_validations() -> u64 {
        RSK_VALIDATIONS.load(Ordering::Relaxed)
    }

    /// ⟨a, b⟩ walking a's Miller loop directly (no stored lines), and with
    /// a's stored lines: the two must agree.
    pub fn pairings_both_ways(a: &[u8], b: &[u8]) -> Result<([u8; 128], [u8; 128]), Error> {
        let a = Affine::from_bytes(a, "point")?;
        let b = Affine::from_bytes(b, "point")?;
        Ok((
            pairing_direct(&a, &b).to_bytes(),
            MillerLines::new(&a).pairing(&b).to_bytes(),
        ))
    }

    /// The sum of two encoded points, encoded.
    pub fn add_points(a: &[u8], b: &[u8]) -> Result<[u8; POINT_LEN], Error> {
        let b = Affine::from_bytes(b, "point")?;
        add_to(a, &b)
    }

    /// `point` plus the point (0, 0) of order 2, encoded.
    pub fn add_order_two(point: &[u8]) -> Result<[u8; POINT_LEN], Error> {
        add_to(
            point,
            &Affine {
                x: Fp::ZERO,
                y: Fp::ZERO,
            },
        )
    }

    /// A point of order 4 of E(F_p), encoded: \[q\]S for the first point S
    /// (by x = 1, 2, …) whose \[q\]S has order 4 (E(F_p) is cyclic of order
    /// 4q, so \[q\]S has order dividing 4).
    pub fn point_of_order_four() -> [u8; POINT_LEN] {
        Affine::point_of_order_four().to_bytes()
    }

    /// \[k\]point for k given as 128 big-endian octets, encoded.
    pub fn mul_point(point: &[u8], k: &[u8; 128]) -> Result<[u8; POINT_LEN], Error> {
        let p = Affine::from_bytes(point, "point")?;
        let k = U1024::from_be_slice(k).to_words();
        Option::<Affine>::from(p.to_jacobian().mul(&k).to_affine())
            .map(|s| s.to_bytes())
            .ok_or(Error::InvalidParameter("product at infinity"))
    }

    fn add_to(a: &[u8], b: &Affine) -> Result<[u8; POINT_LEN], Error> {
        let a = Affine::from_bytes(a, "point")?;
        Option::<Affine>::from(a.to_jacobian().add(&b.to_jacobian()).to_affine())
            .map(|s| s.to_bytes())
            .ok_or(Error::InvalidParameter("sum at infinity"))
    }

    /// The Jacobi symbol (x | m) by positive divsteps and by crypto-bigint's
    /// binary algorithm, for x and m as 128 big-endian octets (m odd, x
    /// reduced mod m first): fuzzing compares the two. `None` for an even m.
    pub fn jacobi_both(x: &[u8; 128], m: &[u8; 128]) -> Option<(Option<i8>, i8)> {
        let m = U1024::from_be_slice(m);
        let odd = Odd::new(m).into_option()?;
        let x = U1024::from_be_slice(x).rem_vartime(odd.as_nz_ref());
        let (x, m) = (x.to_words(), m.to_words());
        Some((
            jacobi::jacobi_vartime(&x, &m),
            jacobi::binary_jacobi(&x, &m),
        ))
    }

    /// Decodes and re-encodes a point (fuzzing the point decoder).
    pub fn decode_point(bytes: &[u8]) -> Result<[u8; POINT_LEN], Error> {
        Affine::from_bytes(bytes, "point").map(|p| p.to_bytes())
    }
}

#[doc(hidden)]
pub mod bench_internal {
    //! Field-level hooks for micro-benchmarks.
    use super::*;
    /// n chained multiplications.
    pub fn mul_chain(n: usize) -> [u8; 128] {
        let mut x = G;
        for _ in 0..n {
            x = x.mul(&BASE.x);
        }
        x.to_bytes()
    }
    /// n chained F_p² products, lazily reduced (`lazy`) or with three full
    /// multiplications.
    pub fn fp2_mul_chain(n: usize, lazy: bool) -> [u8; 128] {
        let mut x = Fp2 { a: G, b: BASE.x };
        let y = Fp2 {
            a: BASE.y,
            b: BASE.x,
        };
        for _ in 0..n {
            x = if lazy { x.mul(&y) } else { x.mul_eager(&y) };
        }
        x.b.to_bytes()
    }
    /// n inversions.
    pub fn inv_chain(n: usize) -> [u8; 128] {
        let mut x = G;
        for _ in 0..n {
            x = x.invert();
        }
        x.to_bytes()
    }
}
