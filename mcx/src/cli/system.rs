//! `mcx demo`, `mcx up`, `mcx run`, `mcx call`: the running system.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use mcx_core::ClientEvent;

use crate::demo;
use crate::error::CliError;
use crate::system::{self, Running, Selection};
use crate::topology::{DEFAULT, Topology};

/// `mcx demo --kpi` sends this much of the audio per call: 1 s at 8 kHz.
const KPI_VOICE_SAMPLES: usize = 8000;

/// `mcx demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// A topology file instead of the embedded default.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["groups", "members"])]
    topology: Option<PathBuf>,
    /// Generate a topology of this many groups (with --members), for the
    /// set-up time benchmark.
    #[arg(long, requires = "members")]
    groups: Option<usize>,
    /// Members per generated group (besides the dispatcher).
    #[arg(long, requires = "groups")]
    members: Option<usize>,
    /// Make this many calls one after another (the set-up time benchmark
    /// reports their median, minimum and maximum).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    calls: u32,
    /// The audio the initiator sends in the first call (a WAV file, any
    /// rate, mono or stereo); a built-in test signal without it.
    #[arg(long, value_name = "FILE.wav")]
    audio: Option<PathBuf>,
    /// Write what each member heard to DIR/USER.wav.
    #[arg(long, value_name = "DIR")]
    record_dir: Option<PathBuf>,
    /// Send no audio (signalling and keys only, e.g. for set-up benchmarks).
    #[arg(long, conflicts_with_all = ["audio", "record_dir", "late_joiner"])]
    no_audio: bool,
    /// One member (the last of the call's last group) is off duty when
    /// the call starts and registers 1 s into the voice: it is invited in
    /// (late entry), decrypts mid-stream and gets Floor Taken; the times
    /// are printed.
    #[arg(long)]
    late_joiner: bool,
    /// Measure the TS 22.179 KPIs over --calls N calls: every call carries
    /// the first second of the audio and has a late joiner; prints p50,
    /// p95 and max of call set-up, floor access, the voice latency our
    /// stack adds (mouth-to-ear less playout delay) and late entry,
    /// against the 3GPP budgets.
    #[arg(long, conflicts_with = "no_audio")]
    kpi: bool,
    /// Capture the whole run on the loopback interface (SIP, HTTP, SRTP,
    /// floor control) into FILE (pcap), with dumpcap; write the calls'
    /// SRTP keys to FILE.keys (secret) for `mcx srtp decrypt`, and the TLS
    /// secrets of SIP and HTTPS to FILE.tlskeys (secret; SSLKEYLOGFILE
    /// format, for tshark -o tls.keylog_file:FILE.tlskeys).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
}

/// `mcx tls`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TlsCommand {
    /// Write a demo CA certificate (ca.pem) and a certificate and key
    /// (ROLE.pem, ROLE.key, keys 0600) for every role of a topology,
    /// naming its URI and listen address; set `dir` in the topology's
    /// [tls] to DIR so that `mcx run` reads them. The CA key is not kept.
    Ca(TlsCaArgs),
}

/// `mcx tls ca`.
#[derive(Debug, Args)]
pub(crate) struct TlsCaArgs {
    /// The topology.
    #[arg(long, value_name = "FILE")]
    topology: PathBuf,
    /// The directory to write into (created if missing; files replaced).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs `mcx tls …`.
pub(crate) fn tls(command: &TlsCommand) -> Result<(), CliError> {
    match command {
        TlsCommand::Ca(args) => {
            let t = load(Some(&args.topology))?;
            let written = crate::tls::write_dir(&t, &args.out)?;
            print(&format!(
                "wrote a demo CA and certificates for {} roles to {} ({} files; keys are secret, 0600)\n",
                (written.len() - 1) / 2,
                args.out.display(),
                written.len()
            ));
            Ok(())
        }
    }
}

/// `mcx up`.
#[derive(Debug, Args)]
pub(crate) struct UpArgs {
    /// The topology file; the embedded default without it.
    topology: Option<PathBuf>,
    /// Serve the admin API (/health, /ready, /metrics, /calls) on ADDR.
    #[arg(long, value_name = "ADDR")]
    admin: Option<std::net::SocketAddr>,
}

/// `mcx run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The topology file (every address with a fixed port).
    topology: PathBuf,
    /// The role: `kms`, `gms`, `controlling`, or the URI of an MC server
    /// or a user.
    role: String,
    /// A member writes the voice it heard in each call to
    /// DIR/USER-N.wav.
    #[arg(long, value_name = "DIR")]
    record_dir: Option<PathBuf>,
    /// Serve the admin API (/health, /ready, /metrics, /calls) on ADDR.
    #[arg(long, value_name = "ADDR")]
    admin: Option<std::net::SocketAddr>,
    /// A KMS or GMS instance listens on ADDR instead of the topology's
    /// `http` (a further instance on a shared PostgreSQL database: list
    /// ADDR in the role's `replicas` so that clients fail over to it).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// The async runtime: `current-thread` (one event loop) is the default
    /// for the SIP roles, whose work is one state machine's task: worker
    /// threads would only add cross-thread wake-ups (measured: an MC
    /// server's CPU per member −10 %, docs/BENCHMARKS.md). `multi-thread`
    /// (a worker per core) is the default for the KMS and the GMS, which
    /// answer many HTTPS clients at once.
    #[arg(long, value_enum)]
    runtime: Option<RuntimeKind>,
}

