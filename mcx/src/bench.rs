//! `mcx bench provision`: N clients provisioned over HTTP(S) from a real
//! KMS and GMS in this process, as `mcx up` starts them, timed step by
//! step (docs/BENCHMARKS.md, "Provisioning at scale").
//!
//! The topology is the generated one of `mcx demo --groups G --members M`
//! (HTTPS with a demo CA; each user with its TrK/InK, so KMS answers carry
//! the TS 33.180 D.1 security extension) without the IdMS: the clients
//! present their static tokens, so that the figures are the KMS's, the
//! GMS's and the clients' own. A client's start-up is: KmsInit and
//! KmsKeyProv (its keys validated on receipt), its group index and group
//! document from the GMS, and building the client role (the GKTP's
//! signature verified and its GMK decapsulated). Each client is dropped
//! once built: the benchmark is provisioning, not holding 10,000 roles.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcx_core::ClientConfig;
use tokio::net::TcpListener;

use crate::error::CliError;
use crate::system::{OpenStore, Selection, start_gms, start_kms};
use crate::tls::{TlsMaterial, endpoint};
use crate::topology::Topology;

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::System(what.to_string())
}

/// One client's start-up, step by step.
#[derive(Clone, Copy, Debug, Default)]
struct ClientTimes {
    /// KmsInit + KmsKeyProv, keys validated.
    kms: Duration,
    /// Group index + group document.
    gms: Duration,
    /// The client role built: GKTP verified and decrypted.
    accept: Duration,
}

/// What `mcx bench provision` measured.
#[derive(Debug)]
pub(crate) struct ProvisionReport {
    clients: usize,
    parallel: usize,
    /// HTTPS (else plain HTTP).
    https: bool,
    wall: Duration,
    cpu: Option<Duration>,
    times: Vec<ClientTimes>,
    services: Vec<(String, mcx_server::ServiceTime)>,
    /// TLS handshakes the KMS and GMS completed for the clients.
    handshakes: mcx_server::TlsHandshakes,
    /// Connections the clients opened (each kept for the client's next
    /// request to the same server).
    connections: u64,
}

/// CPU time (user + system) of this process so far, from /proc.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Provisions `clients` clients (groups of `per_group` members), at most
/// `parallel` at a time, against a KMS and a GMS started here.
pub(crate) async fn provision(
    clients: usize,
    per_group: usize,
    parallel: usize,
    device_tls: bool,
) -> Result<ProvisionReport, CliError> {
    let per_group = per_group.max(1);
    let groups = clients.div_ceil(per_group).max(1);
    let mut t = Topology::generated(groups, per_group)?;
    t.idms = None;
    // Certificates for the services only: the clients present none.
    let mut services = t.clone();
    services.users.clear();
    let tls = TlsMaterial::for_topology(&services, &Selection::All)?;
    let https = |role: &str| match &tls {
        Some(m) => m.https_server(role),
        None => Ok(None),
    };
    let kms_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| failed(format!("KMS: {e}")))?;
    let gms_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| failed(format!("GMS: {e}")))?;
    let kms_addr = kms_listener.local_addr().map_err(failed)?;
    let gms_addr = gms_listener.local_addr().map_err(failed)?;
    let kms_http = endpoint(tls.as_ref(), kms_addr, &t.kms.uri)?;
    let gms_http = endpoint(tls.as_ref(), gms_addr, &t.gms.uri)?;
    let mut stores: Vec<OpenStore> = Vec::new();
    let (kms_task, store) = start_kms(&t, kms_listener, https("kms")?)?;
    stores.push(store);
    let (gms_task, store) = start_gms(
        &t,
        gms_listener,
        https("gms")?,
        kms_http.clone().into(),
        None,
        None,
    )
    .await?;
    stores.push(store);

    let users: Vec<_> = t
        .users
        .iter()
        .filter(|u| t.call.as_ref().is_none_or(|c| c.initiator != u.uri))
        .take(clients)
        .cloned()
        .collect();
    mcx_server::reset_service_times();
    mcx_server::reset_tls_handshakes();
    let gate = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(users.len());
    for user in users {
        let (kms_http, gms_http) = if device_tls {
            own_tls(&kms_http, &gms_http)
        } else {
            (kms_http.clone(), gms_http.clone())
        };
        let prov = mcx_client::Provisioning {
            user_uri: user.uri.clone(),
            token: user.token.clone(),
            kms_uri: t.kms.uri.clone(),
            kms_http: kms_http.into(),
            gms_http: gms_http.into(),
            kms_security: user.kms_security(),
        };
        let config = ClientConfig::new(
            user.uri.clone(),
            t.controlling.uri.clone(),
            t.gms.uri.clone(),
            Vec::new(),
        );
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await;
            let t0 = Instant::now();
            let (community, keys, next_keys) = mcx_client::provision_key_periods(
                &prov.kms_uri,
                &prov.user_uri,
                &prov.token,
                &prov.kms_http,
                prov.kms_security.as_ref(),
            )
            .await?;
            let t1 = Instant::now();
            let groups = mcx_client::fetch_group_documents(&prov).await?;
            let t2 = Instant::now();
            let provisioned = mcx_client::Provisioned {
                community,
                keys,
                next_keys,
                groups,
            };
            // Done with the servers: they need not hold this client's
            // sockets while it builds its role.
            prov.kms_http.close_idle();
            prov.gms_http.close_idle();
            let connections = prov.kms_http.stats().connections + prov.gms_http.stats().connections;
            tokio::task::spawn_blocking(move || mcx_client::build_client(config, provisioned))
                .await
                .map_err(|_| mcx_client::ClientError::Task)??;
            Ok::<_, mcx_client::ClientError>((
                ClientTimes {
                    kms: t1 - t0,
                    gms: t2 - t1,
                    accept: t2.elapsed(),
                },
                connections,
            ))
        }));
    }
    let mut times = Vec::with_capacity(tasks.len());
    let mut connections = 0;
    for task in tasks {
        let (t, c) = task
            .await
            .map_err(|_| failed("a client's start-up task failed"))?
            .map_err(|e| failed(format!("provisioning: {e}")))?;
        times.push(t);
        connections += c;
    }
    let handshakes = mcx_server::tls_handshakes();
    let wall = started.elapsed();
    let cpu = process_cpu()
        .zip(cpu_before)
        .map(|(a, b)| a.saturating_sub(b));
    kms_task.abort();
    gms_task.abort();
    // In memory: dropping them is closing them.
    drop(stores);
    Ok(ProvisionReport {
        clients: times.len(),
        parallel,
        https: tls.is_some(),
        wall,
        cpu,
        times,
        services: mcx_server::service_times(),
        handshakes,
        connections,
    })
}

