//! The process-level rows of the fault table (docs/reliability.md): every
//! role its own `mcx run` process on loopback, `mcx call` the dispatcher,
//! faults made with real signals. Each test measures how long the
//! initiator (or whoever must notice) took and asserts a bound the design
//! promises; it prints the measured times (`--no-capture`) for the table.
//!
//! Deadlines in these topologies: member 1.5 s < group 2 s < initiator
//! 4 s, so that a dead peer costs seconds, not the defaults' 5; the
//! controlling server probes MC servers every 0.5 s and counts one silent
//! for 3 s as lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::lab::{
    CONTROLLING, CONTROLLING_URI, Call, DISPATCHER, GMS, GROUP_A, GROUP_B, KMS, Lab, MCS_A, MCS_B,
    MEMBERS_A, MEMBERS_B, Options, all_members, everything, field,
};
use common::proc::Proc;
use common::sip_trace;

const MEMBER_MS: u64 = 1500;
const GROUP_MS: u64 = 2000;
const CALL_MS: u64 = 4000;
const KEEPALIVE_MS: u64 = 500;
const LEG_SILENCE_MS: u64 = 3000;

/// The group deadline, as configured.
const GROUP_DEADLINE: Duration = Duration::from_millis(GROUP_MS);

/// What a bound adds for scheduling on a loaded 2-core machine running a
/// debug build (every role is its own process).
const SLACK: Duration = Duration::from_secs(1);

/// Faults that the design handles "at once" (a BYE or INFO sent when the
/// fault happens, no timer): how long their effect may take to show.
const AT_ONCE: Duration = Duration::from_secs(2);

/// A role must exit this soon after SIGTERM: its 1.5 s grace for
/// in-flight transactions (`system::SHUTDOWN_GRACE`) plus slack.
const EXIT_AFTER_SIGTERM: Duration = Duration::from_millis(1500 + 1500);

/// Generous waits for things whose time is not what a test measures.
const WAIT: Duration = Duration::from_secs(30);

