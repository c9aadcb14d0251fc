//! Receiver statistics and playout against Wireshark's RTP analysis.
//!
//! Each test builds a PCMU stream with our [`Packetizer`], decides per
//! packet whether it is lost, duplicated or reordered and when it arrives,
//! writes what "arrives" as a libpcap file (Ethernet/IPv4/UDP), and feeds
//! the same packets at the same times to [`ReceiverStats`] and
//! [`Playout`]. Then `tshark -q -z rtp,streams` reads the pcap, and its
//! packet count, lost count and mean/max jitter are compared with ours.
//!
//! Definitions (Wireshark 4.0 `ui/tap-rtp-analysis.c`, `tap-rtp-common.c`):
//! - Lost = expected − received, expected running from the first packet's
//!   sequence number to the last *arrived* packet's (with wrap cycles);
//!   received includes duplicates. RFC 3550 A.3 uses the highest sequence
//!   number instead of the last arrived, so the streams end in order.
//! - Jitter is RFC 3550 A.8's estimator in milliseconds, with arrival
//!   times in exact milliseconds rather than A.8's whole timestamp units.
//!   Arrival times here are multiples of 125 µs (one 8 kHz unit), where
//!   the two agree. Current Wireshark sources compare a reordered packet
//!   with the last *in-order* packet while A.8 compares it with the
//!   previous arrival, and leave reordered packets out of max/mean; so
//!   jitter is asserted only for the stream without reordering. (With
//!   Debian 12's tshark 4.0.17 the reordered stream's figures agree too;
//!   that test logs both.)
//! - Max/mean jitter: over the packets after the first (tshark prints
//!   three decimals).
//!
//! Skipped, with a message, when tshark is not installed.

use std::process::Command;
use std::time::{Duration, Instant};

use mcx_media::rtp::{FRAME_SAMPLES, Packet, Packetizer};
use mcx_media::{Placement, Playout, ReceiverStats, pcmu, signal};

const SSRC: u32 = 0x4D43_5054;
const PORT: u16 = 40_002;

/// splitmix64, for reproducible jitter and a reproducible RNG.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
impl rand_core::TryRng for SplitMix {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.next() as u32)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next())
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

/// A minimal libpcap writer: Ethernet, IPv4 (with header checksum), UDP
/// (checksum 0, "not computed", valid for IPv4), microsecond timestamps.
struct Pcap(Vec<u8>);
impl Pcap {
    fn new() -> Self {
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&[0; 8]); // thiszone, sigfigs
        b.extend_from_slice(&65_535u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        Self(b)
    }

    fn udp(&mut self, micros: u64, payload: &[u8]) {
        let udp_len = 8 + payload.len();
        let ip_len = 20 + udp_len;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        let sum: u32 = ip
            .chunks_exact(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        let sum = (sum & 0xFFFF) + (sum >> 16);
        ip[10..12].copy_from_slice(&(!((sum & 0xFFFF) + (sum >> 16)) as u16).to_be_bytes());
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&40_000u16.to_be_bytes());
        frame.extend_from_slice(&PORT.to_be_bytes());
        frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(payload);
        self.0
            .extend_from_slice(&((micros / 1_000_000) as u32).to_le_bytes());
        self.0
            .extend_from_slice(&((micros % 1_000_000) as u32).to_le_bytes());
        self.0
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.0
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.0.extend_from_slice(&frame);
    }
}

/// tshark's row for our stream: (packets, lost, mean jitter ms, max jitter ms).
fn tshark_stream(pcap: &[u8], name: &str) -> Option<(u64, i64, f64, f64)> {
    if Command::new("tshark").arg("--version").output().is_err() {
        eprintln!(
            "SKIPPED: tshark is not installed (apt-get install tshark); not comparing with Wireshark"
        );
        return None;
    }
    let path = std::env::temp_dir().join(format!("mcx-media-{name}-{}.pcap", std::process::id()));
    std::fs::write(&path, pcap).expect("write pcap");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args([
            "-d",
            &format!("udp.port=={PORT},rtp"),
            "-q",
            "-z",
            "rtp,streams",
        ])
        .output()
        .expect("tshark runs");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let ssrc = format!("0x{SSRC:08X}");
    let row = text
        .lines()
        .find(|l| l.contains(&ssrc))
        .unwrap_or_else(|| panic!("no stream {ssrc} in tshark output:\n{text}"));
    eprintln!("tshark: {row}");
    // ... SSRC Payload Pkts Lost (pct) MinDelta MeanDelta MaxDelta MinJitter MeanJitter MaxJitter [X]
    let f: Vec<&str> = row.split_whitespace().collect();
    let at = f.iter().position(|&t| t == ssrc).expect("ssrc column");
    let num = |i: usize| -> f64 {
        f[at + i]
            .parse()
            .unwrap_or_else(|_| panic!("column {i} of {row}"))
    };
    Some((num(2) as u64, num(3) as i64, num(9), num(10)))
}

