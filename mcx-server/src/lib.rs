//! tokio drivers for the MCX servers.
//!
//! - [`serve_http`]: the HTTP/1.1 adapter (hyper) in front of a sans-IO
//!   service such as [`mcx_kms::Kms`] or [`mcx_gms::Gms`]: it reads the
//!   request whole, runs the service on the blocking pool (key issuing
//!   is CPU work) and writes its answer.
//! - The controlling server and MC servers are [`mcx_core`] roles run by
//!   [`mcx_net::node::BoundNode::run`]; nothing server-specific is needed
//!   beyond that.
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use mcx_kms::http::{HttpRequest, HttpResponse};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Largest request body accepted.
pub const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// How long a client may take to send its request headers.
pub const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A sans-IO HTTP service.
pub type Handler = Arc<dyn Fn(HttpRequest) -> HttpResponse + Send + Sync>;

/// The HTTP handler of a KMS: serialises requests on its SQLite state.
pub fn kms_handler(kms: mcx_kms::Kms) -> Handler {
    let kms = Mutex::new(kms);
    Arc::new(move |req| {
        let now = mcx_net::now().unix;
        match kms.lock() {
            Ok(mut k) => k.handle(&req, now),
            Err(_) => HttpResponse::error(500, "KMS state poisoned by an earlier failure"),
        }
    })
}

/// The HTTP handler of a GMS.
pub fn gms_handler(gms: mcx_gms::Gms) -> Handler {
    let gms = Mutex::new(gms);
    Arc::new(move |req| {
        let now = mcx_net::now().unix;
        let mut rng = mcx_net::os_rng();
        match gms.lock() {
            Ok(mut g) => g.handle(&req, now, &mut rng),
            Err(_) => HttpResponse::error(500, "GMS state poisoned by an earlier failure"),
        }
    })
}

/// Serves `handler` on `listener` until the task is aborted.
pub fn serve_http(listener: TcpListener, handler: Handler) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("HTTP accept: {e}");
                    continue;
                }
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| respond(req, handler.clone()));
                // A client that trickles its headers is cut off (slowloris).
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!("HTTP connection from {peer}: {e}");
                }
            });
        }
    })
}

async fn respond(
    req: hyper::Request<Incoming>,
    handler: Handler,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let answer = match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Err(e) => HttpResponse::error(413, &format!("request body unreadable or too large: {e}")),
        Ok(body) => {
            let request = HttpRequest {
                method: parts.method.as_str().to_owned(),
                path: parts
                    .uri
                    .path_and_query()
                    .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned()),
                headers: parts
                    .headers
                    .iter()
                    .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                    .collect(),
                body: body.to_bytes().to_vec(),
            };
            tokio::task::spawn_blocking(move || handler(request))
                .await
                .unwrap_or_else(|_| HttpResponse::error(500, "the service failed"))
        }
    };
    let mut resp = hyper::Response::new(Full::new(Bytes::from(answer.body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(answer.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(ct) = hyper::header::HeaderValue::from_str(&answer.content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    Ok(resp)
}
