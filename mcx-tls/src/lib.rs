//! TLS for the MCX roles: rustls with the `ring` provider (no OpenSSL, no
//! aws-lc).
//!
//! - [`Ca`]: a demo certificate authority generated in memory (rcgen), and
//!   the per-role certificates it issues ([`Ca::issue`]): each names the
//!   role's identity (its SIP URI as a URI SAN, or a DNS name such as the
//!   KMS URI) and the IP addresses peers reach it at.
//! - [`Identity`]: a certificate chain and its private key (zeroized on
//!   drop, never in `Debug`), from the CA or from PEM files.
//! - [`Trust`]: the CA certificates a peer's certificate must chain to.
//! - [`server_config`] / [`client_config`]: rustls configurations. Clients
//!   always verify the server; a server asks for client certificates as
//!   [`ClientAuth`] says (mutual TLS between servers).
//! - [`PeerIdentity`]: the names a verified peer certificate carries, so a
//!   node can authorise by them.
//! - [`KeyLogWriter`]: the TLS secrets in the NSS key log format
//!   (`SSLKEYLOGFILE`) at a given path, for lab captures (tshark).
#![forbid(unsafe_code)]

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, string::Ia5String,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use zeroize::Zeroizing;

pub use rustls;
pub use tokio_rustls;

/// Errors of certificate generation, loading and TLS configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// Certificate generation failed (rcgen).
    #[error("generating a certificate for {what}: {detail}")]
    Generate {
        /// The certificate's subject.
        what: String,
        /// The generator's error.
        detail: String,
    },
    /// A name cannot go into a certificate (not an IA5 string).
    #[error("{name:?} cannot be a certificate name: {detail}")]
    Name {
        /// The name.
        name: String,
        /// Why.
        detail: String,
    },
    /// PEM input that holds no usable certificate or key.
    #[error("{what}: {detail}")]
    Pem {
        /// Which file or input.
        what: String,
        /// What was wrong.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// Reading or writing a file.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn generate_err(what: &str) -> impl FnOnce(rcgen::Error) -> TlsError + '_ {
    move |e| TlsError::Generate {
        what: what.to_owned(),
        detail: e.to_string(),
    }
}

/// The crypto provider every configuration uses: ring.
///
/// rustls 0.23.48 deprecates ring's provider for lacking post-quantum key
/// exchange; aws-lc-rs (which has it) needs cmake and a C toolchain the
/// project avoids. X25519 and the NIST curves remain.
///
/// The key-exchange groups are [`KX_GROUPS`]: ring's default puts
/// secp384r1 first, whose portable code made its ECDH about 14 % of all
/// CPU when 1,000 clients provisioned (`mcx bench provision`, perf).
#[allow(deprecated)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        kx_groups: KX_GROUPS.to_vec(),
        ..rustls::crypto::ring::default_provider()
    })
}

/// Key-exchange groups, most preferred first: X25519 (RFC 8446 9.1
/// "SHOULD"), secp256r1 (RFC 8446 "MUST"), then secp384r1, all three still
/// offered and accepted so that peers preferring a NIST curve interwork.
#[allow(deprecated)]
pub static KX_GROUPS: &[&dyn rustls::crypto::SupportedKxGroup] = &[
    rustls::crypto::ring::kx_group::X25519,
    rustls::crypto::ring::kx_group::SECP256R1,
    rustls::crypto::ring::kx_group::SECP384R1,
];

/// What a role's certificate names: the identity peers expect (a SIP URI
/// such as `sip:mcs-a@mcx.example`, or a host name such as
/// `kms.mcx.example`) and the IP addresses peers connect to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Subject {
    /// The role's identity: a URI SAN if it has a scheme (`sip:`,
    /// `https:`), else a DNS-name SAN. Also the certificate's common name.
    pub identity: String,
    /// IP address SANs (what clients connecting by address verify).
    pub ips: Vec<IpAddr>,
    /// Further DNS-name SANs.
    pub dns: Vec<String>,
}

impl Subject {
    /// A subject named `identity`, reached at `ips`.
    pub fn new(identity: impl Into<String>, ips: impl IntoIterator<Item = IpAddr>) -> Self {
        Self {
            identity: identity.into(),
            ips: ips.into_iter().collect(),
            dns: Vec::new(),
        }
    }
}

