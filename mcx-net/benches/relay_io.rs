//! Media relay vs rtpengine: CPU per output packet over loopback UDP.
//!
//! Not a criterion bench on purpose: criterion times a closure run as fast
//! as it can go, while a relay's cost is CPU per packet at a given load,
//! with other processes sending and receiving. So this harness drives a
//! fixed packet rate through each relay and reads the relay process's CPU
//! time from the kernel (the sum over its threads of
//! `/proc/PID/task/TID/schedstat`, in ns), the same way for both:
//!
//! - **mcx**: this binary started again as a child process (`--relay-child`)
//!   that runs `mcx_net::RelayTask` (the servers' voice relay) on a tokio
//!   multi-thread runtime, as `mcx` does, with routes of fan-out 1, 100 and
//!   1,000;
//! - **rtpengine** (Debian `rtpengine-daemon`), userspace forwarding
//!   (`--table=-1`: no kernel module), 1→1 calls set up with `offer` and
//!   `answer` over its ng control protocol (bencode over UDP).
//!
//! This process is the packet source (one socket, paced, RTP of
//! [`PACKET_LEN`] octets, SRTP-sized, 50 packets/s per stream) and the
//! sinks (one socket per receiver, counting what arrives). Each scenario
//! has the same output rate (`RELAY_BENCH_RATE`, default 50,000 packets/s):
//! 1,000 streams 1→1, 10 streams 1→100, 1 stream 1→1,000.
//!
//! Run: `cargo bench -p mcx-net --bench relay_io`. Environment:
//! `RELAY_BENCH_RATE` (output packets/s), `RELAY_BENCH_SECS` (seconds a
//! scenario sends, default 5), `RELAY_BENCH_ROUNDS` (default 1),
//! `RTPENGINE` (the daemon's path, default `rtpengine`). Without rtpengine
//! its rows are skipped with the reason.
#![allow(missing_docs, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcx_core::RelayCommand;
use mcx_net::RelayTask;
use mcx_relay::Route;

/// Octets of each packet: 12 RTP header + 160 PCMU + 4 MKI + 16 GCM tag
/// + 8 to round up (an SRTP packet as the clients send it, ~200 octets).
const PACKET_LEN: usize = 200;
/// One voice stream: a packet every 20 ms.
const STREAM_PPS: u64 = 50;
const SSRC_BASE: u32 = 0x1000_0000;
const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--relay-child") {
        relay_child();
        return;
    }
    let rate = env_num("RELAY_BENCH_RATE", 50_000);
    let secs = env_num("RELAY_BENCH_SECS", 5);
    let rounds = env_num("RELAY_BENCH_ROUNDS", 1);
    let receivers = usize::try_from(rate / STREAM_PPS).unwrap().max(1);
    let sinks = Sinks::start(receivers);
    let source = UdpSocket::bind((LOCAL, 0)).unwrap();
    println!(
        "relay_io: {rate} output packets/s, {PACKET_LEN}-octet packets, {secs} s a scenario, {rounds} round(s), {} cores",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let mut results: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
    let mut skipped = None;
    for round in 1..=rounds {
        match Rtpengine::start(receivers) {
            Ok(mut rtpe) => {
                let outcome = rtpe.run(&source, &sinks, secs);
                report(round, "rtpengine 1→1", &outcome);
                results
                    .entry("a rtpengine 1→1".into())
                    .or_default()
                    .push(outcome);
            }
            Err(why) => {
                if skipped.is_none() {
                    println!("rtpengine: skipped ({why})");
                }
                skipped = Some(why);
            }
        }
        for fan_out in [1, 100, 1000] {
            if fan_out > receivers {
                println!(
                    "mcx 1→{fan_out}: skipped (RELAY_BENCH_RATE {rate} gives {receivers} receivers)"
                );
                continue;
            }
            let streams = receivers / fan_out;
            let mut ours = OurRelay::start(&source, &sinks, streams, fan_out);
            let outcome = ours.run(&source, &sinks, secs);
            let label = format!("mcx 1→{fan_out}");
            report(round, &label, &outcome);
            results
                .entry(format!("b mcx {fan_out:05}"))
                .or_default()
                .push(outcome);
        }
    }
    println!();
    println!(
        "| relay | fan-out | streams | packets in | packets out (delivered) | loss | CPU µs per output packet, median (range) | relay CPU idle |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    for runs in results.values() {
        let first = &runs[0];
        let sent: u64 = runs.iter().map(|o| o.sent).sum();
        let delivered: u64 = runs.iter().map(|o| o.delivered).sum();
        let expected = sent * first.fan_out as u64;
        let loss = 100.0 * expected.saturating_sub(delivered) as f64 / expected.max(1) as f64;
        let mut us: Vec<f64> = runs.iter().map(Outcome::cpu_us_per_output).collect();
        us.sort_by(f64::total_cmp);
        let idle = runs.iter().map(|o| o.idle_ms_per_s).fold(0.0, f64::max);
        println!(
            "| {} | 1→{} | {} | {sent} | {delivered} | {loss:.2} % | {:.2} ({:.2}–{:.2}) | ≤ {idle:.1} ms/s |",
            first.relay,
            first.fan_out,
            first.streams,
            us[us.len() / 2],
            us[0],
            us[us.len() - 1],
        );
    }
    if let Some(why) = skipped {
        println!("rtpengine rows skipped: {why}");
    }
}

