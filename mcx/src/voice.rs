//! The voice of a call in `mcx demo` (issue 10 point 2): the initiator
//! sends the audio as SRTP under the TGMK to the controlling server's
//! relay; the servers relay it key-blind; every member in this process
//! receives, decrypts and plays it out; then each member's recording is
//! checked against the µ-law decoding of what was sent.

use mcx_metrics::{DropReason, Protected};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcx_client::{ReceiveLimits, VoiceReceiver, VoiceSender, receive_voice, send_voice_logged};
use mcx_core::{ClientEvent, KeyConfirmation, Voice};
use mcx_floor::ParticipantEvent;
use mcx_media::{pcmu, wav};
use tokio::net::UdpSocket;

use crate::error::CliError;
use crate::kpi::{LateEntry, Percentiles, VoiceTimes};
use crate::system::Running;

/// 20 ms packets.
const PACING: Duration = Duration::from_millis(20);
/// A member's stream has ended this long after its last packet.
const IDLE: Duration = Duration::from_secs(1);
/// When the late joiner comes on duty, into the voice.
const LATE_AFTER: Duration = Duration::from_secs(1);

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::System(what.to_string())
}

/// What to send, and where recordings go.
#[derive(Clone, Debug)]
pub(crate) struct VoicePlan {
    /// 8 kHz mono samples.
    pub(crate) samples: Vec<i16>,
    /// Where the audio came from (for the printout).
    pub(crate) source: String,
    /// `DIR/<user>.wav` for each member, if given.
    pub(crate) record_dir: Option<PathBuf>,
}