/// One packet as it arrives: index into the sent frames, arrival in µs.
struct Arrive {
    frame: usize,
    micros: u64,
}

struct Run {
    pcap: Vec<u8>,
    stats: ReceiverStats,
    playout: Playout,
    placements: Vec<Placement>,
    sent_pcm: Vec<i16>,
}

/// Sends `frames` 20 ms frames of the test signal, delivers `arrivals`.
fn run(frames: usize, mut tx: Packetizer, arrivals: &[Arrive], delay: Duration) -> Run {
    let source: Vec<i16> = signal::test_signal()
        .into_iter()
        .cycle()
        .take(frames * FRAME_SAMPLES)
        .collect();
    let packets: Vec<Vec<u8>> = source
        .chunks_exact(FRAME_SAMPLES)
        .map(|pcm| {
            let mut buf = [0u8; 12 + FRAME_SAMPLES];
            let n = tx.packetize(pcm, &mut buf).expect("fits");
            buf[..n].to_vec()
        })
        .collect();
    let t0 = Instant::now();
    let mut pcap = Pcap::new();
    let mut stats = ReceiverStats::new(8000);
    let mut playout = Playout::new(delay);
    let mut placements = Vec::new();
    for a in arrivals {
        let bytes = &packets[a.frame];
        pcap.udp(a.micros, bytes);
        let at = t0 + Duration::from_micros(a.micros);
        let p = Packet::parse(bytes).expect("our packet parses");
        stats.record(at, p.sequence, p.timestamp);
        placements.push(playout.push(at, p.timestamp, p.payload));
    }
    playout.finish();
    Run {
        pcap: pcap.0,
        stats,
        playout,
        placements,
        sent_pcm: source
            .iter()
            .map(|&s| pcmu::decode_sample(pcmu::encode_sample(s)))
            .collect(),
    }
}

/// The expected recording: the µ-law decoding of what was sent, silence
/// for frames that were not played.
fn expected_recording(sent: &[i16], played: &[bool]) -> Vec<i16> {
    let last = played.iter().rposition(|&p| p).map_or(0, |i| i + 1);
    let mut out = Vec::new();
    for (i, frame) in sent.chunks_exact(FRAME_SAMPLES).take(last).enumerate() {
        if played[i] {
            out.extend_from_slice(frame);
        } else {
            out.extend_from_slice(&[0; FRAME_SAMPLES]);
        }
    }
    out
}

