//! A whole system on loopback, every role its own `mcx run` process: the
//! KMS, the GMS, the controlling server, MC server A (group A, UDP), MC
//! server B (group B, TCP unless asked otherwise), two members per group,
//! a non-member; `mcx call` is the dispatcher.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::free_port;
use super::proc::Proc;

pub(crate) const KMS: &str = "kms";
pub(crate) const GMS: &str = "gms";
pub(crate) const CONTROLLING: &str = "controlling";
/// The controlling server's URI (its SIP trace is filed under it).
pub(crate) const CONTROLLING_URI: &str = "sip:controlling@mcx.example";
pub(crate) const MCS_A: &str = "sip:mcs-a@mcx.example";
pub(crate) const MCS_B: &str = "sip:mcs-b@mcx.example";
pub(crate) const GROUP_A: &str = "sip:group-a@mcx.example";
pub(crate) const GROUP_B: &str = "sip:group-b@mcx.example";
pub(crate) const MEMBERS_A: [&str; 2] = ["sip:a1@mcx.example", "sip:a2@mcx.example"];
pub(crate) const MEMBERS_B: [&str; 2] = ["sip:b1@mcx.example", "sip:b2@mcx.example"];
pub(crate) const ROGUE: &str = "sip:rogue@mcx.example";
pub(crate) const DISPATCHER: &str = "sip:dispatcher@mcx.example";

/// How long a role may take to print `ready` (debug build, loaded CI).
pub(crate) const READY: Duration = Duration::from_secs(60);

/// What varies between the topologies of the tests.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    /// MC server B over TCP (A is always UDP).
    pub(crate) b_over_tcp: bool,
    /// KMS and GMS keep their state in SQLite files in the lab's folder.
    pub(crate) databases: bool,
    /// `[deadlines]` member_ms, group_ms, call_ms; `None` = the defaults.
    pub(crate) deadlines: Option<(u64, u64, u64)>,
    /// `[deadlines]` keepalive_ms, leg_silence_ms; `None` = the defaults.
    pub(crate) keepalive: Option<(u64, u64)>,
    /// Every process the lab starts (the dispatcher too) keeps its SIP
    /// trace (`MCX_SIP_TRACE`) in [`Lab::sip_trace`].
    pub(crate) sip_trace: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            b_over_tcp: true,
            databases: true,
            deadlines: None,
            keepalive: None,
            sip_trace: false,
        }
    }
}

/// The topology file's text; SQLite files (if any) go to `dir`.
pub(crate) fn topology(dir: &Path, o: Options) -> String {
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
    let database = |name: &str| {
        if o.databases {
            let key = super::topology::store_key_file(dir);
            format!(
                "database = \"{}/{name}.sqlite\"\nstore_key_file = \"{}\"",
                dir.display(),
                key.display()
            )
        } else {
            String::new()
        }
    };
    let mut deadlines = String::from("[deadlines]\n");
    if let Some((m, g, c)) = o.deadlines {
        deadlines.push_str(&format!("member_ms = {m}\ngroup_ms = {g}\ncall_ms = {c}\n"));
    }
    if let Some((k, s)) = o.keepalive {
        deadlines.push_str(&format!("keepalive_ms = {k}\nleg_silence_ms = {s}\n"));
    }
    format!(
        r#"
[kms]
uri = "kms.mcx.example"
http = "127.0.0.1:{kms}"
{kms_db}

[gms]
uri = "sip:gms@mcx.example"
token = "token-gms"
http = "127.0.0.1:{gms}"
{gms_db}

[controlling]
uri = "{CONTROLLING_URI}"
sip = "127.0.0.1:{ctrl}"
floor = "127.0.0.1:{ctrl_floor}"
allowed_initiators = ["{DISPATCHER}"]

[[controlling.temporary_group]]
id = "sip:tg-1@mcx.example"
groups = ["{GROUP_A}", "{GROUP_B}"]

[[mc_server]]
uri = "{MCS_A}"
sip = "127.0.0.1:{mcs_a}"
groups = ["{GROUP_A}"]

[[mc_server]]
uri = "{MCS_B}"
sip = "127.0.0.1:{mcs_b}"
transport = "{b_transport}"
groups = ["{GROUP_B}"]

[[group]]
id = "{GROUP_A}"
name = "Group A"
members = ["{DISPATCHER}", {a}]

[[group]]
id = "{GROUP_B}"
name = "Group B"
members = ["{DISPATCHER}", {b}]

{users}
{deadlines}
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
        kms_db = database("kms"),
        gms_db = database("gms"),
        b_transport = if o.b_over_tcp { "tcp" } else { "udp" },
        a = quote(&MEMBERS_A),
        b = quote(&MEMBERS_B),
    )
}