fn report(round: u64, label: &str, o: &Outcome) {
    println!(
        "round {round}: {label:<14} in {:>7} out {:>8}/{:<8} loss {:>5.2} %  CPU {:>7.1} ms = {:.2} µs per output packet (idle {:.1} ms/s)",
        o.sent,
        o.delivered,
        o.sent * o.fan_out as u64,
        o.loss_percent(),
        o.cpu_ns as f64 / 1e6,
        o.cpu_us_per_output(),
        o.idle_ms_per_s
    );
}

/// One scenario's figures.
struct Outcome {
    relay: &'static str,
    fan_out: usize,
    streams: usize,
    sent: u64,
    delivered: u64,
    cpu_ns: u64,
    idle_ms_per_s: f64,
}

impl Outcome {
    fn loss_percent(&self) -> f64 {
        let expected = self.sent * self.fan_out as u64;
        if expected == 0 {
            return 0.0;
        }
        100.0 * (expected.saturating_sub(self.delivered)) as f64 / expected as f64
    }

    fn cpu_us_per_output(&self) -> f64 {
        self.cpu_ns as f64 / 1e3 / self.delivered.max(1) as f64
    }
}

/// CPU time (ns) of every thread of process `pid` so far.
fn cpu_ns(pid: u32) -> u64 {
    let mut total = 0;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    for t in tasks.flatten() {
        let path = t.path().join("schedstat");
        if let Ok(s) = std::fs::read_to_string(path) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// Sends `streams` paced RTP streams (50 packets/s each, spread evenly)
/// for `secs`, stream `i` to `dests[i]`; how many were sent.
fn drive(source: &UdpSocket, dests: &[SocketAddr], secs: u64) -> u64 {
    let streams = dests.len() as u64;
    let pps = streams * STREAM_PPS;
    let total = pps * secs;
    let mut packet = [0x5Au8; PACKET_LEN];
    packet[0] = 0x80; // V=2
    packet[1] = 0; // PT 0 (PCMU)
    let start = Instant::now();
    let mut sent = 0;
    let mut i = 0u64;
    while i < total {
        let due = start + Duration::from_nanos(i * 1_000_000_000 / pps);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
            continue;
        }
        let stream = i % streams;
        let seq = i / streams;
        packet[2..4].copy_from_slice(&(seq as u16).to_be_bytes());
        packet[4..8].copy_from_slice(&((seq * 160) as u32).to_be_bytes());
        packet[8..12].copy_from_slice(&(SSRC_BASE + stream as u32).to_be_bytes());
        if source.send_to(&packet, dests[stream as usize]).is_ok() {
            sent += 1;
        }
        i += 1;
    }
    sent
}

/// Measures one scenario on the relay process `pid`.
fn measure(
    pid: u32,
    source: &UdpSocket,
    sinks: &Sinks,
    dests: &[SocketAddr],
    fan_out: usize,
    secs: u64,
    relay: &'static str,
) -> Outcome {
    // Idle cost of the relay process (timers, housekeeping), for the record.
    let idle0 = cpu_ns(pid);
    std::thread::sleep(Duration::from_secs(1));
    let idle = cpu_ns(pid) - idle0;
    let before = sinks.received.load(Ordering::SeqCst);
    let cpu0 = cpu_ns(pid);
    let sent = drive(source, dests, secs);
    // Let the last packets through.
    std::thread::sleep(Duration::from_millis(300));
    let cpu = cpu_ns(pid) - cpu0;
    let delivered = sinks.received.load(Ordering::SeqCst) - before;
    Outcome {
        relay,
        fan_out,
        streams: dests.len(),
        sent,
        delivered,
        cpu_ns: cpu,
        idle_ms_per_s: idle as f64 / 1e6,
    }
}

/// The receivers: one socket each, read by one tokio task each on a
/// runtime of their own thread, counting datagrams.
struct Sinks {
    addrs: Vec<SocketAddr>,
    received: Arc<AtomicU64>,
}

impl Sinks {
    fn start(n: usize) -> Self {
        let received = Arc::new(AtomicU64::new(0));
        let sockets: Vec<UdpSocket> = (0..n)
            .map(|_| {
                let s = UdpSocket::bind((LOCAL, 0)).unwrap();
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect();
        let addrs = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        let count = received.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                for s in sockets {
                    let s = tokio::net::UdpSocket::from_std(s).unwrap();
                    let count = count.clone();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 2048];
                        while s.recv(&mut buf).await.is_ok() {
                            count.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
                std::future::pending::<()>().await;
            });
        });
        Self { addrs, received }
    }
}