fn options() -> Options {
    Options {
        deadlines: Some((MEMBER_MS, GROUP_MS, CALL_MS)),
        keepalive: Some((KEEPALIVE_MS, LEG_SILENCE_MS)),
        ..Options::default()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

/// A call that lost `group` as unreachable while the other group's
/// `members` took part: 200 with the failure reported, exit 1, within
/// the group deadline.
fn assert_unreachable(lab: &mut Lab, c: &Call, group: &str, members: &[&str]) {
    assert!(!c.success, "exit 0 although {group} failed:\n{c}");
    assert_eq!(c.code, Some(1), "{c}");
    let line = c.group_line(group);
    assert!(line.contains("unreachable") && line.contains("FAIL"), "{c}");
    assert!(
        c.stdout.contains(&format!("  - {group}: unreachable")),
        "the failure is not listed with its reason:\n{c}"
    );
    assert!(c.stdout.contains("result: FAILED"), "{c}");
    assert!(
        c.setup() <= GROUP_DEADLINE + SLACK,
        "told after {:?}, beyond the group deadline {GROUP_DEADLINE:?} + {SLACK:?}",
        c.setup()
    );
    let (id, conf) = c.initiator_key();
    lab.expect_joined(members, &id, &conf);
    for m in members {
        lab.get(m).expect("call-ended", WAIT);
    }
}

/// With every role up, one call; then `server` is killed (SIGKILL) and a
/// call must report its `group` unreachable while the `others` take part;
/// restarted, the next call has both groups again. Returns how long the
/// initiator waited for the answer with the failure.
fn kill_and_call(lab: &mut Lab, server: &str, group: &str, others: &[&str]) -> Duration {
    lab.call_ok(&all_members());
    lab.take(server).kill();
    let c = lab.call();
    assert_unreachable(lab, &c, group, others);
    lab.start(&[server]);
    lab.call_ok(&all_members());
    c.setup()
}

#[test]
fn dead_mc_server_over_tcp_is_reported_unreachable_within_the_group_deadline() {
    let mut lab = Lab::new("fault-tcp", options());
    let mut roles = everything();
    roles.retain(|r| *r != MCS_B);
    lab.start(&roles);

    // MC server B (TCP) never started: the connection is refused.
    let never = lab.call();
    assert_unreachable(&mut lab, &never, GROUP_B, &MEMBERS_A);

    // Started, then killed: its connection is reset, and the controlling
    // server's reconnection refused.
    lab.start(&[MCS_B]);
    let killed = kill_and_call(&mut lab, MCS_B, GROUP_B, &MEMBERS_A);
    println!(
        "ROW dead MC server TCP: never started: told after {}; SIGKILLed: told after {}",
        ms(never.setup()),
        ms(killed)
    );
}

#[test]
fn dead_mc_server_over_udp_is_reported_unreachable_at_the_group_deadline() {
    let mut lab = Lab::new("fault-udp", options());
    lab.start_all();
    // MC server A (UDP) killed: nothing on the wire says so; the group
    // deadline does.
    let killed = kill_and_call(&mut lab, MCS_A, GROUP_A, &MEMBERS_B);
    println!("ROW dead MC server UDP: told after {}", ms(killed));
}

/// Starts `mcx call --hold hold` and waits until the call is up at the
/// dispatcher and at every member; returns the dispatcher and the
/// members' TGMK-ID.
fn held_call(lab: &mut Lab, hold: u64) -> (Proc, String) {
    let mut d = lab.dispatcher(hold);
    d.expect("in call: established", WAIT);
    let mut ids = Vec::new();
    for m in all_members() {
        let line = lab.get(m).expect("incoming-call", WAIT);
        ids.push(field(&line, "tgmk-id").to_owned());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "members hold different TGMKs: {ids:?}");
    (d, ids.remove(0))
}

/// A lab with every role up and a call held `hold` seconds: the lab, the
/// dispatcher and the members' TGMK-ID.
fn in_call(name: &str, hold: u64) -> (Lab, Proc, String) {
    let mut lab = Lab::new(name, options());
    lab.start_all();
    let (d, tgmk_id) = held_call(&mut lab, hold);
    (lab, d, tgmk_id)
}

/// SIGTERM to `p`; checks it exits 0 within [`EXIT_AFTER_SIGTERM`] and
/// returns how long it took.
fn terminate(p: Proc) -> (Proc, Duration) {
    let t0 = Instant::now();
    p.terminate();
    terminate_wait(p, t0)
}

/// Waits for `call-ended` at each member; returns the time since `t0` of
/// the last one.
fn all_ended(lab: &mut Lab, members: &[&str], t0: Instant) -> Duration {
    for m in members {
        lab.get(m).expect("call-ended", WAIT);
    }
    t0.elapsed()
}

/// That none of `members` has seen the call end yet.
fn still_in_call(lab: &mut Lab, members: &[&str]) {
    for m in members {
        let p = lab.get(m);
        assert!(!p.printed("call-ended"), "{m} left the call: {:?}", p.seen);
    }
}

#[test]
fn sigterm_of_the_controlling_server_mid_call_ends_the_call_everywhere() {
    let (mut lab, mut d, _) = in_call("fault-term-ctrl", 60);

    let t0 = Instant::now();
    let ctrl = lab.take(CONTROLLING);
    ctrl.terminate();
    d.expect("in call: the call ended", WAIT);
    let told = t0.elapsed();
    let ended = all_ended(&mut lab, &all_members(), t0);
    let (ctrl, exited) = terminate_wait(ctrl, t0);
    assert!(told <= AT_ONCE, "dispatcher told after {told:?}");
    assert!(ended <= AT_ONCE, "members saw the end after {ended:?}");
    let (status, out) = d.finish(WAIT);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains("the call ended while held"), "{out}");

    // Restarted, the very next call succeeds.
    drop(ctrl);
    lab.start(&[CONTROLLING]);
    lab.call_ok(&all_members());
    println!(
        "ROW SIGTERM controlling: dispatcher told {}, members ended {}, exit 0 after {}",
        ms(told),
        ms(ended),
        ms(exited)
    );
}

/// Waits for the dispatcher's in-call report that group A was lost;
/// returns the line and the time since `t0`.
fn group_a_lost(d: &mut Proc, t0: Instant) -> (String, Duration) {
    let line = d.expect("in call: group lost:", WAIT);
    let told = t0.elapsed();
    assert!(line.contains(GROUP_A) && line.contains("lost"), "{line}");
    (line, told)
}

/// After group A was lost: the call goes on with B until the dispatcher
/// ends it, and `mcx call` exits 1 with the loss listed. Returns when B's
/// members saw the end, since `held`.
fn b_goes_on(lab: &mut Lab, mut d: Proc, held: Instant) -> Duration {
    still_in_call(lab, &MEMBERS_B);
    assert!(!d.printed("in call: the call ended"), "{:?}", d.seen);
    let (status, out) = d.finish(WAIT);
    assert_eq!(status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("in call: {GROUP_A}: lost")), "{out}");
    all_ended(lab, &MEMBERS_B, held)
}