#[test]
fn loss_and_jitter_match_tshark() {
    // 10 s of 20 ms frames, starting near the sequence number and
    // timestamp wraps so that both wrap mid-stream.
    const FRAMES: usize = 500;
    let mut rng = SplitMix(7);
    let lost = |i: usize| i % 37 == 5 || (200..206).contains(&i);
    let arrivals: Vec<Arrive> = (0..FRAMES)
        .filter(|&i| !lost(i))
        .map(|i| Arrive {
            frame: i,
            // 20 ms spacing plus 0 to 15 ms of network delay in 125 µs
            // units: never reorders (successive arrivals stay >= 5 ms apart).
            micros: 20_000 * i as u64 + 125 * (rng.next() % 120),
        })
        .collect();
    let tx = Packetizer::new(SSRC, 65_300, u32::MAX - 40_000);
    let r = run(FRAMES, tx, &arrivals, Duration::from_millis(40));
    let ours = r.stats.snapshot();
    let dropped = (0..FRAMES).filter(|&i| lost(i)).count() as i64;
    assert_eq!(ours.lost, dropped);
    assert_eq!(ours.received, arrivals.len() as u64);
    assert_eq!(ours.expected, FRAMES as u64);
    assert_eq!(ours.extended_highest, 65_300 + FRAMES as u64 - 1);
    assert!(ours.mean_jitter_ms > 0.5, "jitter {ours:?}");

    // Playout: nothing late with 40 ms of delay; the recording is what was
    // sent, with silence where frames were lost.
    assert!(r.placements.iter().all(|&p| p == Placement::Buffered));
    let played: Vec<bool> = (0..FRAMES).map(|i| !lost(i)).collect();
    let mut playout = r.playout;
    assert_eq!(
        playout.take_samples(),
        expected_recording(&r.sent_pcm, &played)
    );
    assert_eq!(
        playout.stats().concealed_samples,
        dropped as u64 * FRAME_SAMPLES as u64
    );

    let Some((pkts, t_lost, t_mean, t_max)) = tshark_stream(&r.pcap, "jitter") else {
        return;
    };
    eprintln!("ours: {ours:?}");
    assert_eq!(pkts, ours.received);
    assert_eq!(t_lost, ours.lost);
    assert!(
        (t_max - ours.max_jitter_ms).abs() <= 0.0005,
        "max jitter: tshark {t_max}, ours {}",
        ours.max_jitter_ms
    );
    assert!(
        (t_mean - ours.mean_jitter_ms).abs() <= 0.0005,
        "mean jitter: tshark {t_mean}, ours {}",
        ours.mean_jitter_ms
    );
}

#[test]
fn reordering_duplicates_and_late_packets_match_tshark() {
    const FRAMES: usize = 300;
    let delay = Duration::from_millis(60);
    let mut arrivals = Vec::new();
    let mut late_frames = Vec::new();
    let mut lost_frames = Vec::new();
    for i in 0..FRAMES {
        let t = 20_000 * i as u64 + 2_000;
        match i % 50 {
            // Lost.
            7 => lost_frames.push(i),
            // Swapped with the next frame (25 ms later): reordered within the delay.
            10 => arrivals.push(Arrive {
                frame: i,
                micros: t + 25_000,
            }),
            // Duplicated 3 ms later.
            20 => {
                arrivals.push(Arrive {
                    frame: i,
                    micros: t,
                });
                arrivals.push(Arrive {
                    frame: i,
                    micros: t + 3_000,
                });
            }
            // 150 ms late: later frames have been played out by then.
            30 => {
                late_frames.push(i);
                arrivals.push(Arrive {
                    frame: i,
                    micros: t + 150_000,
                });
            }
            _ => arrivals.push(Arrive {
                frame: i,
                micros: t,
            }),
        }
    }
    arrivals.sort_by_key(|a| a.micros);
    // The stream ends in order, so "last arrived" (tshark) = "highest" (RFC).
    assert_eq!(arrivals.last().map(|a| a.frame), Some(FRAMES - 1));
    let tx = Packetizer::with_rng(SSRC, &mut SplitMix(42));
    let r = run(FRAMES, tx, &arrivals, delay);
    let ours = r.stats.snapshot();
    let n_blocks = (FRAMES / 50) as u64;
    assert_eq!(ours.received, arrivals.len() as u64);
    assert_eq!(ours.duplicates, n_blocks);
    // Swapped frames and 150 ms-late frames arrive after a higher number.
    assert_eq!(ours.reordered, 2 * n_blocks);
    // Lost counts duplicates as received (A.3): lost frames minus duplicates.
    assert_eq!(ours.lost, lost_frames.len() as i64 - n_blocks as i64);

    let mut playout = r.playout;
    let st = playout.stats();
    assert_eq!(st.late, late_frames.len() as u64);
    assert_eq!(st.duplicates, n_blocks);
    let played: Vec<bool> = (0..FRAMES)
        .map(|i| !lost_frames.contains(&i) && !late_frames.contains(&i))
        .collect();
    assert_eq!(
        playout.take_samples(),
        expected_recording(&r.sent_pcm, &played)
    );

    let Some((pkts, t_lost, t_mean, t_max)) = tshark_stream(&r.pcap, "reorder") else {
        return;
    };
    eprintln!("ours: {ours:?}");
    eprintln!(
        "jitter (definitions differ for reordered packets): tshark mean {t_mean} max {t_max}, ours mean {:.3} max {:.3}",
        ours.mean_jitter_ms, ours.max_jitter_ms
    );
    assert_eq!(pkts, ours.received);
    assert_eq!(t_lost, ours.lost);
}
