//! `mcx bench`: load figures measured on this machine.
//!
//! `mcx bench call --concurrent N` runs the default topology (KMS, GMS,
//! IdMS, controlling server, two MC servers, 2 groups of 3 members, TLS
//! everywhere) in this process; the dispatcher forms N temporary groups
//! of groups A and B through the GMS (each formation notified to the
//! controlling server), calls all of them keeping `--window` set-ups in
//! flight, holds the N calls, and ends them. It reports formations per
//! second, sustained call set-ups per second with set-up latencies, the
//! calls held, and resident memory per call held (RSS delta / N).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use mcx_core::ClientEvent;

use crate::error::CliError;
use crate::system::{self, Running, Selection};
use crate::topology::{DEFAULT, Topology};

/// `mcx bench`.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Concurrent temporary group calls on demand: set-ups per second,
    /// calls held, memory per call.
    Call(CallBenchArgs),
    /// Provision N clients over HTTPS from a KMS and a GMS started in this
    /// process, a few at a time; print the time per client, each step's
    /// latency (KMS, GMS, building the client role) and the services' time
    /// per request.
    Provision(ProvisionArgs),
}

/// `mcx bench provision`.
#[derive(Debug, Args)]
pub(crate) struct ProvisionArgs {
    /// How many clients.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: u32,
    /// Members per group (each client is in one group; groups of this size
    /// are generated).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    group_size: u32,
    /// Clients starting up at once (default: 16 per core; 4 per core
    /// left a third of the CPU idle, waiting on round trips).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    parallel: Option<u32>,
    /// Each client with a TLS configuration of its own, as separate
    /// devices have: no session tickets of other clients to resume
    /// (default: one configuration for every client, as `mcx up` runs them
    /// in one process).
    #[arg(long)]
    device_tls: bool,
}

/// `mcx bench call`.
#[derive(Debug, Args)]
pub(crate) struct CallBenchArgs {
    /// Calls to set up and hold at once (each with its own temporary
    /// group formed through the GMS).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=5_000),
          required_unless_present = "groups", conflicts_with = "groups")]
    concurrent: Option<u32>,
    /// One call to this many constituent groups (with --members), the
    /// controlling server and the MC servers as separate processes, the
    /// members in this process: set-up time, CPU and peak memory per
    /// role, cost per member.
    #[arg(long, requires = "members", value_parser = clap::value_parser!(u32).range(1..=1_000))]
    groups: Option<u32>,
    /// Members per group (with --groups).
    #[arg(long, requires = "groups", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    members: Option<u32>,
    /// Constituent groups each MC server owns (with --groups): fewer
    /// server processes share the cores when it is larger.
    #[arg(long, requires = "groups", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    groups_per_server: u32,
    /// Calls measured one after another (with --groups), after a warm-up call.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    calls: u32,
    /// Call set-ups kept in flight.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    window: u32,
    /// Seconds to hold the calls before ending them.
    #[arg(long, default_value_t = 2)]
    hold: u64,
}

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::System(what.to_string())
}

/// Runs `mcx bench COMMAND`.
pub(crate) fn run(command: &BenchCommand) -> Result<(), CliError> {
    match command {
        BenchCommand::Call(args) => call(args),
        BenchCommand::Provision(args) => provision(args),
    }
}

/// `mcx bench provision`'s clients starting at once, per core: enough that
/// the cores stay busy while each client waits on its round trips (10,000
/// clients on 2 cores: 4 per core kept 1.4 cores busy, 16 per core 2).
const CLIENTS_PER_CORE: usize = 16;

/// Runs `mcx bench provision`.
fn provision(args: &ProvisionArgs) -> Result<(), CliError> {
    let parallel = args.parallel.map_or_else(
        || std::thread::available_parallelism().map_or(2, usize::from) * CLIENTS_PER_CORE,
        |p| p as usize,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::System(format!("cannot start the async runtime: {e}")))?;
    let report = rt.block_on(crate::bench::provision(
        args.clients as usize,
        args.group_size as usize,
        parallel,
        args.device_tls,
    ))?;
    print!("{report}");
    Ok(())
}

