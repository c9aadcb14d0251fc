//! The system on separate hosts (issue 9 point 6): every role runs as its
//! own `mcx run` process in its own network namespace with its own
//! address, the hosts joined by veth links to one bridge; the dispatcher's
//! `mcx call --hold` runs on a host of its own. The call is made across the
//! hosts (every member of groups A and B reports the initiator's TGMK, the
//! non-member nothing); then MC server A's host is cut off mid-call: group
//! B's call goes on, and the controlling server's keep-alive finds the
//! loss and tells the dispatcher in-call (INFO, `Info-Package:
//! mcx.call-result`) within 5 s; when A's host is back, A's members leave
//! the call. At the end every role exits cleanly on SIGTERM.
//!
//! Needs root and `ip` (iproute2): without them the test says so and
//! passes without running (CI runs as root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::netns::{Host, Network};
use common::topology::{self, Listen};
use common::{field, initiator_key};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use toml::Table;

const GROUP_A: &str = "sip:group-a@mcx.example";
const GROUP_B: &str = "sip:group-b@mcx.example";
const MCS_A: &str = "sip:mcs-a@mcx.example";

/// How long the dispatcher holds the call: the cut comes 1.25 s into it,
/// detection within 5 s of that, then a second to see group B's call go
/// on and A's host's return, with time to spare.
const HOLD_S: u64 = 10;

/// The limit issue 9 sets for detecting a lost MC server.
const DETECTION_LIMIT: Duration = Duration::from_secs(5);

/// The host a role runs on: `kms`, `gms`, `controlling` on theirs, an MC
/// server or user on the host named after its URI (`sip:a1@…` on `a1`).
fn host_of(role: &str) -> &str {
    role.trim_start_matches("sip:").split('@').next().unwrap()
}

/// A role's process in its namespace, its stdout read as it comes (each
/// line stamped when read, to time what the test waits for); killed on
/// drop, so a failing test leaves nothing running.
struct Role {
    name: String,
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    seen: Vec<String>,
}

