//! Voice of a temporary group – broadcast call (issue 10 point 2): G.711
//! PCMU in 20 ms RTP packets, SRTP-protected under the call's keys
//! (AEAD_AES_128_GCM, MKI = TGMK-ID, ROC in every packet by RCCm3: TS
//! 33.180 7.4 and its default security policy).
//!
//! ```text
//!  VoiceSender:   8 kHz i16 ─Packetizer (PCMU, 20 ms)─▶ RTP ─protect_rtp─▶ SRTP ─▶ send_voice ─▶ socket
//!  VoiceReceiver: socket ─▶ receive_voice ─▶ SSRC check ─unprotect_rtp─▶ RTP ─mcx_media::Receiver─▶ 8 kHz i16
//! ```
//!
//! [`VoiceSender`] and [`VoiceReceiver`] are sans-IO: bytes, samples and
//! arrival times in, bytes, samples and counters out. [`send_voice`] and
//! [`receive_voice`] are the thin tokio adapters that pace, read the clock
//! and touch the socket.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcx_core::Voice;
use mcx_media::rtp::{FRAME_SAMPLES, HEADER_LEN, Packetizer};
use mcx_srtp::{Config, MasterKey, Mki, Session};
use rand_core::Rng;
use tokio::net::UdpSocket;
use tokio::time::{MissedTickBehavior, timeout_at};

/// Octets of the SRTP trailer RCCm3 adds after the MKI (RFC 4771 3.3).
const ROC_LEN: usize = 4;

/// Largest SRTP voice packet: RTP header, one 20 ms PCMU frame, GCM tag,
/// the longest MKI and the RCCm3 ROC.
pub const MAX_VOICE_PACKET: usize =
    HEADER_LEN + FRAME_SAMPLES + mcx_srtp::TAG_LEN + Mki::MAX_LEN + ROC_LEN;

/// Receive buffer of [`receive_voice`]: larger than any voice packet, so a
/// longer datagram is seen whole (and refused) rather than cut short.
const RECV_BUFFER: usize = 2048;

/// The playout delay of [`VoiceReceiver::new`]: the jitter allowance on a
/// LAN (mcx-media's guidance: 60 ms on a LAN, 100–200 ms over radio).
pub const DEFAULT_PLAYOUT_DELAY: Duration = Duration::from_millis(60);

/// What went wrong setting up or running voice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VoiceError {
    /// A [`VoiceSender`] was asked for on a call where this client only
    /// receives (a broadcast call has one sender, its initiator).
    #[error(
        "this client does not send on this call (a broadcast call's only sender is its initiator)"
    )]
    NotSender,
    /// The call's keys do not fit an SRTP session (an MKI over 8 octets).
    #[error("the call's SRTP keys were refused: {0}")]
    Keys(mcx_srtp::Error),
    /// A frame handed to [`VoiceSender::next_packet`] is longer than 20 ms.
    #[error("frame of {samples} samples; a packet carries at most {max} (20 ms at 8 kHz)")]
    FrameTooLong {
        /// Samples handed in.
        samples: usize,
        /// [`FRAME_SAMPLES`].
        max: usize,
    },
    /// SRTP refused to protect (for instance the key's packet limit or
    /// the ROC is used up: the call needs a new TGMK).
    #[error("SRTP protect: {0}")]
    Protect(mcx_srtp::Error),
    /// RTP packetization failed (cannot happen with this module's buffer
    /// and frame sizes; kept typed rather than panicking).
    #[error("RTP: {0}")]
    Rtp(#[from] mcx_media::rtp::RtpError),
    /// The socket failed.
    #[error("voice socket: {0}")]
    Io(#[from] std::io::Error),
}

/// A fresh SRTP session holding the call's master key under its MKI, in
/// the TS 33.180 profile (RCCm3, ROC in every packet).
fn srtp_session(voice: &Voice) -> Result<Session, VoiceError> {
    let keys = &voice.keys;
    let mki = Mki::new(keys.mki()).map_err(|e| VoiceError::Keys(mcx_srtp::Error::KeyRing(e)))?;
    let mut session = Session::new(Config::ts33180(mki.len())).map_err(VoiceError::Keys)?;
    session
        .add_key(mki, MasterKey::new(*keys.master_key(), *keys.master_salt()))
        .map_err(VoiceError::Keys)?;
    Ok(session)
}

// ------------------------------------------------------------------ sender

/// What a [`VoiceSender`] has produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderStats {
    /// SRTP packets made.
    pub packets: u64,
    /// Their octets (RTP header, payload and SRTP trailer).
    pub octets: u64,
    /// PCMU payload octets (= samples sent, silence padding included).
    pub payload_octets: u64,
}

