//! A child `mcx` process whose output the test reads line by line.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// A running `mcx` process; killed (SIGKILL) and reaped on drop, so that
/// a failing test leaves no process behind.
pub(crate) struct Proc {
    pub(crate) name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Stdout lines read so far.
    pub(crate) seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// Set when stderr reached EOF (the process and its children closed it).
    stderr_done: Arc<std::sync::atomic::AtomicBool>,
    status: Option<ExitStatus>,
}

/// Reads `from` line by line on a thread, handing each line to `each`.
fn pump(from: impl Read + Send + 'static, mut each: impl FnMut(String) -> bool + Send + 'static) {
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if !each(line) {
                break;
            }
        }
    });
}

impl Proc {
    /// `mcx run TOPOLOGY ROLE`.
    pub(crate) fn start(topology: &Path, role: &str) -> Self {
        Self::mcx(
            role,
            [OsStr::new("run"), topology.as_os_str(), OsStr::new(role)],
        )
    }

    /// `mcx ARGS…`, named `name` in failure messages. Stdout is read line
    /// by line; stderr is kept (and echoed to the test's stderr, so that a
    /// failing test shows the roles' logs).
    pub(crate) fn mcx<I, S>(name: &str, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Self::mcx_env(name, args, &[])
    }

    /// [`Proc::mcx`] with these environment variables set.
    pub(crate) fn mcx_env<I, S>(name: &str, args: I, env: &[(&str, &OsStr)]) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcx"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        pump(child.stdout.take().unwrap(), move |line| {
            tx.send(line).is_ok()
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (kept, who, done) = (stderr.clone(), name.to_owned(), stderr_done.clone());
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{who}] {line}");
                let mut k = kept.lock().unwrap();
                k.push_str(&line);
                k.push('\n');
            }
            done.store(true, std::sync::atomic::Ordering::Release);
        });
        Self {
            name: name.to_owned(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
            stderr_done,
            status: None,
        }
    }

    /// Waits for a stdout line starting with `prefix`; panics with what
    /// was seen if none comes `within`.
    pub(crate) fn expect(&mut self, prefix: &str, within: Duration) -> String {
        self.try_expect(prefix, within).unwrap_or_else(|| {
            panic!(
                "{}: no line starting with {prefix:?} within {within:?}; saw {:?}; stderr:\n{}",
                self.name,
                self.seen,
                self.stderr()
            )
        })
    }

    /// Waits for a stdout line starting with `prefix`, up to `within`.
    pub(crate) fn try_expect(&mut self, prefix: &str, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            self.seen.push(line.clone());
            if line.starts_with(prefix) {
                return Some(line);
            }
        }
    }

    /// Stdout lines printed so far (without waiting while it runs; once
    /// it has exited, all of them: its last lines may still be in the
    /// pipe, so the reader is given up to 5 s to reach end of file).
    pub(crate) fn drain(&mut self) -> Vec<String> {
        if self.status.is_some() {
            let end = Instant::now() + Duration::from_secs(5);
            while let Ok(line) = self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                self.seen.push(line);
            }
        }
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// Whether a stdout line so far starts with `prefix` (without waiting).
    pub(crate) fn printed(&mut self, prefix: &str) -> bool {
        self.drain().iter().any(|l| l.starts_with(prefix))
    }

    /// Everything written to stderr so far.
    /// What the process wrote to stderr so far; once it has exited, all
    /// of it (waiting up to 2 s for the reader to reach EOF).
    pub(crate) fn stderr(&self) -> String {
        if self.status.is_some() {
            let until = Instant::now() + Duration::from_secs(2);
            while !self.stderr_done.load(std::sync::atomic::Ordering::Acquire)
                && Instant::now() < until
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.stderr.lock().unwrap().clone()
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`TERM`, `INT`, …).
    pub(crate) fn signal(&self, name: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "{}: kill -{name} failed", self.name);
    }

    /// Sends SIGKILL and reaps the process.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        self.status = self.child.wait().ok();
    }

    /// Waits for the process to exit; panics if it has not `within`.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        if let Some(s) = self.status {
            return s;
        }
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                self.status = Some(s);
                return s;
            }
            if Instant::now() >= deadline {
                let seen = self.drain();
                panic!(
                    "{}: still running {within:?} later; stdout {seen:?}; stderr:\n{}",
                    self.name,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the exit, then returns everything printed on stdout.
    pub(crate) fn finish(&mut self, within: Duration) -> (ExitStatus, String) {
        let status = self.wait_exit(within);
        // The reader thread ends at EOF; give it its last lines.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        (status, self.seen.join("\n"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