impl Role {
    fn start(host: &Host, args: &[&str]) -> Self {
        let mut child = host
            .command(env!("CARGO_BIN_EXE_mcx"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Self {
            name: host.name.clone(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line from now on containing `text`, and when it was read;
    /// `None` if none comes `within`.
    fn wait_for(&mut self, text: &str, within: Duration) -> Option<(Instant, String)> {
        let deadline = Instant::now() + within;
        while let Ok((at, line)) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line.clone());
            if line.contains(text) {
                return Some((at, line));
            }
        }
        None
    }

    fn expect(&mut self, text: &str, within: Duration) -> String {
        match self.wait_for(text, within) {
            Some((_, line)) => line,
            None => panic!(
                "{}: no line with {text:?} within {within:?}; printed {:#?}",
                self.name, self.seen
            ),
        }
    }

    /// Whether any line so far contains `text` (without waiting).
    fn printed(&mut self, text: &str) -> bool {
        while let Ok((_, line)) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.iter().any(|l| l.contains(text))
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM (what an operator or init system sends).
    fn terminate(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{}: kill -TERM failed", self.name);
    }

    /// Waits for the process to exit; panics after `within`.
    fn exit_status(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Its last lines may still be in the pipe: read on until
                // the reader thread hits end of file (the channel closes).
                let end = Instant::now() + Duration::from_secs(5);
                while let Ok((_, line)) = self
                    .lines
                    .recv_timeout(end.saturating_duration_since(Instant::now()))
                {
                    self.seen.push(line);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running {within:?} after being asked to stop",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The default topology (three members in each of groups A and B, the
/// dispatcher, a non-member; SIP over TLS, HTTPS) with every
/// role at its host's address. Each host has its own address, so every
/// role uses the same well-known ports. SIP timers and deadlines are the
/// defaults (T1 500 ms; member 4 s < group 5 s < initiator 10 s; keep-alive
/// every 500 ms, a leg lost after 4 s of silence): the hosts share one
/// bridge that loses nothing, and the 5 s limit is to be met as shipped.
fn topology(net: &Network, t: &mut Table, db: &Path) -> String {
    topology::place(t, db, |role, what| {
        let port = match what {
            Listen::Http => 8080,
            Listen::Sip => 5060,
            Listen::Floor => 5062,
        };
        SocketAddr::from((net.host(host_of(role)).addr, port))
    });
    t.to_string()
}

/// The system up across the hosts, with the dispatcher's call made and
/// every member in it.
struct System {
    // Fields drop in this order: the processes end before their hosts go.
    roles: Vec<Role>,
    dispatcher: Role,
    /// Each member's `incoming-call` line.
    joined: Vec<(String, String)>,
    net: Network,
    dir: std::path::PathBuf,
    /// Members of groups A and B (the dispatcher aside).
    members_a: Vec<String>,
    members_b: Vec<String>,
    /// Users in neither group.
    outsiders: Vec<String>,
    /// The call's initiator and temporary group.
    initiator: String,
    temporary_group: String,
    /// Test start → every role ready.
    up: Duration,
}

impl System {
    /// Builds the hosts, starts every role on its own and has the
    /// dispatcher make the call, holding it `hold_s` seconds; `None` (after
    /// saying why) where this machine cannot make namespaces.
    fn start(tag: &str, hold_s: u64) -> Option<Self> {
        let started = Instant::now();
        let mut t = topology::default();
        let servers = topology::each(&t, "mc_server", "uri");
        let users = topology::each(&t, "user", "uri");
        let initiator = t["call"]["initiator"].as_str().unwrap().to_owned();
        let temporary_group = t["call"]["temporary_group"].as_str().unwrap().to_owned();
        let (members_a, members_b) = (
            topology::members(&t, GROUP_A),
            topology::members(&t, GROUP_B),
        );
        let outsiders: Vec<String> = users
            .iter()
            .filter(|u| **u != initiator && !members_a.contains(u) && !members_b.contains(u))
            .cloned()
            .collect();
        // A host per role, each role kind on hosts of its own.
        let roles: Vec<&str> = ["idms", "kms", "gms", "controlling"]
            .into_iter()
            .chain(servers.iter().map(String::as_str))
            .chain(users.iter().map(String::as_str))
            .collect();
        let hosts: Vec<&str> = roles.iter().map(|r| host_of(r)).collect();
        let net = match Network::new("mcxmh", tag, &hosts) {
            Ok(net) => net,
            Err(why) => {
                eprintln!(
                    "SKIPPED multihost {tag}: {}; it needs root and iproute2 (CI runs it as root)",
                    why.0
                );
                return None;
            }
        };
        let dir = std::env::temp_dir().join(format!("mcx-multihost-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("topology.toml");
        // Each process reads its certificate from files (SIP over TLS and
        // HTTPS across the hosts), written once for all of them.
        t["tls"]
            .as_table_mut()
            .unwrap()
            .insert("dir".into(), "tls".into());
        std::fs::write(&path, topology(&net, &mut t, &dir)).unwrap();
        let topo = path.to_str().unwrap();
        let ca = std::process::Command::new(env!("CARGO_BIN_EXE_mcx"))
            .args(["tls", "ca", "--topology", topo, "--out"])
            .arg(dir.join("tls"))
            .output()
            .unwrap();
        assert!(ca.status.success(), "mcx tls ca: {ca:?}");
        let ready = Duration::from_secs(30);
        let run = |role: &str| Role::start(net.host(host_of(role)), &["run", topo, role]);

        // The KMS first (the GMS provisions from it once, without
        // retrying), the servers meanwhile; clients retry until the GMS is up.
        let mut running: Vec<Role> = ["kms", "idms", "controlling"]
            .into_iter()
            .chain(servers.iter().map(String::as_str))
            .map(run)
            .collect();
        running[0].expect("ready", ready);
        running.push(run("gms"));
        for u in users.iter().filter(|u| **u != initiator) {
            running.push(run(u));
        }
        for r in &mut running[1..] {
            r.expect("ready", ready);
        }
        let up = started.elapsed();

        let mut dispatcher = Role::start(
            net.host(host_of(&initiator)),
            &["call", topo, "--hold", &hold_s.to_string()],
        );
        dispatcher.expect("in call: established", Duration::from_secs(20));
        let mut system = Self {
            roles: running,
            dispatcher,
            joined: Vec::new(),
            net,
            dir,
            members_a,
            members_b,
            outsiders,
            initiator,
            temporary_group,
            up,
        };
        // Every member joined, each with the TGMK its own client unwrapped
        // (compared with the initiator's once `mcx call` prints it).
        for m in system.members() {
            let line = system
                .role(&m)
                .expect("incoming-call", Duration::from_secs(5));
            assert_eq!(field(&line, "initiator"), system.initiator);
            assert_eq!(field(&line, "temporary-group"), system.temporary_group);
            system.joined.push((m, line));
        }
        Some(system)
    }

    fn members(&self) -> Vec<String> {
        self.members_a
            .iter()
            .chain(&self.members_b)
            .cloned()
            .collect()
    }

    /// The process of a role.
    fn role(&mut self, role: &str) -> &mut Role {
        let host = host_of(role);
        self.roles.iter_mut().find(|r| r.name == host).unwrap()
    }

    /// Waits for `mcx call` to end; checks what it printed of the set-up
    /// and that every member holds the initiator's TGMK. Returns its exit
    /// code and output.
    fn call_result(&mut self, within: Duration) -> (Option<i32>, String) {
        let status = self.dispatcher.exit_status(within);
        let out = self.dispatcher.seen.join("\n");
        eprintln!("mcx call printed:\n{out}");
        for (g, members) in [(GROUP_A, &self.members_a), (GROUP_B, &self.members_b)] {
            let all = format!("{} accepted, 0 rejected", members.len());
            assert!(
                out.lines().any(|l| l.contains(g) && l.contains(&all)),
                "{g} not fully accepted at set-up:\n{out}"
            );
        }
        let (tgmk_id, confirmation) = initiator_key(&out);
        for (m, line) in &self.joined {
            assert_eq!(field(line, "tgmk-id"), tgmk_id, "{m}: {line}");
            assert_eq!(field(line, "confirmation"), confirmation, "{m}: {line}");
        }
        for u in self.outsiders.clone() {
            let r = self.role(&u);
            assert!(
                !r.printed("incoming-call"),
                "{u}, in neither group, took part: {:?}",
                r.seen
            );
        }
        (status.code(), out)
    }

    /// SIGTERM to every role; each must exit 0 within its 1.5 s grace and
    /// some margin, saying it stopped. Then the hosts go.
    fn stop(mut self) {
        for r in &self.roles {
            r.terminate();
        }
        for r in &mut self.roles {
            let status = r.exit_status(Duration::from_secs(10));
            assert!(
                status.success(),
                "{} exited with {status}: {:#?}",
                r.name,
                r.seen
            );
            assert!(r.printed("stopped"), "{}: {:#?}", r.name, r.seen);
        }
    }
}

impl Drop for System {
    fn drop(&mut self) {
        // The KMS's and GMS's SQLite files, passed or failed.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Steps 1, 2 and 4 of the brief: the call across the hosts succeeds and
/// every role stops cleanly.
#[test]
fn the_call_crosses_the_hosts() {
    let Some(mut system) = System::start("call", 1) else {
        return;
    };
    let (code, out) = system.call_result(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("result: OK"), "{out}");
    for m in system.members() {
        system
            .role(&m)
            .expect("call-ended", Duration::from_secs(10));
    }
    eprintln!(
        "multihost: {} hosts, every role ready in {:.1} s",
        system.roles.len() + 1,
        system.up.as_secs_f64()
    );
    system.stop();
}

/// Step 3: MC server A's host cut off mid-call.
#[test]
fn a_cut_off_mc_server_is_reported_in_call() {
    let started = Instant::now();
    let Some(mut system) = System::start("cut", HOLD_S) else {
        return;
    };
    // A moment into the call first, so that keep-alive probes have been
    // answered across the hosts (no false loss) and the cut falls at some
    // point between two of them, as a real one would.
    std::thread::sleep(Duration::from_millis(1250));
    let cut = Instant::now();
    system.net.cut(host_of(MCS_A));
    let lost = system
        .dispatcher
        .wait_for("in call: group lost", Duration::from_secs(8));
    let Some((seen_at, line)) = lost else {
        panic!(
            "the dispatcher was not told of the lost group within 8 s of the cut; it printed {:#?}",
            system.dispatcher.seen
        );
    };
    let detection = seen_at.saturating_duration_since(cut);
    eprintln!(
        "multihost: MC server A cut off; the dispatcher was told in {:.2} s: {line}",
        detection.as_secs_f64()
    );
    assert!(line.contains(GROUP_A), "the wrong group: {line}");
    assert!(
        detection <= DETECTION_LIMIT,
        "loss detected after {detection:?}, over {DETECTION_LIMIT:?}"
    );

    // Group B's call goes on: its members and the dispatcher are still in
    // it a second after the loss was reported.
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        system.dispatcher.is_running(),
        "the dispatcher's call ended"
    );
    for m in system.members_b.clone() {
        assert!(
            !system.role(&m).printed("call-ended"),
            "{m} left the call when A was cut off"
        );
    }

    // Back on the network: the controlling server's BYE toward MC server
    // A, sent when it gave the leg up and retransmitted since (Timer E,
    // at most T2 = 4 s apart), now gets through, and group A's members
    // leave the call (nothing is left stuck waiting for the maximum call
    // duration).
    let back = Instant::now();
    system.net.reconnect(host_of(MCS_A));
    let mut released = Duration::ZERO;
    for m in system.members_a.clone() {
        let Some((at, _)) = system
            .role(&m)
            .wait_for("call-ended", Duration::from_secs(10))
        else {
            panic!("{m} still in the call 10 s after MC server A came back");
        };
        released = released.max(at.saturating_duration_since(back));
    }
    eprintln!(
        "multihost: group A's members released {:.2} s after MC server A came back",
        released.as_secs_f64()
    );

    // The hold ends: the dispatcher releases the floor, the call ends.
    let (code, out) = system.call_result(Duration::from_secs(HOLD_S + 20));
    // A group lost in-call makes the call a failure: exit status 1.
    assert_eq!(code, Some(1), "{out}");
    assert!(!out.contains("the call ended while held"), "{out}");
    assert!(!out.contains("group lost: sip:group-b"), "{out}");
    for m in system.members_b.clone() {
        system
            .role(&m)
            .expect("call-ended", Duration::from_secs(10));
    }
    system.stop();
    eprintln!(
        "multihost: loss detected in {:.2} s; {:.1} s in all",
        detection.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