fn ia5(name: &str) -> Result<Ia5String, TlsError> {
    Ia5String::try_from(name).map_err(|e| TlsError::Name {
        name: name.to_owned(),
        detail: e.to_string(),
    })
}

/// True if `identity` is a URI (has a scheme), so it goes into a URI SAN.
fn is_uri(identity: &str) -> bool {
    identity.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// A demo certificate authority, generated in memory. Its key never
/// leaves the process: [`Ca::issue`] signs role certificates with it, and
/// only certificates (and the roles' own keys) are written out.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

impl Ca {
    /// A new CA (ECDSA P-256) whose certificate's common name is `name`.
    ///
    /// # Errors
    /// Key or certificate generation failed.
    pub fn generate(name: &str) -> Result<Self, TlsError> {
        let key = KeyPair::generate().map_err(generate_err(name))?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(generate_err(name))?;
        Ok(Self { issuer })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The trust anchor for peers of this CA's roles.
    ///
    /// # Errors
    /// The certificate is refused as a root (not expected for our own).
    pub fn trust(&self) -> Result<Trust, TlsError> {
        Trust::from_der(vec![self.cert_der()])
    }

    /// A certificate for `subject` (server and client authentication, so
    /// a server can present it on both sides of mutual TLS), with a new
    /// key pair.
    ///
    /// # Errors
    /// A name that cannot go into a certificate, or generation failed.
    pub fn issue(&self, subject: &Subject) -> Result<Identity, TlsError> {
        let what = subject.identity.as_str();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, what);
        let mut sans = Vec::new();
        if is_uri(what) {
            sans.push(SanType::URI(ia5(what)?));
        } else {
            sans.push(SanType::DnsName(ia5(what)?));
        }
        for d in &subject.dns {
            sans.push(SanType::DnsName(ia5(d)?));
        }
        sans.extend(subject.ips.iter().copied().map(SanType::IpAddress));
        params.subject_alt_names = sans;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(generate_err(what))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(generate_err(what))?;
        Ok(Identity {
            chain: vec![cert.der().clone()],
            key: Zeroizing::new(key.serialize_der()),
        })
    }
}

/// A certificate chain (end entity first) and its private key.
///
/// The key is wiped when dropped; the copies rustls and *ring* make when a
/// configuration is built (and rcgen's, for generated keys) are theirs.
#[derive(Clone)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    /// PKCS#8 DER; wiped on drop.
    key: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self
            .chain
            .first()
            .and_then(|c| PeerIdentity::from_cert(c).ok());
        f.debug_struct("Identity")
            .field("names", &names)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Identity {
    /// Reads a certificate chain and a PKCS#8 private key from PEM text;
    /// `what` names the input in errors.
    ///
    /// # Errors
    /// No certificate, or no PKCS#8 key, in the input.
    pub fn from_pem(cert_pem: &str, key_pem: &str, what: &str) -> Result<Self, TlsError> {
        let chain = certs_from_pem(cert_pem, what)?;
        let mut key =
            PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Pem {
                what: format!("{what} key"),
                detail: format!("no PKCS#8 private key: {e}"),
            })?;
        let der = Zeroizing::new(key.secret_pkcs8_der().to_vec());
        // The parser's copy: wiped here, as ours is when dropped.
        zeroize::Zeroize::zeroize(&mut key);
        Ok(Self { chain, key: der })
    }

    /// The end-entity certificate, PEM (then the rest of the chain).
    pub fn cert_pem(&self) -> String {
        self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect()
    }

    /// The private key, PKCS#8 PEM (wiped when dropped).
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem("PRIVATE KEY", &self.key))
    }

    /// The certificate chain, end entity first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The names of the end-entity certificate.
    ///
    /// # Errors
    /// The certificate cannot be read (not for certificates of [`Ca::issue`]).
    pub fn names(&self) -> Result<PeerIdentity, TlsError> {
        let cert = self.chain.first().ok_or_else(|| TlsError::Pem {
            what: "identity".into(),
            detail: "no certificate".into(),
        })?;
        PeerIdentity::from_cert(cert)
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.to_vec()))
    }
}

/// PEM armour of `der` (RFC 7468), 64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn certs_from_pem(text: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.to_owned(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: what.to_owned(),
            detail: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// The CA certificates peers' certificates must chain to.
#[derive(Clone)]
pub struct Trust {
    roots: Arc<RootCertStore>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust")
            .field("roots", &self.roots.len())
            .finish()
    }
}

