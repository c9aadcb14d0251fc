//! The voice of a call in `mcx demo` (issue 10 point 2): the initiator
//! sends the audio as SRTP under the TGMK to the controlling server's
//! relay; the servers relay it key-blind; every member in this process
//! receives, decrypts and plays it out; then each member's recording is
//! checked against the µ-law decoding of what was sent.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mcx_client::{ReceiveLimits, VoiceReceiver, VoiceSender, receive_voice, send_voice};
use mcx_core::Voice;
use mcx_media::{pcmu, wav};
use tokio::net::UdpSocket;

use crate::error::CliError;
use crate::system::Running;

/// 20 ms packets.
const PACING: Duration = Duration::from_millis(20);
/// A member's stream has ended this long after its last packet.
const IDLE: Duration = Duration::from_secs(1);

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
#[derive(Default)]
pub(crate) struct Listening {
    streams: std::collections::HashMap<String, tokio::sync::oneshot::Sender<()>>,
}

impl Listening {
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

/// Sends the plan's audio from the initiator and checks every local
/// member's recording. Returns the text to print and the failures.
pub(crate) async fn run(
    running: &Running,
    initiator: &str,
    temporary_group: &str,
    members: &[String],
    plan: &VoicePlan,
) -> Result<(String, Vec<String>), CliError> {
    let mut out = String::new();
    let mut failures = Vec::new();
    let voice_of = |uri: &str| {
        let tg = temporary_group.to_owned();
        let node = running.clients.get(uri);
        async move {
            match node {
                Some(n) => n.query(move |c, _, _| c.voice(&tg)).await.ok().flatten(),
                None => None,
            }
        }
    };
    let Some(sending) = voice_of(initiator).await else {
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
        let (Some(voice), Some(sock)) = (voice_of(m).await, running.voice.get(m).cloned()) else {
            continue;
        };
        receivers.push((m.clone(), tokio::spawn(receive(sock, voice, duration))));
    }
    let mut rng = mcx_net::os_rng();
    let mut sender = VoiceSender::new(&sending, &mut rng).map_err(failed)?;
    let initial_timestamp = sender.next_timestamp();
    let sent = send_voice(&socket, to, &mut sender, &plan.samples, PACING)
        .await
        .map_err(failed)?;
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
        let (samples, report) = task
            .await
            .map_err(|_| failed(format!("{m}: voice task failed")))?
            .map_err(|e| failed(format!("{m}: {e}")))?;
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
    Ok((out, failures))
}

async fn receive(
    socket: Arc<UdpSocket>,
    voice: Voice,
    duration: Duration,
) -> Result<(Vec<i16>, mcx_client::VoiceReport), mcx_client::VoiceError> {
    let mut receiver = VoiceReceiver::new(&voice)?;
    // Bounded: the audio's length plus time for the floor and the stream's end.
    let limits = ReceiveLimits::new(IDLE, duration + Duration::from_secs(10));
    receive_voice(&socket, &mut receiver, limits).await?;
    let (samples, report) = receiver.finish();
    Ok((samples, report))
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
