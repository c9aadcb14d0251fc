//! `mcx srtp decrypt`: the SRTP voice streams of a capture, decrypted with
//! the keys of a call, written as WAV files a lab engineer can listen to.
//! And the key file `mcx demo --pcap FILE` writes next to its capture.
//!
//! A UDP datagram is taken for SRTP when it reads as RTP version 2 (not an
//! RTCP packet type, RFC 5761 4) and carries, where TS 33.180's profile
//! puts it (tag ‖ MKI ‖ ROC at the end: RCCm3 with the ROC in every
//! packet), the MKI of one of the keys. Streams are told apart by SSRC
//! and MKI. A relay forwards each packet unchanged to several legs, so a
//! capture holds identical copies: each is decrypted once and counted as
//! a copy; a changed copy is decrypted on its own and fails (or is a
//! replay).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mcx_mikey::{Gmk, KeyId, SrtpMasterKeys, Tgmk};
use mcx_srtp::{Config, MasterKey, Mki, Session};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::pcap::{self, Frame, NotUdp};

/// What the key file says about itself (it is the first thing in it).
const KEY_FILE_NOTE: &str = "SECRET: these keys decrypt the voice of the calls in the capture next to this file. Written by mcx demo --pcap for lab use; do not share it beyond the lab.";

/// The longest stream written, in samples (one hour at 8 kHz): a bound on
/// memory whatever timestamps an authenticated stream carries.
const MAX_SAMPLES: usize = 8000 * 3600;

/// The octets of the ROC that RCCm3 puts after the MKI in every packet.
const ROC_LEN: usize = 4;

/// The AEAD tag before the MKI.
const TAG_LEN: usize = mcx_srtp::TAG_LEN;

/// RTP fixed header.
const RTP_HEADER: usize = 12;

/// One master key to try, with where it came from.
pub(crate) struct LabKey {
    mki: Mki,
    key: MasterKey,
}

impl LabKey {
    /// From the keys a GMK or TGMK derives.
    pub(crate) fn from_master(keys: &SrtpMasterKeys) -> Result<Self, CliError> {
        Self::from_parts("key", keys.master_key(), keys.master_salt(), keys.mki())
    }

    fn from_parts(what: &str, key: &[u8], salt: &[u8], mki: &[u8]) -> Result<Self, CliError> {
        let invalid = |e: mcx_srtp::KeyRingError| CliError::invalid(what, e.to_string());
        let mki = Mki::new(mki).map_err(invalid)?;
        if mki.is_empty() {
            return Err(CliError::invalid(
                what,
                "an empty MKI: TS 33.180 media always carries the TGMK-ID or GMK-ID ‖ GUK-ID",
            ));
        }
        Ok(Self {
            mki,
            key: MasterKey::from_slices(key, salt).map_err(invalid)?,
        })
    }
}

/// One call's keys in the key file. Either `tgmk` and `rand` (with
/// `tgmk_id`), or `master_key`, `master_salt` and `mki`; `mcx demo` writes
/// the second form (the client shows the SRTP keys of a call, not the
/// TGMK and RAND they come from).
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyEntry {
    /// The call's temporary group (information only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) temporary_group: Option<String>,
    /// The TGMK-ID, 8 hex digits (the MKI of the call's SRTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tgmk_id: Option<String>,
    /// The TGMK, 32 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tgmk: Option<String>,
    /// The RAND of the wrapped-TGMK message, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rand: Option<String>,
    /// The SRTP MKI, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mki: Option<String>,
    /// The SRTP master key, 32 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) master_key: Option<String>,
    /// The SRTP master salt, 24 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) master_salt: Option<String>,
}

/// The key file: a note saying it holds secrets, and one entry per call.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyFile {
    /// [`KEY_FILE_NOTE`].
    pub(crate) note: String,
    /// The calls.
    pub(crate) calls: Vec<KeyEntry>,
}

impl KeyEntry {
    /// The entry `mcx demo` writes for a call.
    pub(crate) fn from_call(temporary_group: &str, tgmk_id: KeyId, keys: &SrtpMasterKeys) -> Self {
        Self {
            temporary_group: Some(temporary_group.to_owned()),
            tgmk_id: Some(tgmk_id.to_string()),
            mki: Some(hex::encode(keys.mki())),
            master_key: Some(hex::encode(keys.master_key())),
            master_salt: Some(hex::encode(keys.master_salt())),
            ..Self::default()
        }
    }

