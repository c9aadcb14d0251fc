//! The admin endpoint of `mcx run`/`mcx up --admin ADDR` (routes in
//! [`mcx_metrics::route`]; docs/operations.md), and the events-to-metrics
//! mapping of each role. The roles are asked through their command
//! channels, each answer bounded by [`QUERY_BOUND`]: a role that does not
//! answer is reported unhealthy, never waited on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mcx_core::{
    CallSummary, Client, ClientEvent, ControllingEvent, ControllingServer, FloorDrops, McServer,
    McServerEvent,
};
use mcx_kms::http::{HttpRequest, HttpResponse};
use mcx_metrics::{AdminRoute, CallOutcome, CallRow, Checks, DropReason, Metrics, Protected};
use mcx_net::node::Commander;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The process's metrics: one registry for every role this process runs
/// (the roles are told apart by their `role` label).
pub(crate) fn metrics() -> &'static Arc<Metrics> {
    static METRICS: std::sync::LazyLock<Arc<Metrics>> =
        std::sync::LazyLock::new(|| Arc::new(Metrics::new()));
    &METRICS
}

/// `handler` counting its answers by status code as `service`'s.
pub(crate) fn metered(service: &'static str, handler: mcx_server::Handler) -> mcx_server::Handler {
    Arc::new(move |req| {
        let response = handler(req);
        metrics().http_request(service, response.status);
        response
    })
}

/// How long a role may take to answer an admin query.
pub(crate) const QUERY_BOUND: Duration = Duration::from_secs(1);

/// The roles one process runs, as the admin endpoint reaches them.
#[derive(Default)]
pub(crate) struct AdminRoles {
    pub(crate) controlling: Vec<(String, Commander<ControllingServer>)>,
    pub(crate) mc_servers: Vec<(String, Commander<McServer>)>,
    pub(crate) clients: Vec<(String, Commander<Client>)>,
    /// The HTTP services here (`idms`, `kms`, `gms`) and their sockets.
    pub(crate) services: Vec<(&'static str, SocketAddr)>,
}

/// What a role tells the admin endpoint at once.
struct RoleView {
    calls: Vec<CallSummary>,
    ready: Result<(), &'static str>,
    floor_drops: FloorDrops,
}

/// What the admin API asks of every kind of role.
trait Operated: mcx_net::Role {
    fn summaries(&self) -> Vec<CallSummary>;
    fn readiness(&self, time: mcx_core::Time) -> Result<(), &'static str>;
    fn dropped_floor(&self) -> FloorDrops;
    fn end_by_id(
        &mut self,
        time: mcx_core::Time,
        call_id: &str,
        rng: &mut mcx_net::OsRng,
    ) -> Result<bool, mcx_core::Error>;
}

const NO_IDENTITY: &str = "no identity keys from the KMS yet";

macro_rules! operated {
    ($role:ty, |$r:ident, $t:ident| $ready:expr) => {
        impl Operated for $role {
            fn summaries(&self) -> Vec<CallSummary> {
                self.call_summaries()
            }
            fn readiness(&self, $t: mcx_core::Time) -> Result<(), &'static str> {
                let $r = self;
                $ready
            }
            fn dropped_floor(&self) -> FloorDrops {
                self.floor_drops()
            }
            fn end_by_id(
                &mut self,
                time: mcx_core::Time,
                call_id: &str,
                rng: &mut mcx_net::OsRng,
            ) -> Result<bool, mcx_core::Error> {
                self.end_call_by_id(time, call_id, rng)
            }
        }
    };
}

operated!(ControllingServer, |r, _t| if r.has_identity() {
    Ok(())
} else {
    Err(NO_IDENTITY)
});
operated!(McServer, |r, _t| if r.has_identity() {
    Ok(())
} else {
    Err(NO_IDENTITY)
});
operated!(Client, |r, t| if r.is_registered(t.instant) {
    Ok(())
} else {
    Err("not registered with its home server")
});

async fn view_of<R: Operated>(c: &Commander<R>) -> Option<RoleView> {
    bounded(c.query(|r, time, _| RoleView {
        calls: r.summaries(),
        ready: r.readiness(time),
        floor_drops: r.dropped_floor(),
    }))
    .await
}

async fn end_at<R: Operated>(c: &Commander<R>, call_id: &str) -> bool {
    let id = call_id.to_owned();
    matches!(
        bounded(c.query(move |r, t, rng| r.end_by_id(t, &id, rng))).await,
        Some(Ok(true))
    )
}

