//! A KMS community: the master secrets of one KMS and the user keys it
//! issues per key period (TS 33.180 5.2 and Annex D; RFC 6507 and RFC 6508).
//!
//! This is the pure-crypto core of the KMS role: it holds no state beyond
//! the secrets and reads no clock; the KMS service in `mcx-server` stores
//! communities and answers KmsInit/KmsKeyProv requests with them.

use core::fmt;

use rand_core::CryptoRng;

use crate::Error;
use crate::eccsi::{self, Kpak, Ksak, Pvt, SigningKey, Ssk};
use crate::sakke::{self, KmsPublicKey, MasterSecret, ReceiverKey, Rsk};
use crate::uid::{UID_LEN, UidParams};

/// What a KMS publishes to every member of its community (the KmsInit
/// certificate contents that matter for crypto).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommunityPublic {
    /// The KMS URI, part of every UID.
    pub kms_uri: String,
    /// User key period length in seconds (UserKeyPeriod).
    pub key_period_len: u64,
    /// User key period offset in seconds (UserKeyOffset).
    pub key_period_offset: u64,
    /// ECCSI KMS public authentication key.
    pub kpak: Kpak,
    /// SAKKE KMS public key Z.
    pub sakke_public: KmsPublicKey,
}

impl CommunityPublic {
    /// The UID of `user_uri` in key period `key_period_no` under this KMS.
    pub fn uid(&self, user_uri: &str, key_period_no: u64) -> Result<[u8; UID_LEN], Error> {
        UidParams {
            uri: user_uri,
            kms_uri: &self.kms_uri,
            key_period_len: self.key_period_len,
            key_period_offset: self.key_period_offset,
            key_period_no,
        }
        .uid()
    }
}

/// A KMS's secrets: the ECCSI KSAK and the SAKKE master secret z.
pub struct Community {
    public: CommunityPublic,
    ksak: Ksak,
    sakke_master: MasterSecret,
}

