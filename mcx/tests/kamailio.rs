//! An operator's SIP proxy in front of the controlling server (issue 12
//! point 5): Kamailio (Debian `kamailio`) as a stateful proxy (`tm`,
//! `t_relay`, `record_route`) takes the dispatcher's requests and relays
//! them to the controlling server; responses find their way back by the
//! Via Kamailio adds. The call still works end to end, every member gets
//! the TGMK, and Kamailio's log shows the call request passed through it.
//!
//! Needs kamailio (apt-get install kamailio); without it the test says so
//! and passes without checking.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{Lab, Options, all_members};
use common::proc::Proc;

/// Stops Kamailio on drop, so a failing test leaves nothing running.
/// Kamailio runs in its own process group: SIGTERM to the group lets the
/// main process stop its workers; whatever is still there after 5 s
/// (under load a worker forked while the main process was stopping was
/// seen left behind, orphaned) gets SIGKILL, the whole group.
struct Kamailio(Child);

impl Kamailio {
    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.0.id())])
            .status();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.signal_group("-TERM");
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The main process has exited or is stuck: nothing of the group
        // may outlive the test.
        self.signal_group("-KILL");
        let _ = self.0.wait();
    }
}

const MODULES: &str = "/usr/lib/x86_64-linux-gnu/kamailio/modules/";

/// A stateful proxy on `listen` relaying every request to `next`.
fn config(listen: &str, next: &str) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:{listen}
mpath="{MODULES}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "xlog.so"
loadmodule "textops.so"

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (is_method("INVITE|SUBSCRIBE")) {{
        record_route();
    }}
    xlog("L_INFO", "mcx-relay $rm $ru\n");
    $du = "sip:{next}";
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}
"#
    )
}

/// The value of `key = "…"` in the `[section]` of a topology's text.
fn value_in(text: &str, section: &str, key: &str) -> String {
    let start = text.find(&format!("[{section}]")).unwrap();
    text[start..]
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key} = \"")))
        .unwrap()
        .trim_end_matches('"')
        .to_owned()
}

#[test]
fn the_call_works_through_kamailio_in_front_of_the_controlling_server() {
    let Ok(path) = which("kamailio") else {
        eprintln!("SKIPPED kamailio: not installed (apt-get install kamailio)");
        return;
    };
    let mut lab = Lab::new(
        "kamailio",
        Options {
            b_over_tcp: false,
            ..Options::default()
        },
    );
    lab.start_all();
    let text = std::fs::read_to_string(&lab.path).unwrap();
    let controlling = value_in(&text, "controlling", "sip");
    let proxy = format!("127.0.0.1:{}", common::free_port());
    let cfg = lab.dir.join("kamailio.cfg");
    std::fs::write(&cfg, config(&proxy, &controlling)).unwrap();
    let run = lab.dir.join("kamailio-run");
    std::fs::create_dir_all(&run).unwrap();
    let log = lab.dir.join("kamailio.log");
    let mut kamailio = Kamailio(
        Command::new(path)
            .args([
                "-f",
                cfg.to_str().unwrap(),
                "-DD",
                "-E",
                "-m",
                "32",
                "-M",
                "8",
            ])
            .arg("-Y")
            .arg(&run)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .process_group(0)
            .spawn()
            .unwrap(),
    );
    // Up once its UDP socket is set up (it logs the receive buffer).
    let started = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("SO_RCVBUF is finally")
    {
        let exited = kamailio.0.try_wait().unwrap();
        assert!(
            exited.is_none() && started.elapsed() < Duration::from_secs(20),
            "kamailio did not start ({exited:?}): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));

    // The dispatcher's view: the controlling server is at the proxy.
    let via_proxy = lab.dir.join("via-proxy.toml");
    std::fs::write(
        &via_proxy,
        text.replacen(
            &format!("sip = \"{controlling}\""),
            &format!("sip = \"{proxy}\""),
            1,
        ),
    )
    .unwrap();
    let mut p = Proc::mcx("dispatcher", ["call".as_ref(), via_proxy.as_os_str()]);
    let (status, stdout) = p.finish(Duration::from_secs(120));
    let kam_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        status.success() && stdout.contains("result: OK"),
        "the call failed through kamailio:\n{stdout}\n{}\nkamailio:\n{kam_log}",
        p.stderr()
    );
    assert!(
        kam_log.contains("mcx-relay INVITE sip:tg-1@mcx.example"),
        "the call request did not pass through kamailio:\n{kam_log}"
    );
    for m in all_members() {
        lab.get(m).expect("incoming-call", Duration::from_secs(10));
    }
    // Stopped with its workers: nothing of this run's configuration left.
    drop(kamailio);
    let cfg = cfg.to_string_lossy().into_owned();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&cfg))
        .collect();
    assert!(left.is_empty(), "kamailio processes left running: {left:?}");
}

/// The path of an executable on PATH (or in the sbin directories).
fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or(())
}