impl Trust {
    /// Trusts these CA certificates.
    ///
    /// # Errors
    /// A certificate that is not a usable trust anchor.
    pub fn from_der(certs: Vec<CertificateDer<'static>>) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in certs {
            roots
                .add(c)
                .map_err(|e| TlsError::Config(format!("CA certificate: {e}")))?;
        }
        Ok(Self {
            roots: Arc::new(roots),
        })
    }

    /// Trusts the CA certificates in PEM text; `what` names it in errors.
    ///
    /// # Errors
    /// No certificate in the text, or one that is not a trust anchor.
    pub fn from_pem(text: &str, what: &str) -> Result<Self, TlsError> {
        Self::from_der(certs_from_pem(text, what)?)
    }
}

/// Whether a server asks its clients for certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates (HTTPS to the KMS and GMS: users
    /// authenticate with their tokens).
    None,
    /// Clients may present a certificate of the CA (servers do, users do
    /// not); one that does not verify ends the handshake.
    Optional,
    /// Every client must present a certificate of the CA (server-to-server
    /// only).
    Required,
}

/// A server configuration presenting `identity`, asking clients for
/// certificates of `trust` as `clients` says; secrets go to `key_log` if given.
///
/// # Errors
/// rustls refuses the key or the configuration.
pub fn server_config(
    identity: &Identity,
    trust: &Trust,
    clients: ClientAuth,
    key_log: Option<Arc<KeyLogWriter>>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match clients {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Optional | ClientAuth::Required => {
            let v = WebPkiClientVerifier::builder_with_provider(trust.roots.clone(), provider);
            let v = if clients == ClientAuth::Optional {
                v.allow_unauthenticated()
            } else {
                v
            };
            let v = v
                .build()
                .map_err(|e| TlsError::Config(format!("client verifier: {e}")))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut config = builder
        .with_single_cert(identity.chain.clone(), identity.key_der())
        .map_err(|e| TlsError::Config(format!("server certificate: {e}")))?;
    // Session resumption (RFC 8446 2.2) by stateless tickets: a client
    // that connects again skips the certificate exchange and its
    // signature, and the server keeps no per-client state (10,000 clients
    // would overflow a session cache). The ticket key is random per
    // process and rotated every few hours by rustls; a resumed session
    // keeps the identities checked in its full handshake.
    config.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| TlsError::Config(format!("session tickets: {e}")))?;
    if let Some(k) = key_log {
        config.key_log = k;
    }
    Ok(Arc::new(config))
}

/// A client configuration verifying servers against `trust`, presenting
/// `identity` if given (a server connecting to a server: mutual TLS);
/// secrets go to `key_log` if given.
///
/// # Errors
/// rustls refuses the key or the configuration.
pub fn client_config(
    trust: &Trust,
    identity: Option<&Identity>,
    key_log: Option<Arc<KeyLogWriter>>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(trust.roots.clone());
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key_der())
            .map_err(|e| TlsError::Config(format!("client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    // Resumption is rustls's default (tickets of up to 256 servers kept
    // in memory, shared by every connection made with this
    // configuration): a new connection to a server seen before resumes
    // its session instead of a full handshake. The server's certificate
    // is the one checked in that full handshake (rustls keeps it with the
    // ticket), so identity checks on the connection are as strict.
    if let Some(k) = key_log {
        config.key_log = k;
    }
    Ok(Arc::new(config))
}

/// The names in a (verified) certificate's subjectAltName extension.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// URI SANs (a role's SIP URI).
    pub uris: Vec<String>,
    /// DNS-name SANs.
    pub dns: Vec<String>,
    /// IP address SANs.
    pub ips: Vec<IpAddr>,
}

impl PeerIdentity {
    /// True if the certificate names `identity` (as a URI or a DNS name).
    pub fn names(&self, identity: &str) -> bool {
        self.uris.iter().chain(&self.dns).any(|n| n == identity)
    }

    /// The names of the peer's end-entity certificate on an established
    /// connection (`None` if the peer presented none).
    pub fn of(conn: &rustls::CommonState) -> Option<Self> {
        let cert = conn.peer_certificates()?.first()?;
        match Self::from_cert(cert) {
            Ok(id) => Some(id),
            Err(e) => {
                // rustls verified it, so it parses as X.509; a SAN form we
                // do not read leaves the peer without a name, not an error.
                tracing::info!("peer certificate names: {e}");
                Some(Self::default())
            }
        }
    }

    /// Reads the subjectAltName extension (RFC 5280 4.2.1.6) of a DER
    /// certificate: URIs, DNS names and IP addresses; other forms are skipped.
    ///
    /// # Errors
    /// The certificate is not DER X.509 as far as this reads it.
    pub fn from_cert(der: &[u8]) -> Result<Self, TlsError> {
        let bad = |detail: &str| TlsError::Pem {
            what: "certificate".into(),
            detail: detail.to_owned(),
        };
        let (cert, _) = der::expect(der, der::SEQUENCE).ok_or_else(|| bad("not a SEQUENCE"))?;
        let (mut tbs, _) =
            der::expect(cert, der::SEQUENCE).ok_or_else(|| bad("no tbsCertificate"))?;
        let mut out = Self::default();
        while !tbs.is_empty() {
            let (tag, value, rest) = der::tlv(tbs).ok_or_else(|| bad("truncated field"))?;
            tbs = rest;
            // extensions [3] EXPLICIT SEQUENCE OF Extension
            if tag != 0xA3 {
                continue;
            }
            let (mut exts, _) =
                der::expect(value, der::SEQUENCE).ok_or_else(|| bad("extensions"))?;
            while !exts.is_empty() {
                let (ext, rest) =
                    der::expect(exts, der::SEQUENCE).ok_or_else(|| bad("extension"))?;
                exts = rest;
                let (oid, mut ext) = der::expect(ext, 0x06).ok_or_else(|| bad("extension id"))?;
                // id-ce-subjectAltName 2.5.29.17
                if oid != [0x55, 0x1D, 0x11] {
                    continue;
                }
                if let Some((_, rest)) = der::expect(ext, 0x01) {
                    ext = rest; // critical
                }
                let (octets, _) = der::expect(ext, 0x04).ok_or_else(|| bad("SAN value"))?;
                let (mut names, _) =
                    der::expect(octets, der::SEQUENCE).ok_or_else(|| bad("GeneralNames"))?;
                while !names.is_empty() {
                    let (tag, value, rest) = der::tlv(names).ok_or_else(|| bad("GeneralName"))?;
                    names = rest;
                    let text = || String::from_utf8_lossy(value).into_owned();
                    match tag {
                        0x82 => out.dns.push(text()),
                        0x86 => out.uris.push(text()),
                        0x87 => match value.len() {
                            4 => out.ips.push(IpAddr::from(
                                <[u8; 4]>::try_from(value).map_err(|_| bad("IP"))?,
                            )),
                            16 => out.ips.push(IpAddr::from(
                                <[u8; 16]>::try_from(value).map_err(|_| bad("IP"))?,
                            )),
                            _ => return Err(bad("IP address SAN of odd length")),
                        },
                        _ => {}
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Just enough DER (X.690) to walk to a certificate's extensions.
mod der {
    pub(crate) const SEQUENCE: u8 = 0x30;

    /// One TLV: (tag, value, rest). Single-octet tags only (all X.509 uses).
    pub(crate) fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7F);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return None;
        }
        let (value, rest) = rest.split_at(len);
        Some((tag, value, rest))
    }

    /// One TLV of tag `tag`: (value, rest).
    pub(crate) fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (t, value, rest) = tlv(input)?;
        (t == tag).then_some((value, rest))
    }
}

/// Writes TLS secrets in the NSS key log format
/// (`<label> <client random hex> <secret hex>` a line), the format of
/// `SSLKEYLOGFILE` that Wireshark's `tls.keylog_file` reads. For labs
/// only: whoever has the file can decrypt the capture.
pub struct KeyLogWriter {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl fmt::Debug for KeyLogWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLogWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl KeyLogWriter {
    /// Creates (or truncates) `path`, readable by its owner only.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path) -> Result<Arc<Self>, TlsError> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path).map_err(|source| TlsError::Io {
            what: format!("creating the TLS key log {}", path.display()),
            source,
        })?;
        Ok(Arc::new(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        }))
    }

    /// Where the secrets go.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl rustls::KeyLog for KeyLogWriter {
    fn log(&self, label: &str, client_random: &[u8], secret: &[u8]) {
        let line = Zeroizing::new(format!(
            "{label} {} {}\n",
            hex::encode(client_random),
            hex::encode(secret)
        ));
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!("TLS key log {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests;