/// A topology file in a folder of its own (with the SQLite files), and
/// the processes started from it; every process is killed and the folder
/// removed on drop.
pub(crate) struct Lab {
    pub(crate) dir: PathBuf,
    pub(crate) path: PathBuf,
    /// Where the processes write their SIP traces, if asked
    /// ([`Options::sip_trace`]).
    pub(crate) sip_trace: Option<PathBuf>,
    procs: BTreeMap<String, Proc>,
}

impl Lab {
    /// Writes the topology; starts nothing.
    pub(crate) fn new(name: &str, o: Options) -> Self {
        let dir = std::env::temp_dir().join(format!("mcx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("topology.toml");
        std::fs::write(&path, topology(&dir, o)).unwrap();
        let sip_trace = o.sip_trace.then(|| dir.join("sip-trace"));
        Self {
            dir,
            path,
            sip_trace,
            procs: BTreeMap::new(),
        }
    }

    /// Starts `roles` at once and waits until each is ready (the KMS first
    /// if it is among them: the GMS provisions its own keys from it).
    pub(crate) fn start(&mut self, roles: &[&str]) {
        if roles.contains(&KMS) {
            self.start_one(KMS);
            self.ready(KMS);
        }
        let rest: Vec<&str> = roles.iter().copied().filter(|r| *r != KMS).collect();
        for r in &rest {
            self.start_one(r);
        }
        for r in &rest {
            self.ready(r);
        }
    }

    /// Every role but the dispatcher (and the non-member).
    pub(crate) fn start_all(&mut self) {
        self.start(&everything());
    }

    /// Starts one role without waiting for it.
    pub(crate) fn start_one(&mut self, role: &str) {
        let p = Proc::mcx_env(
            role,
            [OsStr::new("run"), self.path.as_os_str(), OsStr::new(role)],
            &self.env(),
        );
        assert!(
            self.procs.insert(role.to_owned(), p).is_none(),
            "{role} started twice"
        );
    }

    /// Starts one role with extra arguments after `run TOPOLOGY ROLE` and
    /// environment variables, without waiting for it.
    pub(crate) fn start_with(&mut self, role: &str, extra: &[&OsStr], env: &[(&str, &OsStr)]) {
        let mut args = vec![OsStr::new("run"), self.path.as_os_str(), OsStr::new(role)];
        args.extend_from_slice(extra);
        let p = Proc::mcx_env(role, args, env);
        assert!(
            self.procs.insert(role.to_owned(), p).is_none(),
            "{role} started twice"
        );
    }

    /// Waits for `ready` from a role.
    pub(crate) fn ready(&mut self, role: &str) {
        self.get(role).expect("ready", READY);
    }

    /// A running role.
    pub(crate) fn get(&mut self, role: &str) -> &mut Proc {
        self.procs
            .get_mut(role)
            .unwrap_or_else(|| panic!("{role} is not running"))
    }

    /// Takes a role's process out of the lab (to stop it; dropping it
    /// kills it).
    pub(crate) fn take(&mut self, role: &str) -> Proc {
        self.procs
            .remove(role)
            .unwrap_or_else(|| panic!("{role} is not running"))
    }

    /// Starts `mcx call` (the dispatcher), holding the call `hold` seconds.
    pub(crate) fn dispatcher(&self, hold: u64) -> Proc {
        Proc::mcx_env(
            "dispatcher",
            [
                "call".as_ref(),
                self.path.as_os_str(),
                "--hold".as_ref(),
                hold.to_string().as_ref(),
            ],
            &self.env(),
        )
    }

    /// The environment of every process the lab starts.
    fn env(&self) -> Vec<(&'static str, &OsStr)> {
        self.sip_trace
            .iter()
            .map(|d| ("MCX_SIP_TRACE", d.as_os_str()))
            .collect()
    }

    /// Makes one call (no hold) and returns what `mcx call` said.
    pub(crate) fn call(&self) -> Call {
        let started = Instant::now();
        let mut p = self.dispatcher(0);
        let (status, stdout) = p.finish(Duration::from_secs(120));
        Call {
            success: status.success(),
            code: status.code(),
            stdout,
            stderr: p.stderr(),
            elapsed: started.elapsed(),
        }
    }

    /// Makes a call that must succeed, and checks that every running
    /// member of `groups` took part with the dispatcher's TGMK.
    pub(crate) fn call_ok(&mut self, members: &[&str]) -> Call {
        let c = self.call();
        assert!(c.success, "the call failed:\n{c}");
        assert!(c.stdout.contains("result: OK"), "{c}");
        let (id, conf) = c.initiator_key();
        self.expect_joined(members, &id, &conf);
        for m in members {
            self.get(m).expect("call-ended", Duration::from_secs(10));
        }
        c
    }

    /// Waits for `incoming-call` at each member, with this TGMK.
    ///
    /// An `incoming-call` of another TGMK is skipped: after a UDP MC server
    /// is restarted, the controlling server's INVITE of an earlier call
    /// (abandoned at its group deadline, but still retransmitted by its
    /// transaction until Timer B, RFC 3261 9.1) may reach the members
    /// before that call's late 2xx is ACKed and BYEd.
    pub(crate) fn expect_joined(&mut self, members: &[&str], tgmk_id: &str, confirmation: &str) {
        let within = Duration::from_secs(10);
        for m in members {
            let deadline = Instant::now() + within;
            let line = loop {
                let left = deadline.saturating_duration_since(Instant::now());
                let line = self.get(m).expect("incoming-call", left);
                if field(&line, "tgmk-id") == tgmk_id {
                    break line;
                }
            };
            assert_eq!(field(&line, "tgmk-id"), tgmk_id, "{m}: {line}");
            assert_eq!(field(&line, "confirmation"), confirmation, "{m}: {line}");
            assert_eq!(field(&line, "initiator"), DISPATCHER, "{m}: {line}");
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.procs.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every role but the dispatcher and the non-member.
pub(crate) fn everything() -> Vec<&'static str> {
    let mut v = vec![KMS, GMS, CONTROLLING, MCS_A, MCS_B];
    v.extend(MEMBERS_A);
    v.extend(MEMBERS_B);
    v
}

/// The members of both groups.
pub(crate) fn all_members() -> Vec<&'static str> {
    MEMBERS_A.into_iter().chain(MEMBERS_B).collect()
}

/// What one `mcx call` said.
pub(crate) struct Call {
    pub(crate) success: bool,
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Process start to exit (provisioning included).
    pub(crate) elapsed: Duration,
}

impl std::fmt::Display for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

impl Call {
    /// The initiator's TGMK-ID and key confirmation.
    pub(crate) fn initiator_key(&self) -> (String, String) {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with("initiator tgmk-id="))
            .unwrap_or_else(|| panic!("no initiator line:\n{self}"));
        (
            field(line, "tgmk-id").to_owned(),
            field(line, "confirmation").to_owned(),
        )
    }

    /// Request sent → final answer at the initiator, as `mcx call`
    /// measured it.
    pub(crate) fn setup(&self) -> Duration {
        let ms = self
            .stdout
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "call set-up time (request sent → all acceptances at the initiator): ",
                )
            })
            .and_then(|r| r.strip_suffix(" ms"))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no set-up time:\n{self}"));
        Duration::from_secs_f64(ms / 1e3)
    }

    /// The per-group line `mcx call` printed for `group`.
    pub(crate) fn group_line(&self, group: &str) -> &str {
        self.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(group))
            .unwrap_or_else(|| panic!("no line for {group}:\n{self}"))
    }
}

pub(crate) use super::field;