impl AdminRoles {
    /// Every role's view, `None` for one that did not answer in time.
    async fn views(&self) -> Vec<(String, Option<RoleView>)> {
        let mut out = Vec::new();
        for (uri, c) in &self.controlling {
            out.push((uri.clone(), view_of(c).await));
        }
        for (uri, c) in &self.mc_servers {
            out.push((uri.clone(), view_of(c).await));
        }
        for (uri, c) in &self.clients {
            out.push((uri.clone(), view_of(c).await));
        }
        out
    }

    /// Ends the call with `call_id` at whichever role holds it.
    async fn end(&self, call_id: &str) -> Vec<String> {
        let mut ended = Vec::new();
        for (uri, c) in &self.controlling {
            if end_at(c, call_id).await {
                ended.push(uri.clone());
            }
        }
        for (uri, c) in &self.mc_servers {
            if end_at(c, call_id).await {
                ended.push(uri.clone());
            }
        }
        for (uri, c) in &self.clients {
            if end_at(c, call_id).await {
                ended.push(uri.clone());
            }
        }
        ended
    }
}

async fn bounded<T>(query: impl Future<Output = Result<T, mcx_net::NetError>>) -> Option<T> {
    tokio::time::timeout(QUERY_BOUND, query).await.ok()?.ok()
}

