//! Key derivation: the TS 33.220 KDF (TS 33.180 Annex F), the MIKEY PRF
//! with PRF-HMAC-SHA-256 (RFC 3830 4.1.2, RFC 6043 6.1) and the derivations
//! built on them (RFC 3830 4.1.3 TEK/salt, 4.1.4 pre-shared-key KEMAC keys,
//! TS 33.180 F.1.3 GUK-ID, F.1.5 DPCK).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use crate::keys::{Gmk, KeyId, SrtpMasterKeys};

type HmacSha256 = Hmac<Sha256>;

/// RFC 3830 4.1.3 constant for the TEK (SRTP master key).
pub const TEK_CONST: u32 = 0x2AD0_1C64;
/// RFC 3830 4.1.3 constant for the salting key (SRTP master salt).
pub const SALT_CONST: u32 = 0x39A2_C14B;
/// RFC 3830 4.1.4 constant for the KEMAC encryption key.
pub const ENCR_KEY_CONST: u32 = 0x1505_33E1;
/// RFC 3830 4.1.4 constant for the KEMAC authentication key.
pub const AUTH_KEY_CONST: u32 = 0x2D22_AC75;
/// RFC 3830 4.1.4 constant for the KEMAC salting key.
pub const SALT_KEY_CONST: u32 = 0x29B8_8916;

/// TS 33.180 F.1.3 FC for the GUK-ID salt.
pub const FC_GUK_ID: u8 = 0x50;
/// TS 33.180 F.1.5 FC for the DPCK.
pub const FC_DPCK: u8 = 0x53;

fn hmac(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length.
    match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    }
}

/// The TS 33.220 Annex B KDF: `HMAC-SHA-256(key, FC || P0 || L0 || P1 || L1 ...)`,
/// each `Li` the 2-octet big-endian length of `Pi`.
///
/// # Panics
/// Never for parameters up to 65535 octets; longer ones are truncated in
/// their length field, which no caller here produces.
pub fn kdf_33220(key: &[u8], fc: u8, params: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut m = hmac(key);
    m.update(&[fc]);
    for p in params {
        m.update(p);
        m.update(&(p.len() as u16).to_be_bytes());
    }
    Zeroizing::new(m.finalize().into_bytes().into())
}

/// The MIKEY PRF with PRF-HMAC-SHA-256 (RFC 3830 4.1.2 with RFC 6043
/// 6.1): the input key is split into 256-bit blocks `s_1..s_n`, and
/// `PRF(inkey, label) = P(s_1, label, m) XOR ... XOR P(s_n, label, m)`,
/// where `P(s, label, m) = HMAC(s, A_1 || label) || ... || HMAC(s, A_m || label)`,
/// `A_0 = label`, `A_i = HMAC(s, A_(i-1))`, `m = ceil(len(out) / 32)`.
/// Fills `out`.
pub fn mikey_prf(inkey: &[u8], label: &[u8], out: &mut [u8]) {
    out.fill(0);
    let blocks: Vec<&[u8]> = if inkey.is_empty() {
        vec![inkey]
    } else {
        inkey.chunks(32).collect()
    };
    for s in blocks {
        let base = hmac(s);
        let mut a = Zeroizing::new([0u8; 32]);
        let mut first = true;
        for chunk in out.chunks_mut(32) {
            let mut m = base.clone();
            if first {
                m.update(label);
                first = false;
            } else {
                m.update(a.as_ref());
            }
            *a = m.finalize().into_bytes().into();
            let mut m = base.clone();
            m.update(a.as_ref());
            m.update(label);
            let mut block: [u8; 32] = m.finalize().into_bytes().into();
            for (o, b) in chunk.iter_mut().zip(block.iter()) {
                *o ^= b;
            }
            block.zeroize();
        }
    }
}

/// The RFC 3830 4.1.3 label: `const || cs_id || csb_id || RAND`.
fn tek_label(konst: u32, cs_id: u8, csb_id: u32, rand: &[u8]) -> Vec<u8> {
    let mut l = Vec::with_capacity(9 + rand.len());
    l.extend_from_slice(&konst.to_be_bytes());
    l.push(cs_id);
    l.extend_from_slice(&csb_id.to_be_bytes());
    l.extend_from_slice(rand);
    l
}

/// The RFC 3830 4.1.3 TEK and salt derivation with PRF-HMAC-SHA-256: a
/// 16-octet SRTP master key and a 12-octet master salt (RFC 7714) for
/// crypto session `cs_id` of bundle `csb_id` from TGK `tgk`.
pub fn srtp_master(tgk: &[u8], cs_id: u8, csb_id: u32, rand: &[u8]) -> ([u8; 16], [u8; 12]) {
    let mut key = [0u8; 16];
    let mut salt = [0u8; 12];
    mikey_prf(tgk, &tek_label(TEK_CONST, cs_id, csb_id, rand), &mut key);
    mikey_prf(tgk, &tek_label(SALT_CONST, cs_id, csb_id, rand), &mut salt);
    (key, salt)
}

/// The CS ID of group call media under a GMK or TGMK (TS 33.180 E.1.2).
pub const CS_ID_GROUP_CALL: u8 = 4;

/// SRTP (or SRTCP) master keys for crypto session `cs_id` of the bundle a
/// single key ID names: CSB ID = `key_id`, MKI = `key_id` (TS 33.180 7.4.1
/// for the PCK; this project's TGMK, CSK and SPK follow it).
pub fn srtp_keys_named_by_id(tgk: &[u8], cs_id: u8, key_id: KeyId, rand: &[u8]) -> SrtpMasterKeys {
    let (k, s) = srtp_master(tgk, cs_id, key_id.0, rand);
    SrtpMasterKeys::new(k, s, key_id.to_bytes().to_vec())
}