/// The process's resident set, in KiB (Linux `/proc/self/status`).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The default topology, sized for `n` concurrent calls, the dispatcher
/// allowed to regroup the call's constituent groups.
fn topology(n: usize) -> Result<Topology, CliError> {
    let mut t = Topology::parse(DEFAULT, "<default topology>")?;
    let (call, groups) = the_call(&t)?;
    t.controlling.http = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    for u in &mut t.users {
        if u.uri == call.initiator {
            u.regroup.clone_from(&groups);
        }
    }
    let room = n + 8;
    t.limits.client_calls = room;
    t.limits.mc_server_calls = t.limits.mc_server_calls.max(room);
    t.limits.controlling_calls = t.limits.controlling_calls.max(room);
    Ok(t)
}

/// The topology's call and its constituent groups.
fn the_call(t: &Topology) -> Result<(crate::topology::Call, Vec<String>), CliError> {
    let call = t.call.clone().ok_or_else(|| failed("no [call]"))?;
    let groups = t
        .temporary_group(&call.temporary_group)
        .ok_or_else(|| failed("the call's temporary group is not defined"))?
        .groups
        .clone();
    Ok((call, groups))
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn call(args: &CallBenchArgs) -> Result<(), CliError> {
    if let (Some(groups), Some(members)) = (args.groups, args.members) {
        return crate::bench_setup::run(crate::bench_setup::SetupBench {
            groups: groups as usize,
            members: members as usize,
            calls: args.calls as usize,
            groups_per_server: args.groups_per_server as usize,
        });
    }
    let n = args
        .concurrent
        .ok_or_else(|| failed("--concurrent N or --groups G --members M"))? as usize;
    let window = usize::try_from(args.window).map_err(failed)?;
    let t = topology(n)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(format!("runtime: {e}")))?;
    runtime.block_on(async {
        let mut running = system::start(&t, &Selection::All).await?;
        let r = measure(&t, &mut running, n, window, Duration::from_secs(args.hold)).await;
        system::shutdown(&mut running).await?;
        r
    })
}