/// Which tokio runtime a process runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RuntimeKind {
    /// One event loop on the main thread (blocking work still goes to
    /// the blocking pool).
    CurrentThread,
    /// A worker thread per core.
    MultiThread,
}

impl RuntimeKind {
    /// The default for `mcx run ROLE`.
    fn for_role(role: &str) -> Self {
        match role {
            "kms" | "gms" => Self::MultiThread,
            _ => Self::CurrentThread,
        }
    }
}

/// `mcx calls`: a role's calls, through its admin API.
#[derive(Debug, Args)]
pub(crate) struct CallsArgs {
    /// The admin API of the process (`mcx run … --admin ADDR`).
    #[arg(long, value_name = "ADDR")]
    admin: std::net::SocketAddr,
    #[command(subcommand)]
    command: Option<CallsCommand>,
}

/// `mcx calls end`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum CallsCommand {
    /// End the call with this Call-ID (as `mcx calls` lists it).
    End {
        /// The Call-ID.
        id: String,
    },
}

/// `mcx call`.
#[derive(Debug, Args)]
pub(crate) struct CallArgs {
    /// The topology file; its [call] names the initiator, whose client
    /// this process runs.
    topology: PathBuf,
    /// Keep each call up this many seconds, holding the floor, before
    /// releasing it (to cause faults mid-call).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    hold: u64,
    /// Make this many calls one after another.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    repeat: u32,
    /// Send this audio (a WAV file, any rate, mono or stereo) in each call
    /// once the floor is granted.
    #[arg(long, value_name = "FILE.wav")]
    audio: Option<PathBuf>,
    /// Send the built-in test signal in each call.
    #[arg(long, conflicts_with = "audio")]
    voice: bool,
    /// Form a temporary group of these groups through the GMS for each
    /// call (group regroup; the initiator needs `regroup` rights over
    /// them), call it, and dissolve it afterwards, instead of calling the
    /// topology's temporary group.
    #[arg(long, value_name = "GROUP,GROUP", value_delimiter = ',', num_args = 1..)]
    groups: Option<Vec<String>>,
}

fn load(path: Option<&PathBuf>) -> Result<Topology, CliError> {
    match path {
        None => Topology::parse(DEFAULT, "<default topology>"),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| CliError::Read {
                path: p.display().to_string(),
                source,
            })?;
            let mut t = Topology::parse(&text, &p.display().to_string())?;
            // A relative certificate directory is next to the topology file.
            if let Some(dir) = t.tls.as_mut().and_then(|s| s.dir.as_mut())
                && dir.is_relative()
                && let Some(parent) = p.parent()
            {
                *dir = parent.join(&*dir);
            }
            Ok(t)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    runtime_of(RuntimeKind::MultiThread)
}

fn runtime_of(kind: RuntimeKind) -> Result<tokio::runtime::Runtime, CliError> {
    let mut builder = match kind {
        RuntimeKind::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        RuntimeKind::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| CliError::System(format!("cannot start the async runtime: {e}")))
}

