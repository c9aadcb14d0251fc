//! The receiving procedures fed arbitrary bytes: a member unwrapping a
//! wrapped TGMK and describing it with a GMK. Never panics, and accepts
//! nothing (no fuzzer input carries a valid ECCSI signature by the vendor
//! KMS's users).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcx_ibc::eccsi::Kpak;
use mcx_ibc::kms::CommunityPublic;
use mcx_ibc::sakke::KmsPublicKey;
use mcx_mikey::describe::{Keys, describe};
use mcx_mikey::replay::ReplayCache;
use mcx_mikey::tgmk::{ConstituentGroup, TgmkReceiver};
use mcx_mikey::{Gmk, KeyId};

// Streamwide's KMS (vendor vectors).
/// SAKKE KMS public key Z.
const Z: &str = "046fc2cf00fd48467abe7c02f383002fc49b6632bf0f7071d958f1f128154e6fae1f69bb91691a191a358fe647a3e020d2365d52f81fb3af4ea271654f1a880274c1ae228ac72cc15d535394321bd2143cea2619fb3b0c6ce7a5f72714d8ef4d11cb0c991c3376ca31b168b01e66021effdbf7920bd66615e6f0d6a1e61c06e72e61b4138738c11bc249a3849e9c4cff327a7d0d2769c3d97a37f86adfb13baa257e628ce236f40360d3f7b8d95b0e3fcc19417602d7d6b8928b855eae9129be1f0b87d33e884906dd95a04a8bd61240bad60f9dfada64806726f8f08b86343f54046416f5198116e9798c218bcf9ca07d0baa4be50062bfe54e44495b6ed59cb6";
/// ECCSI KPAK.
const KPAK: &str = "0448f9c2c48b50735f6bc70ec6691073243f1e0bd83cc73bb936d61ffcb2d6049a5b297e8205b29fbd8591cb582d6402add21451ce4beebeaaa7520e93b11cf28f";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
        .collect()
}

fn kms() -> &'static CommunityPublic {
    static K: OnceLock<CommunityPublic> = OnceLock::new();
    K.get_or_init(|| {
        let z = KmsPublicKey::from_bytes(&unhex(Z)).expect("vendor Z");
        CommunityPublic {
            kms_uri: "kms.mydev.streamwide.com".into(),
            key_period_len: 16_777_215,
            key_period_offset: 0,
            kpak: Kpak::from_bytes(&unhex(KPAK)).expect("vendor KPAK"),
            sakke_public: z,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let gmk = Gmk::from_bytes(&[7u8; 16]).expect("16 octets");
    let groups = [ConstituentGroup {
        group_id: "sip:group-a@example.org",
        gmk: &gmk,
        gmk_id: KeyId(0x0123_4567),
    }];
    let rx = TgmkReceiver {
        kms: kms(),
        groups: &groups,
        expected_initiator: None,
    };
    let mut replay = ReplayCache::default();
    assert!(rx.unwrap(data, 1_759_448_872, &mut replay).is_err());
    assert!(replay.is_empty());
    let gmks = [(KeyId(0x0123_4567), &gmk)];
    let keys = Keys {
        kms: Some(kms()),
        gmks: &gmks,
        ..Keys::default()
    };
    let _ = describe(data, &keys).to_text();
});
