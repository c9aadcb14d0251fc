//! A KMS community, a GMS with two groups and the members' keys.
#![allow(clippy::unwrap_used, dead_code, unreachable_pub, missing_docs)]

use std::collections::BTreeMap;
use std::path::Path;

use mcx_gms::{Gms, GmsConfig, GmsUser, GroupConfig};
use mcx_ibc::kms::{Community, CommunityPublic};
use mcx_ibc::sakke::ReceiverKey;
use mcx_kms::http::{HttpRequest, HttpResponse};
use mcx_mikey::gmk::{GmkReceiver, ReceivedGmk};
use mcx_mikey::replay::ReplayCache;

/// Deterministic splitmix64 RNG (tests only).
pub struct TestRng(pub u64);
impl rand_core::TryRng for TestRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.try_next_u64()? as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
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

pub const UNIX0: u64 = 1_700_000_000;
pub const PERIOD_LEN: u64 = 30 * 86_400;
pub const KMS_URI: &str = "kms.mcx.test";
pub const GMS: &str = "sip:gms@mcx.test";
pub const GROUP_A: &str = "sip:group-a@mcx.test";
pub const GROUP_B: &str = "sip:group-b@mcx.test";
pub const ALICE: &str = "sip:alice@mcx.test";
pub const BOB: &str = "sip:bob@mcx.test";
pub const CAROL: &str = "sip:carol@mcx.test";
pub const DISPATCHER: &str = "sip:dispatcher@mcx.test";
pub const EVE: &str = "sip:eve@mcx.test";

pub fn token(uri: &str) -> String {
    format!(
        "tok-{}",
        uri.trim_start_matches("sip:").replace('@', "-at-")
    )
}

pub fn config(a_members: &[&str], lifetime: u64) -> GmsConfig {
    let own = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    GmsConfig {
        gms_uri: GMS.into(),
        groups: vec![
            GroupConfig {
                id: GROUP_A.into(),
                display_name: "Group A & friends".into(),
                members: own(a_members),
            },
            GroupConfig {
                id: GROUP_B.into(),
                display_name: "Group B".into(),
                members: own(&[CAROL, DISPATCHER]),
            },
        ],
        users: [ALICE, BOB, CAROL, DISPATCHER, EVE]
            .iter()
            .map(|u| GmsUser {
                uri: (*u).into(),
                token: token(u),
            })
            .collect(),
        gmk_lifetime_secs: lifetime,
    }
}

pub fn default_config() -> GmsConfig {
    config(&[ALICE, BOB, DISPATCHER], 0)
}

pub struct World {
    pub rng: TestRng,
    pub community: Community,
    pub kms: CommunityPublic,
    pub period: u64,
    /// Member receiver keys per (uri, period).
    pub receivers: BTreeMap<(String, u64), ReceiverKey>,
}

/// The operator store key of the file-backed tests.
pub fn store_key() -> mcx_kms::StoreKey {
    mcx_kms::StoreKey::from_bytes([0x3e; 32])
}

impl World {
    pub fn new(seed: u64) -> Self {
        let mut rng = TestRng(seed);
        let community = Community::generate(KMS_URI, PERIOD_LEN, 0, &mut rng).unwrap();
        let kms = community.public().clone();
        let period = period_of(&kms, UNIX0);
        Self {
            rng,
            community,
            kms,
            period,
            receivers: BTreeMap::new(),
        }
    }

    pub fn open(&mut self, db: Option<&Path>, config: GmsConfig, now: u64) -> Gms {
        self.try_open(db, Some(&store_key()), config, now).unwrap()
    }

    /// Opens with an explicit store key (or none).
    pub fn try_open(
        &mut self,
        db: Option<&Path>,
        key: Option<&mcx_kms::StoreKey>,
        config: GmsConfig,
        now: u64,
    ) -> Result<Gms, mcx_gms::GmsError> {
        let keys = self
            .community
            .issue(GMS, period_of(&self.kms, now), &mut self.rng)
            .unwrap();
        Gms::open(db, key, config, self.kms.clone(), keys, now, &mut self.rng)
    }

    pub fn receiver(&mut self, uri: &str, period: u64) -> &ReceiverKey {
        let key = (uri.to_owned(), period);
        if !self.receivers.contains_key(&key) {
            let k = self.community.issue(uri, period, &mut self.rng).unwrap();
            // Tests decapsulate many GKTPs per member: lines precomputed.
            let rk = ReceiverKey::new(&self.kms.sakke_public, &k.uid, &k.rsk)
                .unwrap()
                .with_lines();
            self.receivers.insert(key.clone(), rk);
        }
        &self.receivers[&key]
    }

    /// Accepts a GKTP as the member's client does (mcx-core's
    /// `Client::accept_gmk`): signer = the GMS URI.
    pub fn accept(&mut self, member: &str, gktp: &[u8], now: u64) -> ReceivedGmk {
        self.try_accept(member, gktp, now).unwrap()
    }

    pub fn try_accept(
        &mut self,
        member: &str,
        gktp: &[u8],
        now: u64,
    ) -> Result<ReceivedGmk, mcx_mikey::Error> {
        let period = period_of(&self.kms, now);
        let kms = self.kms.clone();
        let own_key = self.receiver(member, period);
        GmkReceiver {
            own_uri: member,
            own_key,
            key_period_no: period,
            kms: &kms,
            gms_uri: GMS,
        }
        .accept(gktp, now, &mut ReplayCache::default())
    }
}

/// Every GKTP of the member's group document (the current GMK's, then
/// the next one's once the current one is in the second half of its
/// life).
pub fn fetch_gktps(
    gms: &mut Gms,
    w: &mut World,
    member: &str,
    group: &str,
    now: u64,
) -> Vec<Vec<u8>> {
    use mcx_gms::client::{check_response, group_document_request, parse_group_document};
    let r = gms.handle(
        &group_document_request(group, &token(member)),
        now,
        &mut w.rng,
    );
    assert_eq!(r.status, 200, "{}", body_text(&r));
    assert_eq!(r.content_type, mcx_gms::doc::GROUP_DOCUMENT_CONTENT_TYPE);
    let d = parse_group_document(check_response(&r).unwrap()).unwrap();
    assert_eq!(d.group_id, group);
    d.gktps
}

pub fn period_of(kms: &CommunityPublic, now: u64) -> u64 {
    mcx_ibc::uid::key_period_no(now, kms.key_period_len, kms.key_period_offset).unwrap()
}

pub fn get(path: &str, token: Option<&str>) -> HttpRequest {
    let mut r = HttpRequest::new("GET", path);
    if let Some(t) = token {
        r.headers
            .push(("authorization".into(), format!("Bearer {t}")));
    }
    r
}

pub fn body_text(r: &HttpResponse) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

/// A fresh temporary database path (removed by `TempDb`'s drop).
pub struct TempDb(pub std::path::PathBuf);
impl TempDb {
    pub fn new(tag: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self(std::env::temp_dir().join(format!(
            "mcx-gms-{tag}-{}-{nanos}.sqlite",
            std::process::id()
        )))
    }
}
impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.0.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(p);
        }
    }
}
