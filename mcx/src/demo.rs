//! One temporary group – broadcast call on a running topology, with the
//! checks `mcx demo` prints: the nine steps' timeline, per-group
//! acceptance, the same TGMK at every member (key ID and key
//! confirmation, never the key), floor control, and the call's end.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use mcx_core::{Client, ClientEvent, GroupResult, KeyConfirmation, TimelineEntry};
use mcx_floor::{ParticipantEvent, ParticipantState};
use mcx_net::node::NodeHandle;

use crate::error::CliError;
use crate::system::Running;
use crate::topology::Topology;
use crate::voice::VoicePlan;

/// How long any one phase may take before the demo gives up.
const PHASE_TIMEOUT: Duration = Duration::from_secs(30);

/// Members listed one per line in the final check; the rest are counted.
const MEMBER_LINES: usize = 12;

/// Processing time of the roles (busy, not waiting), summed per kind.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Busy {
    pub(crate) controlling: Duration,
    pub(crate) mc_servers: Duration,
    pub(crate) initiator: Duration,
    pub(crate) members: Duration,
}

impl Busy {
    fn now(r: &Running, initiator: &str) -> Self {
        let mut b = Self {
            controlling: r.controlling.as_ref().map_or(Duration::ZERO, |c| c.busy()),
            mc_servers: r.mc_servers.values().map(|m| m.busy()).sum(),
            ..Self::default()
        };
        for (uri, c) in &r.clients {
            if uri == initiator {
                b.initiator = c.busy();
            } else {
                b.members += c.busy();
            }
        }
        b
    }

    fn since(self, before: Self) -> Self {
        Self {
            controlling: self.controlling.saturating_sub(before.controlling),
            mc_servers: self.mc_servers.saturating_sub(before.mc_servers),
            initiator: self.initiator.saturating_sub(before.initiator),
            members: self.members.saturating_sub(before.members),
        }
    }
}

/// What one call showed.
pub(crate) struct Report {
    /// The text to print.
    pub(crate) text: String,
    /// Checks that failed (empty = all right).
    pub(crate) failures: Vec<String>,
    /// Request sent → every group's acceptance reported to the initiator.
    pub(crate) setup: Duration,
    /// Request sent → Floor Granted at the initiator (TS 22.179 KPI 1),
    /// if it was granted.
    pub(crate) floor_access: Option<Duration>,
    /// The voice's latencies, if the call carried voice.
    pub(crate) voice_times: Option<crate::kpi::VoiceTimes>,
    /// The initiator's TGMK-ID and key confirmation.
    pub(crate) reference: KeyConfirmation,
    /// Processing during set-up, per kind of role.
    pub(crate) busy: Busy,
    /// The call's SRTP master key, salt and MKI as the initiator holds
    /// them (for `mcx demo --pcap`'s key file; never printed).
    pub(crate) media_keys: Option<mcx_mikey::SrtpMasterKeys>,
}

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::System(what.to_string())
}

