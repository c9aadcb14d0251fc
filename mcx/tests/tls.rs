//! `mcx tls ca` and the topology's `[tls]`: certificates for one role per
//! process, naming each role's URI and address, keys readable by their
//! owner only; what is refused, with how to fix it.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mcx_tls::{Identity, Trust};

const DEFAULT_TOPOLOGY: &str = include_str!("../topologies/default.toml");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcx-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn mcx(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcx"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn write_topology(dir: &Path, text: &str) -> String {
    let path = dir.join("topology.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

fn identity(dir: &Path, stem: &str) -> Identity {
    let cert = std::fs::read_to_string(dir.join(format!("{stem}.pem"))).unwrap();
    let key = std::fs::read_to_string(dir.join(format!("{stem}.key"))).unwrap();
    Identity::from_pem(&cert, &key, stem).unwrap()
}

#[test]
fn tls_ca_writes_a_ca_and_a_certificate_per_role() {
    let dir = scratch("ca");
    let topology = write_topology(&dir, DEFAULT_TOPOLOGY);
    let out = dir.join("certs");
    for _ in 0..2 {
        // Twice: existing files are replaced.
        let o = mcx(&[
            "tls",
            "ca",
            "--topology",
            &topology,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        assert!(
            text(&o.stdout).contains("for 14 roles"),
            "{}",
            text(&o.stdout)
        );
    }
    Trust::from_pem(&std::fs::read_to_string(out.join("ca.pem")).unwrap(), "ca").unwrap();
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for (stem, name) in [
        ("idms", "https://idms.mcx.example"),
        ("kms", "kms.mcx.example"),
        ("gms", "sip:gms@mcx.example"),
        ("controlling", "sip:controlling@mcx.example"),
        ("sip_mcs-a@mcx.example", "sip:mcs-a@mcx.example"),
        ("sip_dispatcher@mcx.example", "sip:dispatcher@mcx.example"),
        ("sip_rogue@mcx.example", "sip:rogue@mcx.example"),
    ] {
        let names = identity(&out, stem).names().unwrap();
        assert!(names.names(name), "{stem}: {names:?}");
        assert_eq!(names.ips, vec![loopback], "{stem}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let key = out.join(format!("{stem}.key"));
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{stem}.key readable by others: {mode:o}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_role_per_process_needs_the_certificates_on_disk() {
    let dir = scratch("run");
    // (With the IdMS key every process must share, so that this is what
    // is missing.)
    let default = DEFAULT_TOPOLOGY.replacen(
        "[idms]\n",
        &format!("[idms]\nsigning_key = \"{}\"\n", "5a".repeat(32)),
        1,
    );
    let topology = write_topology(&dir, &default);
    let o = mcx(&["run", &topology, "kms"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("[tls] has no dir") && err.contains("mcx tls ca"),
        "{err}"
    );
    // A dir without the files: the missing file is named.
    let with_dir = default.replace("https = true", "https = true\ndir = \"nowhere\"");
    let topology = write_topology(&dir, &with_dir);
    let o = mcx(&["run", &topology, "kms"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("nowhere/ca.pem") && err.contains("cannot read"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_tls_node_needs_a_tls_section() {
    let dir = scratch("section");
    let without = DEFAULT_TOPOLOGY.replace("[tls]\nhttps = true\n", "");
    assert_ne!(without, DEFAULT_TOPOLOGY);
    let topology = write_topology(&dir, &without);
    let o = mcx(&["demo", "--topology", &topology, "--no-audio"]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(
        err.contains("transport = \"tls\" needs a [tls] section"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
