//! The operations view of MCX roles, without I/O: what a role counts
//! ([`Metrics`], exposed in the Prometheus/OpenMetrics text format), how
//! it says it is alive and ready ([`Checks`]), and the admin API's routes
//! ([`route`]) and call listing ([`CallRow`]). The `mcx` binary serves it
//! over HTTP next to each role (docs/operations.md).
//!
//! Metrics are kept with `prometheus-client` (the Prometheus project's
//! Rust client: typed families and no global registry here, so tests
//! never share state by accident; the `mcx` binary keeps one per process,
//! its roles told apart by the `role` label).
//! Label values come from configuration (role URIs, services) or from
//! closed sets (outcomes, reasons, floor events): never from a request,
//! so a caller cannot grow the series without bound.
#![forbid(unsafe_code)]

mod admin;

pub use admin::{AdminRoute, CallRow, Check, Checks, percent_encode, route};

use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The media type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Set-up time histogram buckets, seconds: 1 ms to about 4 s (TS 22.179's
/// 300 ms budget falls mid-range).
const SETUP_BUCKETS: [f64; 13] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 4.0,
];

/// What became of a call request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallOutcome {
    /// Answered 200: at least one group (or this member) joined.
    Established,
    /// No group joined.
    Failed,
    /// Refused before any fan-out (authorisation, bad request, limits).
    Rejected,
    /// Ended after it was established.
    Ended,
}

impl CallOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Established => "established",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Ended => "ended",
        }
    }
}

/// Which protected protocol a packet was dropped from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protected {
    /// SRTP (voice).
    Srtp,
    /// SRTCP (floor control).
    Srtcp,
}

/// Why a protected packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Failed authentication (forged, altered, wrong key).
    Authentication,
    /// Already received.
    Replay,
    /// Not a packet of the protocol.
    Malformed,
    /// From a source that may not send it.
    WrongSource,
}

impl DropReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Replay => "replay",
            Self::Malformed => "malformed",
            Self::WrongSource => "wrong_source",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    role: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    role: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    role: String,
    protocol: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    role: String,
    event: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    service: String,
    status: u16,
}

/// Error encoding the metrics.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode the metrics in the text format")]
pub struct EncodeError;