    fn key(&self, what: &str) -> Result<LabKey, CliError> {
        let field = |name: &str| format!("{what}: {name}");
        let hex = |name: &str, v: &str| crate::input::hex(&field(name), v);
        match (
            &self.tgmk,
            &self.rand,
            &self.master_key,
            &self.master_salt,
            &self.mki,
        ) {
            (Some(tgmk), Some(rand), None, None, _) => {
                let id = self
                    .tgmk_id
                    .as_deref()
                    .ok_or_else(|| CliError::invalid(what, "tgmk without tgmk_id"))?;
                tgmk_key(
                    &field("tgmk"),
                    tgmk,
                    &field("tgmk_id"),
                    id,
                    &hex("rand", rand)?,
                )
            }
            (None, None, Some(k), Some(s), Some(m)) => LabKey::from_parts(
                what,
                &hex("master_key", k)?,
                &hex("master_salt", s)?,
                &hex("mki", m)?,
            ),
            _ => Err(CliError::invalid(
                what,
                "give tgmk, tgmk_id and rand, or master_key, master_salt and mki",
            )),
        }
    }
}

/// Writes `calls` to `path` (mode 0600 where the OS has modes: it holds
/// secrets).
pub(crate) fn write_key_file(path: &Path, calls: Vec<KeyEntry>) -> Result<(), CliError> {
    use std::io::Write as _;
    let file = KeyFile {
        note: KEY_FILE_NOTE.to_owned(),
        calls,
    };
    let text = crate::output::json_text(&file)?;
    let write_err = |source| CliError::Write {
        path: path.display().to_string(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut f = options.open(path).map_err(write_err)?;
    f.write_all(text.as_bytes()).map_err(write_err)
}

/// The keys of a key file.
pub(crate) fn read_key_file(path: &Path) -> Result<Vec<LabKey>, CliError> {
    let name = path.display().to_string();
    let file: KeyFile = crate::input::read_json(&name)?;
    if file.calls.is_empty() {
        return Err(CliError::invalid(&name, "no calls"));
    }
    file.calls
        .iter()
        .enumerate()
        .map(|(i, c)| c.key(&format!("{name}: calls[{i}]")))
        .collect()
}

/// A TGMK-ID in hex (8 digits, optional `0x`).
fn key_id(what: &str, text: &str) -> Result<KeyId, CliError> {
    Ok(KeyId::from_bytes(crate::input::hex_array::<4>(what, text)?))
}

/// The SRTP keys a TGMK gives (SPEC section 6, as the clients derive them).
pub(crate) fn tgmk_key(
    tgmk_what: &str,
    tgmk: &str,
    id_what: &str,
    id: &str,
    rand: &[u8],
) -> Result<LabKey, CliError> {
    let bytes = zeroize::Zeroizing::new(crate::input::hex(tgmk_what, tgmk)?);
    let tgmk = Tgmk::from_bytes(&bytes).map_err(|e| CliError::invalid(tgmk_what, e.to_string()))?;
    let id = key_id(id_what, id)?;
    LabKey::from_master(&mcx_mikey::tgmk::srtp_keys(&tgmk, id, rand))
}

/// The SRTP keys a GMK gives (TS 33.180 7.4.2: MKI = GMK-ID ‖ GUK-ID).
pub(crate) fn gmk_key(
    gmk: &str,
    gmk_id: &str,
    guk_id: &str,
    rand: &[u8],
) -> Result<LabKey, CliError> {
    let bytes = zeroize::Zeroizing::new(crate::input::hex("--gmk", gmk)?);
    let gmk = Gmk::from_bytes(&bytes).map_err(|e| CliError::invalid("--gmk", e.to_string()))?;
    let keys = mcx_mikey::kdf::gmk_srtp_keys(
        &gmk,
        key_id("--gmk-id", gmk_id)?,
        key_id("--guk-id", guk_id)?,
        rand,
    );
    LabKey::from_master(&keys)
}

/// Keys from `--master-key`, `--master-salt`, `--mki`.
pub(crate) fn master_key(key: &str, salt: &str, mki: &str) -> Result<LabKey, CliError> {
    let key = zeroize::Zeroizing::new(crate::input::hex("--master-key", key)?);
    let salt = zeroize::Zeroizing::new(crate::input::hex("--master-salt", salt)?);
    LabKey::from_parts(
        "--master-key/--master-salt/--mki",
        &key,
        &salt,
        &crate::input::hex("--mki", mki)?,
    )
}

/// One SRTP stream (SSRC and MKI) of the capture.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    /// Datagrams of the stream, copies included.
    pub(crate) datagrams: u64,
    /// Datagrams identical to an earlier one (a relay's copies).
    pub(crate) copies: u64,
    /// Distinct packets.
    pub(crate) packets: u64,
    /// Packets that authenticated and decrypted.
    pub(crate) decrypted: u64,
    /// Packets that did not, by reason.
    pub(crate) failed: BTreeMap<String, u64>,
    /// Decrypted packets that are not PCMU (payload type 0), by type.
    pub(crate) not_pcmu: BTreeMap<u8, u64>,
    /// Decrypted packets whose timestamp lies outside the hour after the
    /// first one.
    pub(crate) out_of_range: u64,
    /// (source, destination) of the datagrams.
    pub(crate) legs: BTreeSet<(SocketAddr, SocketAddr)>,
    /// Decrypted PCMU: (SRTP index, RTP timestamp, payload).
    voice: Vec<(u64, u32, Vec<u8>)>,
}

impl Stream {
    /// Packets that failed, all reasons.
    pub(crate) fn failures(&self) -> u64 {
        self.failed.values().sum()
    }

    /// The audio: each packet's µ-law decoding placed by its RTP timestamp
    /// from the first packet's (by SRTP index); silence where nothing came.
    pub(crate) fn samples(&mut self) -> Vec<i16> {
        self.voice.sort_by_key(|v| v.0);
        let Some(&(_, first, _)) = self.voice.first() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut decoded = Vec::new();
        for (_, ts, payload) in &self.voice {
            let at = ts.wrapping_sub(first) as usize;
            if at.saturating_add(payload.len()) > MAX_SAMPLES {
                self.out_of_range += 1;
                continue;
            }
            decoded.clear();
            mcx_media::pcmu::decode_append(payload, &mut decoded);
            if out.len() < at + decoded.len() {
                out.resize(at + decoded.len(), 0);
            }
            out[at..at + decoded.len()].copy_from_slice(&decoded);
        }
        out
    }
}

/// What a capture held.
#[derive(Debug, Default)]
pub(crate) struct Decrypted {
    /// Frames in the file.
    pub(crate) frames: usize,
    /// UDP datagrams among them.
    pub(crate) udp: usize,
    /// Frames without a UDP datagram, by reason.
    pub(crate) not_udp: BTreeMap<NotUdp, usize>,
    /// Datagrams that read as RTP but carry none of the keys' MKIs.
    pub(crate) other_rtp: usize,
    /// The streams, by SSRC and MKI.
    pub(crate) streams: BTreeMap<(u32, Vec<u8>), Stream>,
}

/// Whether `p` reads as an RTP packet (version 2, not an RTCP type).
fn is_rtp(p: &[u8]) -> bool {
    p.len() >= RTP_HEADER && p[0] >> 6 == 2 && !(64..=95).contains(&(p[1] & 0x7f))
}

/// The keys to try: one session per MKI length, holding every key of
/// that length; the session finds the key by MKI and keeps each SSRC's
/// ROC and replay window.
struct Ring(BTreeMap<usize, (Session, Vec<Mki>)>);

impl Ring {
    fn new(keys: Vec<LabKey>) -> Result<Self, CliError> {
        let mut sessions: BTreeMap<usize, (Session, Vec<Mki>)> = BTreeMap::new();
        for k in keys {
            let len = k.mki.len();
            let entry = match sessions.entry(len) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    let session = Session::new(Config::ts33180(len).with_max_streams(1 << 16))
                        .map_err(|e| CliError::System(format!("SRTP session: {e}")))?;
                    v.insert((session, Vec::new()))
                }
            };
            if entry.1.contains(&k.mki) {
                continue;
            }
            entry
                .0
                .add_key(k.mki, k.key)
                .map_err(|e| CliError::System(format!("SRTP key {}: {e}", k.mki)))?;
            entry.1.push(k.mki);
        }
        Ok(Self(sessions))
    }

    /// The session and key whose MKI the RTP packet `p` carries where
    /// TS 33.180's profile puts it (tag ‖ MKI ‖ ROC at the end).
    fn find(&mut self, p: &[u8]) -> Option<(&mut Session, Mki)> {
        let csrcs = usize::from(p.first()? & 0x0f) * 4;
        self.0.iter_mut().find_map(|(&len, (session, mkis))| {
            let end = p.len().checked_sub(ROC_LEN)?;
            let start = end.checked_sub(len)?;
            if start < RTP_HEADER + csrcs + TAG_LEN {
                return None;
            }
            let mki = *mkis.iter().find(|m| m.as_bytes() == &p[start..end])?;
            Some((session, mki))
        })
    }
}