/// The initiator's voice stream (sans-IO): one 20 ms frame of 8 kHz
/// samples in, one SRTP packet out.
///
/// ```
/// # fn demo(voice: &mcx_core::Voice, rng: &mut impl rand_core::Rng) -> Result<(), mcx_client::VoiceError> {
/// use mcx_client::VoiceSender;
/// let mut tx = VoiceSender::new(voice, rng)?;
/// for frame in mcx_media::signal::test_signal().chunks(160) {
///     let packet: &[u8] = tx.next_packet(frame)?;
///     // socket.send_to(packet, relay)
/// #   let _ = packet;
/// }
/// # Ok(()) }
/// ```
pub struct VoiceSender {
    srtp: Session,
    packetizer: Packetizer,
    buf: [u8; MAX_VOICE_PACKET],
    stats: SenderStats,
}

impl fmt::Debug for VoiceSender {
    // The session holds keys: show only the stream's identity.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoiceSender")
            .field("ssrc", &format_args!("{:#010x}", self.packetizer.ssrc()))
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl VoiceSender {
    /// The sender of `voice` (which must be [`Voice::sending`]): the SSRC
    /// the SDP announced (a random one if it announced none) and, as RFC
    /// 3550 5.1 asks, a random initial sequence number and timestamp from
    /// `rng`.
    ///
    /// # Errors
    /// [`VoiceError::NotSender`], [`VoiceError::Keys`].
    pub fn new<R: Rng + ?Sized>(voice: &Voice, rng: &mut R) -> Result<Self, VoiceError> {
        let ssrc = voice.ssrc.unwrap_or_else(|| rng.next_u32());
        let packetizer = Packetizer::with_rng(ssrc, rng);
        Self::with_packetizer(voice, packetizer)
    }

    /// As [`Self::new`] with a given SSRC, initial sequence number and
    /// timestamp (tests and lab replays; a live call uses [`Self::new`]).
    ///
    /// # Errors
    /// As [`Self::new`].
    pub fn with_start(
        voice: &Voice,
        ssrc: u32,
        initial_sequence: u16,
        initial_timestamp: u32,
    ) -> Result<Self, VoiceError> {
        Self::with_packetizer(
            voice,
            Packetizer::new(ssrc, initial_sequence, initial_timestamp),
        )
    }

    fn with_packetizer(voice: &Voice, packetizer: Packetizer) -> Result<Self, VoiceError> {
        if !voice.sending {
            return Err(VoiceError::NotSender);
        }
        Ok(Self {
            srtp: srtp_session(voice)?,
            packetizer,
            buf: [0; MAX_VOICE_PACKET],
            stats: SenderStats::default(),
        })
    }

    /// The next SRTP packet, carrying `frame` (at most [`FRAME_SAMPLES`]
    /// samples; a shorter one, the end of the audio, is padded with
    /// silence so every packet covers 20 ms). The first packet has the
    /// marker bit (RFC 3551 4.1).
    ///
    /// # Errors
    /// [`VoiceError::FrameTooLong`] (nothing used up), or
    /// [`VoiceError::Protect`]: SRTP refused the packet after it was
    /// numbered, so its sequence number is skipped and receivers count one
    /// lost packet. Failed calls are not counted in [`SenderStats`].
    pub fn next_packet(&mut self, frame: &[i16]) -> Result<&[u8], VoiceError> {
        let rtp_len = match frame.len() {
            FRAME_SAMPLES => self.packetizer.packetize(frame, &mut self.buf)?,
            n if n < FRAME_SAMPLES => {
                let mut padded = [0i16; FRAME_SAMPLES];
                padded[..n].copy_from_slice(frame);
                self.packetizer.packetize(&padded, &mut self.buf)?
            }
            samples => {
                return Err(VoiceError::FrameTooLong {
                    samples,
                    max: FRAME_SAMPLES,
                });
            }
        };
        let len = self
            .srtp
            .protect_rtp(&mut self.buf, rtp_len)
            .map_err(VoiceError::Protect)?;
        self.stats.packets += 1;
        self.stats.octets += len as u64;
        self.stats.payload_octets += (rtp_len - HEADER_LEN) as u64;
        Ok(&self.buf[..len])
    }

    /// How many packets `samples` make (the last one padded).
    pub fn packet_count(samples: usize) -> usize {
        samples.div_ceil(FRAME_SAMPLES)
    }

    /// The SSRC of the stream.
    pub fn ssrc(&self) -> u32 {
        self.packetizer.ssrc()
    }

    /// The sequence number of the next packet.
    pub fn next_sequence(&self) -> u16 {
        self.packetizer.next_sequence()
    }

    /// The RTP timestamp of the next packet.
    pub fn next_timestamp(&self) -> u32 {
        self.packetizer.next_timestamp()
    }

    /// What has been sent.
    pub fn stats(&self) -> SenderStats {
        self.stats
    }
}

// ---------------------------------------------------------------- receiver

/// Why [`VoiceReceiver::handle`] dropped a datagram. Each kind is counted
/// in [`VoiceReport`]; none is fatal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VoiceDrop {
    /// Not an SRTP packet with this profile's trailer (too short, not RTP
    /// version 2, too long).
    #[error("not an SRTP packet: {0}")]
    Malformed(mcx_srtp::Error),
    /// From an SSRC other than the call's voice stream.
    #[error("SSRC {got:#010x}, the call's voice is {expected:#010x}")]
    OtherSource {
        /// The SSRC the SDP announced.
        expected: u32,
        /// The packet's.
        got: u32,
    },
    /// No key of this call authenticates it: the tag did not verify, or
    /// its MKI names no key we hold (a different TGMK). Deliberately says
    /// no more than that.
    #[error("authentication failed")]
    Unauthenticated,
    /// An SRTP index already received, or behind the replay window.
    #[error("replayed: {0}")]
    Replayed(mcx_srtp::Error),
    /// Authenticated, but not a PCMU packet of the stream (mcx-media's
    /// check).
    #[error("not the call's voice: {0}")]
    NotVoice(#[from] mcx_media::ReceiveError),
    /// SRTP could not take the packet although it may be genuine (too many
    /// streams, an index space used up).
    #[error("SRTP: {0}")]
    Srtp(mcx_srtp::Error),
}

/// The per-member figures `mcx demo` prints (issue 10), with the details
/// behind them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiceReport {
    /// Datagrams handed to [`VoiceReceiver::handle`].
    pub received: u64,
    /// Of these, SRTP packets that authenticated (unprotect OK).
    pub authenticated: u64,
    /// Failed authentication: bad tag, or an MKI of keys we do not hold.
    pub auth_failed: u64,
    /// Not SRTP at all.
    pub malformed: u64,
    /// From another SSRC than the announced one (dropped before
    /// decryption).
    pub other_source: u64,
    /// Replays and packets behind the SRTP replay window.
    pub replayed: u64,
    /// Refused after authentication (not PCMU, another SSRC when none was
    /// announced) or not trackable by SRTP ([`VoiceDrop::NotVoice`],
    /// [`VoiceDrop::Srtp`]).
    pub refused: u64,
    /// Packets lost (RFC 3550 A.3: expected − received; negative with
    /// duplicates).
    pub lost: i64,
    /// Packets that came after their place in the playout was played.
    pub late: u64,
    /// Interarrival jitter at the end, milliseconds (RFC 3550 A.8).
    pub jitter_ms: f64,
    /// Highest jitter seen, milliseconds.
    pub max_jitter_ms: f64,
    /// The RTP timestamp of the first sample played out: where this
    /// member's recording starts in the sender's timeline (a late joiner's
    /// starts mid-stream).
    pub first_timestamp: Option<u32>,
    /// mcx-media's full figures for the stream.
    pub stream: mcx_media::Report,
}