/// Every metric of a process's roles. Cheap to share (`Arc`); every
/// method takes `&self`.
pub struct Metrics {
    registry: Registry,
    calls: Family<OutcomeLabels, Counter>,
    groups_failed: Family<ReasonLabels, Counter>,
    setup: Family<RoleLabels, Histogram>,
    active_calls: Family<RoleLabels, Gauge>,
    dropped: Family<DropLabels, Counter>,
    floor_events: Family<EventLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every family registered, no series yet.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcx");
        let calls = Family::default();
        registry.register("calls", "Call requests by role and outcome", calls.clone());
        let groups_failed = Family::default();
        registry.register(
            "groups_failed",
            "Constituent groups that did not join or left a call, by reason",
            groups_failed.clone(),
        );
        let setup =
            Family::<RoleLabels, Histogram>::new_with_constructor(|| Histogram::new(SETUP_BUCKETS));
        registry.register(
            "call_setup_seconds",
            "Call set-up time at the role (request received or sent to its 200 OK)",
            setup.clone(),
        );
        let active_calls = Family::default();
        registry.register(
            "active_calls",
            "Call records held now",
            active_calls.clone(),
        );
        let dropped = Family::default();
        registry.register(
            "protected_packets_dropped",
            "SRTP and SRTCP packets dropped, by reason",
            dropped.clone(),
        );
        let floor_events = Family::default();
        registry.register(
            "floor_events",
            "Floor control events (TS 24.380) by kind",
            floor_events.clone(),
        );
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "Requests to the IdMS, KMS and GMS by status code",
            http_requests.clone(),
        );
        Self {
            registry,
            calls,
            groups_failed,
            setup,
            active_calls,
            dropped,
            floor_events,
            http_requests,
        }
    }

    /// A call request at `role` came to `outcome`.
    pub fn call(&self, role: &str, outcome: CallOutcome) {
        self.calls
            .get_or_create(&OutcomeLabels {
                role: role.to_owned(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// A constituent group failed (`unreachable`, `timeout`, `refused`,
    /// `lost`: the call result body's failure tokens).
    pub fn group_failed(&self, role: &str, reason: &str) {
        self.groups_failed
            .get_or_create(&ReasonLabels {
                role: role.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A call was set up at `role` in `time`.
    pub fn setup_time(&self, role: &str, time: Duration) {
        self.setup
            .get_or_create(&RoleLabels {
                role: role.to_owned(),
            })
            .observe(time.as_secs_f64());
    }

    /// A floor control event (`granted`, `taken`, `released`, `denied`, …).
    pub fn floor_event(&self, role: &str, event: &str) {
        self.floor_events
            .get_or_create(&EventLabels {
                role: role.to_owned(),
                event: event.to_owned(),
            })
            .inc();
    }

    /// `service` (`idms`, `kms`, `gms`) answered a request with `status`.
    pub fn http_request(&self, service: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                service: service.to_owned(),
                status,
            })
            .inc();
    }

    /// `role` holds `n` call records now.
    pub fn set_active_calls(&self, role: &str, n: usize) {
        self.active_calls
            .get_or_create(&RoleLabels {
                role: role.to_owned(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// `role` has dropped `total` packets of `protocol` for `reason` since
    /// it started (the role keeps the count; this mirrors it).
    pub fn set_dropped(&self, role: &str, protocol: Protected, reason: DropReason, total: u64) {
        store_total(
            &self
                .dropped
                .get_or_create(&drop_labels(role, protocol, reason)),
            total,
        );
    }

    /// `role` dropped `n` more packets of `protocol` for `reason` (for
    /// counts kept per stream, added as each stream ends).
    pub fn add_dropped(&self, role: &str, protocol: Protected, reason: DropReason, n: u64) {
        self.dropped
            .get_or_create(&drop_labels(role, protocol, reason))
            .inc_by(n);
    }

    /// The text exposition (OpenMetrics 1.0, which Prometheus reads).
    ///
    /// # Errors
    /// [`EncodeError`] if a value cannot be written (not expected).
    pub fn encode(&self) -> Result<String, EncodeError> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .map_err(|_| EncodeError)?;
        Ok(out)
    }
}

fn drop_labels(role: &str, protocol: Protected, reason: DropReason) -> DropLabels {
    DropLabels {
        role: role.to_owned(),
        protocol: match protocol {
            Protected::Srtp => "srtp",
            Protected::Srtcp => "srtcp",
        },
        reason: reason.as_str(),
    }
}

/// Mirrors a count the role keeps itself; counters only go up, so a
/// smaller total (a restarted role) is ignored rather than mis-reported.
fn store_total(counter: &Counter, total: u64) {
    counter.inner().fetch_max(total, Ordering::Relaxed);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn families_render_in_the_text_format_with_their_labels() {
        let m = Metrics::new();
        m.call("sip:ctrl@x", CallOutcome::Established);
        m.call("sip:ctrl@x", CallOutcome::Established);
        m.group_failed("sip:ctrl@x", "timeout");
        m.setup_time("sip:ctrl@x", Duration::from_millis(7));
        m.set_dropped("sip:a@x", Protected::Srtcp, DropReason::Replay, 3);
        m.set_dropped("sip:a@x", Protected::Srtcp, DropReason::Replay, 2);
        m.add_dropped("sip:a@x", Protected::Srtp, DropReason::Authentication, 2);
        m.add_dropped("sip:a@x", Protected::Srtp, DropReason::Authentication, 5);
        m.http_request("kms", 403);
        m.set_active_calls("sip:ctrl@x", 4);
        let text = m.encode().unwrap();
        for line in [
            "mcx_calls_total{role=\"sip:ctrl@x\",outcome=\"established\"} 2",
            "mcx_groups_failed_total{role=\"sip:ctrl@x\",reason=\"timeout\"} 1",
            "mcx_call_setup_seconds_bucket{le=\"0.01\",role=\"sip:ctrl@x\"} 1",
            "mcx_call_setup_seconds_bucket{le=\"0.005\",role=\"sip:ctrl@x\"} 0",
            "mcx_protected_packets_dropped_total{role=\"sip:a@x\",protocol=\"srtcp\",reason=\"replay\"} 3",
            "mcx_protected_packets_dropped_total{role=\"sip:a@x\",protocol=\"srtp\",reason=\"authentication\"} 7",
            "mcx_http_requests_total{service=\"kms\",status=\"403\"} 1",
            "mcx_active_calls{role=\"sip:ctrl@x\"} 4",
            "# EOF",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