/// One SRTP packet given on the command line, decrypted.
#[derive(Debug, Serialize)]
pub(crate) struct OpenedPacket {
    /// RTP SSRC.
    pub(crate) ssrc: u32,
    /// RTP sequence number.
    pub(crate) sequence: u16,
    /// The SRTP packet index (ROC ‖ SEQ).
    pub(crate) index: u64,
    /// RTP payload type.
    pub(crate) payload_type: u8,
    /// The MKI that named the key, hex.
    pub(crate) mki: String,
    /// The RTP payload, hex.
    pub(crate) payload: String,
}

/// Decrypts SRTP packets in order with `keys` (one session, so each
/// SSRC's replay window applies across them); the error names the first
/// packet (counting from 1) that does not open.
pub(crate) fn decrypt_packets(
    packets: &[Vec<u8>],
    keys: Vec<LabKey>,
) -> Result<Vec<OpenedPacket>, CliError> {
    let mut ring = Ring::new(keys)?;
    packets
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let what = format!("packet {}", i + 1);
            if !is_rtp(p) {
                return Err(CliError::invalid(what, "not an RTP version 2 packet"));
            }
            let (session, _) = ring.find(p).ok_or_else(|| {
                CliError::invalid(
                    &what,
                    "carries none of the MKIs given (tag ‖ MKI ‖ ROC at its end)",
                )
            })?;
            let mut buf = p.clone();
            let u = session
                .unprotect_rtp(&mut buf)
                .map_err(|e| CliError::invalid(&what, e.to_string()))?;
            let rtp = buf.get(..u.len).unwrap_or_default();
            let r = mcx_media::rtp::Packet::parse(rtp)
                .map_err(|e| CliError::invalid(&what, format!("RTP: {e}")))?;
            Ok(OpenedPacket {
                ssrc: r.ssrc,
                sequence: r.sequence,
                index: u.index,
                payload_type: r.payload_type,
                mki: hex::encode(u.mki.as_bytes()),
                payload: hex::encode(r.payload),
            })
        })
        .collect()
}