/// Logs go to stderr: `MCX_LOG` sets the filter (default `warn`),
/// `MCX_LOG_FORMAT=json` makes them one JSON object a line (default:
/// human), colours only on a terminal; `MCX_SIP_TRACE=DIR` writes each
/// role's SIP messages to DIR/ROLE.sip.log (docs/operations.md).
fn init_logging() {
    use std::io::IsTerminal;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = tracing_subscriber::EnvFilter::try_from_env("MCX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // The PostgreSQL client logs every statement's parameters at debug
    // (sealed secrets, token hashes): never below info, whatever MCX_LOG
    // asks.
    let filter = match "tokio_postgres=info".parse() {
        Ok(cap) => filter.add_directive(cap),
        Err(_) => filter,
    };
    let json = match std::env::var("MCX_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("human") | Err(_) => false,
        Ok(other) => {
            eprintln!(
                "warning: MCX_LOG_FORMAT={other:?} is neither \"human\" nor \"json\"; logging as human"
            );
            false
        }
    };
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().with_filter(filter).boxed()
    } else {
        fmt.with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed()
    };
    let sip_trace = std::env::var_os("MCX_SIP_TRACE").and_then(|dir| {
        crate::sip_trace::SipTrace::new(PathBuf::from(&dir))
            .map_err(|e| {
                eprintln!(
                    "warning: MCX_SIP_TRACE={}: {e}; no SIP trace",
                    dir.to_string_lossy()
                )
            })
            .ok()
    });
    let sip_trace = sip_trace.map(|t| {
        t.with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target("mcx::sip", tracing::Level::TRACE),
        )
    });
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(sip_trace)
        .try_init();
}

