//! Known-answer tests: RFC 7714 sections 16 and 17 (SRTP and SRTCP with
//! AEAD_AES_128_GCM / AEAD_AES_256_GCM) and RFC 3711 Appendix B.2/B.3 (the
//! AES-CM PRF and the key derivation).
//!
//! Source: RFC 7714, "AES-GCM Authenticated Encryption in the Secure
//! Real-time Transport Protocol (SRTP)", D. McGrew, K. Igoe, December 2015,
//! <https://www.rfc-editor.org/rfc/rfc7714>, sections 16.1, 16.2, 17.1-17.4;
//! RFC 3711, "The Secure Real-time Transport Protocol (SRTP)", M. Baugher
//! et al., March 2004, <https://www.rfc-editor.org/rfc/rfc3711>, Appendix B.2
//! and B.3. The hex below is copied from those sections.

use aes_gcm::aead::consts::U12;
use aes_gcm::aes::Aes256;
use aes_gcm::{AeadInOut, AesGcm, KeyInit};

use crate::kdf::{Kdf, Label};
use crate::key::{MasterKey, Mki};
use crate::packet::{rtcp_iv, rtp_iv};
use crate::{Config, Error, Session};

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace([' ', '\n'], "")).expect("test vector hex")
}

fn arr<const N: usize>(s: &str) -> [u8; N] {
    h(s).try_into().expect("test vector length")
}

// ---------------------------------------------------------------- RFC 7714

/// RFC 7714 section 16.1: the session encryption key K_e (AEAD_AES_128_GCM).
const K128: &str = "000102030405060708090a0b0c0d0e0f";
/// RFC 7714 section 16.2: the session encryption key for AEAD_AES_256_GCM.
const K256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
/// RFC 7714 sections 16 and 17: the session salt ("Quid pro quo").
const SALT: &str = "517569642070726f2071756f";

/// RFC 7714 section 16: the RTP packet (SSRC 0x5501a0b2, SEQ 0xf17b, ROC 0):
/// a 12-octet header and "Gallia est omnis divisa in partes tres".
const RTP_HEADER: &str = "8040f17b8041f8d35501a0b2";
const RTP_PAYLOAD: &str =
    "47616c6c696120657374206f6d6e69732064697669736120696e207061727465732074726573";
/// RFC 7714 section 16: the IV (salt XOR 00 00 || SSRC || ROC || SEQ).
const RTP_IV: &str = "51753c6580c2726f20718414";

/// RFC 7714 section 16.1.1: encrypted payload and tag under K128.
const RTP_CT_128: &str =
    "f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833";
const RTP_TAG_128: &str = "899d7f27beb16a9152cf765ee4390cce";
/// RFC 7714 section 16.1.3: tag over the whole packet as AAD, no plaintext.
const RTP_AUTH_ONLY_TAG_128: &str = "22493f82d2bce397e9d79e3b19aa4216";
/// RFC 7714 section 16.2.1: encrypted payload and tag under K256.
const RTP_CT_256: &str =
    "32b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b";
const RTP_TAG_256: &str = "7aa3db36dfffd6b0f9bb7878d7a76c13";
/// RFC 7714 section 16.2.3.
const RTP_AUTH_ONLY_TAG_256: &str = "a866d5910f887463067ceefec45215d4";

/// RFC 7714 section 17: the RTCP packet (SSRC "Mars" = 0x4d617273), SRTCP index 0x5d4.
const RTCP_HEADER: &str = "81c8000d4d617273";
const RTCP_BODY: &str = "4e5450314e545032525450200000042a0000e9304c756e61\
                         deadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
const RTCP_INDEX: u32 = 0x5d4;
/// RFC 7714 section 17: the SRTCP IV.
const RTCP_IV: &str = "517524055203726f207170bb";
/// RFC 7714 section 17.1: encrypted body, tag, E || index under K128.
const RTCP_CT_128: &str = "63e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1\
                           730d6fda4ce09b4686303ded0bb9275b";
