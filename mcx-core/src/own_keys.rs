//! A client's own KMS keys, one set per key period (TS 33.180 5.3: user
//! keys are issued per key period; the UID a key is bound to names its
//! period, F.2.1). Around a period boundary the client holds both the
//! current and the next period's keys: it signs with the keys of the
//! period its time stamp falls in, and decrypts with those of the period
//! the message's time stamp falls in.

use std::collections::BTreeMap;

use mcx_ibc::eccsi::SigningKey;
use mcx_ibc::kms::{CommunityPublic, UserKeys};
use mcx_ibc::sakke::ReceiverKey;

use crate::Error;

/// Key periods whose keys a client keeps (the newest).
pub const MAX_KEY_PERIODS: usize = 3;

pub(crate) struct PeriodKeys {
    pub(crate) signer: SigningKey,
    pub(crate) receiver: ReceiverKey,
}

#[derive(Default)]
pub(crate) struct OwnKeys {
    by_period: BTreeMap<u64, PeriodKeys>,
}

impl OwnKeys {
    /// The keys of `keys` checked against `kms` and `uri`.
    pub(crate) fn new(kms: &CommunityPublic, uri: &str, keys: UserKeys) -> Result<Self, Error> {
        let mut own = Self {
            by_period: BTreeMap::new(),
        };
        own.add(kms, uri, keys)?;
        Ok(own)
    }

    /// Adds (or replaces) the keys of one period after checking they are
    /// `uri`'s for that period under `kms`; keeps the newest
    /// [`MAX_KEY_PERIODS`]. Returns the period.
    pub(crate) fn add(
        &mut self,
        kms: &CommunityPublic,
        uri: &str,
        keys: UserKeys,
    ) -> Result<u64, Error> {
        let key_period_no = keys.key_period_no;
        if keys.user_uri != uri {
            return Err(Error::ForeignKeys("issued for another user"));
        }
        if kms.uid(uri, key_period_no)? != keys.uid {
            return Err(Error::ForeignKeys(
                "UID is not this user's for their key period",
            ));
        }
        // Keys validated on receipt (the KMS client does) are not validated
        // again: an RSK validation costs a pairing.
        let (signer, receiver) = keys.into_validated(kms)?;
        self.by_period
            .insert(key_period_no, PeriodKeys { signer, receiver });
        while self.by_period.len() > MAX_KEY_PERIODS {
            self.by_period.pop_first();
        }
        Ok(key_period_no)
    }

    /// The key periods held, oldest first.
    pub(crate) fn periods(&self) -> Vec<u64> {
        self.by_period.keys().copied().collect()
    }

    /// The keys of `period`.
    pub(crate) fn get(&self, period: u64) -> Option<&PeriodKeys> {
        self.by_period.get(&period)
    }

    /// The keys of the period `unix` falls in.
    ///
    /// # Errors
    /// [`Error::NoKeysForPeriod`] if they are not held.
    pub(crate) fn at(&self, kms: &CommunityPublic, unix: u64) -> Result<&PeriodKeys, Error> {
        let period = period_of(kms, unix)?;
        self.by_period
            .get(&period)
            .ok_or(Error::NoKeysForPeriod(period))
    }

    /// The period to try first for a message received at `unix`: that
    /// of `unix` if held, else the newest held.
    pub(crate) fn period_for(&self, kms: &CommunityPublic, unix: u64) -> u64 {
        match period_of(kms, unix) {
            Ok(p) if self.by_period.contains_key(&p) => p,
            Ok(p) => self.by_period.keys().next_back().copied().unwrap_or(p),
            Err(_) => self.by_period.keys().next_back().copied().unwrap_or(0),
        }
    }

    /// When to fetch the keys of the period after the newest held, and
    /// that period's start: `lead` seconds before it starts (both Unix
    /// seconds). `None` if the start is out of range.
    pub(crate) fn next_refresh(&self, kms: &CommunityPublic, lead: u64) -> Option<(u64, u64)> {
        let next = self.by_period.keys().next_back()?.checked_add(1)?;
        let start =
            mcx_ibc::uid::key_period_start(next, kms.key_period_len, kms.key_period_offset).ok()?;
        Some((start.saturating_sub(lead), start))
    }
}

/// The key period `unix` falls in under `kms`.
pub(crate) fn period_of(kms: &CommunityPublic, unix: u64) -> Result<u64, Error> {
    Ok(mcx_ibc::uid::key_period_no(
        unix,
        kms.key_period_len,
        kms.key_period_offset,
    )?)
}