fn print(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn describe(t: &Topology, r: &Running) -> String {
    let mut s = String::new();
    let scheme = if r.https { "https" } else { "http" };
    if let (Some(i), Some(addr)) = (&t.idms, r.idms_http) {
        s.push_str(&format!("  IdMS        {:<32} {scheme}://{addr}\n", i.uri));
    }
    s.push_str(&format!(
        "  KMS         {:<32} {}://{}\n",
        t.kms.uri, scheme, r.kms_http
    ));
    s.push_str(&format!(
        "  GMS         {:<32} {}://{}\n",
        t.gms.uri, scheme, r.gms_http
    ));
    if let Some(p) = r.directory.peer(&t.controlling.uri) {
        s.push_str(&format!(
            "  controlling {:<32} sip {} {:?}, floor {}\n",
            t.controlling.uri,
            p.sip,
            p.transport,
            p.floor.map_or_else(String::new, |f| f.to_string())
        ));
    }
    for m in &t.mc_servers {
        if let Some(p) = r.directory.peer(&m.uri) {
            s.push_str(&format!(
                "  MC server   {:<32} sip {} {:?}, groups {}\n",
                m.uri,
                p.sip,
                p.transport,
                m.groups.join(", ")
            ));
        }
    }
    let shown = t.users.len().min(12);
    for u in &t.users[..shown] {
        if let Some(p) = r.directory.peer(&u.uri) {
            s.push_str(&format!(
                "  client      {:<32} sip {} {:?}\n",
                u.uri, p.sip, p.transport
            ));
        }
    }
    if t.users.len() > shown {
        s.push_str(&format!("  … and {} more clients\n", t.users.len() - shown));
    }
    s
}

/// Runs `mcx demo`.
pub(crate) fn demo(args: &DemoArgs) -> Result<(), CliError> {
    init_logging();
    let (t, name) = match (args.groups, args.members) {
        (Some(g), Some(m)) => (
            Topology::generated(g, m)?,
            format!("generated: {g} groups × {m} members"),
        ),
        _ => (
            load(args.topology.as_ref())?,
            args.topology.as_ref().map_or_else(
                || "embedded default".to_owned(),
                |p| p.display().to_string(),
            ),
        ),
    };
    let rt = runtime()?;
    rt.block_on(async {
        print(&format!(
            "mcx demo: a temporary group – broadcast call (TS 33.180 7.3.X) over real sockets on loopback\ntopology: {name}\n"
        ));
        // With --pcap, the capture runs before the first packet: every
        // port is known once bound, and provisioning is the first traffic.
        let (mut running, capture) = match &args.pcap {
            Some(_) => {
                let mut bound = system::bind(&t, &Selection::All).await?;
                if let (Some(m), Some(path)) = (&mut bound.tls, &args.pcap) {
                    m.log_keys_to(&suffixed(path, ".tlskeys"))?;
                }
                let capture = crate::dumpcap::Capture::start(&bound.capture_ports()?).await?;
                (system::start_bound(&t, bound).await?, Some(capture))
            }
            None => (system::start(&t, &Selection::All).await?, None),
        };
        print(&describe(&t, &running));
        print(&format!(
            "started KMS and GMS; {} clients provisioned from them (KmsInit, KmsKeyProv, group documents with GKTPs) in {:.2} s\n\n",
            running.clients.len(),
            running.provisioning.as_secs_f64()
        ));
        let voice = if args.no_audio {
            None
        } else {
            let mut plan = crate::voice::VoicePlan::load(
                args.audio.as_deref(),
                args.record_dir.clone(),
            )?;
            if args.kpi {
                // Enough packets per call for the percentiles (50 a
                // member), and calls short enough to make many.
                plan.samples.truncate(KPI_VOICE_SAMPLES);
            }
            Some(plan)
        };
        let late_joiner = if args.late_joiner || args.kpi {
            Some(demo::late_joiner_of(&t)?)
        } else {
            None
        };
        let mut setups = Vec::new();
        let mut servers = Vec::new();
        let mut failures = Vec::new();
        let mut keys = Vec::new();
        let mut kpis = crate::kpi::Kpis::default();
        let temporary_group = t.call.as_ref().map(|c| c.temporary_group.clone()).unwrap_or_default();
        let mut calls = async {
            for n in 0..args.calls {
                // Voice and late entry in the first call, or in every call
                // when measuring.
                let with_voice = n == 0 || args.kpi;
                let options = demo::CallOptions {
                    voice: voice.as_ref().filter(|_| with_voice),
                    late_joiner: late_joiner.as_deref().filter(|_| with_voice),
                    ..demo::CallOptions::default()
                };
                let report = demo::run_call_with(&t, &mut running, &options).await?;
                kpis.add(report.setup, report.floor_access, report.voice_times.as_ref());
                if n == 0 {
                    print(&report.text);
                }
                setups.push(report.setup);
                servers.push(report.busy.controlling + report.busy.mc_servers);
                if let Some(k) = &report.media_keys {
                    keys.push(crate::decrypt::KeyEntry::from_call(&temporary_group, report.reference.tgmk_id, k));
                }
                failures.extend(report.failures.into_iter().map(|f| format!("call {}: {f}", n + 1)));
            }
            Ok::<(), CliError>(())
        }
        .await;
        // The capture is written even when a call failed: that is when a
        // lab needs it most.
        if let (Some(capture), Some(path)) = (capture, &args.pcap) {
            let tls_keys = t.tls.as_ref().map(|_| suffixed(path, ".tlskeys"));
            let written = write_capture(capture, path, keys, tls_keys.as_deref()).await;
            calls = calls.and(written);
        }
        calls?;
        if setups.len() > 1 {
            setups.sort();
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
            print(&format!(
                "\ncall set-up time over {} calls: median {:.2} ms, min {:.2} ms, max {:.2} ms\n",
                setups.len(),
                ms(setups[setups.len() / 2]),
                ms(setups[0]),
                ms(setups[setups.len() - 1]),
            ));
            servers.sort();
            print(&format!(
                "servers' processing per call (controlling + MC servers, busy time): median {:.2} ms\n",
                ms(servers[servers.len() / 2]),
            ));
        }
        if args.kpi {
            print(&kpis.table(mcx_client::DEFAULT_PLAYOUT_DELAY));
        }
        if failures.is_empty() {
            print("\nresult: OK — every member holds the initiator's TGMK; no server and no non-member holds it\n");
            Ok(())
        } else {
            print("\nresult: FAILED\n");
            for f in &failures {
                print(&format!("  - {f}\n"));
            }
            Err(CliError::DemoFailed {
                failed: failures.len(),
            })
        }
    })
}

/// Ends `mcx demo --pcap`'s capture: the pcap to `path`, the calls' keys
/// to `path.keys`, and says where they went.
async fn write_capture(
    capture: crate::dumpcap::Capture,
    path: &std::path::Path,
    keys: Vec<crate::decrypt::KeyEntry>,
    tls_keys: Option<&std::path::Path>,
) -> Result<(), CliError> {
    let w = capture.finish(path).await?;
    let key_path = suffixed(path, ".keys");
    let n = keys.len();
    crate::decrypt::write_key_file(&key_path, keys)?;
    print(&format!(
        "\ncapture: {} packets ({} octets) of the whole run on lo written to {} (pcap: SIP, HTTP, SRTP voice, floor control)\nkeys: the SRTP master key, salt and MKI (TGMK-ID) of {n} call(s) written to {} — SECRET, for the lab only: mcx srtp decrypt --pcap {} --keys {} --out DIR\n",
        w.packets,
        w.octets,
        path.display(),
        key_path.display(),
        path.display(),
        key_path.display(),
    ));
    if let Some(tls) = tls_keys {
        print(&format!(
            "TLS keys: the secrets of every SIP/TLS and HTTPS connection written to {} — SECRET, for the lab only: tshark -r {} -o tls.keylog_file:{}\n",
            tls.display(),
            path.display(),
            tls.display(),
        ));
    }
    Ok(())
}

/// `FILE<suffix>` next to the capture `FILE` (`.keys`, `.tlskeys`).
fn suffixed(pcap: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = pcap.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Runs `mcx up`: every role of the topology in this process until
/// interrupted.
pub(crate) fn up(args: &UpArgs) -> Result<(), CliError> {
    init_logging();
    let t = load(args.topology.as_ref())?;
    runtime()?.block_on(async {
        let mut running = system::start(&t, &Selection::All).await?;
        let mut stop = system::StopSignal::listen();
        for (uri, node) in &mut running.clients {
            system::log_events(
                uri,
                node.take_events(),
                |e| matches!(e, ClientEvent::IncomingRejected { .. }),
                crate::admin::observe_client,
            );
        }
        let _admin = start_admin(args.admin, &running).await?;
        print(&describe(&t, &running));
        print("ready\n");
        stop.recv().await;
        let n = system::shutdown(&mut running).await?;
        print(&format!("stopped: {n} roles ended their calls\n"));
        drop(running);
        Ok(())
    })
}

/// Serves the admin API on `addr` (if given) for the roles `running` runs.
async fn start_admin(
    addr: Option<std::net::SocketAddr>,
    running: &Running,
) -> Result<Option<system::AbortOnDrop>, CliError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::System(format!("admin API on {addr}: {e}")))?;
    let task = crate::admin::serve(
        listener,
        running.admin_roles(),
        crate::admin::metrics().clone(),
    );
    print(&format!(
        "admin API on http://{addr} (/health, /ready, /metrics, /calls)\n"
    ));
    Ok(Some(system::AbortOnDrop(task)))
}

