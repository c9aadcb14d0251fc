//! Separate "hosts" on one machine: each a Linux network namespace with
//! its own address, joined by veth links to a bridge that lives in a
//! namespace of its own, so the machine's own network is never touched.
//! Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and `ip` (iproute2).
//!
//! Namespace names are global, so every name carries a prefix, this
//! process's id and a tag (tests in one process each use their own);
//! [`Network::new`] first removes what runs of the same prefix
//! left behind when they crashed (their process is gone), and [`Network`]'s
//! `Drop` removes everything it made, panic or not.

use std::net::Ipv4Addr;
use std::process::{Command, Output, Stdio};

/// Why the network cannot be built here; the test skips with this.
#[derive(Debug)]
pub(crate) struct Unsupported(pub(crate) String);

/// One host: a namespace with one address on the network's subnet.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) addr: Ipv4Addr,
    /// The bridge-side end of its veth link (in the bridge's namespace).
    bridge_port: String,
}

impl Host {
    /// A command that runs `program` inside this host's namespace.
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.namespace, program]);
        c
    }
}

/// Hosts on one bridge. Everything it made is removed on drop.
#[derive(Debug)]
pub(crate) struct Network {
    bridge: String,
    hosts: Vec<Host>,
}

fn ip(args: &[&str]) -> Result<Output, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn is_root() -> bool {
    // Effective UID, the second field of Uid: in /proc/self/status.
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            == Some("0")
    })
}

/// Namespaces named `{prefix}-{pid}-…` whose process is gone: left by a
/// run that crashed or was killed before its guard could clean up.
fn remove_leftovers(prefix: &str) {
    let Ok(out) = ip(&["netns", "list"]) else {
        return;
    };
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    for name in listing.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        // A live process may be another run of this test: leave its hosts.
        if pid.is_empty() || std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        // The roles that run left behind would keep the namespace alive
        // (unnamed) and hold their ports: end them first, by pid.
        let pids = ip(&["netns", "pids", name])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for p in pids.split_whitespace() {
            let _ = Command::new("kill").args(["-KILL", p]).status();
        }
        eprintln!("removed namespace {name} and its processes, left by an earlier run");
        let _ = ip(&["netns", "delete", name]);
    }
}

impl Network {
    /// Builds one namespace per name in `hosts`, named
    /// `{prefix}-{pid}-{tag}-{host}` and addressed 10.211.0.1, .2, … /24 in
    /// that order, plus the bridge's. Nothing outside these
    /// namespaces is changed, so the subnet cannot collide with the
    /// machine's (or with another run's: each network has its own bridge).
    pub(crate) fn new(prefix: &str, tag: &str, hosts: &[&str]) -> Result<Self, Unsupported> {
        if Command::new("ip").arg("-V").output().is_err() {
            return Err(Unsupported("`ip` (iproute2) is not installed".into()));
        }
        if !is_root() {
            return Err(Unsupported(
                "not root: network namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN".into(),
            ));
        }
        assert!(hosts.len() < 250, "one /24 subnet");
        remove_leftovers(prefix);
        let pid = std::process::id();
        let prefix = format!("{prefix}-{pid}-{tag}");
        let bridge = format!("{prefix}-bridge");
        ip(&["netns", "add", &bridge])
            .map_err(|e| Unsupported(format!("cannot create a network namespace: {e}")))?;
        let mut net = Self {
            bridge,
            hosts: Vec::new(),
        };
        // Namespaces work here, so a failure from here on is the test's
        // own (or the kernel's) and must fail it, not skip it; Drop removes
        // whatever was made.
        if let Err(e) = net.build(&prefix, pid, hosts) {
            panic!("cannot build the hosts' network: {e}");
        }
        Ok(net)
    }

    fn build(&mut self, prefix: &str, pid: u32, hosts: &[&str]) -> Result<(), String> {
        let br = self.bridge.clone();
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &br, "link", "set", "br0", "up"])?;
        for (i, name) in hosts.iter().enumerate() {
            let n = u8::try_from(i + 1).map_err(|e| e.to_string())?;
            let host = Host {
                name: (*name).to_owned(),
                namespace: format!("{prefix}-{name}"),
                addr: Ipv4Addr::new(10, 211, 0, n),
                // At most 15 bytes (IFNAMSIZ); unique within the bridge's
                // namespace, and the pid says whose it is.
                bridge_port: format!("p{pid}-{n}"),
            };
            ip(&["netns", "add", &host.namespace])?;
            let ns = host.namespace.clone();
            let port = host.bridge_port.clone();
            self.hosts.push(host);
            // Both ends are made inside their namespaces: the machine's
            // own namespace never sees them.
            let peer = format!("eth{pid}");
            ip(&[
                "-n", &br, "link", "add", &port, "type", "veth", "peer", "name", &peer, "netns",
                &ns,
            ])?;
            ip(&["-n", &br, "link", "set", &port, "master", "br0", "up"])?;
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("10.211.0.{n}/24"),
                "dev",
                &peer,
            ])?;
            ip(&["-n", &ns, "link", "set", &peer, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// The host of this name.
    pub(crate) fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name}"))
    }

    /// Cuts a host off the network: its bridge port goes down, so nothing
    /// reaches it or leaves it (its processes see no error, as when a
    /// cable is pulled upstream).
    pub(crate) fn cut(&self, name: &str) {
        let port = &self.host(name).bridge_port;
        ip(&["-n", &self.bridge, "link", "set", port, "down"]).expect("cut the link");
    }

    /// Puts a cut host back on the network.
    pub(crate) fn reconnect(&self, name: &str) {
        let port = &self.host(name).bridge_port;
        ip(&["-n", &self.bridge, "link", "set", port, "up"]).expect("restore the link");
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of each veth, which deletes
        // the other end too; the processes in it are the caller's to end
        // first (a namespace with a process in it lives on unnamed).
        for h in &self.hosts {
            if let Err(e) = ip(&["netns", "delete", &h.namespace]) {
                eprintln!("cleanup: {e}");
            }
        }
        if let Err(e) = ip(&["netns", "delete", &self.bridge]) {
            eprintln!("cleanup: {e}");
        }
    }
}