/// Our relay in a child process.
struct OurRelay {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
    streams: usize,
    fan_out: usize,
}

impl OurRelay {
    fn start(source: &UdpSocket, sinks: &Sinks, streams: usize, fan_out: usize) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("--relay-child")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr: SocketAddr = line.trim().strip_prefix("ADDR ").unwrap().parse().unwrap();
        let mut routes = format!("SOURCE {}\n", source.local_addr().unwrap());
        for s in 0..streams {
            let targets = &sinks.addrs[s * fan_out..(s + 1) * fan_out];
            routes.push_str(&format!("ROUTE {}", SSRC_BASE + s as u32));
            for t in targets {
                routes.push_str(&format!(" {t}"));
            }
            routes.push('\n');
        }
        routes.push_str("GO\n");
        stdin.write_all(routes.as_bytes()).unwrap();
        line.clear();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY");
        Self {
            child,
            stdin,
            stdout,
            addr,
            streams,
            fan_out,
        }
    }

    fn run(&mut self, source: &UdpSocket, sinks: &Sinks, secs: u64) -> Outcome {
        let dests = vec![self.addr; self.streams];
        let o = measure(
            self.child.id(),
            source,
            sinks,
            &dests,
            self.fan_out,
            secs,
            "mcx",
        );
        self.stdin.write_all(b"STATS\n").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let dropped: u64 = line
            .trim()
            .strip_prefix("STATS ")
            .and_then(|v| v.split(' ').nth(2))
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX);
        assert_eq!(dropped, 0, "the relay dropped packets: {line}");
        o
    }
}