impl VoicePlan {
    /// The WAV file `audio` (any rate, mono or stereo: resampled to 8 kHz
    /// mono), or mcx-media's built-in test signal.
    pub(crate) fn load(
        audio: Option<&Path>,
        record_dir: Option<PathBuf>,
    ) -> Result<Self, CliError> {
        let (samples, source) = match audio {
            Some(path) => {
                let bytes =
                    std::fs::read(path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
                let audio =
                    wav::read(&bytes).map_err(|e| failed(format!("{}: {e}", path.display())))?;
                (audio.to_mono_8k(), path.display().to_string())
            }
            None => (
                mcx_media::signal::test_signal(),
                "the built-in test signal".to_owned(),
            ),
        };
        if samples.is_empty() {
            return Err(failed("the audio has no samples"));
        }
        if let Some(dir) = &record_dir {
            std::fs::create_dir_all(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
        }
        Ok(Self {
            samples,
            source,
            record_dir,
        })
    }
}

/// A file name for `user`'s recording: its URI without the scheme, with
/// anything but letters, digits, `-`, `_` and `.` replaced.
fn file_name(user: &str) -> String {
    let bare = user.strip_prefix("sip:").unwrap_or(user);
    let safe: String = bare
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.wav")
}

/// `user`'s recording of its `n`-th call: `<user>-<n>.wav`.
pub(crate) fn numbered_file_name(user: &str, n: usize) -> String {
    let name = file_name(user);
    format!("{}-{n}.wav", name.trim_end_matches(".wav"))
}

/// A member's voice streams being received (`mcx run`), by temporary
/// group; each prints its report when the call ends or the stream stops.
pub(crate) struct Listening {
    streams: HashMap<String, tokio::sync::oneshot::Sender<()>>,
    /// Whose streams (the metrics' `role` label).
    role: String,
}

impl Listening {
    /// No streams yet; `role` is the listening client.
    pub(crate) fn new(role: &str) -> Self {
        Self {
            streams: HashMap::new(),
            role: role.to_owned(),
        }
    }

    /// Receives `voice` on `socket` until the call ends ([`Listening::stop`])
    /// or `max` passes; then prints `voice temporary-group=… received=…
    /// authenticated=… lost=… late=… jitter-ms=…` and writes `record`.
    pub(crate) fn start(
        &mut self,
        temporary_group: String,
        socket: Arc<UdpSocket>,
        voice: Voice,
        max: Duration,
        record: Option<PathBuf>,
    ) {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        self.streams.insert(temporary_group.clone(), stop_tx);
        let role = self.role.clone();
        tokio::spawn(async move {
            let Ok(mut receiver) = VoiceReceiver::new(&voice) else {
                return;
            };
            // The stream's end is the call's end: idle for the whole call.
            let limits = ReceiveLimits::new(max, max);
            tokio::select! {
                r = receive_voice(&socket, &mut receiver, limits) => {
                    if let Err(e) = r {
                        tracing::warn!("voice of {temporary_group}: {e}");
                    }
                }
                _ = stop_rx => {}
            }
            let (samples, report) = receiver.finish();
            let m = crate::admin::metrics();
            for (reason, n) in [
                (DropReason::Authentication, report.auth_failed),
                (DropReason::Replay, report.replayed),
                (DropReason::Malformed, report.malformed),
                (DropReason::WrongSource, report.other_source),
            ] {
                m.add_dropped(&role, Protected::Srtp, reason, n);
            }
            if report.received == 0 {
                return;
            }
            crate::demo::print_now(&format!(
                "voice temporary-group={temporary_group} received={} authenticated={} auth-failed={} lost={} late={} jitter-ms={:.2}\n",
                report.received,
                report.authenticated,
                report.auth_failed,
                report.lost,
                report.late,
                report.jitter_ms
            ));
            if let Some(path) = record {
                if let Err(e) = std::fs::write(&path, wav::write(&samples)) {
                    tracing::warn!("{}: {e}", path.display());
                }
            }
        });
    }

    /// Ends the stream of `temporary_group` (its report is printed).
    pub(crate) fn stop(&mut self, temporary_group: &str) {
        if let Some(stop) = self.streams.remove(temporary_group) {
            let _ = stop.send(());
        }
    }
}

/// What [`run`] found.
pub(crate) struct VoiceOutcome {
    /// The text to print.
    pub(crate) text: String,
    /// Checks that failed.
    pub(crate) failures: Vec<String>,
    /// Latencies for `mcx demo --kpi`.
    pub(crate) times: VoiceTimes,
}

/// Sends the plan's audio from the initiator and checks every local
/// member's recording; times each packet from the initiator's sender to
/// each member's playout buffer, and the late joiner's entry.
pub(crate) async fn run(
    running: &mut Running,
    initiator: &str,
    temporary_group: &str,
    members: &[String],
    plan: &VoicePlan,
    late: Option<(&str, &KeyConfirmation)>,
) -> Result<VoiceOutcome, CliError> {
    let mut out = String::new();
    let mut failures = Vec::new();
    let Some(sending) = voice_of(running, initiator, temporary_group).await else {
        return Err(failed("the initiator has no voice plan for the call"));
    };
    let (Some(to), Some(socket)) = (sending.to, running.voice.get(initiator).cloned()) else {
        return Err(failed(
            "the initiator knows no relay to send to (no SDP answer) or has no voice socket",
        ));
    };
    let duration = Duration::from_secs_f64(plan.samples.len() as f64 / 8000.0);
    // Receivers first, so nothing is missed.
    let mut receivers = Vec::new();
    for m in members {
        let (Some(voice), Some(sock)) = (
            voice_of(running, m, temporary_group).await,
            running.voice.get(m).cloned(),
        ) else {
            continue;
        };
        receivers.push((m.clone(), tokio::spawn(receive(sock, voice, duration))));
    }
    let late_joiner = late.map(|(l, _)| l.to_owned());
    let mut rng = mcx_net::os_rng();
    let mut sender = VoiceSender::new(&sending, &mut rng).map_err(failed)?;
    let initial_timestamp = sender.next_timestamp();
    let samples = plan.samples.clone();
    let sending_task = tokio::spawn(async move {
        let mut sent_at = Vec::with_capacity(VoiceSender::packet_count(samples.len()));
        let r = send_voice_logged(&socket, to, &mut sender, &samples, PACING, &mut sent_at).await;
        r.map(|sent| (sent, sent_at))
    });
    let mut late_text = String::new();
    let mut late_entered = None;
    if let Some((late, reference)) = late {
        // 1 s into the voice, the late joiner comes on duty.
        tokio::time::sleep(LATE_AFTER.min(duration / 2)).await;
        match late_entry(running, late, temporary_group, reference, duration).await {
            Ok(entered) => {
                late_text = entered.text;
                late_entered = Some((entered.registered, entered.times));
                receivers.push((late.to_owned(), entered.receiving));
            }
            Err(e) => failures.push(format!("late entry of {late}: {e}")),
        }
    }
    let (sent, sent_at) = sending_task
        .await
        .map_err(|_| failed("the voice sender failed"))?
        .map_err(failed)?;
    let sent_at: HashMap<u16, Instant> = sent_at.into_iter().collect();
    let mut times = VoiceTimes::default();
    let _ = writeln!(
        out,
        "\nvoice: {} s of {} as {} SRTP packets (PCMU, 20 ms, AEAD_AES_128_GCM under the TGMK, ROC by RCCm3) from {initiator} to the controlling server's relay {to}",
        duration.as_secs_f64(),
        plan.source,
        sent.sent
    );
    if sent.dropped > 0 {
        failures.push(format!(
            "{} voice packets could not be sent in time",
            sent.dropped
        ));
    }
    // What every member must hear: the µ-law decoding of what was sent.
    let mut codes = vec![0u8; plan.samples.len()];
    pcmu::encode(&plan.samples, &mut codes);
    let mut expected = Vec::with_capacity(codes.len());
    pcmu::decode_append(&codes, &mut expected);
    for (m, task) in receivers {
        let (samples, report, arrivals) = task
            .await
            .map_err(|_| failed(format!("{m}: voice task failed")))?
            .map_err(|e| failed(format!("{m}: {e}")))?;
        if late_joiner.as_deref() == Some(m.as_str()) {
            // Its receiver starts once this harness has read its
            // IncomingCall and asked for its voice plan; a packet that came
            // in between waited in its socket. It times the entry, not the
            // voice path.
            if let Some((registered, mut entry)) = late_entered.take() {
                entry.first_voice = arrivals
                    .first()
                    .map(|&(_, at)| at.saturating_duration_since(registered));
                times.late = Some(entry);
            }
        } else {
            times
                .mouth_to_ear
                .extend(arrivals.iter().filter_map(|(seq, at)| {
                    sent_at
                        .get(seq)
                        .map(|sent| at.saturating_duration_since(*sent))
                }));
        }
        let offset = report
            .first_timestamp
            .map(|t| t.wrapping_sub(initial_timestamp) as usize);
        let same = offset.is_some_and(|o| same_audio(&expected, o, &samples));
        if let Some(dir) = &plan.record_dir {
            let path = dir.join(file_name(&m));
            std::fs::write(&path, wav::write(&samples))
                .map_err(|e| failed(format!("{}: {e}", path.display())))?;
        }
        let _ = writeln!(
            out,
            "  {m:<32} {report}; audio {}",
            if same {
                "equals the µ-law decoding of what was sent  ok"
            } else {
                "DIFFERS  FAIL"
            }
        );
        if !same {
            failures.push(format!("{m}: the audio heard differs from what was sent"));
        }
        if report.authenticated == 0 {
            failures.push(format!("{m}: no voice packet authenticated"));
        }
    }
    out.push_str(&late_text);
    if let Some(l) = &times.late {
        let _ = writeln!(
            out,
            "  late entry: first voice packet decrypted {} after its REGISTER",
            l.first_voice.map_or_else(
                || "NEVER".to_owned(),
                |d| format!("{:.2} ms", d.as_secs_f64() * 1e3)
            ),
        );
    }
    if let Some(p) = Percentiles::of(&times.mouth_to_ear) {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let _ = writeln!(
            out,
            "  voice latency added by the stack (initiator's sender → decrypted in a member's playout buffer, {} packets): p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms; then the playout delay of {:.0} ms",
            p.n,
            ms(p.p50),
            ms(p.p95),
            ms(p.max),
            ms(mcx_client::DEFAULT_PLAYOUT_DELAY),
        );
    }
    if let Some(dir) = &plan.record_dir {
        let _ = writeln!(out, "  recordings written to {}/<user>.wav", dir.display());
    }
    // The servers only copied octets: their relays' counters.
    let relays = running
        .controlling
        .iter()
        .map(|c| ("controlling server", c.relay_stats()))
        .chain(
            running
                .mc_servers
                .values()
                .map(|m| ("MC servers", m.relay_stats())),
        );
    let mut sums: Vec<(&str, u64, u64, u64)> = Vec::new();
    for (kind, stats) in relays {
        let Some(st) = stats else { continue };
        match sums.iter_mut().find(|(k, ..)| *k == kind) {
            Some(e) => {
                e.1 += st.forwarded;
                e.2 += st.copies;
                e.3 += st.dropped();
            }
            None => sums.push((kind, st.forwarded, st.copies, st.dropped())),
        }
    }
    for (kind, forwarded, copies, dropped) in sums {
        let _ = writeln!(
            out,
            "  {kind} relayed {forwarded} packets as {copies} copies, unchanged and undecrypted (no key), dropped {dropped}"
        );
    }
    Ok(VoiceOutcome {
        text: out,
        failures,
        times,
    })
}

/// The voice plan of `uri` in the call, if it runs here and is in it.
async fn voice_of(running: &Running, uri: &str, temporary_group: &str) -> Option<Voice> {
    let tg = temporary_group.to_owned();
    running
        .clients
        .get(uri)?
        .query(move |c, _, _| c.voice(&tg))
        .await
        .ok()
        .flatten()
}

/// A late joiner in the call.
struct Entered {
    /// The line to print.
    text: String,
    /// When it sent its REGISTER (what its times count from).
    registered: Instant,
    /// Its times so far (the first voice comes with its receiver's log).
    times: LateEntry,
    /// Its voice receiver.
    receiving: Receiving,
}

/// The late joiner registers; its MC server invites it into the call.
/// Times REGISTER → in the call (our 200 OK to the late INVITE) and →
/// Floor Taken, receives its voice from the moment it is in the call,
/// and checks it holds the initiator's TGMK.
async fn late_entry(
    running: &mut Running,
    late: &str,
    temporary_group: &str,
    reference: &KeyConfirmation,
    duration: Duration,
) -> Result<Entered, CliError> {
    let socket = running
        .voice
        .get(late)
        .cloned()
        .ok_or_else(|| failed("no voice socket"))?;
    let node = running
        .clients
        .get_mut(late)
        .ok_or_else(|| failed("not running here"))?;
    let t0 = Instant::now();
    node.command(|c, time, rng| {
        if let Err(e) = c.register(time, rng) {
            tracing::warn!("register: {e}");
        }
    })
    .map_err(failed)?;
    let (mut joined, mut taken, mut receiving) = (None, None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while joined.is_none() || taken.is_none() {
        let Ok(Some(e)) = tokio::time::timeout_at(deadline, node.events.recv()).await else {
            break;
        };
        match e {
            ClientEvent::IncomingCall { .. } if joined.is_none() => {
                joined = Some(t0.elapsed());
                // Receiving from the moment it is in the call, as a
                // client would: the time to its first decrypted packet
                // must not include this harness's checks.
                let tg = temporary_group.to_owned();
                let voice = node
                    .query(move |c, _, _| c.voice(&tg))
                    .await
                    .map_err(failed)?
                    .ok_or_else(|| failed("in the call without a voice plan"))?;
                receiving = Some(tokio::spawn(receive(socket.clone(), voice, duration)));
            }
            ClientEvent::Floor {
                event: ParticipantEvent::FloorTaken { .. },
                ..
            } => taken = Some(t0.elapsed()),
            _ => {}
        }
    }
    let (Some(joined), Some(receiving)) = (joined, receiving) else {
        return Err(failed("not invited into the call within 5 s"));
    };
    let tg = temporary_group.to_owned();
    let key = node
        .query(move |c, _, _| c.tgmk_confirmation(&tg))
        .await
        .map_err(failed)?;
    if key.as_ref() != Some(reference) {
        receiving.abort();
        return Err(failed("it does not hold the initiator's TGMK"));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let text = format!(
        "  late entry: {late} registered {:.1} s into the voice; in the call (its 200 OK to the MC server's late INVITE) after {:.2} ms, Floor Taken after {}; holds the initiator's TGMK; decrypts from where it joined\n",
        LATE_AFTER.min(duration / 2).as_secs_f64(),
        ms(joined),
        taken.map_or_else(|| "NEVER".to_owned(), |d| format!("{:.2} ms", ms(d))),
    );
    let Some(floor_taken) = taken else {
        receiving.abort();
        return Err(failed("no Floor Taken"));
    };
    Ok(Entered {
        text,
        registered: t0,
        times: LateEntry {
            in_call: joined,
            floor_taken,
            first_voice: None,
        },
        receiving,
    })
}

/// What a member's receiving task gives: the samples played out, the
/// report, and each packet's (sequence number, arrival time).
type Received = (Vec<i16>, mcx_client::VoiceReport, Vec<(u16, Instant)>);

/// A member's receiving task.
type Receiving = tokio::task::JoinHandle<Result<Received, mcx_client::VoiceError>>;

async fn receive(
    socket: Arc<UdpSocket>,
    voice: Voice,
    duration: Duration,
) -> Result<Received, mcx_client::VoiceError> {
    let mut receiver = VoiceReceiver::new(&voice)?;
    // One entry per packet of the audio at most: the log cannot outgrow
    // the stream (a few KiB for a 3 s clip).
    let packets = (duration.as_millis() / PACING.as_millis()) as usize + 1;
    receiver.record_arrivals(packets);
    // Bounded: the audio's length plus time for the floor and the stream's end.
    let limits = ReceiveLimits::new(IDLE, duration + Duration::from_secs(10));
    receive_voice(&socket, &mut receiver, limits).await?;
    let arrivals = receiver.take_arrivals();
    let (samples, report) = receiver.finish();
    Ok((samples, report, arrivals))
}

/// Whether `heard` (starting `offset` samples into the sent stream) is
/// exactly `expected` from there on, followed by nothing but silence: a
/// member hears everything from where it joined, sample for sample.
fn same_audio(expected: &[i16], offset: usize, heard: &[i16]) -> bool {
    let Some(rest) = expected.get(offset..) else {
        return false;
    };
    heard.len() >= rest.len()
        && heard[..rest.len()] == *rest
        && heard[rest.len()..].iter().all(|&s| s == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_compared_from_the_join_point_and_trailing_silence_is_allowed() {
        let sent = [1i16, 2, 3, 4];
        assert!(same_audio(&sent, 0, &[1, 2, 3, 4]));
        assert!(same_audio(&sent, 2, &[3, 4, 0, 0]));
        assert!(!same_audio(&sent, 0, &[1, 2, 3]), "a sample missing");
        assert!(!same_audio(&sent, 0, &[1, 2, 3, 5]), "a sample changed");
        assert!(!same_audio(&sent, 0, &[1, 2, 3, 4, 7]), "noise after");
        assert!(!same_audio(&sent, 5, &[]), "joined after the end");
    }

    #[test]
    fn recording_names_are_safe_file_names() {
        assert_eq!(file_name("sip:a1@mcx.example"), "a1@mcx.example.wav");
        assert_eq!(file_name("sip:../x/y"), ".._x_y.wav");
    }
}