/// SRTP master keys of one sender under a GMK (TS 33.180 7.4.2): TGK =
/// GMK, CS ID 4, CSB ID = the sender's GUK-ID, RAND = the one RAND the GMS
/// sent with this GMK (every GKTP of a GMK carries the same RAND), MKI =
/// GMK-ID || GUK-ID. Media keys are per sender: a receiver derives a
/// sender's keys from the GUK-ID its MKI names ([`split_gmk_mki`]).
pub fn gmk_srtp_keys(gmk: &Gmk, gmk_id: KeyId, guk_id: KeyId, rand: &[u8]) -> SrtpMasterKeys {
    let (k, s) = srtp_master(gmk.as_bytes(), CS_ID_GROUP_CALL, guk_id.0, rand);
    SrtpMasterKeys::new(k, s, gmk_mki(gmk_id, guk_id).to_vec())
}

/// Octets of the MKI of media under a GMK: GMK-ID || GUK-ID (TS 33.180
/// 7.4.2; also the SPI of the GMK message's crypto session, E.2).
pub const GMK_MKI_LEN: usize = 8;

/// The MKI of media under a GMK: GMK-ID || GUK-ID.
pub fn gmk_mki(gmk_id: KeyId, guk_id: KeyId) -> [u8; GMK_MKI_LEN] {
    let mut mki = [0; GMK_MKI_LEN];
    mki[..4].copy_from_slice(&gmk_id.to_bytes());
    mki[4..].copy_from_slice(&guk_id.to_bytes());
    mki
}

/// The GMK-ID and GUK-ID an MKI of media under a GMK names
/// ([`gmk_mki`]); `None` if it is not [`GMK_MKI_LEN`] octets. The purpose
/// tags are not checked here.
pub fn split_gmk_mki(mki: &[u8]) -> Option<(KeyId, KeyId)> {
    let (gmk_id, guk_id) = mki.split_first_chunk::<4>()?;
    let guk_id: [u8; 4] = guk_id.try_into().ok()?;
    Some((KeyId::from_bytes(*gmk_id), KeyId::from_bytes(guk_id)))
}

/// The KEMAC keys of RFC 3830 4.1.4 derived from a pre-shared key.
pub struct KemacKeys {
    /// Encryption key (AES-CM-128: 16 octets).
    pub encr: Zeroizing<[u8; 16]>,
    /// Authentication key (HMAC-SHA-256-256: 32 octets).
    pub auth: Zeroizing<[u8; 32]>,
    /// Salting key (AES-CM: 112 bits).
    pub salt: Zeroizing<[u8; 14]>,
}

/// RFC 3830 4.1.4 with PRF-HMAC-SHA-256: `label = const || 0xFF || CSB ID || RAND`.
pub fn kemac_keys(psk: &[u8], csb_id: u32, rand: &[u8]) -> KemacKeys {
    let mut k = KemacKeys {
        encr: Zeroizing::new([0; 16]),
        auth: Zeroizing::new([0; 32]),
        salt: Zeroizing::new([0; 14]),
    };
    mikey_prf(
        psk,
        &tek_label(ENCR_KEY_CONST, 0xff, csb_id, rand),
        k.encr.as_mut(),
    );
    mikey_prf(
        psk,
        &tek_label(AUTH_KEY_CONST, 0xff, csb_id, rand),
        k.auth.as_mut(),
    );
    mikey_prf(
        psk,
        &tek_label(SALT_KEY_CONST, 0xff, csb_id, rand),
        k.salt.as_mut(),
    );
    k
}

/// HMAC-SHA-256 (the KEMAC MAC, HMAC-SHA-256-256 of RFC 6043).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = hmac(key);
    m.update(data);
    m.finalize().into_bytes().into()
}

/// TS 33.180 F.1.3: the GUK-ID of `user_uri` for a GMK:
/// `GUK-ID = GMK-ID XOR (28 least significant bits of KDF(GMK, 0x50, user URI))`.
/// The same operation maps a GUK-ID back to the GMK-ID.
pub fn guk_id(gmk: &Gmk, gmk_id: KeyId, user_uri: &str) -> KeyId {
    let k = kdf_33220(gmk.as_bytes(), FC_GUK_ID, &[user_uri.as_bytes()]);
    let salt = u32::from_be_bytes([k[28], k[29], k[30], k[31]]) & 0x0fff_ffff;
    KeyId(gmk_id.0 ^ salt)
}

/// TS 33.180 F.1.5: `DPCK = 128 least significant bits of KDF(DPPK, 0x53, DPPK-ID)`.
pub fn dpck(dppk: &[u8], dppk_id: u32) -> Zeroizing<[u8; 16]> {
    let k = kdf_33220(dppk, FC_DPCK, &[&dppk_id.to_be_bytes()]);
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&k[16..]);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prf_output_spanning_blocks_matches_p_sha256() {
        // Independent check of the A(i) chain for a 40-octet output and a
        // 40-octet key (two key blocks XORed).
        let key: Vec<u8> = (0..40).collect();
        let label = b"label";
        let mut out = [0u8; 40];
        mikey_prf(&key, label, &mut out);
        let p = |s: &[u8]| {
            let a1 = hmac_sha256(s, label);
            let a2 = hmac_sha256(s, &a1);
            let mut o = hmac_sha256(s, &[a1.as_slice(), label].concat()).to_vec();
            o.extend_from_slice(&hmac_sha256(s, &[a2.as_slice(), label].concat()));
            o
        };
        let (p1, p2) = (p(&key[..32]), p(&key[32..]));
        let expect: Vec<u8> = p1.iter().zip(&p2).map(|(a, b)| a ^ b).take(40).collect();
        assert_eq!(out.to_vec(), expect);
    }
}
