//! The system as separate processes: every role is its own `mcx run`
//! process on loopback ports (KMS, GMS, controlling server, MC servers A
//! and B, members, a non-member), and `mcx call` makes the call as the
//! dispatcher's process. Checks that every member process reports the
//! initiator's TGMK (key ID and key confirmation), the non-member gets
//! nothing, and the call ends everywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{field, free_port, initiator_key};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `mcx run` process; killed on drop.
struct Proc {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn start(topology: &Path, role: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcx"))
            .arg("run")
            .arg(topology)
            .arg(role)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            name: role.to_owned(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`.
    fn expect(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no line starting with {prefix:?} within {within:?}; saw {:?}",
                    self.name, self.seen
                ),
            }
        }
    }

    /// Lines printed so far (without waiting).
    fn drain(&mut self) -> Vec<String> {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MEMBERS_A: [&str; 2] = ["sip:a1@mcx.example", "sip:a2@mcx.example"];
const MEMBERS_B: [&str; 2] = ["sip:b1@mcx.example", "sip:b2@mcx.example"];
const ROGUE: &str = "sip:rogue@mcx.example";
const DISPATCHER: &str = "sip:dispatcher@mcx.example";

fn topology(db_dir: &Path) -> String {
    let mut users = String::new();
    let all = [DISPATCHER]
        .into_iter()
        .chain(MEMBERS_A)
        .chain(MEMBERS_B)
        .chain([ROGUE]);
    for (i, u) in all.enumerate() {
        // Every other client is reached over TCP.
        let transport = if i % 2 == 0 { "udp" } else { "tcp" };
        users.push_str(&format!(
            "[[user]]\nuri = \"{u}\"\ntoken = \"token-{i}\"\nsip = \"127.0.0.1:{}\"\nfloor = \"127.0.0.1:{}\"\ntransport = \"{transport}\"\n\n",
            free_port(),
            free_port()
        ));
    }
    let quote = |v: &[&str]| {
        v.iter()
            .map(|m| format!("\"{m}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
[kms]
uri = "kms.mcx.example"
http = "127.0.0.1:{kms}"
database = "{db}/kms.sqlite"

[gms]
uri = "sip:gms@mcx.example"
token = "token-gms"
http = "127.0.0.1:{gms}"
database = "{db}/gms.sqlite"

[controlling]
uri = "sip:controlling@mcx.example"
sip = "127.0.0.1:{ctrl}"
floor = "127.0.0.1:{ctrl_floor}"
allowed_initiators = ["{DISPATCHER}"]

[[controlling.temporary_group]]
id = "sip:tg-1@mcx.example"
groups = ["sip:group-a@mcx.example", "sip:group-b@mcx.example"]

[[mc_server]]
uri = "sip:mcs-a@mcx.example"
sip = "127.0.0.1:{mcs_a}"
groups = ["sip:group-a@mcx.example"]

[[mc_server]]
uri = "sip:mcs-b@mcx.example"
sip = "127.0.0.1:{mcs_b}"
transport = "tcp"
groups = ["sip:group-b@mcx.example"]

[[group]]
id = "sip:group-a@mcx.example"
name = "Group A"
members = ["{DISPATCHER}", {a}]

[[group]]
id = "sip:group-b@mcx.example"
name = "Group B"
members = ["{DISPATCHER}", {b}]

{users}
[call]
initiator = "{DISPATCHER}"
temporary_group = "sip:tg-1@mcx.example"
"#,
        kms = free_port(),
        gms = free_port(),
        ctrl = free_port(),
        ctrl_floor = free_port(),
        mcs_a = free_port(),
        mcs_b = free_port(),
        db = db_dir.display(),
        a = quote(&MEMBERS_A),
        b = quote(&MEMBERS_B),
    )
}

#[test]
fn every_role_in_its_own_process() {
    let dir = std::env::temp_dir().join(format!("mcx-processes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("topology.toml");
    std::fs::write(&path, topology(&dir)).unwrap();
    let ready = Duration::from_secs(60);

    let mut kms = Proc::start(&path, "kms");
    kms.expect("ready", ready);
    let mut gms = Proc::start(&path, "gms");
    gms.expect("ready", ready);
    let mut servers = Vec::new();
    for role in [
        "controlling",
        "sip:mcs-a@mcx.example",
        "sip:mcs-b@mcx.example",
    ] {
        let mut p = Proc::start(&path, role);
        p.expect("ready", ready);
        servers.push(p);
    }
    let mut members: Vec<Proc> = MEMBERS_A
        .iter()
        .chain(MEMBERS_B.iter())
        .map(|m| Proc::start(&path, m))
        .collect();
    let mut rogue = Proc::start(&path, ROGUE);
    for m in members.iter_mut().chain([&mut rogue]) {
        m.expect("ready", ready);
    }

    let call = Command::new(env!("CARGO_BIN_EXE_mcx"))
        .arg("call")
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&call.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&call.stderr).into_owned();
    assert!(
        call.status.success(),
        "mcx call failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("result: OK"), "{stdout}");
    for g in ["sip:group-a@mcx.example", "sip:group-b@mcx.example"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(g) && l.contains("2 accepted, 0 rejected")),
            "{g} not fully accepted:\n{stdout}"
        );
    }
    let (tgmk_id, confirmation) = initiator_key(&stdout);

    for m in &mut members {
        let line = m.expect("incoming-call", Duration::from_secs(10));
        assert_eq!(field(&line, "tgmk-id"), tgmk_id, "{}: {line}", m.name);
        assert_eq!(
            field(&line, "confirmation"),
            confirmation,
            "{}: {line}",
            m.name
        );
        assert_eq!(field(&line, "initiator"), DISPATCHER);
        assert_eq!(field(&line, "temporary-group"), "sip:tg-1@mcx.example");
        m.expect("call-ended", Duration::from_secs(10));
    }
    assert!(
        !rogue.drain().iter().any(|l| l.starts_with("incoming-call")),
        "the non-member took part: {:?}",
        rogue.seen
    );

    // The KMS and GMS keep their state in SQLite files.
    assert!(dir.join("kms.sqlite").exists());
    assert!(dir.join("gms.sqlite").exists());
    drop(members);
    drop(servers);
    let _ = std::fs::remove_dir_all(&dir);
}