/// Runs `mcx calls`: lists the calls of a process's roles, or ends one.
pub(crate) fn calls(args: &CallsArgs) -> Result<(), CliError> {
    runtime()?.block_on(async {
        let request = match &args.command {
            None => mcx_kms::http::HttpRequest::new("GET", "/calls"),
            Some(CallsCommand::End { id }) => mcx_kms::http::HttpRequest::new(
                "POST",
                &format!("/calls/{}/end", mcx_metrics::percent_encode(id)),
            ),
        };
        let r = mcx_net::http::fetch(args.admin, &request)
            .await
            .map_err(|e| CliError::System(format!("admin API at {}: {e}", args.admin)))?;
        let body = String::from_utf8_lossy(&r.body).into_owned();
        if r.status != 200 {
            return Err(CliError::System(format!(
                "admin API at {}: {} {}",
                args.admin,
                r.status,
                body.trim()
            )));
        }
        match &args.command {
            Some(CallsCommand::End { id }) => print(&format!("ended {id}: {body}\n")),
            None => {
                let rows = mcx_metrics::CallRow::list_from_json(&body)
                    .map_err(|e| CliError::System(format!("admin API at {}: {e}", args.admin)))?;
                print(&format!(
                    "{:<28} {:<44} {:<28} {:<12} {:>6} {:>7}  {}\n",
                    "role", "call-id", "temporary-group", "state", "joined", "age-s", "group"
                ));
                for c in &rows {
                    print(&format!(
                        "{:<28} {:<44} {:<28} {:<12} {:>6} {:>7}  {}\n",
                        c.role,
                        c.call_id,
                        c.temporary_group_id,
                        c.state,
                        c.joined,
                        c.age_secs,
                        c.group_id.as_deref().unwrap_or("-")
                    ));
                }
                print(&format!("{} call records\n", rows.len()));
            }
        }
        Ok(())
    })
}