impl fmt::Display for VoiceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {}, authenticated {}, failed authentication {}, lost {}, late {}, jitter {:.2} ms (max {:.2} ms)",
            self.received,
            self.authenticated,
            self.auth_failed,
            self.lost,
            self.late,
            self.jitter_ms,
            self.max_jitter_ms
        )
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    received: u64,
    authenticated: u64,
    auth_failed: u64,
    malformed: u64,
    other_source: u64,
    replayed: u64,
    refused: u64,
}

/// A member's voice stream (sans-IO): SRTP datagrams and their arrival
/// times in, 8 kHz samples and a [`VoiceReport`] out.
///
/// Every packet carries its ROC (RCCm3), so a member that joins mid-call
/// decrypts from the first packet it gets. Datagrams that are not the
/// call's voice are counted and dropped.
pub struct VoiceReceiver {
    srtp: Session,
    media: mcx_media::Receiver,
    expected_ssrc: Option<u32>,
    scratch: Vec<u8>,
    last_arrival: Option<Instant>,
    counters: Counters,
    arrivals: ArrivalLog,
}

/// The opt-in log of [`VoiceReceiver::record_arrivals`]: bounded, so a
/// receiver that is never drained cannot grow without limit.
#[derive(Debug, Default)]
struct ArrivalLog {
    cap: usize,
    entries: Vec<(u16, Instant)>,
}