#[test]
fn sigterm_of_an_mc_server_mid_call_tells_the_dispatcher_in_call() {
    let mut lab = Lab::new("fault-term-mcs", options());
    lab.start_all();
    let hold = 6;
    let (mut d, _) = held_call(&mut lab, hold);
    let held = Instant::now();

    let t0 = Instant::now();
    let a = lab.take(MCS_A);
    a.terminate();
    let (_, told) = group_a_lost(&mut d, t0);
    let ended_a = all_ended(&mut lab, &MEMBERS_A, t0);
    let (_a, exited) = terminate_wait(a, t0);
    assert!(told <= AT_ONCE, "dispatcher told after {told:?}");
    assert!(
        ended_a <= AT_ONCE,
        "group A's members ended after {ended_a:?}"
    );

    let ended_b = b_goes_on(&mut lab, d, held);
    assert!(
        ended_b >= Duration::from_secs(hold) - Duration::from_millis(500),
        "group B's call ended after {ended_b:?}, before the hold of {hold} s"
    );

    lab.start(&[MCS_A]);
    lab.call_ok(&all_members());
    println!(
        "ROW SIGTERM MC server A: dispatcher told {}, A's members ended {}, exit 0 after {}",
        ms(told),
        ms(ended_a),
        ms(exited)
    );
}

#[test]
fn an_mc_server_restarted_mid_call_is_reported_lost_and_the_next_call_includes_it() {
    let (mut lab, mut d, _) = in_call("fault-restart-mcs", 8);

    // Killed (no BYE) and started again at once: it has forgotten the
    // call, and answers the controlling server's next probe 481.
    let t0 = Instant::now();
    lab.take(MCS_A).kill();
    lab.start_one(MCS_A);
    let (line, told) = group_a_lost(&mut d, t0);
    lab.ready(MCS_A);
    let bound = Duration::from_millis(KEEPALIVE_MS + LEG_SILENCE_MS) + SLACK;
    assert!(
        told <= bound,
        "dispatcher told after {told:?} (bound {bound:?})"
    );

    b_goes_on(&mut lab, d, t0);

    // A's members still hold the stale call (nobody could tell them); the
    // next call replaces it and includes group A again.
    let c = lab.call();
    assert!(c.success, "{c}");
    assert!(
        c.group_line(GROUP_A).contains("2 accepted, 0 rejected"),
        "{c}"
    );
    let (id, conf) = c.initiator_key();
    lab.expect_joined(&all_members(), &id, &conf);
    println!(
        "ROW MC server restarted mid-call: dispatcher told {}; {line}",
        ms(told)
    );
}

/// Waits for a process that was sent SIGTERM at `t0`: exit 0 within
/// [`EXIT_AFTER_SIGTERM`] of `t0`.
fn terminate_wait(mut p: Proc, t0: Instant) -> (Proc, Duration) {
    let status = p.wait_exit(WAIT);
    let took = t0.elapsed();
    assert!(status.success(), "{}: {status} after SIGTERM", p.name);
    assert!(
        took <= EXIT_AFTER_SIGTERM,
        "{}: exited {took:?} after SIGTERM (bound {EXIT_AFTER_SIGTERM:?})",
        p.name
    );
    (p, took)
}

