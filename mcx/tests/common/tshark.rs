//! Wireshark's command-line tools for the tests that check captures
//! against them (`capture.rs`, `pcap.rs`).

use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Command;

/// Why one of `tools` cannot run (not installed, or not runnable), or
/// `None` when all can. Debian/Ubuntu: `apt-get install tshark`, which
/// brings dumpcap; `./scripts/test` installs it.
pub(crate) fn missing(tools: &[&str]) -> Option<String> {
    tools
        .iter()
        .find_map(|tool| match Command::new(tool).arg("-v").output() {
            Ok(_) => None,
            Err(e) if e.kind() == ErrorKind::NotFound => Some(format!(
                "{tool} is not installed (Debian/Ubuntu: apt-get install tshark, which brings \
             dumpcap; ./scripts/test installs it)"
            )),
            Err(e) => Some(format!("cannot run {tool}: {e}")),
        })
}

/// tshark reading one file, with options that go before every query
/// (`-d` decode-as rules, `--disable-protocol`, …).
pub(crate) struct Tshark {
    pub(crate) file: PathBuf,
    pub(crate) options: Vec<String>,
}

impl Tshark {
    /// Runs `tshark -n -r FILE OPTIONS… ARGS…`; panics if it fails.
    pub(crate) fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tshark")
            .arg("-n")
            .arg("-r")
            .arg(&self.file)
            .args(&self.options)
            .args(args)
            .output()
            .expect("running tshark");
        assert!(
            out.status.success(),
            "tshark {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// One row per packet matching `filter`: the values of `fields`, each
    /// a list (a field may occur several times in a packet).
    pub(crate) fn fields(&self, filter: &str, fields: &[&str]) -> Vec<Vec<Vec<String>>> {
        let mut args = vec![
            "-Y",
            filter,
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-E",
            "aggregator=\u{1f}",
            "-E",
            "occurrence=a",
        ];
        for f in fields {
            args.extend(["-e", f]);
        }
        self.run(&args)
            .lines()
            .map(|line| {
                let mut cols: Vec<Vec<String>> = line
                    .split('\t')
                    .map(|c| {
                        if c.is_empty() {
                            Vec::new()
                        } else {
                            c.split('\u{1f}').map(str::to_owned).collect()
                        }
                    })
                    .collect();
                cols.resize(fields.len(), Vec::new());
                cols
            })
            .collect()
    }
}