impl fmt::Debug for VoiceReceiver {
    // The session holds keys: show only the stream's identity and counts.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VoiceReceiver")
            .field("expected_ssrc", &self.expected_ssrc)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl VoiceReceiver {
    /// The receiver of `voice` with [`DEFAULT_PLAYOUT_DELAY`].
    ///
    /// # Errors
    /// [`VoiceError::Keys`].
    pub fn new(voice: &Voice) -> Result<Self, VoiceError> {
        Self::with_playout_delay(voice, DEFAULT_PLAYOUT_DELAY)
    }

    /// The receiver of `voice` whose playout holds packets `delay`.
    ///
    /// # Errors
    /// [`VoiceError::Keys`].
    pub fn with_playout_delay(voice: &Voice, delay: Duration) -> Result<Self, VoiceError> {
        Ok(Self {
            srtp: srtp_session(voice)?,
            media: mcx_media::Receiver::new(delay),
            expected_ssrc: voice.ssrc,
            scratch: Vec::with_capacity(RECV_BUFFER),
            last_arrival: None,
            counters: Counters::default(),
            arrivals: ArrivalLog::default(),
        })
    }

    /// Handles one datagram that arrived at `arrival`: SSRC check (when
    /// the SDP announced one), SRTP unprotect, then statistics and
    /// playout. A dropped datagram changes nothing but its counter.
    ///
    /// # Errors
    /// [`VoiceDrop`]: why the datagram was dropped.
    pub fn handle(&mut self, arrival: Instant, datagram: &[u8]) -> Result<(), VoiceDrop> {
        self.counters.received += 1;
        let r = self.accept(arrival, datagram);
        let c = &mut self.counters;
        match &r {
            Ok(()) => {}
            Err(VoiceDrop::Malformed(_)) => c.malformed += 1,
            Err(VoiceDrop::OtherSource { .. }) => c.other_source += 1,
            Err(VoiceDrop::Unauthenticated) => c.auth_failed += 1,
            Err(VoiceDrop::Replayed(_)) => c.replayed += 1,
            Err(VoiceDrop::NotVoice(_) | VoiceDrop::Srtp(_)) => c.refused += 1,
        }
        r
    }

    fn accept(&mut self, arrival: Instant, datagram: &[u8]) -> Result<(), VoiceDrop> {
        // The SSRC is in the clear (RFC 3550 5.1, octets 8..12): refuse
        // another source before spending a decryption on it.
        if let (Some(expected), Some(s)) = (self.expected_ssrc, datagram.get(8..12)) {
            let got = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
            if got != expected {
                return Err(VoiceDrop::OtherSource { expected, got });
            }
        }
        // Unprotect works in place; the caller's datagram stays as it was.
        self.scratch.clear();
        self.scratch.extend_from_slice(datagram);
        let got = match self.srtp.unprotect_rtp(&mut self.scratch) {
            Ok(got) => got,
            Err(e) => return Err(classify(e)),
        };
        self.counters.authenticated += 1;
        self.last_arrival = Some(arrival);
        self.media
            .handle(arrival, &self.scratch[..got.len])
            .map_err(VoiceDrop::NotVoice)?;
        let log = &mut self.arrivals;
        if log.entries.len() < log.cap {
            // The sequence number is octets 2..4 of the RTP header, which
            // mcx-media has just parsed, so the slice is there.
            if let Some(&[hi, lo]) = self.scratch.get(2..4) {
                log.entries.push((u16::from_be_bytes([hi, lo]), arrival));
            }
        }
        Ok(())
    }

    /// Starts keeping, for the next `cap` packets that authenticate and
    /// reach the playout, their RTP sequence number and arrival time: what
    /// a latency measurement pairs with the sender's send times (`mcx demo
    /// --kpi`). Off unless asked for; `cap` bounds its memory (a stream's
    /// length in packets). Calling it again keeps what was logged and sets
    /// the new bound.
    pub fn record_arrivals(&mut self, cap: usize) {
        self.arrivals.cap = cap;
        let more = cap.saturating_sub(self.arrivals.entries.len());
        self.arrivals.entries.reserve(more);
    }

    /// Takes the (sequence number, arrival time) pairs logged since
    /// [`Self::record_arrivals`], in arrival order.
    pub fn take_arrivals(&mut self) -> Vec<(u16, Instant)> {
        std::mem::take(&mut self.arrivals.entries)
    }

    /// Plays out what is due at `now`; call at [`Self::next_due`].
    pub fn advance(&mut self, now: Instant) {
        self.media.advance(now);
    }

    /// When the playout next has something due: the driver's timer.
    pub fn next_due(&self) -> Option<Instant> {
        self.media.next_due()
    }

    /// When the last authenticated packet arrived (for an idle timeout).
    pub fn last_arrival(&self) -> Option<Instant> {
        self.last_arrival
    }

    /// Takes the samples played out so far (a driver writing a recording
    /// as it goes).
    pub fn take_samples(&mut self) -> Vec<i16> {
        self.media.take_samples()
    }

    /// The figures now.
    pub fn report(&self) -> VoiceReport {
        let s = self.media.report();
        let c = self.counters;
        VoiceReport {
            received: c.received,
            authenticated: c.authenticated,
            auth_failed: c.auth_failed,
            malformed: c.malformed,
            other_source: c.other_source,
            replayed: c.replayed,
            refused: c.refused,
            lost: s.lost,
            late: s.late,
            jitter_ms: s.jitter_ms,
            max_jitter_ms: s.max_jitter_ms,
            first_timestamp: self.media.first_timestamp(),
            stream: s,
        }
    }

    /// Ends the stream: plays out everything buffered and returns the
    /// samples not yet taken (silence where packets were lost) and the
    /// final figures.
    pub fn finish(mut self) -> (Vec<i16>, VoiceReport) {
        self.media.finish();
        let samples = self.media.take_samples();
        (samples, self.report())
    }
}

/// Sorts an unprotect failure into what the report counts.
fn classify(e: mcx_srtp::Error) -> VoiceDrop {
    use mcx_srtp::Error as E;
    match e {
        // A different TGMK comes with a different TGMK-ID: for a member
        // that is the same as a tag that does not verify.
        E::AuthenticationFailed | E::UnknownMki(_) | E::NoActiveKey => VoiceDrop::Unauthenticated,
        E::Replay(_) => VoiceDrop::Replayed(e),
        E::InvalidPacket(_) => VoiceDrop::Malformed(e),
        other => VoiceDrop::Srtp(other),
    }
}

// ---------------------------------------------------------- tokio adapters

/// What [`send_voice`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceSent {
    /// The sender's counters at the end (packets made).
    pub stats: SenderStats,
    /// Packets the socket accepted.
    pub sent: u64,
    /// Packets dropped because the socket could not take them within one
    /// packet interval (their time had passed).
    pub dropped: u64,
}