impl Drop for OurRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child: `mcx_net::RelayTask` on a runtime like `mcx`'s, routes from
/// stdin.
fn relay_child() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (relay, addr) = RelayTask::bind(SocketAddr::from((LOCAL, 0))).unwrap();
        println!("ADDR {addr}");
        let relay = tokio::task::spawn_blocking(move || {
            let stdin = std::io::stdin();
            let mut source = None;
            for line in stdin.lock().lines() {
                let line = line.unwrap();
                let mut words = line.split(' ');
                match words.next() {
                    Some("SOURCE") => source = words.next().map(|a| a.parse().unwrap()),
                    Some("ROUTE") => {
                        let ssrc = words.next().unwrap().parse().unwrap();
                        let targets = words.map(|a| a.parse().unwrap()).collect();
                        relay.command(RelayCommand::Set(Route {
                            source: source.unwrap(),
                            ssrc: Some(ssrc),
                            targets,
                        }));
                    }
                    _ => break,
                }
            }
            println!("READY");
            let mut line = String::new();
            let _ = stdin.lock().read_line(&mut line);
            relay
        })
        .await
        .unwrap();
        let s = relay.stats();
        println!("STATS {} {} {}", s.forwarded, s.copies, s.dropped());
    });
}

/// rtpengine, userspace forwarding, with one 1→1 call per stream.
struct Rtpengine {
    child: Child,
    control: UdpSocket,
    streams: usize,
    cookie: u64,
}

/// A bencoded value (the ng protocol's encoding).
#[derive(Debug)]
enum Bencode {
    Bytes(Vec<u8>),
    Int(i64),
    List(Vec<Self>),
    Dict(Vec<(Vec<u8>, Self)>),
}

impl Bencode {
    fn str(s: &str) -> Self {
        Self::Bytes(s.as_bytes().to_vec())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Self::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Self::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode(out));
                out.push(b'e');
            }
            Self::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Self::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decodes one value at the start of `input`; the rest.
    fn decode(input: &[u8]) -> Option<(Self, &[u8])> {
        match *input.first()? {
            b'i' => {
                let end = input.iter().position(|&c| c == b'e')?;
                let n = std::str::from_utf8(&input[1..end]).ok()?.parse().ok()?;
                Some((Self::Int(n), &input[end + 1..]))
            }
            b'l' => {
                let mut rest = &input[1..];
                let mut items = Vec::new();
                while *rest.first()? != b'e' {
                    let (v, r) = Self::decode(rest)?;
                    items.push(v);
                    rest = r;
                }
                Some((Self::List(items), &rest[1..]))
            }
            b'd' => {
                let mut rest = &input[1..];
                let mut items = Vec::new();
                while *rest.first()? != b'e' {
                    let (Self::Bytes(k), r) = Self::decode(rest)? else {
                        return None;
                    };
                    let (v, r) = Self::decode(r)?;
                    items.push((k, v));
                    rest = r;
                }
                Some((Self::Dict(items), &rest[1..]))
            }
            _ => {
                let colon = input.iter().position(|&c| c == b':')?;
                let len: usize = std::str::from_utf8(&input[..colon]).ok()?.parse().ok()?;
                let body = input.get(colon + 1..colon + 1 + len)?;
                Some((Self::Bytes(body.to_vec()), &input[colon + 1 + len..]))
            }
        }
    }

    fn get(&self, key: &str) -> Option<&Self> {
        match self {
            Self::Dict(d) => d.iter().find(|(k, _)| k == key.as_bytes()).map(|(_, v)| v),
            _ => None,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Self::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// A minimal audio SDP for `port` on loopback.
fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=ptime:20\r\na=sendrecv\r\n"
    )
}

/// The port of the first `m=audio` line of an SDP.
fn sdp_port(sdp: &str) -> Option<u16> {
    sdp.lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
}

