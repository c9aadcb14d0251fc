//! `mcx run <topology> kms` with a `database`: the operator's store key is
//! required and checked before the KMS serves anything (docs/kms.md,
//! "Secrets at rest"); each refusal is one clear error line.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEFAULT: &str = include_str!("../topologies/default.toml");

/// A folder of its own for one test.
fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mcx-store-key-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The default topology with the KMS's state in `db` (and `extra` lines
/// in `[kms]`).
fn topology(dir: &Path, db: &Path, extra: &str) -> PathBuf {
    let text = DEFAULT
        .replacen(
            "[kms]\n",
            &format!("[kms]\ndatabase = \"{}\"\n{extra}", db.display()),
            1,
        )
        // A role alone in its process needs the IdMS's key.
        .replacen(
            "[idms]\n",
            &format!("[idms]\nsigning_key = \"{}\"\n", "5a".repeat(32)),
            1,
        );
    let path = dir.join("topology.toml");
    std::fs::write(&path, &text).unwrap();
    // And its TLS certificates on disk (`mcx tls ca`).
    let certs = dir.join("certs");
    let o = Command::new(env!("CARGO_BIN_EXE_mcx"))
        .args(["tls", "ca", "--topology", path.to_str().unwrap(), "--out"])
        .arg(&certs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = text.replacen(
        "[tls]\n",
        &format!("[tls]\ndir = \"{}\"\n", certs.display()),
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `mcx run <topology> kms` with only `env` of the store-key
/// variables set; it must exit within 20 s (a KMS that started would
/// serve forever: the test then fails).
fn run_kms(topology: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcx"));
    cmd.args(["run", topology.to_str().unwrap(), "kms"])
        .env_remove("MCX_STORE_KEY")
        .env_remove("MCX_STORE_KEY_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the KMS started without a usable store key");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn error_line(stderr: &str) -> &str {
    stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {stderr:?}"))
}

#[test]
fn a_database_without_a_store_key_is_refused() {
    let d = dir("missing");
    let db = d.join("kms.sqlite");
    let t = topology(&d, &db, "");
    let (code, stderr) = run_kms(&t, &[]);
    assert_eq!(code, 1, "{stderr}");
    let line = error_line(&stderr);
    assert!(line.contains("no store key"), "{line}");
    assert!(line.contains("MCX_STORE_KEY"), "{line}");
    assert!(!db.exists(), "a store was created without a key");
    // A malformed key is named by where it came from.
    let (code, stderr) = run_kms(&t, &[("MCX_STORE_KEY", "not-a-key")]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        error_line(&stderr).contains("MCX_STORE_KEY is not 32 octets or 64 hex digits"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_store_made_under_another_key_is_refused() {
    let d = dir("wrong");
    let db = d.join("kms.sqlite");
    // A KMS store made under key A (the key file of the topology).
    let key_a = d.join("a.key");
    std::fs::write(&key_a, format!("{}\n", "a1".repeat(32))).unwrap();
    let config = mcx_kms::KmsConfig {
        kms_uri: "kms.mcx.example".into(),
        key_period_len: 2_592_000,
        key_period_offset: 0,
        users: Vec::new(),
    };
    let key = mcx_kms::StoreKey::read_file(&key_a).unwrap();
    mcx_kms::Kms::open(Some(&db), Some(&key), config, &mut mcx_net::os_rng())
        .unwrap()
        .close()
        .unwrap();
    // Key B from the environment.
    let t = topology(&d, &db, "");
    let (code, stderr) = run_kms(&t, &[("MCX_STORE_KEY", &"b2".repeat(32))]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        error_line(&stderr).contains("store key does not open this store"),
        "{stderr}"
    );
    // Key B from MCX_STORE_KEY_FILE, likewise.
    let key_b = d.join("b.key");
    std::fs::write(&key_b, "b2".repeat(32)).unwrap();
    let (code, stderr) = run_kms(&t, &[("MCX_STORE_KEY_FILE", key_b.to_str().unwrap())]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        error_line(&stderr).contains("store key does not open this store"),
        "{stderr}"
    );
    // The topology's store_key_file wins over the environment: key B
    // there is refused even with key A in MCX_STORE_KEY.
    let t = topology(
        &d,
        &db,
        &format!("store_key_file = \"{}\"\n", key_b.display()),
    );
    let (code, stderr) = run_kms(&t, &[("MCX_STORE_KEY", &"a1".repeat(32))]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        error_line(&stderr).contains("store key does not open this store"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