const RTCP_TAG_128: &str = "c84aa45896cf4d2fc5abf87245d9eade";
/// RFC 7714 section 17.2: the same under K256.
const RTCP_CT_256: &str = "d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1\
                           110555be8415f658c61de0476f1b6fad";
const RTCP_TAG_256: &str = "1d1eb30c4446839f57ff6f6cb26ac3be";
/// RFC 7714 section 17.3: unencrypted SRTCP (E = 0) tag under K128.
const RTCP_AUTH_ONLY_TAG_128: &str = "841dd9683dd78ec92ae58790125f62b3";
/// RFC 7714 section 17.4: the same under K256.
const RTCP_AUTH_ONLY_TAG_256: &str = "91db4afbfeee5a978fab4393ed2615fe";

fn vector_session(config: Config) -> Session {
    let mut s = Session::new(config).expect("config");
    s.add_raw_session_keys(Mki::NONE, &arr(K128), &arr(SALT))
        .expect("key");
    s
}

fn rtp_plain() -> Vec<u8> {
    [h(RTP_HEADER), h(RTP_PAYLOAD)].concat()
}

fn srtp_128() -> Vec<u8> {
    [h(RTP_HEADER), h(RTP_CT_128), h(RTP_TAG_128)].concat()
}

#[test]
fn rfc7714_16_ivs() {
    assert_eq!(rtp_iv(&arr(SALT), 0x5501_a0b2, 0xf17b).to_vec(), h(RTP_IV));
    assert_eq!(
        rtcp_iv(&arr(SALT), 0x4d61_7273, RTCP_INDEX).to_vec(),
        h(RTCP_IV)
    );
}

/// RFC 7714 section 16.1.1: SRTP AEAD_AES_128_GCM encryption, through
/// `Session::protect_rtp`.
#[test]
fn rfc7714_16_1_1_srtp_encryption() {
    let mut s = vector_session(Config::new());
    let plain = rtp_plain();
    let mut buf = plain.clone();
    buf.resize(plain.len() + 16, 0);
    let n = s.protect_rtp(&mut buf, plain.len()).expect("protect");
    assert_eq!(hex::encode(&buf[..n]), hex::encode(srtp_128()));
}

/// RFC 7714 section 16.1.2: SRTP AEAD_AES_128_GCM decryption, through
/// `Session::unprotect_rtp`.
#[test]
fn rfc7714_16_1_2_srtp_decryption() {
    let mut s = vector_session(Config::new());
    let mut buf = srtp_128();
    let got = s.unprotect_rtp(&mut buf).expect("unprotect");
    assert_eq!(got.index, 0xf17b);
    assert_eq!(hex::encode(&buf[..got.len]), hex::encode(rtp_plain()));
    // And a replay of it is refused.
    let mut again = srtp_128();
    assert!(matches!(s.unprotect_rtp(&mut again), Err(Error::Replay(_))));
}

/// RFC 7714 section 16.1.3/16.1.4: tagging only (the whole packet as AAD).
#[test]
fn rfc7714_16_1_3_tagging_only() {
    let cipher = crate::gcm::Gcm::new(&arr(K128));
    let iv = rtp_iv(&arr(SALT), 0x5501_a0b2, 0xf17b);
    let tag = cipher.seal(&iv, &rtp_plain(), &mut []);
    assert_eq!(tag.to_vec(), h(RTP_AUTH_ONLY_TAG_128));
    assert!(cipher.open(&iv, &rtp_plain(), &mut [], &tag).is_ok());
}