impl Rtpengine {
    fn start(streams: usize) -> Result<Self, String> {
        let bin = std::env::var("RTPENGINE").unwrap_or_else(|_| "rtpengine".into());
        let control = UdpSocket::bind((LOCAL, 0)).map_err(|e| e.to_string())?;
        // A free port for the ng listener.
        let ng_port = UdpSocket::bind((LOCAL, 0))
            .and_then(|s| s.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let log =
            std::env::temp_dir().join(format!("relay_io-rtpengine-{}.log", std::process::id()));
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new(&bin)
            .args([
                "--config-file=none",
                "--table=-1",
                "--foreground",
                "--log-stderr",
                "--log-level=4",
                "--interface=127.0.0.1",
                &format!("--listen-ng=127.0.0.1:{ng_port}"),
                "--port-min=30000",
                "--port-max=39999",
                "--delete-delay=0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run `{bin}`: {e}; install it with `apt-get install rtpengine-daemon`"
                )
            })?;
        control
            .connect((LOCAL, ng_port))
            .map_err(|e| e.to_string())?;
        control
            .set_read_timeout(Some(Duration::from_millis(200)))
            .map_err(|e| e.to_string())?;
        let mut me = Self {
            child,
            control,
            streams,
            cookie: 0,
        };
        // Wait for it to answer a ping.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(r) = me.ng(vec![("command", Bencode::str("ping"))]) {
                if r.get("result").and_then(Bencode::as_str) == Some("pong") {
                    break;
                }
            }
            if let Ok(Some(status)) = me.child.try_wait() {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("rtpengine exited ({status}): {}", tail.trim()));
            }
            if Instant::now() > deadline {
                return Err("rtpengine did not answer an ng ping within 10 s".into());
            }
        }
        Ok(me)
    }

    /// One ng request and its answer.
    fn ng(&mut self, dict: Vec<(&str, Bencode)>) -> Result<Bencode, String> {
        self.cookie += 1;
        let cookie = format!("c{}", self.cookie);
        let mut msg = format!("{cookie} ").into_bytes();
        Bencode::Dict(
            dict.into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
        .encode(&mut msg);
        let mut buf = vec![0u8; 65536];
        for _ in 0..5 {
            self.control.send(&msg).map_err(|e| e.to_string())?;
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                let Ok(n) = self.control.recv(&mut buf) else {
                    break;
                };
                let reply = &buf[..n];
                let Some(body) = reply.strip_prefix(format!("{cookie} ").as_bytes()) else {
                    continue; // a late answer to an earlier try
                };
                return Bencode::decode(body)
                    .map(|(v, _)| v)
                    .ok_or_else(|| "undecodable ng answer".into());
            }
        }
        Err("no ng answer".into())
    }

    /// Sets up the calls: stream `i` from `source` to sink `i`; the
    /// address the source sends stream `i` to.
    fn calls(&mut self, source: SocketAddr, sinks: &Sinks) -> Result<Vec<SocketAddr>, String> {
        let mut dests = Vec::with_capacity(self.streams);
        for i in 0..self.streams {
            let call = format!("relay-io-{i}");
            let offer = self.ng(vec![
                ("command", Bencode::str("offer")),
                ("call-id", Bencode::str(&call)),
                ("from-tag", Bencode::str(&format!("a{i}"))),
                ("sdp", Bencode::str(&sdp(source.port()))),
            ])?;
            check(&offer, "offer")?;
            let answer = self.ng(vec![
                ("command", Bencode::str("answer")),
                ("call-id", Bencode::str(&call)),
                ("from-tag", Bencode::str(&format!("a{i}"))),
                ("to-tag", Bencode::str(&format!("b{i}"))),
                ("sdp", Bencode::str(&sdp(sinks.addrs[i].port()))),
            ])?;
            check(&answer, "answer")?;
            // The answer as rewritten for the caller names the port the
            // caller sends to.
            let port = answer
                .get("sdp")
                .and_then(Bencode::as_str)
                .and_then(sdp_port)
                .ok_or("no port in rtpengine's answer")?;
            dests.push(SocketAddr::from((LOCAL, port)));
        }
        Ok(dests)
    }

    fn run(&mut self, source: &UdpSocket, sinks: &Sinks, secs: u64) -> Outcome {
        let dests = self
            .calls(source.local_addr().unwrap(), sinks)
            .unwrap_or_else(|e| panic!("rtpengine call set-up: {e}"));
        measure(self.child.id(), source, sinks, &dests, 1, secs, "rtpengine")
    }
}

fn check(reply: &Bencode, what: &str) -> Result<(), String> {
    match reply.get("result").and_then(Bencode::as_str) {
        Some("ok") => Ok(()),
        r => Err(format!(
            "{what}: result {r:?}, {:?}",
            reply.get("error-reason").and_then(Bencode::as_str)
        )),
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