/// `kms` and `gms` with one TLS client configuration of their own (one
/// device's): the same roots, a session store of its own.
fn own_tls(
    kms: &mcx_net::http::Endpoint,
    gms: &mcx_net::http::Endpoint,
) -> (mcx_net::http::Endpoint, mcx_net::http::Endpoint) {
    let (mut kms, mut gms) = (kms.clone(), gms.clone());
    if let Some(base) = kms.tls.as_ref().map(|t| t.config.clone()) {
        let mut config = (*base).clone();
        config.resumption = mcx_tls::rustls::client::Resumption::default();
        let config = Arc::new(config);
        for t in [kms.tls.as_mut(), gms.tls.as_mut()].into_iter().flatten() {
            t.config = config.clone();
        }
    }
    (kms, gms)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// p50, p95 and max of `values`.
fn spread(mut values: Vec<Duration>) -> String {
    values.sort_unstable();
    let at = |q: f64| {
        let i = ((values.len() as f64 - 1.0) * q).round() as usize;
        values.get(i).copied().unwrap_or_default()
    };
    format!(
        "p50 {}  p95 {}  max {}",
        ms(at(0.5)),
        ms(at(0.95)),
        ms(at(1.0))
    )
}

impl std::fmt::Display for ProvisionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.clients.max(1) as u32;
        writeln!(
            f,
            "{} clients provisioned over {} in {:.2} s ({} at a time): {} per client, {:.0} clients/s",
            self.clients,
            if self.https { "HTTPS" } else { "HTTP" },
            self.wall.as_secs_f64(),
            self.parallel,
            ms(self.wall / n),
            self.clients as f64 / self.wall.as_secs_f64().max(1e-9),
        )?;
        if let Some(cpu) = self.cpu {
            writeln!(
                f,
                "CPU (all threads, clients and servers): {:.2} s, {} per client",
                cpu.as_secs_f64(),
                ms(cpu / n)
            )?;
        }
        writeln!(
            f,
            "connections opened by the clients: {} ({:.2} per client); TLS handshakes at the servers: {} full, {} resumed",
            self.connections,
            self.connections as f64 / f64::from(n),
            self.handshakes.full,
            self.handshakes.resumed,
        )?;
        writeln!(f, "per client, latency of each step:")?;
        let step = |g: fn(&ClientTimes) -> Duration| self.times.iter().map(g).collect();
        writeln!(
            f,
            "  KMS (init + keyprov, keys validated)  {}",
            spread(step(|t| t.kms))
        )?;
        writeln!(
            f,
            "  GMS (index + group document)          {}",
            spread(step(|t| t.gms))
        )?;
        writeln!(
            f,
            "  client role (GKTP verified, GMK decrypted) {}",
            spread(step(|t| t.accept))
        )?;
        writeln!(
            f,
            "  whole start-up                        {}",
            spread(step(|t| t.kms + t.gms + t.accept))
        )?;
        writeln!(
            f,
            "per server request (the service's own time, TLS and HTTP excluded):"
        )?;
        for (route, s) in &self.services {
            let mean = s.total / u32::try_from(s.requests.max(1)).unwrap_or(u32::MAX);
            writeln!(
                f,
                "  {route:<48} {:>6} requests  mean {}  max {}",
                s.requests,
                ms(mean),
                ms(s.max)
            )?;
        }
        Ok(())
    }
}