async fn service_up(addr: SocketAddr) -> bool {
    matches!(
        tokio::time::timeout(QUERY_BOUND, tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

/// Answers one admin request.
async fn answer(roles: &AdminRoles, metrics: &Metrics, req: &HttpRequest) -> HttpResponse {
    let json = |status: u16, body: String| {
        HttpResponse::with_body(status, "application/json", body.into_bytes())
    };
    let route = mcx_metrics::route(&req.method, &req.path);
    match route {
        AdminRoute::Health | AdminRoute::Ready => {
            let ready = route == AdminRoute::Ready;
            let mut checks = Checks::default();
            for (name, addr) in &roles.services {
                let up = service_up(*addr).await;
                checks.push(
                    *name,
                    up,
                    if up {
                        "accepting connections"
                    } else {
                        "not accepting connections"
                    },
                );
            }
            for (uri, view) in roles.views().await {
                match view {
                    None => checks.push(uri, false, "the role did not answer within 1 s"),
                    Some(_) if !ready => checks.push(uri, true, "answering"),
                    Some(v) => match v.ready {
                        Ok(()) => checks.push(uri, true, "ready"),
                        Err(why) => checks.push(uri, false, why),
                    },
                }
            }
            json(checks.status(), checks.to_json())
        }
        AdminRoute::Metrics => {
            for (uri, view) in roles.views().await {
                let Some(v) = view else { continue };
                metrics.set_active_calls(&uri, v.calls.len());
                let d = v.floor_drops;
                for (reason, n) in [
                    (DropReason::Authentication, d.unauthenticated),
                    (DropReason::Replay, d.replayed),
                    (DropReason::Malformed, d.malformed),
                    (DropReason::WrongSource, d.wrong_source),
                ] {
                    metrics.set_dropped(&uri, Protected::Srtcp, reason, n);
                }
            }
            match metrics.encode() {
                Ok(text) => {
                    HttpResponse::with_body(200, mcx_metrics::CONTENT_TYPE, text.into_bytes())
                }
                Err(e) => HttpResponse::error(500, &e.to_string()),
            }
        }
        AdminRoute::Calls => {
            let now = std::time::Instant::now();
            let rows: Vec<CallRow> = roles
                .views()
                .await
                .into_iter()
                .flat_map(|(uri, v)| {
                    v.map(|v| v.calls)
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |c| CallRow {
                            role: uri.clone(),
                            call_id: c.call_id,
                            temporary_group_id: c.temporary_group_id,
                            group_id: c.group_id,
                            initiator: c.initiator,
                            state: c.state.as_str().to_owned(),
                            joined: c.joined,
                            age_secs: now.saturating_duration_since(c.started).as_secs(),
                        })
                })
                .collect();
            json(200, CallRow::list_to_json(&rows))
        }
        AdminRoute::EndCall(id) => {
            let ended = roles.end(&id).await;
            if ended.is_empty() {
                HttpResponse::error(404, "no role here holds a call with that Call-ID")
            } else {
                json(200, serde_json::json!({ "ended_at": ended }).to_string())
            }
        }
        AdminRoute::NotFound => HttpResponse::error(404, "no such admin resource"),
        AdminRoute::MethodNotAllowed(allowed) => {
            let mut r = HttpResponse::error(405, &format!("use {allowed}"));
            r.headers.push(("Allow".into(), allowed.into()));
            r
        }
        AdminRoute::BadCallId => {
            HttpResponse::error(400, "malformed percent-encoding in the Call-ID")
        }
    }
}

/// Serves the admin API on `listener` until aborted.
pub(crate) fn serve(
    listener: TcpListener,
    roles: AdminRoles,
    metrics: Arc<Metrics>,
) -> JoinHandle<()> {
    let runtime = tokio::runtime::Handle::current();
    let roles = Arc::new(roles);
    // The HTTP adapter runs handlers on the blocking pool, where waiting
    // for the roles' answers is allowed.
    let handler: mcx_server::Handler =
        Arc::new(move |req| runtime.block_on(answer(&roles, &metrics, &req)));
    mcx_server::serve_http(listener, handler)
}

/// `CamelCase` → `camel_case`: a floor event's label from its variant.
fn event_label(debug: &str) -> String {
    let name: String = debug
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn count_failed_groups(metrics: &Metrics, role: &str, groups: &[mcx_core::GroupResult]) {
    for f in groups.iter().filter_map(|g| g.failure.as_ref()) {
        metrics.group_failed(role, f.cause.as_str());
    }
}

/// Counts a controlling server's event.
pub(crate) fn observe_controlling(metrics: &Metrics, role: &str, e: &ControllingEvent) {
    match e {
        ControllingEvent::CallRejected { .. } => metrics.call(role, CallOutcome::Rejected),
        ControllingEvent::CallEstablished {
            groups, setup_time, ..
        } => {
            metrics.call(role, CallOutcome::Established);
            metrics.setup_time(role, *setup_time);
            count_failed_groups(metrics, role, groups);
        }
        ControllingEvent::CallFailed { groups, .. } => {
            metrics.call(role, CallOutcome::Failed);
            count_failed_groups(metrics, role, groups);
        }
        ControllingEvent::GroupLost { .. } => metrics.group_failed(role, "lost"),
        ControllingEvent::Floor { event, .. } => {
            metrics.floor_event(role, &event_label(&format!("{event:?}")));
        }
        ControllingEvent::CallEnded { .. } => metrics.call(role, CallOutcome::Ended),
        _ => {}
    }
}

/// Counts an MC server's event.
pub(crate) fn observe_mc_server(metrics: &Metrics, role: &str, e: &McServerEvent) {
    match e {
        McServerEvent::Rejected { .. } => metrics.call(role, CallOutcome::Rejected),
        McServerEvent::GroupReported(r) => match &r.failure {
            None => metrics.call(role, CallOutcome::Established),
            Some(f) => {
                metrics.call(role, CallOutcome::Failed);
                metrics.group_failed(role, f.cause.as_str());
            }
        },
        McServerEvent::CallEnded { .. } => metrics.call(role, CallOutcome::Ended),
        // The label the arbitrator's AckTimeout has at the controlling server.
        McServerEvent::FloorAckTimeout { .. } => metrics.floor_event(role, "ack_timeout"),
        _ => {}
    }
}

/// Counts a client's event.
pub(crate) fn observe_client(metrics: &Metrics, role: &str, e: &ClientEvent) {
    match e {
        ClientEvent::IncomingRejected { .. } => metrics.call(role, CallOutcome::Rejected),
        ClientEvent::IncomingCall { .. } | ClientEvent::CallEstablished { .. } => {
            metrics.call(role, CallOutcome::Established);
        }
        ClientEvent::CallFailed { .. } => metrics.call(role, CallOutcome::Failed),
        ClientEvent::Floor { event, .. } => {
            metrics.floor_event(role, &event_label(&format!("{event:?}")));
        }
        ClientEvent::CallEnded { .. } => metrics.call(role, CallOutcome::Ended),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{event_label, observe_mc_server};

    /// A member's floor ack timeout at an MC server is counted under the
    /// label the controlling server's arbitrator timeouts have.
    #[test]
    fn an_mc_servers_floor_ack_timeout_is_a_floor_event() {
        let metrics = mcx_metrics::Metrics::new();
        let e = mcx_core::McServerEvent::FloorAckTimeout {
            group_id: "sip:g@x".into(),
            member: "sip:m@x".into(),
            message_type: mcx_floor::MessageType::FloorTaken,
        };
        observe_mc_server(&metrics, "mcs", &e);
        observe_mc_server(&metrics, "mcs", &e);
        let text = metrics.encode().unwrap();
        let line = text
            .lines()
            .find(|l| l.contains("floor_events") && l.contains("ack_timeout"))
            .unwrap_or_else(|| panic!("no ack_timeout line in {text}"));
        assert!(line.ends_with(" 2"), "{line}");
        assert_eq!(
            event_label("AckTimeout { participant: ParticipantId(3) }"),
            "ack_timeout"
        );
    }

    #[test]
    fn floor_event_labels() {
        assert_eq!(
            event_label("FloorGranted(ParticipantId(0))"),
            "floor_granted"
        );
        assert_eq!(event_label("Taken"), "taken");
        assert_eq!(event_label("RequestDenied { cause: 5 }"), "request_denied");
    }
}
