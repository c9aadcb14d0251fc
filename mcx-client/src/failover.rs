//! Several instances of one service (KMS or GMS on a shared database,
//! docs/deployment.md) and fail-over between them: a request goes to the
//! instance that answered last, and on a connection failure, a timeout
//! or a 5xx answer to the next one, until one answers or every one was
//! tried.
//!
//! Each [`Servers`] (and its clones) keeps its connections open between
//! requests ([`HttpClient`]): a client's start-up costs one connection and
//! one TLS handshake per instance it talks to, not one per request.

use core::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mcx_kms::http::{HttpRequest, HttpResponse};
use mcx_net::http::{Endpoint, HttpClient, PoolStats};

use crate::ClientError;

/// How long one attempt may take when there is another instance to try.
/// (A single instance keeps `mcx_net::http::TIMEOUT`: there is nowhere
/// else to go, and a loaded server may be slow rather than gone.)
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// The instances of one service, in order of preference, all serving the
/// same state (a KMS or GMS on one PostgreSQL database). Clones share
/// which instance answered last, and the kept connections.
#[derive(Clone)]
pub struct Servers {
    endpoints: Vec<Endpoint>,
    attempt_timeout: Duration,
    /// Connections kept between requests, to any of the instances.
    http: HttpClient,
    /// The index the next request starts at: the instance that answered
    /// last, so that a dead first instance costs one failed attempt, not
    /// one per request.
    preferred: Arc<AtomicUsize>,
}

impl Servers {
    /// The instances `endpoints`, tried in this order.
    pub fn new(endpoints: Vec<Endpoint>) -> Self {
        let attempt_timeout = if endpoints.len() > 1 {
            DEFAULT_ATTEMPT_TIMEOUT
        } else {
            mcx_net::http::TIMEOUT
        };
        Self {
            endpoints,
            attempt_timeout,
            http: HttpClient::default(),
            preferred: Arc::default(),
        }
    }

    /// Closes the connections kept open for further requests (a client
    /// whose provisioning is done: the servers need not hold its sockets
    /// until they time out). A later request opens a new one.
    pub fn close_idle(&self) {
        self.http.close_idle();
    }

    /// The connections opened, resumed and reused so far (for tests and
    /// benchmarks).
    pub fn stats(&self) -> PoolStats {
        self.http.stats()
    }

    /// Bounds each attempt by `timeout` instead of the default.
    #[must_use]
    pub fn with_attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// The instances, in order of preference.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Sends `request` to the instance that answered last and, if it
    /// cannot be reached, does not answer within the attempt timeout or
    /// answers 5xx, to the next ones in turn. A 2xx-4xx answer is
    /// returned as it is (a refusal is the service's answer, the same on
    /// every instance).
    ///
    /// With a single instance there is no fail-over: its answer (5xx
    /// too) or its error ([`ClientError::Net`]) is returned as it is.
    ///
    /// A request may be sent more than once (to another instance, or on a
    /// fresh connection when a kept one turns out to be closed:
    /// [`HttpClient::fetch_repeatable`]): the requests made through
    /// `Servers` (KmsInit, KmsKeyProv, group index and documents) change
    /// nothing at the server, so a repetition is harmless.
    ///
    /// # Errors
    /// [`ClientError::AllFailed`] naming every instance tried and why.
    pub async fn fetch(
        &self,
        service: &'static str,
        request: &HttpRequest,
    ) -> Result<HttpResponse, ClientError> {
        if let [only] = self.endpoints.as_slice() {
            return tokio::time::timeout(
                self.attempt_timeout,
                self.http.fetch_repeatable(only, request),
            )
            .await
            .map_err(|_| {
                mcx_net::NetError::Http(format!(
                    "{} {} to {}: no answer within {:?}",
                    request.method, request.path, only.addr, self.attempt_timeout
                ))
            })?
            .map_err(ClientError::from);
        }
        let n = self.endpoints.len();
        let start = self.preferred.load(Ordering::Relaxed);
        let mut tried = Vec::with_capacity(n);
        for i in (0..n).map(|k| (start + k) % n) {
            let Some(endpoint) = self.endpoints.get(i) else {
                continue;
            };
            let failure = match tokio::time::timeout(
                self.attempt_timeout,
                self.http.fetch_repeatable(endpoint, request),
            )
            .await
            {
                Ok(Ok(r)) if r.status < 500 => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(r);
                }
                Ok(Ok(r)) => format!(
                    "answered {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                        .chars()
                        .take(120)
                        .collect::<String>()
                ),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {:?}", self.attempt_timeout),
            };
            tracing::warn!(
                service,
                instance = %url(endpoint),
                reason = %failure,
                "{} {} failed; trying the next instance, if any",
                request.method,
                request.path
            );
            tried.push(format!("{} ({failure})", url(endpoint)));
        }
        Err(ClientError::AllFailed { service, tried })
    }
}

/// The base URL of an instance, for messages.
fn url(endpoint: &Endpoint) -> String {
    let scheme = if endpoint.tls.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", endpoint.addr)
}

impl fmt::Debug for Servers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.endpoints.iter().map(url))
            .finish()
    }
}

impl From<Endpoint> for Servers {
    fn from(endpoint: Endpoint) -> Self {
        Self::new(vec![endpoint])
    }
}

impl From<SocketAddr> for Servers {
    /// One instance over plain HTTP (labs).
    fn from(addr: SocketAddr) -> Self {
        Endpoint::from(addr).into()
    }
}

impl From<Vec<Endpoint>> for Servers {
    fn from(endpoints: Vec<Endpoint>) -> Self {
        Self::new(endpoints)
    }
}
