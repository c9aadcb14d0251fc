//! A throw-away PostgreSQL server for tests: its own data directory under
//! a temporary directory, its own port on 127.0.0.1 and its own user
//! (`mcx`, with a password), started with Debian's `postgresql` binaries.
//! As root (CI), the server runs as `nobody` through `runuser`, since
//! PostgreSQL refuses to run as root. Shared by the tests of mcx-kms,
//! mcx-gms and mcx (`#[path]`).
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The password of the test server's user (the tests check it never
/// shows in logs).
pub const PASSWORD: &str = "pg-test-pw-7f3a9c";

/// A running test server, stopped and deleted on drop.
pub struct TempPostgres {
    dir: PathBuf,
    bin: PathBuf,
    /// Run the server's programs as this user (`Some("nobody")` as root).
    run_as: Option<&'static str>,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
}

/// Where `initdb`, `pg_ctl` and `postgres` are: on PATH, or Debian's
/// `/usr/lib/postgresql/<version>/bin` (newest version).
fn bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").is_file() && p.join("pg_ctl").is_file())
    });
    on_path.or_else(|| {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| {
                let e = e.ok()?;
                let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((v, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin)
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl TempPostgres {
    /// Starts a server, or returns `None` after printing why the test is
    /// skipped, when the PostgreSQL binaries are not installed (Debian
    /// package `postgresql`). Any other failure panics: the test must not
    /// pass without a server it could have had.
    pub fn start(tag: &str) -> Option<Self> {
        let Some(bin) = bin_dir() else {
            eprintln!(
                "SKIPPED: no PostgreSQL binaries (initdb, pg_ctl) on PATH or in \
                 /usr/lib/postgresql/*/bin; install Debian's postgresql package to run this test"
            );
            return None;
        };
        let run_as = is_root().then_some("nobody");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        // As root the server runs as nobody, who must reach the directory:
        // /tmp, whatever TMPDIR says (it may be under root's home).
        let base = if run_as.is_some() {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("mcx-pg-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if run_as.is_some() {
            let nobody = Command::new("id").args(["-u", "nobody"]).output().unwrap();
            let uid: u32 = String::from_utf8_lossy(&nobody.stdout)
                .trim()
                .parse()
                .unwrap();
            for p in [&dir, &pwfile] {
                std::os::unix::fs::chown(p, Some(uid), None).unwrap();
            }
        }
        let mut pg = Self {
            dir,
            bin,
            run_as,
            port: 0,
        };
        let data = pg.data();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "mcx",
                "--pwfile",
                &pwfile.display().to_string(),
                "--auth=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        // Ports are taken from the ephemeral range; another process may
        // grab the one picked before the server binds it: try a few.
        for _ in 0..5 {
            pg.port = free_port();
            let options = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
                pg.port,
                pg.dir.display()
            );
            let log = pg.dir.join("server.log").display().to_string();
            let out = pg.try_run(
                "pg_ctl",
                &[
                    "-D", &data, "-o", &options, "-l", &log, "-w", "-t", "60", "start",
                ],
            );
            if out.status.success() {
                return Some(pg);
            }
            eprintln!(
                "pg_ctl start failed on port {}: {}{}",
                pg.port,
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(pg.dir.join("server.log")).unwrap_or_default()
            );
        }
        panic!("PostgreSQL did not start (see above)");
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn try_run(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.args(args)
            .current_dir(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()))
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.try_run(program, args);
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Restarts the server (fast shutdown: every connection is closed).
    pub fn restart(&self) {
        let data = self.data();
        // The log file again: a server without one would hold this
        // process's output pipe open, and `run` would wait for ever.
        let log = self.dir.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-m", "fast", "-w", "-t", "60", "restart",
            ],
        );
    }

    /// The connection URL (with the password) of database `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://mcx:{PASSWORD}@127.0.0.1:{}/postgres", self.port)
    }

    /// The temporary directory (for the tests' own files too).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.try_run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
