//! Interop with another implementation, both ways: Debian's libwolfssl
//! (wolfCrypt ECCSI and SAKKE, written independently in C). Keys come
//! from our KMS; each side's signatures are verified and its
//! encapsulated data decapsulated by the other, and an altered message
//! or SED is refused by both.
#![allow(clippy::unwrap_used, missing_docs)]

use mcx_ibc::eccsi::{self, Ksak, SigningKey};
use mcx_ibc::sakke::{self, MasterSecret, ReceiverKey, Ssv};
use mcx_ibc_wolfssl::{Eccsi, Sakke};

fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

const ALICE: &[u8] = b"2011-02\0tel:+447700900123\0";

#[test]
fn eccsi_signatures_verify_both_ways() {
    let mut rng = rng();
    let ksak = Ksak::generate(&mut rng);
    let kpak = ksak.public_key();
    let (ssk, pvt) = eccsi::issue(&ksak, ALICE, &mut rng).unwrap();
    let (ssk_bytes, pvt_bytes) = (ssk.to_bytes(), pvt.to_bytes());
    let ours = SigningKey::new(&kpak, ALICE, ssk, pvt).unwrap();
    let mut theirs =
        Eccsi::signer(&kpak.to_bytes(), ALICE, ssk_bytes.as_ref(), &pvt_bytes).unwrap();
    let mut verifier = Eccsi::verifier(&kpak.to_bytes()).unwrap();

    for msg in [&b"message"[..], &[0u8; 0], &[0xa5; 1500]] {
        let sig = ours.sign(msg, &mut rng).to_bytes();
        assert!(
            verifier.verify(ALICE, msg, &sig).unwrap(),
            "wolfCrypt refused our signature"
        );
        let sig = theirs.sign(msg).unwrap();
        assert_eq!(sig.len(), 129);
        eccsi::verify_bytes(&kpak, ALICE, msg, &sig).expect("we refused wolfCrypt's signature");
    }
    // Altered: both refuse.
    let sig = ours.sign(b"message", &mut rng).to_bytes();
    assert!(!verifier.verify(ALICE, b"messagf", &sig).unwrap_or(false));
    assert!(
        !verifier
            .verify(b"someone else", b"message", &sig)
            .unwrap_or(false)
    );
    let sig = theirs.sign(b"message").unwrap();
    assert!(eccsi::verify_bytes(&kpak, ALICE, b"messagf", &sig).is_err());
}

#[test]
fn sakke_encapsulated_data_opens_both_ways() {
    let mut rng = rng();
    let master = MasterSecret::generate(&mut rng);
    let kms = master.public_key();
    let z = kms.to_bytes();
    let rsk = sakke::extract_rsk(&master, ALICE).unwrap();
    // Its first decapsulation walks R, the next ones its stored lines.
    let ours = ReceiverKey::new(&kms, ALICE, &rsk).unwrap();
    let mut theirs = Sakke::receiver(&z, ALICE, rsk.to_bytes().as_ref(), false).unwrap();
    let mut theirs_table = Sakke::receiver(&z, ALICE, rsk.to_bytes().as_ref(), true).unwrap();
    let mut sender = Sakke::sender(&z, ALICE).unwrap();

    for _ in 0..3 {
        let ssv = Ssv::generate(&mut rng);
        let sed = sakke::encapsulate(&kms, ALICE, &ssv).unwrap();
        assert_eq!(
            &theirs.decapsulate(&sed).unwrap(),
            ssv.as_bytes(),
            "wolfCrypt read our SED wrong"
        );
        assert_eq!(&theirs_table.decapsulate(&sed).unwrap(), ssv.as_bytes());

        let value = *Ssv::generate(&mut rng).as_bytes();
        let sed = sender.encapsulate(&value).unwrap();
        assert_eq!(
            ours.decapsulate(&sed).unwrap().as_bytes(),
            &value,
            "we read wolfCrypt's SED wrong"
        );
    }
    // Altered H: both refuse (the R check fails).
    let ssv = Ssv::generate(&mut rng);
    let mut sed = sakke::encapsulate(&kms, ALICE, &ssv).unwrap();
    sed[sakke::SED_LEN - 1] ^= 1;
    assert!(theirs.decapsulate(&sed).is_err());
    assert!(ours.decapsulate(&sed).is_err());
    // Also on a fresh key's first decapsulation (R walked, w = g^r checked;
    // `ours` evaluated its stored lines from its second one on).
    let fresh = ReceiverKey::new(&kms, ALICE, &rsk).unwrap();
    assert!(fresh.decapsulate(&sed).is_err());
}