#[test]
fn sigterm_of_a_member_mid_call_ends_only_its_leg() {
    let (mut lab, mut d, tgmk_id) = in_call("fault-term-member", 5);

    let gone = MEMBERS_A[0];
    let (mut m, exited) = terminate(lab.take(gone));
    // Everything it printed (its last lines may still be in the pipe when
    // the exit is seen).
    let (_, out) = m.finish(WAIT);
    let line = out
        .lines()
        .find(|l| l.starts_with("call-ended"))
        .unwrap_or_else(|| panic!("{gone} did not hang up: {out}"));
    assert!(line.ends_with("hung-up"), "{line}");
    let others: Vec<&str> = all_members().into_iter().filter(|x| *x != gone).collect();
    still_in_call(&mut lab, &others);

    // The call goes on and ends as the dispatcher decides, all well.
    let (status, out) = d.finish(WAIT);
    assert!(status.success(), "{out}");
    assert!(out.contains("result: OK"), "{out}");
    assert!(
        out.contains(&format!("initiator tgmk-id={tgmk_id}")),
        "{out}"
    );
    all_ended(&mut lab, &others, Instant::now());

    drop(m);
    lab.start(&[gone]);
    lab.call_ok(&all_members());
    println!("ROW SIGTERM member: hung up, exit 0 after {}", ms(exited));
}

/// The dispatcher's shutdown grace after its BYE (`system::SHUTDOWN_GRACE`).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// How the call ended after SIGTERM to the dispatcher at `signalled`
/// (whose exit was seen at `exit_seen`), from every role's SIP trace: by
/// the dispatcher's BYE, passed on hop by hop. Each hop is checked by
/// cause and order, not by the wall clock, which a loaded machine slows
/// down as it likes; the BYE's way from the dispatcher to the last member
/// is bounded against the INVITE's way along the same hops when the call
/// was set up (a reference timed in the same run, under the same load),
/// and so is the time from the signal to the last member's BYE. Returns
/// that time and the INVITE's way.
fn ended_by_the_dispatchers_bye(
    lab: &Lab,
    signalled: SystemTime,
    exit_seen: SystemTime,
) -> (Duration, Duration) {
    let dir = lab.sip_trace.as_deref().expect("a lab with SIP traces");
    let since = |later: SystemTime, earlier: SystemTime| {
        later.duration_since(earlier).unwrap_or_else(|_| {
            panic!("{later:?} before {earlier:?}: the order of cause and effect is reversed")
        })
    };
    // The dispatcher: BYE on the signal, then the registration withdrawn,
    // both before its shutdown grace (a BYE that only a timer or the
    // process's end sent would come after the withdrawal, or after the
    // grace).
    let d = sip_trace::read(dir, DISPATCHER);
    let byes = sip_trace::requests(&d, true, "BYE");
    let [bye] = &byes[..] else {
        panic!("the dispatcher sent {} BYEs, not one: {d:#?}", byes.len())
    };
    assert!(
        d.iter()
            .any(|e| e.sent && e.is_request("REGISTER") && e.at >= bye.at),
        "the dispatcher did not withdraw its registration after its BYE: {d:#?}"
    );
    // (Half the grace: the BYE is written to the trace by the node's task
    // while the main task starts the grace.)
    assert!(
        since(exit_seen, bye.at) >= SHUTDOWN_GRACE / 2,
        "the dispatcher's BYE went out {:?} before its exit: not before its shutdown grace of {SHUTDOWN_GRACE:?}",
        since(exit_seen, bye.at)
    );
    // The controlling server: the BYE in, a BYE to each MC server after it.
    let c = sip_trace::read(dir, CONTROLLING_URI);
    let got = sip_trace::requests(&c, false, "BYE");
    let [got] = &got[..] else {
        panic!("the controlling server received {} BYEs: {c:#?}", got.len())
    };
    since(got.at, bye.at);
    let to_servers = sip_trace::requests(&c, true, "BYE");
    assert_eq!(to_servers.len(), 2, "BYEs to the MC servers: {c:#?}");
    // Each MC server: the BYE in, a BYE to each of its members; each
    // member: that BYE in.
    let mut bye_way = Duration::ZERO;
    for (server, members) in [(MCS_A, MEMBERS_A), (MCS_B, MEMBERS_B)] {
        let s = sip_trace::read(dir, server);
        let got_here = sip_trace::requests(&s, false, "BYE");
        let [got_here] = &got_here[..] else {
            panic!("{server} received {} BYEs: {s:#?}", got_here.len())
        };
        since(got_here.at, to_servers[0].at);
        let out = sip_trace::requests(&s, true, "BYE");
        assert_eq!(out.len(), members.len(), "{server}'s BYEs: {s:#?}");
        for o in &out {
            since(o.at, got_here.at);
        }
        for m in members {
            let t = sip_trace::read(dir, m);
            let got_m = sip_trace::requests(&t, false, "BYE");
            let [got_m] = &got_m[..] else {
                panic!("{m} received {} BYEs: {t:#?}", got_m.len())
            };
            since(got_m.at, out[0].at);
            bye_way = bye_way.max(since(got_m.at, bye.at));
        }
    }
    // The reference: the held call's INVITE from the dispatcher to the
    // last member, along the same hops.
    let invite = sip_trace::requests(&d, true, "INVITE");
    let invite = invite.first().expect("the dispatcher's INVITE");
    let invite_way = all_members()
        .iter()
        .map(|m| {
            let t = sip_trace::read(dir, m);
            let i = sip_trace::requests(&t, false, "INVITE");
            since(i.first().expect("the member's INVITE").at, invite.at)
        })
        .max()
        .unwrap_or_default();
    let reaction = since(bye.at, signalled);
    let bound = AT_ONCE.max(invite_way * 4);
    assert!(
        reaction + bye_way <= bound,
        "SIGTERM → the dispatcher's BYE {reaction:?}, → the last member {bye_way:?}; the INVITE took {invite_way:?} (bound {bound:?})"
    );
    (reaction + bye_way, invite_way)
}

