//! A minimal HTTP/1.1 client over hyper, for provisioning from the KMS
//! and the GMS: one request per connection, bodies read whole with a
//! size limit; HTTPS when the [`Endpoint`] says so (the server's
//! certificate verified against the topology's CA), plain HTTP for labs.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use mcx_kms::http::{HttpRequest, HttpResponse};
use tokio::net::TcpStream;

use crate::NetError;
use crate::tls::TlsTarget;

/// Where a KMS or GMS is, and whether it is reached over TLS.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// Its HTTP(S) socket.
    pub addr: SocketAddr,
    /// HTTPS: how its certificate is checked. `None`: plain HTTP.
    pub tls: Option<TlsTarget>,
}

impl Endpoint {
    /// HTTPS to `addr`, checked as `tls` says.
    pub fn https(addr: SocketAddr, tls: TlsTarget) -> Self {
        Self {
            addr,
            tls: Some(tls),
        }
    }
}

impl From<SocketAddr> for Endpoint {
    /// Plain HTTP (labs; anyone on the path reads tokens and keys).
    fn from(addr: SocketAddr) -> Self {
        Self { addr, tls: None }
    }
}

/// Largest response body accepted (group documents for big groups are the
/// largest thing served).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// How long one exchange may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends `request` to the server at `to` (an [`Endpoint`], or a
/// `SocketAddr` for plain HTTP) and reads the whole response.
///
/// # Errors
/// Connection, TLS ([`NetError::Tls`]: a certificate that does not
/// verify), protocol or size failures, and a timeout.
pub async fn fetch(
    to: impl Into<Endpoint>,
    request: &HttpRequest,
) -> Result<HttpResponse, NetError> {
    let to = to.into();
    let addr = to.addr;
    tokio::time::timeout(TIMEOUT, fetch_inner(&to, request))
        .await
        .map_err(|_| {
            NetError::Http(format!(
                "{} {} to {addr}: timed out",
                request.method, request.path
            ))
        })?
}

async fn fetch_inner(to: &Endpoint, request: &HttpRequest) -> Result<HttpResponse, NetError> {
    let addr = to.addr;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| NetError::io(format!("connecting to {addr}"), e))?;
    match &to.tls {
        Some(target) => {
            let (tls, _) = crate::tls::connect(target, addr, stream).await?;
            exchange(addr, TokioIo::new(tls), request).await
        }
        None => exchange(addr, TokioIo::new(stream), request).await,
    }
}

/// One request and its response over an established connection.
async fn exchange<S>(
    addr: SocketAddr,
    io: TokioIo<S>,
    request: &HttpRequest,
) -> Result<HttpResponse, NetError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| NetError::Http(format!("handshake with {addr}: {e}")))?;
    let conn = tokio::spawn(conn);
    let mut builder = hyper::Request::builder()
        .method(request.method.as_str())
        .uri(request.path.as_str())
        .header(hyper::header::HOST, addr.to_string());
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let req = builder
        .body(Full::new(Bytes::from(request.body.clone())))
        .map_err(|e| {
            NetError::Http(format!("building {} {}: {e}", request.method, request.path))
        })?;
    let resp = sender.send_request(req).await.map_err(|e| {
        NetError::Http(format!(
            "{} {} to {addr}: {e}",
            request.method, request.path
        ))
    })?;
    let status = resp.status().as_u16();
    // The caller may need a redirect's Location (the IdMS's authorization
    // response) or an authentication challenge.
    let headers = [hyper::header::LOCATION, hyper::header::WWW_AUTHENTICATE]
        .iter()
        .filter_map(|name| {
            let v = resp.headers().get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let content_type = resp
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| NetError::Http(format!("reading the response from {addr}: {e}")))?
        .to_bytes()
        .to_vec();
    conn.abort();
    Ok(HttpResponse {
        status,
        content_type,
        headers,
        body,
    })
}