fn short(c: &KeyConfirmation) -> String {
    let hex: String = c.value[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("TGMK-ID {} confirmation {hex}…", c.tgmk_id)
}

async fn next_event(
    node: &mut NodeHandle<Client>,
    mut want: impl FnMut(&ClientEvent) -> bool,
) -> Option<ClientEvent> {
    tokio::time::timeout(PHASE_TIMEOUT, async {
        while let Some(e) = node.events.recv().await {
            if want(&e) {
                return Some(e);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

async fn confirmation(
    node: &NodeHandle<Client>,
    temporary_group_id: &str,
) -> Result<Option<KeyConfirmation>, CliError> {
    let tg = temporary_group_id.to_owned();
    node.query(move |c, _, _| c.tgmk_confirmation(&tg))
        .await
        .map_err(failed)
}

/// How a call is made.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CallOptions<'a> {
    /// Keep the call up this long with the floor held before ending it.
    pub(crate) hold: Duration,
    /// The initiator also sends this audio; every local member's
    /// recording is checked.
    pub(crate) voice: Option<&'a VoicePlan>,
    /// This member is off duty (its registration withdrawn) when the call
    /// starts and registers again during the voice: late entry.
    pub(crate) late_joiner: Option<&'a str>,
}

/// The member `--late-joiner` picks: the last member of the call's last
/// constituent group (not the initiator).
pub(crate) fn late_joiner_of(t: &Topology) -> Result<String, CliError> {
    let call = t
        .call
        .as_ref()
        .ok_or_else(|| failed("the topology has no [call]"))?;
    t.temporary_group(&call.temporary_group)
        .and_then(|tg| tg.groups.last())
        .and_then(|g| t.group(g))
        .and_then(|g| g.members.iter().rev().find(|m| **m != call.initiator))
        .cloned()
        .ok_or_else(|| failed("no member to join late"))
}

/// Makes the topology's call, keeps it up `hold` with the floor held,
/// then ends it; checks what this process can see (members running in
/// other processes are left to their own output).
pub(crate) async fn run_call_with(
    t: &Topology,
    running: &mut Running,
    options: &CallOptions<'_>,
) -> Result<Report, CliError> {
    let (hold, voice, late_joiner) = (options.hold, options.voice, options.late_joiner);
    let call = t
        .call
        .clone()
        .ok_or_else(|| failed("the topology has no [call]"))?;
    let tg = t
        .temporary_group(&call.temporary_group)
        .ok_or_else(|| failed("the call's temporary group is not defined"))?
        .clone();
    let mut out = String::new();
    let mut failures = Vec::new();

    // Drop the start-up events (GMK acceptances) so later waits see the call.
    for node in running.clients.values_mut() {
        while node.events.try_recv().is_ok() {}
    }
    while running.timeline.try_recv().is_ok() {}

    if !running.clients.contains_key(&call.initiator) {
        return Err(failed(format!(
            "the initiator {} is not running here",
            call.initiator
        )));
    }
    if let Some(late) = late_joiner {
        let node = running
            .clients
            .get_mut(late)
            .ok_or_else(|| failed(format!("the late joiner {late} is not running here")))?;
        node.command(|c, _, rng| {
            if let Err(e) = c.deregister(rng) {
                tracing::warn!("deregister: {e}");
            }
        })
        .map_err(failed)?;
        if next_event(node, |e| matches!(e, ClientEvent::Deregistered { .. }))
            .await
            .is_none()
        {
            return Err(failed(format!(
                "{late}: its home server did not take it off duty"
            )));
        }
    }
    let groups = tg.groups.clone();
    let temporary = call.temporary_group.clone();
    let busy_before = Busy::now(running, &call.initiator);
    let t0 = Instant::now();
    let initiator = running
        .clients
        .get_mut(&call.initiator)
        .ok_or_else(|| failed("initiator gone"))?;
    initiator
        .query(move |c, time, rng| {
            let refs: Vec<&str> = groups.iter().map(String::as_str).collect();
            c.start_call(time, &temporary, &refs, rng)
        })
        .await
        .map_err(failed)?
        .map_err(|e| failed(format!("start_call: {e}")))?;
    // Floor Granted may overtake the 200 OK (different sockets). Its
    // instant is taken as the event is read: the floor access time.
    let mut granted_at = None;
    let outcome = next_event(initiator, |e| {
        if granted_at.is_none() && is_granted(e) {
            granted_at = Some(Instant::now());
        }
        matches!(
            e,
            ClientEvent::CallEstablished { .. } | ClientEvent::CallFailed { .. }
        )
    })
    .await;
    let setup = t0.elapsed();
    let busy = Busy::now(running, &call.initiator).since(busy_before);
    let initiator = running
        .clients
        .get_mut(&call.initiator)
        .ok_or_else(|| failed("initiator gone"))?;
    let results: Vec<GroupResult> = match outcome {
        Some(ClientEvent::CallEstablished { groups, .. }) => groups,
        Some(ClientEvent::CallFailed {
            status,
            reason,
            groups,
            ..
        }) => {
            let why: Vec<String> = groups.iter().map(describe_group).collect();
            return Err(failed(format!(
                "the call failed: {status} {reason}{}{}",
                if why.is_empty() { "" } else { "; " },
                why.join("; ")
            )));
        }
        _ => return Err(failed("no answer to the call request in time")),
    };
    if granted_at.is_none() && next_event(initiator, is_granted).await.is_some() {
        granted_at = Some(Instant::now());
    }
    let floor_access = granted_at.map(|at| at.saturating_duration_since(t0));
    let granted = floor_access.is_some();
    let Some(reference) = confirmation(initiator, &call.temporary_group).await? else {
        return Err(failed(
            "the initiator holds no TGMK after the call was established",
        ));
    };

    // Read while the call is up: the client forgets its keys at the end.
    let tg_id = call.temporary_group.clone();
    let media_keys = initiator
        .query(move |c, _, _| c.media_keys(&tg_id))
        .await
        .map_err(failed)?;

    // Per-group acceptance against the membership.
    let _ = writeln!(out, "\nper-group acceptance reported to the initiator");
    for g in &tg.groups {
        let members_of = |grp: &crate::topology::Group| {
            grp.members.iter().filter(|m| **m != call.initiator).count()
        };
        // The late joiner is off duty at the start: not called (yet).
        let off = t.group(g).map_or(0, |grp| {
            usize::from(late_joiner.is_some_and(|l| grp.members.iter().any(|m| m == l)))
        });
        let expected = t.group(g).map_or(0, members_of) - off;
        let got = results.iter().find(|r| &r.group_id == g);
        let line = match got {
            Some(r) if r.failure.is_some() => {
                failures.push(describe_group(r));
                format!("  {g:<32} {}  FAIL", describe_group(r))
            }
            Some(r) => {
                let ok = usize::try_from(r.accepted).is_ok_and(|a| a == expected)
                    && usize::try_from(r.rejected).is_ok_and(|x| x == off);
                if !ok {
                    failures.push(format!(
                        "{g}: {} accepted, {} rejected, {expected} expected",
                        r.accepted, r.rejected
                    ));
                }
                format!(
                    "  {g:<32} {} accepted, {} rejected (members: {expected})  {}",
                    r.accepted,
                    r.rejected,
                    if ok { "ok" } else { "FAIL" }
                )
            }
            None => {
                failures.push(format!("{g}: no report"));
                format!("  {g:<32} no report  FAIL")
            }
        };
        let _ = writeln!(out, "{line}");
    }

    let mut members: Vec<String> = tg
        .groups
        .iter()
        .filter_map(|g| t.group(g))
        .flat_map(|g| g.members.iter().cloned())
        .filter(|m| *m != call.initiator)
        .collect();
    members.sort();
    members.dedup();
    let local = members
        .iter()
        .filter(|m| running.clients.contains_key(*m))
        .count();
    // Same TGMK everywhere: key ID and confirmation, never the key.
    if local > 0 {
        let _ = writeln!(
            out,
            "\nfinal check: every member holds the initiator's TGMK\n  {:<32} {}  (initiator)",
            call.initiator,
            short(&reference)
        );
    } else {
        let _ = writeln!(
            out,
            "\nmembers run in other processes: each prints its TGMK-ID and confirmation; the initiator's is {}",
            short(&reference)
        );
    }
    let mut same = 0usize;
    let mut joined = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let Some(node) = running.clients.get(m) else {
            continue;
        };
        if late_joiner == Some(m.as_str()) {
            let _ = writeln!(
                out,
                "  {m:<32} off duty when the call started: joins during the voice (late entry)"
            );
            continue;
        }
        let failures_before = failures.len();
        let c = confirmation(node, &call.temporary_group).await?;
        if c.is_some() {
            joined.push(m.clone());
        }
        let tg_id = call.temporary_group.clone();
        let floor = node
            .query(move |c, _, _| c.floor_state(&tg_id))
            .await
            .map_err(failed)?;
        let line = match c {
            Some(c) if c == reference => {
                let receive_only = floor == Some(ParticipantState::HasNoPermission);
                if !receive_only {
                    failures.push(format!("{m}: floor state {floor:?}, expected receive-only"));
                }
                format!(
                    "  {m:<32} {}  {}",
                    short(&c),
                    if receive_only {
                        "same  ok"
                    } else {
                        "same, floor FAIL"
                    }
                )
            }
            Some(c) => {
                failures.push(format!("{m}: a different TGMK"));
                format!("  {m:<32} {}  DIFFERENT  FAIL", short(&c))
            }
            None => {
                failures.push(format!("{m}: no TGMK"));
                format!("  {m:<32} no TGMK  FAIL")
            }
        };
        // Big generated topologies: the first members and every failure.
        if i < MEMBER_LINES || failures.len() > failures_before {
            let _ = writeln!(out, "{line}");
        } else {
            same += 1;
        }
    }
    if same > 0 {
        let _ = writeln!(
            out,
            "  … and {same} more members with the same TGMK-ID and confirmation  ok"
        );
    }
    for (uri, node) in &running.clients {
        if *uri == call.initiator || members.contains(uri) {
            continue;
        }
        let c = confirmation(node, &call.temporary_group).await?;
        let line = if c.is_none() {
            format!("  {uri:<32} not a member: holds no TGMK  ok")
        } else {
            failures.push(format!("{uri}: a non-member holds a TGMK"));
            format!("  {uri:<32} NOT A MEMBER BUT HOLDS A TGMK  FAIL")
        };
        let _ = writeln!(out, "{line}");
    }
    if !granted {
        failures.push("the initiator was not granted the floor".into());
    }
    let mut voice_times = None;
    if let Some(plan) = voice.filter(|_| granted) {
        let outcome = crate::voice::run(
            running,
            &call.initiator,
            &call.temporary_group,
            &joined,
            plan,
            late_joiner.map(|l| (l, &reference)),
        )
        .await?;
        out.push_str(&outcome.text);
        failures.extend(outcome.failures);
        voice_times = Some(outcome.times);
        if let Some(l) = late_joiner {
            joined.push(l.to_owned());
        }
    }

    let mut ended_while_held = false;
    if !hold.is_zero() {
        let _ = writeln!(out, "\nheld the call {} s with the floor", hold.as_secs());
        let initiator = running
            .clients
            .get_mut(&call.initiator)
            .ok_or_else(|| failed("initiator gone"))?;
        let deadline = tokio::time::Instant::now() + hold;
        // Said at once, so that a lab knows when to cause a mid-call fault.
        print_now(&format!(
            "in call: established, holding {} s with the floor\n",
            hold.as_secs()
        ));
        // Report in-call group losses while holding.
        while let Ok(Some(e)) = tokio::time::timeout_at(deadline, initiator.events.recv()).await {
            match e {
                ClientEvent::GroupLost { result, .. } => {
                    let line = describe_group(&result);
                    let _ = writeln!(out, "  in call: group lost: {line}");
                    print_now(&format!("in call: group lost: {line}\n"));
                    failures.push(format!("in call: {line}"));
                }
                ClientEvent::CallEnded { .. } => {
                    // Said at once: whoever watches a held call needs to
                    // know when it ended, not when the hold would have.
                    let _ = writeln!(out, "  in call: the call ended");
                    print_now("in call: the call ended\n");
                    failures.push("the call ended while held".into());
                    ended_while_held = true;
                    break;
                }
                _ => {}
            }
        }
    }
    // End: the initiator releases the floor; the call ends everywhere
    // (unless it has already ended: there is no floor left to release).
    if !ended_while_held {
        initiator_release(running, &call.initiator, &call.temporary_group).await?;
    }
    let mut ended = 0usize;
    for m in &joined {
        if let Some(node) = running.clients.get_mut(m)
            && next_event(node, |e| matches!(e, ClientEvent::CallEnded { .. }))
                .await
                .is_some()
        {
            ended += 1;
        }
    }
    let reachable = joined.len();
    if ended != reachable {
        failures.push(format!(
            "{} members did not see the call end",
            reachable - ended
        ));
    }
    if local > 0 {
        let _ = writeln!(
            out,
            "\nfloor control: {} granted to the initiator, members receive-only; floor released → BYE, call ended at {ended}/{reachable} members",
            if granted { "floor" } else { "NO floor" },
        );
        let _ = writeln!(out, "{}", floor_protection(running).await);
    } else {
        let _ = writeln!(
            out,
            "\nfloor control: {} granted to the initiator; floor released → BYE",
            if granted { "floor" } else { "NO floor" },
        );
    }

    // Timeline of the nine steps, in time order.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut entries: Vec<TimelineEntry> = Vec::new();
    while let Ok(e) = running.timeline.try_recv() {
        entries.push(e);
    }
    entries.sort_by_key(|e| e.at);
    let mut timeline = format!(
        "timeline of the nine steps (t = 0 when {} starts the call)\n",
        call.initiator
    );
    for e in entries.iter().take(60) {
        let ms = e.at.saturating_duration_since(t0).as_secs_f64() * 1e3;
        let _ = writeln!(
            timeline,
            "  {ms:>8.2} ms  step {}  {:<28} {}",
            e.step, e.role, e.detail
        );
    }
    if entries.len() > 60 {
        let _ = writeln!(timeline, "  … {} more entries", entries.len() - 60);
    }
    let _ = writeln!(
        out,
        "\ncall set-up time (request sent → all acceptances at the initiator): {:.2} ms",
        setup.as_secs_f64() * 1e3
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    if let Some(d) = floor_access {
        let _ = writeln!(
            out,
            "floor access time (request sent → Floor Granted at the initiator): {:.2} ms",
            ms(d)
        );
    }
    if local > 0 {
        let _ = writeln!(
            out,
            "processing during set-up (busy time, all roles share this machine's cores): controlling server {:.2} ms, MC servers {:.2} ms, initiator {:.2} ms, members {:.2} ms in all ({:.0} µs each)",
            ms(busy.controlling),
            ms(busy.mc_servers),
            ms(busy.initiator),
            ms(busy.members),
            busy.members.as_secs_f64() * 1e6 / members.len().max(1) as f64,
        );
    }
    Ok(Report {
        text: format!("{timeline}{out}"),
        failures,
        setup,
        floor_access,
        voice_times,
        reference,
        busy,
        media_keys,
    })
}

fn is_granted(e: &ClientEvent) -> bool {
    matches!(
        e,
        ClientEvent::Floor {
            event: ParticipantEvent::FloorGranted { .. },
            ..
        }
    )
}

async fn initiator_release(
    running: &mut Running,
    initiator: &str,
    temporary_group_id: &str,
) -> Result<(), CliError> {
    let node = running
        .clients
        .get(initiator)
        .ok_or_else(|| failed("initiator gone"))?;
    let tg = temporary_group_id.to_owned();
    node.query(move |c, time, _| c.release_floor(time, &tg))
        .await
        .map_err(failed)?
        .map_err(|e| failed(format!("release_floor: {e}")))
}

/// One line on a group's result, with the reason when it failed.
/// How floor control was protected in this process: clients whose home
/// server took their CSK, and the floor packets every role dropped.
async fn floor_protection(running: &Running) -> String {
    let mut protected = 0usize;
    let mut dropped = 0u64;
    for node in running.clients.values() {
        if let Ok((p, d)) = node
            .query(|c, _, _| (c.floor_protected(), c.floor_drops().total()))
            .await
        {
            protected += usize::from(p);
            dropped += d;
        }
    }
    if let Some(c) = &running.controlling {
        dropped += c
            .query(|c, _, _| c.floor_drops().total() + c.stray_floor_packets())
            .await
            .unwrap_or(0);
    }
    for m in running.mc_servers.values() {
        dropped += m
            .query(|m, _, _| m.floor_drops().total())
            .await
            .unwrap_or(0);
    }
    format!(
        "floor protection: SRTCP under the CSK each of {protected} clients uploaded to its home server when it registered, and under the SPK between the servers (TS 24.380 13); floor packets dropped: {dropped}"
    )
}

pub(crate) fn describe_group(r: &GroupResult) -> String {
    match &r.failure {
        None => format!(
            "{}: {} accepted, {} rejected",
            r.group_id, r.accepted, r.rejected
        ),
        Some(f) => {
            let mut s = format!("{}: {}", r.group_id, f.cause.as_str());
            if let Some(c) = f.status {
                s.push_str(&format!(" ({c})"));
            }
            if let Some(m) = &f.member {
                s.push_str(&format!(" at {m}"));
            }
            if !f.detail.is_empty() {
                s.push_str(&format!(" - {}", f.detail));
            }
            s
        }
    }
}

pub(crate) fn print_now(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