#[test]
fn sigterm_of_the_dispatcher_mid_call_ends_the_call_everywhere() {
    let mut lab = Lab::new(
        "fault-term-dispatcher",
        Options {
            sip_trace: true,
            ..options()
        },
    );
    lab.start_all();
    let (d, _) = held_call(&mut lab, 60);

    let signalled = SystemTime::now();
    let t0 = Instant::now();
    d.terminate();
    let ended = all_ended(&mut lab, &all_members(), t0);
    let (mut d, exited) = terminate_wait(d, t0);
    let exit_seen = SystemTime::now();
    // Everything it printed (its last line may still be in the pipe when
    // the exit is seen).
    let (_, out) = d.finish(WAIT);
    assert!(out.contains("stopped during call 1: hung up"), "{out}");
    let (bye_in, invite_way) = ended_by_the_dispatchers_bye(&lab, signalled, exit_seen);

    lab.call_ok(&all_members());
    println!(
        "ROW SIGTERM dispatcher: members ended {} (the BYE at the last member {}; the INVITE took {}), exit 0 after {}",
        ms(ended),
        ms(bye_in),
        ms(invite_way),
        ms(exited)
    );
}

/// Files SQLite leaves next to a database that was not closed cleanly.
fn leftovers(lab: &Lab) -> Vec<String> {
    ["kms", "gms"]
        .iter()
        .flat_map(|db| ["-wal", "-journal", "-shm"].map(|s| format!("{db}.sqlite{s}")))
        .filter(|f| lab.dir.join(f).exists())
        .collect()
}

const IN_MEMORY_WARNING: &str = "its state is in memory and will not survive a restart";