/// Sends `samples` as voice to `to`, one packet every `pacing` (20 ms for
/// real time), and returns what was sent. Each send waits at most one
/// `pacing` interval; a packet that could not go in that time is dropped
/// and counted rather than sent late.
///
/// Pacing uses [`MissedTickBehavior::Delay`]: after a stall (a busy
/// executor), the remaining packets keep their `pacing` spacing from the
/// late one. `Burst` would send the missed packets back to back to catch
/// up; voice is media time, not a backlog, and a burst reaches the relay
/// and every member at once as a jitter spike and a fan-out storm, which
/// the playout then has to absorb. A delayed stream is just later, which
/// a fixed-delay playout follows without loss.
///
/// # Errors
/// [`VoiceError`] from the sender, or the socket.
pub async fn send_voice(
    socket: &UdpSocket,
    to: SocketAddr,
    sender: &mut VoiceSender,
    samples: &[i16],
    pacing: Duration,
) -> Result<VoiceSent, VoiceError> {
    paced_send(socket, to, sender, samples, pacing, None).await
}

/// As [`send_voice`], and logs for each packet the socket accepted its RTP
/// sequence number and the instant its 20 ms frame was taken for sending
/// (before µ-law encoding and SRTP protection, so a latency measured from
/// it includes them). Paired with [`VoiceReceiver::record_arrivals`], this
/// gives each packet's time from the sender's hands to a member's playout
/// buffer.
///
/// # Errors
/// As [`send_voice`].
pub async fn send_voice_logged(
    socket: &UdpSocket,
    to: SocketAddr,
    sender: &mut VoiceSender,
    samples: &[i16],
    pacing: Duration,
    sent_at: &mut Vec<(u16, Instant)>,
) -> Result<VoiceSent, VoiceError> {
    paced_send(socket, to, sender, samples, pacing, Some(sent_at)).await
}