/// Runs `mcx run FILE ROLE`: one role of the topology until interrupted.
/// Clients print one line per call event (`incoming-call …`,
/// `call-ended`), with the TGMK's key ID and key confirmation.
pub(crate) fn run(args: &RunArgs) -> Result<(), CliError> {
    init_logging();
    let mut t = load(Some(&args.topology))?;
    check_role(&t, &args.role)?;
    match (args.listen, args.role.as_str()) {
        (None, _) => {}
        (Some(addr), "kms") => t.kms.http = addr,
        (Some(addr), "gms") => t.gms.http = addr,
        (Some(_), role) => {
            return Err(CliError::invalid(
                "--listen",
                format!("is for the kms and gms roles, not {role}"),
            ));
        }
    }
    let kind = args
        .runtime
        .unwrap_or_else(|| RuntimeKind::for_role(&args.role));
    runtime_of(kind)?.block_on(async {
        let mut running = system::start(&t, &Selection::One(args.role.clone())).await?;
        let mut stop = system::StopSignal::listen();
        let _admin = start_admin(args.admin, &running).await?;
        print(&format!("ready {}\n", args.role));
        if !running.clients.contains_key(&args.role) {
            stop.recv().await;
            let n = system::shutdown(&mut running).await?;
            print(&format!("stopped {}: {n} roles ended their calls\n", args.role));
            return Ok(());
        }
        let mut listening = crate::voice::Listening::new(&args.role);
        let mut calls_heard = 0usize;
        loop {
            let Some(node) = running.clients.get_mut(&args.role) else {
                return Ok(());
            };
            tokio::select! {
                e = node.events.recv() => match e.inspect(|e| crate::admin::observe_client(crate::admin::metrics(), &args.role, e)) {
                    // The confirmation comes with the event: a short call may
                    // have ended before a query would reach the client.
                    Some(ClientEvent::IncomingCall { temporary_group_id, group_id, initiator, confirmation, .. }) => {
                        let (id, conf) = (confirmation.tgmk_id.to_string(), hex::encode(confirmation.value));
                        print(&format!("incoming-call temporary-group={temporary_group_id} group={group_id} initiator={initiator} tgmk-id={id} confirmation={conf}\n"));
                        let tg = temporary_group_id.clone();
                        let voice = node.query(move |c, _, _| c.voice(&tg)).await.ok().flatten();
                        if let (Some(voice), Some(socket)) = (voice, running.voice.get(&args.role).cloned()) {
                            listening.stop(&temporary_group_id);
                            calls_heard += 1;
                            let record = args.record_dir.as_ref().map(|d| d.join(crate::voice::numbered_file_name(&args.role, calls_heard)));
                            listening.start(temporary_group_id.clone(), socket, voice, t.deadlines.max_call(), record);
                        }
                    }
                    Some(ClientEvent::IncomingRejected { status, reason }) => print(&format!("incoming-rejected status={status} reason={reason}\n")),
                    Some(ClientEvent::CallEnded { temporary_group_id }) => {
                        listening.stop(&temporary_group_id);
                        print(&format!("call-ended temporary-group={temporary_group_id}\n"));
                    }
                    Some(_) => {}
                    None => return Err(CliError::System("the client stopped".into())),
                },
                () = stop.recv() => {
                    system::shutdown(&mut running).await?;
                    // The calls this member just left (BYE sent).
                    if let Some(node) = running.clients.get_mut(&args.role) {
                        while let Ok(e) = node.events.try_recv() {
                            if let ClientEvent::CallEnded { temporary_group_id } = e {
                                print(&format!("call-ended temporary-group={temporary_group_id} hung-up\n"));
                            }
                        }
                    }
                    print(&format!("stopped {}\n", args.role));
                    return Ok(());
                }
            }
        }
    })
}

