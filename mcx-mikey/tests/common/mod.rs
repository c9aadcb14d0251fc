//! Shared test fixtures: the Streamwide vendor vectors and a small KMS
//! community of our own.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::OnceLock;

use mcx_ibc::eccsi::{Kpak, Pvt, SigningKey, Ssk};
use mcx_ibc::kms::{Community, CommunityPublic};
use mcx_ibc::sakke::{KmsPublicKey, ReceiverKey, Rsk};
use mcx_mikey::message::Payload;
use mcx_mikey::sakke_msg::sign_message;
use mcx_mikey::{Error, Message, Rejection};
use serde_json::Value;

/// Streamwide StreamwideTestVectors.md v5 (tests/data is a copy of the
/// project's shared vectors).
pub const STREAMWIDE: &str = include_str!("../data/streamwide-mikey-sakke.json");
/// TS 33.180 KDF vectors.
pub const KDF: &str = include_str!("../data/ts33180-kdf.json");

pub fn sw() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| serde_json::from_str(STREAMWIDE).unwrap())
}

pub fn kdf_vectors() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| serde_json::from_str(KDF).unwrap())
}

pub fn hex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

/// A number given as a JSON number or a decimal string.
pub fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| s(v).parse().unwrap())
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

/// The vendor's KMS as a community public.
pub fn sw_kms() -> &'static CommunityPublic {
    static K: OnceLock<CommunityPublic> = OnceLock::new();
    K.get_or_init(|| {
        let k = &sw()["kms"];
        CommunityPublic {
            kms_uri: s(&k["KmsUri"]).to_owned(),
            key_period_len: num(&k["UserKeyPeriod"]),
            key_period_offset: num(&k["UserKeyOffset"]),
            kpak: Kpak::from_bytes(&hex(&k["PubAuthKey"])).unwrap(),
            sakke_public: KmsPublicKey::from_bytes(&hex(&k["PubEncKey"])).unwrap(),
        }
    })
}

pub fn user(name: &str) -> &'static Value {
    &sw()["users"][name]
}

pub fn uid(name: &str) -> Vec<u8> {
    hex(&user(name)["UserID"])
}

/// The user's SAKKE receiver key (validated against the KMS).
pub fn receiver(name: &str) -> ReceiverKey {
    let u = user(name);
    let rsk = Rsk::from_bytes(&hex(&u["UserDecryptKey"])).unwrap();
    ReceiverKey::new(&sw_kms().sakke_public, &uid(name), &rsk).unwrap()
}

pub fn alice_receiver() -> &'static ReceiverKey {
    static R: OnceLock<ReceiverKey> = OnceLock::new();
    R.get_or_init(|| receiver("Alice"))
}

/// The user's ECCSI signing key.
pub fn signer(name: &str) -> SigningKey {
    let u = user(name);
    let ssk = Ssk::from_bytes(&hex(&u["UserSigningKeySSK"])).unwrap();
    let pvt = Pvt::from_bytes(&hex(&u["UserPubTokenPVT"])).unwrap();
    SigningKey::new(&sw_kms().kpak, &uid(name), ssk, pvt).unwrap()
}

/// Checks `keys` are Alice's published media keys under the vendor GMK
/// (master key, salt and MKI of the `derived` section).
pub fn assert_alice_gmk_keys(keys: &mcx_mikey::SrtpMasterKeys) {
    let d = &sw()["derived"];
    assert_eq!(
        keys.master_key().to_vec(),
        hex(&d["alice_gmk_srtp_master_key"])
    );
    assert_eq!(
        keys.master_salt().to_vec(),
        hex(&d["alice_gmk_srtp_master_salt"])
    );
    assert_eq!(keys.mki(), hex(&d["alice_gmk_mki"]));
}

pub fn message(key: &str) -> &'static Value {
    &sw()["messages"][key]
}

pub fn imessage(key: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s(&message(key)["I-MESSAGE"]))
        .unwrap()
}

pub const GMK_MSG: &str = "1: GMK";
pub const CSK_MSG: &str = "2: CSK";
pub const PCK_MSG: &str = "3: PCK";

/// The vendor messages' time stamp (ec898da8 00000000), Unix seconds.
pub const VENDOR_T_UNIX: u64 = 1_759_448_872;

pub fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// Key period length of our own test communities: 30 days.
pub const KEY_PERIOD: u64 = 2_592_000;

/// A fresh KMS community of our own and the key period `now` falls in.
pub fn community(now: u64) -> (Community, u64) {
    let kms = Community::generate("kms.example.org", KEY_PERIOD, 0, &mut rng()).unwrap();
    let period = mcx_ibc::uid::key_period_no(now, KEY_PERIOD, 0).unwrap();
    (kms, period)
}

/// The ECCSI signing key `kms` issues to `uri` for `period`.
pub fn issue_signer(kms: &Community, uri: &str, period: u64) -> SigningKey {
    let k = kms.issue(uri, period, &mut rng()).unwrap();
    SigningKey::new(&kms.public().kpak, &k.uid, k.ssk, k.pvt).unwrap()
}

/// The SAKKE receiver key `kms` issues to `uri` for `period`.
pub fn issue_receiver(kms: &Community, uri: &str, period: u64) -> ReceiverKey {
    let k = kms.issue(uri, period, &mut rng()).unwrap();
    ReceiverKey::new(&kms.public().sakke_public, &k.uid, &k.rsk).unwrap()
}

/// The rejection in `r`; panics on success or any other error.
pub fn rejected(r: Result<impl std::fmt::Debug, Error>) -> Rejection {
    match r {
        Err(Error::Rejected(r)) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Strips the SIGN payload, lets `edit` change the message and signs it
/// again with `key`: a well-signed message that differs in one respect.
pub fn resign(bytes: &[u8], key: &SigningKey, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut msg = Message::decode(bytes).unwrap();
    assert!(matches!(msg.payloads.pop(), Some(Payload::Sign(_))));
    edit(&mut msg);
    sign_message(msg, key, &mut rng()).unwrap()
}