/// RFC 7714 section 16.2: AEAD_AES_256_GCM, which TS 33.180 does not use:
/// checks the shared IV/AAD formation with RustCrypto's AES-256-GCM.
#[test]
fn rfc7714_16_2_aes256_iv_and_aad() {
    let key = arr::<32>(K256);
    let cipher = AesGcm::<Aes256, U12>::new((&key).into());
    let iv = rtp_iv(&arr(SALT), 0x5501_a0b2, 0xf17b);
    let mut data = h(RTP_PAYLOAD);
    let tag = cipher
        .encrypt_inout_detached((&iv).into(), &h(RTP_HEADER), data.as_mut_slice().into())
        .expect("seal");
    assert_eq!(hex::encode(&data), RTP_CT_256);
    assert_eq!(hex::encode(tag), RTP_TAG_256);
    let tag = cipher
        .encrypt_inout_detached((&iv).into(), &rtp_plain(), (&mut [][..]).into())
        .expect("seal");
    assert_eq!(hex::encode(tag), RTP_AUTH_ONLY_TAG_256);

    // Section 17.2 and 17.4: SRTCP under AES-256.
    let iv = rtcp_iv(&arr(SALT), 0x4d61_7273, RTCP_INDEX);
    let aad = [h(RTCP_HEADER), h("800005d4")].concat();
    let mut data = h(RTCP_BODY);
    let tag = cipher
        .encrypt_inout_detached((&iv).into(), &aad, data.as_mut_slice().into())
        .expect("seal");
    assert_eq!(hex::encode(&data), RTCP_CT_256);
    assert_eq!(hex::encode(tag), RTCP_TAG_256);
    let aad = [h(RTCP_HEADER), h(RTCP_BODY), h("000005d4")].concat();
    let tag = cipher
        .encrypt_inout_detached((&iv).into(), &aad, (&mut [][..]).into())
        .expect("seal");
    assert_eq!(hex::encode(tag), RTCP_AUTH_ONLY_TAG_256);
}

fn rtcp_plain() -> Vec<u8> {
    [h(RTCP_HEADER), h(RTCP_BODY)].concat()
}

/// RFC 7714 section 17.1: SRTCP AEAD_AES_128_GCM encryption, through
/// `Session::protect_rtcp` and back.
#[test]
fn rfc7714_17_1_srtcp_encryption() {
    let expected = [
        h(RTCP_HEADER),
        h(RTCP_CT_128),
        h(RTCP_TAG_128),
        h("800005d4"),
    ]
    .concat();
    let mut s = vector_session(Config::new());
    s.set_next_rtcp_index(0x4d61_7273, RTCP_INDEX);
    let plain = rtcp_plain();
    let mut buf = plain.clone();
    buf.resize(plain.len() + 20, 0);
    let n = s.protect_rtcp(&mut buf, plain.len()).expect("protect");
    assert_eq!(hex::encode(&buf[..n]), hex::encode(&expected));

    let mut r = vector_session(Config::new());
    let mut buf = expected;
    let got = r.unprotect_rtcp(&mut buf).expect("unprotect");
    assert!(got.encrypted);
    assert_eq!(got.index, u64::from(RTCP_INDEX));
    assert_eq!(hex::encode(&buf[..got.len]), hex::encode(plain));
}

/// RFC 7714 section 17.3: unencrypted SRTCP (E = 0), through
/// `Session::protect_rtcp` and back.
#[test]
fn rfc7714_17_3_srtcp_tagging_only() {
    let plain = rtcp_plain();
    let expected = [plain.clone(), h(RTCP_AUTH_ONLY_TAG_128), h("000005d4")].concat();
    let mut s = vector_session(Config::new().with_rtcp_encryption(false));
    s.set_next_rtcp_index(0x4d61_7273, RTCP_INDEX);
    let mut buf = plain.clone();
    buf.resize(plain.len() + 20, 0);
    let n = s.protect_rtcp(&mut buf, plain.len()).expect("protect");
    assert_eq!(hex::encode(&buf[..n]), hex::encode(&expected));

    // Any receiver accepts E = 0; a tampered one fails and is left unchanged.
    let mut r = vector_session(Config::new());
    let mut bad = expected.clone();
    bad[10] ^= 1;
    let before = bad.clone();
    assert_eq!(r.unprotect_rtcp(&mut bad), Err(Error::AuthenticationFailed));
    assert_eq!(bad, before);
    let mut buf = expected;
    let got = r.unprotect_rtcp(&mut buf).expect("unprotect");
    assert!(!got.encrypted);
    assert_eq!(&buf[..got.len], &plain[..]);
}