impl Community {
    /// Creates a community with fresh secrets.
    pub fn generate(
        kms_uri: &str,
        key_period_len: u64,
        key_period_offset: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<Self, Error> {
        Self::from_secrets(
            kms_uri,
            key_period_len,
            key_period_offset,
            Ksak::generate(rng),
            MasterSecret::generate(rng),
        )
    }

    /// Rebuilds a community from stored secrets.
    pub fn from_secrets(
        kms_uri: &str,
        key_period_len: u64,
        key_period_offset: u64,
        ksak: Ksak,
        sakke_master: MasterSecret,
    ) -> Result<Self, Error> {
        if key_period_len == 0 {
            return Err(Error::InvalidParameter("key period length is zero"));
        }
        if kms_uri.is_empty() {
            return Err(Error::InvalidParameter("KMS URI is empty"));
        }
        let public = CommunityPublic {
            kms_uri: kms_uri.to_owned(),
            key_period_len,
            key_period_offset,
            kpak: ksak.public_key(),
            sakke_public: sakke_master.public_key(),
        };
        Ok(Self {
            public,
            ksak,
            sakke_master,
        })
    }

    /// The public half.
    pub fn public(&self) -> &CommunityPublic {
        &self.public
    }

    /// The ECCSI KSAK.
    ///
    /// # ⚠️ Warning: This value is key material
    pub fn ksak(&self) -> &Ksak {
        &self.ksak
    }

    /// The SAKKE master secret.
    ///
    /// # ⚠️ Warning: This value is key material
    pub fn sakke_master(&self) -> &MasterSecret {
        &self.sakke_master
    }

    /// Issues `user_uri` its keys for key period `key_period_no`: the UID,
    /// the ECCSI SSK and PVT and the SAKKE RSK, all for identity = UID.
    pub fn issue(
        &self,
        user_uri: &str,
        key_period_no: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<UserKeys, Error> {
        let uid = self.public.uid(user_uri, key_period_no)?;
        let (ssk, pvt) = eccsi::issue(&self.ksak, &uid, rng)?;
        let rsk = sakke::extract_rsk(&self.sakke_master, &uid)?;
        Ok(UserKeys::new(user_uri, key_period_no, uid, ssk, pvt, rsk))
    }
}

impl fmt::Debug for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Community")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// One user's keys for one key period (the KmsKeyProv contents).
pub struct UserKeys {
    /// The MC service user ID URI.
    pub user_uri: String,
    /// The key period these keys are for.
    pub key_period_no: u64,
    /// The UID the keys are bound to.
    pub uid: [u8; UID_LEN],
    /// ECCSI secret signing key.
    pub ssk: Ssk,
    /// ECCSI public validation token.
    pub pvt: Pvt,
    /// SAKKE receiver secret key.
    pub rsk: Rsk,
    /// The keys as [`UserKeys::validate`] checked them, kept so that
    /// [`UserKeys::into_validated`] does not check them again.
    validated: Option<ValidatedKeys>,
}

/// Keys checked against a community: the ECCSI signer and the SAKKE
/// receiver they make, and the community public keys they were checked
/// against.
struct ValidatedKeys {
    kpak: Kpak,
    sakke_public: KmsPublicKey,
    signer: SigningKey,
    receiver: ReceiverKey,
}

impl UserKeys {
    /// Keys as issued or received, not validated yet.
    pub fn new(
        user_uri: &str,
        key_period_no: u64,
        uid: [u8; UID_LEN],
        ssk: Ssk,
        pvt: Pvt,
        rsk: Rsk,
    ) -> Self {
        Self {
            user_uri: user_uri.to_owned(),
            key_period_no,
            uid,
            ssk,
            pvt,
            rsk,
            validated: None,
        }
    }

    /// Validates the keys for their UID under `community` (RFC 6507 5.1.2:
    /// the SSK against the PVT and KPAK; RFC 6508 6.1.2: the RSK against Z)
    /// and keeps the signer and receiver this makes, so that
    /// [`UserKeys::into_validated`] hands them over without a second
    /// validation (an RSK validation costs a pairing). Validating again
    /// under the same community does nothing.
    ///
    /// # Errors
    /// [`Error::KeyValidationFailed`] naming the key that does not
    /// validate (`"ECCSI SSK/PVT"` or `"SAKKE RSK"`), or the errors of the
    /// keys' decoding.
    pub fn validate(&mut self, community: &CommunityPublic) -> Result<(), Error> {
        if self.is_validated_under(community) {
            return Ok(());
        }
        let ssk = Ssk::from_bytes(self.ssk.to_bytes().as_ref())?;
        let signer = SigningKey::new(&community.kpak, &self.uid, ssk, self.pvt)?;
        let receiver = ReceiverKey::new(&community.sakke_public, &self.uid, &self.rsk)?;
        self.validated = Some(ValidatedKeys {
            kpak: community.kpak,
            sakke_public: community.sakke_public.clone(),
            signer,
            receiver,
        });
        Ok(())
    }

    /// Whether [`UserKeys::validate`] checked these keys under `community`.
    pub fn is_validated_under(&self, community: &CommunityPublic) -> bool {
        self.validated
            .as_ref()
            .is_some_and(|v| v.kpak == community.kpak && v.sakke_public == community.sakke_public)
    }

    /// The ECCSI signer and SAKKE receiver of these keys under
    /// `community`: those [`UserKeys::validate`] made, or validated now.
    ///
    /// # Errors
    /// Those of [`UserKeys::validate`].
    pub fn into_validated(
        mut self,
        community: &CommunityPublic,
    ) -> Result<(SigningKey, ReceiverKey), Error> {
        self.validate(community)?;
        match self.validated.take() {
            Some(v) => Ok((v.signer, v.receiver)),
            None => Err(Error::KeyValidationFailed("user keys")),
        }
    }
}

impl fmt::Debug for UserKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserKeys")
            .field("user_uri", &self.user_uri)
            .field("key_period_no", &self.key_period_no)
            .field("validated", &self.validated.is_some())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::eccsi::SigningKey;
    use crate::sakke::{ReceiverKey, Ssv};

    struct TestRng(u64);
    impl rand_core::TryRng for TestRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            // splitmix64: deterministic, good enough for a test of plumbing.
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            Ok(z ^ (z >> 31))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for chunk in dst.chunks_mut(8) {
                let v = self.try_next_u64()?.to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for TestRng {}

    #[test]
    fn issued_keys_validate_and_work_together() {
        let mut rng = TestRng(7);
        let kms = Community::generate("kms.example.org", 2_592_000, 0, &mut rng).unwrap();
        let alice = kms.issue("sip:alice@example.org", 1, &mut rng).unwrap();
        let bob = kms.issue("sip:bob@example.org", 1, &mut rng).unwrap();
        let public = kms.public();
        assert_eq!(alice.uid, public.uid("sip:alice@example.org", 1).unwrap());

        let signer = SigningKey::new(&public.kpak, &alice.uid, alice.ssk, alice.pvt).unwrap();
        let sig = signer.sign(b"hello", &mut rng);
        eccsi::verify(&public.kpak, &alice.uid, b"hello", &sig).unwrap();

        let receiver = ReceiverKey::new(&public.sakke_public, &bob.uid, &bob.rsk).unwrap();
        let ssv = Ssv::generate(&mut rng);
        let sed = sakke::encapsulate(&public.sakke_public, &bob.uid, &ssv).unwrap();
        assert_eq!(receiver.decapsulate(&sed).unwrap(), ssv);
        assert!(!format!("{kms:?}").is_empty());
    }

    #[test]
    fn zero_key_period_is_refused() {
        let mut rng = TestRng(1);
        assert_eq!(
            Community::generate("kms.example.org", 0, 0, &mut rng).unwrap_err(),
            Error::InvalidParameter("key period length is zero")
        );
    }
}