/// Runs `mcx call FILE`: the initiator's client makes the topology's call,
/// prints its timeline, per-group acceptance and key confirmation, ends the
/// call and exits (0 only if every group fully accepted).
pub(crate) fn call(args: &CallArgs) -> Result<(), CliError> {
    init_logging();
    let t = load(Some(&args.topology))?;
    let call = t
        .call
        .clone()
        .ok_or_else(|| CliError::System("the topology has no [call]".into()))?;
    runtime()?.block_on(async {
        crate::identity::check_separate_processes(&t)?;
        let mut running = system::start(&t, &Selection::One(call.initiator.clone())).await?;
        let mut stop = system::StopSignal::listen();
        let hold = std::time::Duration::from_secs(args.hold);
        let voice = if args.voice || args.audio.is_some() {
            Some(crate::voice::VoicePlan::load(args.audio.as_deref(), None)?)
        } else {
            None
        };
        let mut failed = 0usize;
        for n in 1..=args.repeat {
            if args.repeat > 1 {
                print(&format!("\ncall {n} of {}\n", args.repeat));
            }
            let options = demo::CallOptions {
                hold,
                voice: voice.as_ref(),
                late_joiner: None,
            };
            // With --groups, each call gets its own temporary group: it
            // serves one call (docs/core.md).
            let formed = match &args.groups {
                Some(groups) => Some(form_group(&t, &running, &call.initiator, groups).await?),
                None => None,
            };
            let t = formed
                .as_ref()
                .map_or_else(|| t.clone(), |(t, _)| t.clone());
            // SIGINT/SIGTERM mid-call hangs up (BYE) rather than leaving
            // every member in the call until its maximum duration.
            let outcome = tokio::select! {
                r = demo::run_call_with(&t, &mut running, &options) => Some(r),
                () = stop.recv() => None,
            };
            if let Some((_, token)) = &formed {
                dissolve_group(&t, &running, token).await;
            }
            let Some(outcome) = outcome else {
                system::shutdown(&mut running).await?;
                print(&format!("stopped during call {n}: hung up\n"));
                break;
            };
            let report = match outcome {
                Ok(r) => r,
                Err(e) => {
                    // A failed call is reported and the next one tried.
                    print(&format!("result: FAILED - {e}\n"));
                    failed += 1;
                    continue;
                }
            };
            print(&report.text);
            print(&format!(
                "initiator tgmk-id={} confirmation={}\n",
                report.reference.tgmk_id,
                hex::encode(report.reference.value)
            ));
            if report.failures.is_empty() {
                print("result: OK - every group accepted\n");
            } else {
                for f in &report.failures {
                    print(&format!("  - {f}\n"));
                }
                print("result: FAILED\n");
                failed += 1;
            }
        }
        if failed == 0 {
            Ok(())
        } else {
            Err(CliError::DemoFailed { failed })
        }
    })
}

/// Forms a temporary group of `groups` through the GMS as `initiator`;
/// returns the topology whose call is to that group, and the initiator's
/// bearer token.
async fn form_group(
    t: &Topology,
    running: &Running,
    initiator: &str,
    groups: &[String],
) -> Result<(Topology, zeroize::Zeroizing<String>), CliError> {
    let secret = t
        .users
        .iter()
        .find(|u| u.uri == initiator)
        .map(|u| u.token.clone())
        .ok_or_else(|| CliError::System(format!("{initiator} is not a [[user]]")))?;
    let token = crate::identity::token(t, running.idms_endpoint.clone(), initiator, &secret)
        .await
        .map_err(|e| CliError::System(format!("{initiator}: login at the IdMS: {e}")))?;
    let id = crate::regroup::form(running.gms_endpoint.clone(), groups, &token).await?;
    print(&format!(
        "temporary-group formed id={id} groups={}\n",
        groups.join(",")
    ));
    let mut formed = t.clone();
    formed
        .controlling
        .temporary_groups
        .push(crate::topology::TemporaryGroup {
            id: id.clone(),
            groups: groups.to_vec(),
        });
    if let Some(c) = formed.call.as_mut() {
        c.temporary_group = id;
    }
    Ok((formed, token))
}

/// Tears the call's temporary group down through the GMS (the
/// controlling server dropped it when its call ended; this makes the GMS
/// forget it now rather than at its lifetime's end).
async fn dissolve_group(t: &Topology, running: &Running, token: &str) {
    let Some(id) = t.call.as_ref().map(|c| c.temporary_group.clone()) else {
        return;
    };
    match crate::regroup::dissolve(running.gms_endpoint.clone(), &id, token).await {
        Ok(()) => print(&format!("temporary-group dissolved id={id}\n")),
        Err(e) => print(&format!("temporary-group not dissolved id={id}: {e}\n")),
    }
}

fn check_role(t: &Topology, role: &str) -> Result<(), CliError> {
    // Roles in separate processes must all trust one IdMS key.
    crate::identity::check_separate_processes(t)?;
    let known = ["kms", "gms", "controlling"].contains(&role)
        || (role == "idms" && t.idms.is_some())
        || t.controlling.uri == role
        || t.mc_servers.iter().any(|m| m.uri == role)
        || t.users.iter().any(|u| u.uri == role);
    if known {
        Ok(())
    } else {
        Err(CliError::invalid(
            "ROLE",
            format!(
                "{role} is not idms, kms, gms, controlling, an MC server or a user of the topology"
            ),
        ))
    }
}