async fn paced_send(
    socket: &UdpSocket,
    to: SocketAddr,
    sender: &mut VoiceSender,
    samples: &[i16],
    pacing: Duration,
    mut sent_at: Option<&mut Vec<(u16, Instant)>>,
) -> Result<VoiceSent, VoiceError> {
    let pacing = pacing.max(Duration::from_micros(1));
    let mut ticks = tokio::time::interval(pacing);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut sent, mut dropped) = (0, 0);
    for frame in samples.chunks(FRAME_SAMPLES) {
        let tick = ticks.tick().await;
        // When this task woke, not when the tick was due: the timer's
        // lateness belongs to whatever delivers frames (an audio driver in
        // a device), not to the voice path measured from here.
        let (sequence, taken) = (sender.next_sequence(), Instant::now());
        let packet = sender.next_packet(frame)?;
        match timeout_at(tick + pacing, socket.send_to(packet, to)).await {
            Ok(Ok(_)) => {
                sent += 1;
                if let Some(log) = sent_at.as_deref_mut() {
                    log.push((sequence, taken));
                }
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_elapsed) => dropped += 1,
        }
    }
    Ok(VoiceSent {
        stats: sender.stats(),
        sent,
        dropped,
    })
}

/// When [`receive_voice`] stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveLimits {
    /// Stop this long after the last authenticated packet (the stream
    /// ended). Before the first one only `deadline` applies: a member may
    /// wait for the floor to be granted.
    pub idle: Duration,
    /// Stop at this time whatever happens (the hard bound).
    pub deadline: Instant,
}

impl ReceiveLimits {
    /// Stop `idle` after the last packet, and at most `max` from now.
    pub fn new(idle: Duration, max: Duration) -> Self {
        Self {
            idle,
            deadline: Instant::now() + max,
        }
    }
}

/// Receives voice on `socket` into `receiver` until the stream is idle or
/// the deadline passes (see [`ReceiveLimits`]), playing out on time, and
/// returns the report then. The samples stay in `receiver`
/// ([`VoiceReceiver::finish`]). Datagrams from any source address are
/// offered: they reach a member through its MC server's relay, and SSRC
/// and SRTP authentication decide what counts.
///
/// # Errors
/// The socket's.
pub async fn receive_voice(
    socket: &UdpSocket,
    receiver: &mut VoiceReceiver,
    limits: ReceiveLimits,
) -> Result<VoiceReport, VoiceError> {
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        let now = Instant::now();
        receiver.advance(now);
        let idle_end = receiver.last_arrival().map(|t| t + limits.idle);
        let stop = idle_end.map_or(limits.deadline, |t| t.min(limits.deadline));
        if now >= stop {
            return Ok(receiver.report());
        }
        let wake = receiver.next_due().map_or(stop, |t| t.clamp(now, stop));
        let wake = tokio::time::Instant::from_std(wake);
        if let Ok(r) = timeout_at(wake, socket.recv_from(&mut buf)).await {
            let (n, _from) = r?;
            // Drops are counted in the report; nothing more to do here.
            let _ = receiver.handle(Instant::now(), &buf[..n]);
        }
    }
}