#[test]
fn sigterm_of_the_kms_and_gms_mid_call_leaves_the_call_alone_and_a_restart_keeps_their_state() {
    let mut lab = Lab::new("fault-term-kms", options());
    lab.start_all();
    for r in [KMS, GMS] {
        assert!(!lab.get(r).stderr().contains(IN_MEMORY_WARNING), "{r}");
    }
    let (d, _) = held_call(&mut lab, 4);

    // Both stop cleanly, their stores closed; the call is unaffected.
    let (kms, kms_exit) = terminate(lab.take(KMS));
    let (gms, gms_exit) = terminate(lab.take(GMS));
    drop((kms, gms));
    assert_eq!(leftovers(&lab), Vec::<String>::new());
    let mut d = d;
    let (status, out) = d.finish(WAIT);
    assert!(status.success(), "{out}");
    assert!(!out.contains("in call: group lost"), "{out}");
    all_ended(&mut lab, &all_members(), Instant::now());

    // Restarted from their files, they serve the same community and GMKs:
    // a dispatcher provisioned now makes a call the members provisioned
    // before the restart accept (they verify its signature with the old
    // KMS public keys and unwrap with the old GMKs).
    let t0 = Instant::now();
    lab.start(&[KMS, GMS]);
    let restarted = t0.elapsed();
    let c = lab.call_ok(&all_members());
    println!(
        "ROW SIGTERM KMS/GMS: exit 0 after {} / {}; restarted in {}; next call set up in {}",
        ms(kms_exit),
        ms(gms_exit),
        ms(restarted),
        ms(c.setup())
    );
}

#[test]
fn in_memory_kms_and_gms_warn_at_start_up_and_a_restart_loses_their_state() {
    let mut lab = Lab::new(
        "fault-memory",
        Options {
            databases: false,
            ..options()
        },
    );
    lab.start_all();
    for r in [KMS, GMS] {
        let err = lab.get(r).stderr();
        assert!(err.contains(IN_MEMORY_WARNING), "{r}: {err}");
    }

    // What the warning says is true: restarted, they make a new community
    // and new GMKs, and the members provisioned before refuse a call from
    // a dispatcher provisioned after.
    // (SIGINT this time: Ctrl-C stops them as cleanly as SIGTERM.)
    for r in [KMS, GMS] {
        let p = lab.take(r);
        let t0 = Instant::now();
        p.signal("INT");
        terminate_wait(p, t0);
    }
    lab.start(&[KMS, GMS]);
    let c = lab.call();
    assert_eq!(c.code, Some(1), "{c}");
    for m in all_members() {
        lab.get(m).expect("incoming-rejected", WAIT);
    }
    assert!(c.stdout.contains("no constituent group joined"), "{c}");
    for g in [GROUP_A, GROUP_B] {
        assert!(c.stdout.contains(&format!("{g}: refused (488)")), "{c}");
    }
}

/// Waits until `role`'s stderr contains `text`.
fn wait_stderr(lab: &mut Lab, role: &str, text: &str) {
    let t0 = Instant::now();
    while !lab.get(role).stderr().contains(text) {
        assert!(
            t0.elapsed() < WAIT,
            "{role} did not say {text:?}:\n{}",
            lab.get(role).stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_member_and_the_gms_started_before_the_kms_retry_and_say_so() {
    let mut lab = Lab::new("fault-early", options());
    let early = MEMBERS_A[0];
    lab.start_one(early);
    lab.start_one(GMS);
    wait_stderr(&mut lab, early, "KMS or GMS not reachable yet");
    wait_stderr(&mut lab, GMS, "sip:gms@mcx.example: KMS not reachable yet");
    std::thread::sleep(Duration::from_secs(2));
    assert!(!lab.get(early).printed("ready"));
    assert!(!lab.get(GMS).printed("ready"));

    lab.start(&[KMS]);
    let up = Instant::now();
    lab.ready(GMS);
    let gms_provisioned = up.elapsed();
    lab.ready(early);
    let provisioned = up.elapsed();
    // The retries back off to at most 5 s between tries; the member's
    // last try may have found the KMS up but not yet the GMS.
    assert!(
        gms_provisioned <= Duration::from_secs(5) + SLACK,
        "the GMS provisioned {gms_provisioned:?} after the KMS was ready"
    );
    assert!(
        provisioned <= gms_provisioned + Duration::from_secs(5) + SLACK,
        "{early} provisioned {provisioned:?} after the KMS was ready"
    );
    let retries = lab.get(early).stderr().matches("retrying in").count();
    assert!(retries >= 2, "{}", lab.get(early).stderr());

    let mut rest = everything();
    rest.retain(|r| ![KMS, GMS, early].contains(r));
    lab.start(&rest);
    lab.call_ok(&all_members());
    println!(
        "ROW early member and GMS: {retries} retries; GMS ready {}, member ready {} after the KMS",
        ms(gms_provisioned),
        ms(provisioned)
    );
}