/// Decrypts every SRTP stream in `frames` that one of `keys` opens.
pub(crate) fn decrypt(frames: &[Frame<'_>], keys: Vec<LabKey>) -> Result<Decrypted, CliError> {
    let mut out = Decrypted {
        frames: frames.len(),
        ..Decrypted::default()
    };
    let mut ring = Ring::new(keys)?;
    let mut seen: HashSet<&[u8]> = HashSet::new();
    for f in frames {
        let d = match pcap::udp(*f) {
            Ok(d) => d,
            Err(why) => {
                *out.not_udp.entry(why).or_default() += 1;
                continue;
            }
        };
        out.udp += 1;
        let p = d.payload;
        if !is_rtp(p) {
            continue;
        }
        let found = ring.find(p);
        let Some((session, mki)) = found else {
            out.other_rtp += 1;
            continue;
        };
        let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
        let s = out
            .streams
            .entry((ssrc, mki.as_bytes().to_vec()))
            .or_default();
        s.datagrams += 1;
        s.legs.insert((d.src, d.dst));
        if !seen.insert(p) {
            s.copies += 1;
            continue;
        }
        s.packets += 1;
        let mut buf = p.to_vec();
        match session.unprotect_rtp(&mut buf) {
            Ok(u) => {
                s.decrypted += 1;
                let rtp = buf.get(..u.len).unwrap_or_default();
                match mcx_media::rtp::Packet::parse(rtp) {
                    Ok(r) if r.payload_type == 0 => {
                        s.voice.push((u.index, r.timestamp, r.payload.to_vec()));
                    }
                    Ok(r) => *s.not_pcmu.entry(r.payload_type).or_default() += 1,
                    Err(e) => *s.failed.entry(format!("RTP: {e}")).or_default() += 1,
                }
            }
            Err(e) => *s.failed.entry(e.to_string()).or_default() += 1,
        }
    }
    Ok(out)
}

/// The file name of a stream's WAV: its SSRC, and its MKI too when the
/// SSRC occurs under several keys.
fn wav_name(d: &Decrypted, ssrc: u32, mki: &[u8]) -> String {
    let shared = d.streams.keys().filter(|(s, _)| *s == ssrc).count() > 1;
    if shared {
        format!("{ssrc:08x}-{}.wav", hex::encode(mki))
    } else {
        format!("{ssrc:08x}.wav")
    }
}

/// `mcx srtp decrypt`: reads `capture`, decrypts with `keys`, writes
/// `out/<ssrc>.wav` per stream with at least one decrypted packet and
/// returns the report to print. An error when nothing decrypted (a wrong
/// key, or a capture without the call): no WAV is written then.
pub(crate) fn run(capture: &Path, keys: Vec<LabKey>, out: &Path) -> Result<String, CliError> {
    use std::fmt::Write as _;
    let name = capture.display().to_string();
    let bytes = crate::input::read_bytes(&name)?;
    let frames = pcap::read(&bytes).map_err(|e| CliError::invalid(&name, e.to_string()))?;
    let mut d = decrypt(&frames, keys)?;
    let mut text = String::new();
    let not_udp: Vec<String> = d.not_udp.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(
        text,
        "capture {name}: frames={} udp={} not-udp={}{} other-rtp={} streams={}",
        d.frames,
        d.udp,
        d.frames - d.udp,
        if not_udp.is_empty() {
            String::new()
        } else {
            format!(" ({})", not_udp.join(", "))
        },
        d.other_rtp,
        d.streams.len()
    );
    let any = d.streams.values().any(|s| s.decrypted > 0);
    if any {
        std::fs::create_dir_all(out).map_err(|source| CliError::Write {
            path: out.display().to_string(),
            source,
        })?;
    }
    let ids: Vec<(u32, Vec<u8>)> = d.streams.keys().cloned().collect();
    for id in ids {
        let (ssrc, mki) = (id.0, hex::encode(&id.1));
        let file = wav_name(&d, ssrc, &id.1);
        let Some(s) = d.streams.get_mut(&id) else {
            continue;
        };
        let samples = s.samples();
        let written: Option<PathBuf> = if s.decrypted > 0 {
            let path = out.join(file);
            std::fs::write(&path, mcx_media::wav::write(&samples)).map_err(|source| {
                CliError::Write {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            Some(path)
        } else {
            None
        };
        let _ = write!(
            text,
            "stream ssrc={ssrc:08x} mki={mki} legs={} datagrams={} copies={} packets={} decrypted={} failed={} samples={} wav={}",
            s.legs.len(),
            s.datagrams,
            s.copies,
            s.packets,
            s.decrypted,
            s.failures(),
            samples.len(),
            written.map_or_else(|| "-".to_owned(), |p| p.display().to_string()),
        );
        for (why, n) in &s.failed {
            let _ = write!(text, " [{n} failed: {why}]");
        }
        for (pt, n) in &s.not_pcmu {
            let _ = write!(text, " [{n} not PCMU: payload type {pt}]");
        }
        if s.out_of_range > 0 {
            let _ = write!(text, " [{} beyond an hour: left out]", s.out_of_range);
        }
        text.push('\n');
    }
    if any {
        Ok(text)
    } else {
        crate::demo::print_now(&text);
        Err(CliError::System(if d.streams.is_empty() {
            format!("{name}: no SRTP packet carries the MKI of the keys given")
        } else {
            format!(
                "{name}: no packet decrypted: every SRTP packet with the keys' MKI failed (a wrong key?); no WAV written"
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn key_file_entries_take_one_form_or_the_other() {
        let both = KeyEntry {
            tgmk: Some("00".repeat(16)),
            rand: Some("01".repeat(16)),
            master_key: Some("00".repeat(16)),
            ..KeyEntry::default()
        };
        assert!(both.key("k").is_err());
        let master = KeyEntry {
            mki: Some("70000001".into()),
            master_key: Some("00".repeat(16)),
            master_salt: Some("00".repeat(12)),
            ..KeyEntry::default()
        };
        assert_eq!(master.key("k").unwrap().mki.as_bytes(), [0x70, 0, 0, 1]);
        let short_salt = KeyEntry {
            master_salt: Some("00".repeat(11)),
            ..master
        };
        let err = short_salt.key("k").err().unwrap().to_string();
        assert!(err.contains("master salt"), "{err}");
        let tgmk = KeyEntry {
            tgmk_id: Some("7000000a".into()),
            tgmk: Some("11".repeat(16)),
            rand: Some("22".repeat(16)),
            ..KeyEntry::default()
        };
        assert_eq!(tgmk.key("k").unwrap().mki.as_bytes(), [0x70, 0, 0, 0x0a]);
    }

    #[test]
    fn a_tgmk_and_rand_decrypt_our_senders_stream_with_relay_copies_a_loss_and_a_wrap() {
        let (tgmk_hex, id, ssrc) = ("00112233445566778899aabbccddeeff", 0x70ab_cdef, 0x1234_5678);
        let rand = [0x5a; 16];
        let tgmk = Tgmk::from_bytes(&hex::decode(tgmk_hex).unwrap()).unwrap();
        let voice = mcx_core::Voice {
            sending: true,
            ssrc: Some(ssrc),
            to: None,
            keys: mcx_mikey::tgmk::srtp_keys(&tgmk, KeyId(id), &rand),
        };
        // Sequence numbers wrap after the third packet: the ROC in each
        // packet (RCCm3) carries the index on.
        let mut sender = mcx_client::VoiceSender::with_start(&voice, ssrc, 65533, 1000).unwrap();
        let signal: Vec<i16> = (0..1600).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
        let mut datagrams = Vec::new();
        for (n, frame) in signal.chunks(160).enumerate() {
            let packet = sender.next_packet(frame).unwrap().to_vec();
            if n == 4 {
                continue;
            }
            // As a relay forwards it: twice, unchanged.
            datagrams.push(pcap::tests::ipv4_udp(&packet));
            datagrams.push(pcap::tests::ipv4_udp(&packet));
        }
        let frames: Vec<Frame<'_>> = datagrams
            .iter()
            .map(|data| Frame { link: 101, data })
            .collect();
        let key = tgmk_key("--tgmk", tgmk_hex, "--tgmk-id", "70abcdef", &rand).unwrap();
        let mut d = decrypt(&frames, vec![key]).unwrap();
        assert_eq!(d.udp, 18);
        let s = d
            .streams
            .get_mut(&(ssrc, id.to_be_bytes().to_vec()))
            .unwrap();
        assert_eq!(
            (s.datagrams, s.copies, s.packets, s.decrypted, s.failures()),
            (18, 9, 9, 9, 0)
        );
        let mut codes = vec![0u8; signal.len()];
        mcx_media::pcmu::encode(&signal, &mut codes);
        let mut expected = Vec::new();
        mcx_media::pcmu::decode_append(&codes, &mut expected);
        expected[640..800].fill(0);
        assert_eq!(s.samples(), expected);

        // The same packets under another TGMK: found by MKI, none opens.
        let wrong = tgmk_key("--tgmk", &"ff".repeat(16), "--tgmk-id", "70abcdef", &rand).unwrap();
        let d = decrypt(&frames, vec![wrong]).unwrap();
        let s = &d.streams[&(ssrc, id.to_be_bytes().to_vec())];
        assert_eq!((s.packets, s.decrypted, s.failures()), (9, 0, 9));
        // Another TGMK-ID: not this stream at all.
        let other = tgmk_key("--tgmk", tgmk_hex, "--tgmk-id", "70abcdee", &rand).unwrap();
        let d = decrypt(&frames, vec![other]).unwrap();
        assert!(d.streams.is_empty());
        assert_eq!(d.other_rtp, 18);
    }

    #[test]
    fn a_gmk_gives_the_mki_gmk_id_then_guk_id() {
        let k = gmk_key(&"11".repeat(16), "10000001", "20000002", &[1; 16]).unwrap();
        assert_eq!(k.mki.as_bytes(), [0x10, 0, 0, 1, 0x20, 0, 0, 2]);
    }

    #[test]
    fn samples_are_placed_by_timestamp_with_silence_for_gaps() {
        let mut s = Stream {
            voice: vec![(2, 1160, vec![0x80; 2]), (0, 1000, vec![0x80; 80])],
            ..Stream::default()
        };
        let samples = s.samples();
        assert_eq!(samples.len(), 162);
        let loud = mcx_media::pcmu::decode(&[0x80], &mut [0i16; 1]);
        assert_eq!(loud, 1);
        assert!(
            samples[80..160].iter().all(|&x| x == 0),
            "a lost packet is silence"
        );
        assert_eq!(samples[0], samples[160]);
        assert_ne!(samples[0], 0);
    }
}