// ---------------------------------------------------------------- RFC 3711

/// RFC 3711 Appendix B.2: AES-CM keystream for session key
/// 2B7E151628AED2A6ABF7158809CF4F3C, session salt F0F1...FD, SSRC 0,
/// index 0 (IV = F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000). The PRF is this same
/// keystream with label 0.
#[test]
fn rfc3711_b2_aes_cm_keystream() {
    let kdf = Kdf::new(
        &arr("2B7E151628AED2A6ABF7158809CF4F3C"),
        &h("F0F1F2F3F4F5F6F7F8F9FAFBFCFD"),
    );
    let mut ks = vec![0u8; 0xff02 * 16];
    kdf.derive(Label::RtpEncryption, &mut ks);
    let block = |i: usize| hex::encode_upper(&ks[i * 16..i * 16 + 16]);
    assert_eq!(block(0x0000), "E03EAD0935C95E80E166B16DD92B4EB4");
    assert_eq!(block(0x0001), "D23513162B02D0F72A43A2FE4A5F97AB");
    assert_eq!(block(0x0002), "41E95B3BB0A2E8DD477901E4FCA894C0");
    assert_eq!(block(0xfeff), "EC8CDF7398607CB0F2D21675EA9EA1E4");
    assert_eq!(block(0xff00), "362B7C3C6773516318A077D7FC5073AE");
    assert_eq!(block(0xff01), "6A2CC3787889374FBEB4C81B17BA6C44");
}

/// RFC 3711 Appendix B.3: key derivation (key derivation rate 0).
#[test]
fn rfc3711_b3_key_derivation() {
    let kdf = Kdf::new(
        &arr("E1F97A0D3E018BE0D64FA32C06DE4139"),
        &h("0EC675AD498AFEEBB6960B3AABE6"),
    );
    let mut cipher_key = [0u8; 16];
    kdf.derive(Label::RtpEncryption, &mut cipher_key);
    assert_eq!(
        hex::encode_upper(cipher_key),
        "C61E7A93744F39EE10734AFE3FF7A087"
    );
    let mut cipher_salt = [0u8; 14];
    kdf.derive(Label::RtpSalt, &mut cipher_salt);
    assert_eq!(
        hex::encode_upper(cipher_salt),
        "30CBBC08863D8C85D49DB34A9AE1"
    );
    let mut auth_key = [0u8; 94];
    kdf.derive(Label::RtpAuthentication, &mut auth_key);
    assert_eq!(
        hex::encode_upper(auth_key),
        "CEBE321F6FF7716B6FD4AB49AF256A156D38BAA48F0A0ACF3C34E2359E6CDBCE\
         E049646C43D9327AD175578EF72270986371C10C9A369AC2F94A8C5FBCDDDC25\
         6D6E919A48B610EF17C2041E474035766B68642C59BBFC2F34DB60DBDFB2"
    );
}

/// A 12-octet GCM master salt is the KDF's 14-octet salt with two zero
/// octets appended (RFC 7714 section 11; what libsrtp does).
#[test]
fn gcm_master_salt_is_zero_extended() {
    let key = arr::<16>("E1F97A0D3E018BE0D64FA32C06DE4139");
    let a = Kdf::new(&key, &h("0EC675AD498AFEEBB6960B3A"));
    let b = Kdf::new(&key, &h("0EC675AD498AFEEBB6960B3A0000"));
    let (mut x, mut y) = ([0u8; 16], [0u8; 16]);
    a.derive(Label::RtcpEncryption, &mut x);
    b.derive(Label::RtcpEncryption, &mut y);
    assert_eq!(x, y);
    // And the master key type uses that derivation.
    let _ = MasterKey::new(key, [0; 12]).derive();
}