async fn measure(
    t: &Topology,
    running: &mut Running,
    n: usize,
    window: usize,
    hold: Duration,
) -> Result<(), CliError> {
    let (call, groups) = the_call(t)?;
    let secret = t
        .users
        .iter()
        .find(|u| u.uri == call.initiator)
        .map(|u| u.token.clone())
        .ok_or_else(|| failed("the initiator is not a [[user]]"))?;
    let token = crate::identity::token(t, running.idms_endpoint.clone(), &call.initiator, &secret)
        .await
        .map_err(|e| failed(format!("login: {e}")))?;
    for node in running.clients.values_mut() {
        while node.events.try_recv().is_ok() {}
    }
    println!(
        "bench call: {n} concurrent calls on demand; default topology ({} groups, {} clients, TLS, IdMS), every role in this process, {} cores",
        groups.len(),
        t.users.len(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    let rss_before = rss_kib();

    // Formation: one temporary group per call, through the GMS.
    let started = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(crate::regroup::form(running.gms_endpoint.clone(), &groups, &token).await?);
    }
    let formation = started.elapsed();
    println!(
        "formation: {n} temporary groups in {:.2} s: {:.0} formations/s ({:.1} ms each, GMS + notice to the controlling server)",
        formation.as_secs_f64(),
        n as f64 / formation.as_secs_f64(),
        ms(formation) / n as f64
    );

    // Set-up: `window` call requests in flight.
    let initiator = running
        .clients
        .get_mut(&call.initiator)
        .ok_or_else(|| failed("the initiator is not running"))?;
    let mut started_at: HashMap<String, Instant> = HashMap::new();
    let mut latencies = Vec::with_capacity(n);
    let mut failures = Vec::new();
    let mut next = 0;
    let t0 = Instant::now();
    while latencies.len() + failures.len() < n {
        while next < n && started_at.len() < window {
            let id = ids[next].clone();
            next += 1;
            let g = groups.clone();
            let tg = id.clone();
            initiator
                .query(move |c, time, rng| {
                    let refs: Vec<&str> = g.iter().map(String::as_str).collect();
                    c.start_call(time, &tg, &refs, rng)
                })
                .await
                .map_err(failed)?
                .map_err(|e| failed(format!("start_call {id}: {e}")))?;
            started_at.insert(id, Instant::now());
        }
        let e = tokio::time::timeout(Duration::from_secs(30), initiator.events.recv())
            .await
            .map_err(|_| failed("no call answered within 30 s"))?
            .ok_or_else(|| failed("the initiator stopped"))?;
        match e {
            ClientEvent::CallEstablished {
                temporary_group_id, ..
            } => {
                if let Some(s) = started_at.remove(&temporary_group_id) {
                    latencies.push(s.elapsed());
                }
            }
            ClientEvent::CallFailed {
                temporary_group_id,
                status,
                reason,
                ..
            } if started_at.remove(&temporary_group_id).is_some() => {
                failures.push(format!("{temporary_group_id}: {status} {reason}"));
            }
            _ => {}
        }
    }
    let setup = t0.elapsed();
    latencies.sort();
    println!(
        "set-up: {} calls in {:.2} s: {:.1} set-ups/s sustained ({window} in flight); set-up time p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; {} failed",
        latencies.len(),
        setup.as_secs_f64(),
        latencies.len() as f64 / setup.as_secs_f64(),
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 95)),
        ms(latencies.last().copied().unwrap_or_default()),
        failures.len()
    );
    for f in failures.iter().take(5) {
        println!("  failed: {f}");
    }

    // Hold: every call still up at the controlling server after `hold`.
    tokio::time::sleep(hold).await;
    let ctrl = running
        .controlling
        .as_ref()
        .ok_or_else(|| failed("no controlling server here"))?;
    let held = ctrl.query(|c, _, _| c.call_count()).await.map_err(failed)?;
    let rss_held = rss_kib();
    println!(
        "held: {held} calls at the controlling server after {} s",
        hold.as_secs()
    );
    if let (Some(before), Some(after)) = (rss_before, rss_held) {
        let per_call = after.saturating_sub(before) as f64 / held.max(1) as f64;
        println!(
            "memory: RSS {:.1} MiB before the calls, {:.1} MiB with {held} held: {per_call:.1} KiB per call (every role's state: initiator, controlling server, 2 MC servers, 6 members)",
            before as f64 / 1024.0,
            after as f64 / 1024.0
        );
    }

    // Tear-down: hang up; each on-demand group goes with its call.
    let t1 = Instant::now();
    let initiator = running
        .clients
        .get_mut(&call.initiator)
        .ok_or_else(|| failed("the initiator is not running"))?;
    for id in &ids {
        let tg = id.clone();
        let _ = initiator
            .query(move |c, time, rng| c.hang_up(time, &tg, rng))
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut left = held;
    while left > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = ctrl.query(|c, _, _| c.call_count()).await.map_err(failed)?;
    }
    let groups_left = ctrl
        .query(|c, _, _| c.on_demand_groups().len())
        .await
        .map_err(failed)?;
    println!(
        "tear-down: {held} calls ended in {:.2} s; {left} calls and {groups_left} temporary groups left at the controlling server",
        t1.elapsed().as_secs_f64()
    );
    for id in &ids {
        crate::regroup::dissolve(running.gms_endpoint.clone(), id, &token).await?;
    }
    if failures.is_empty() && held == n && left == 0 && groups_left == 0 {
        println!("result: OK");
        Ok(())
    } else {
        Err(failed(format!(
            "{} set-ups failed, {held} of {n} calls held, {left} calls and {groups_left} groups left",
            failures.len()
        )))
    }
}
