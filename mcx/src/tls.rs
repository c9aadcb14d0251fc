//! The topology's certificates: a demo CA and one certificate per role,
//! generated in memory (`mcx demo`, `mcx up`) or read from the directory
//! `mcx tls ca` wrote (`mcx run` across hosts), and the TLS configurations
//! each role gets from them (wiring only: the TLS itself is `mcx-tls`'s).
//!
//! Each role's certificate names its identity (a SIP URI as a URI SAN;
//! the KMS URI as a DNS name) and the IP address of its listen address
//! (loopback when it listens on every address).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcx_net::http::Endpoint;
use mcx_net::{NodeTls, TlsTarget};
use mcx_tls::{Ca, ClientAuth, Identity, KeyLogWriter, Subject, Trust};

use crate::error::CliError;
use crate::system::Selection;
use crate::topology::Topology;

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::System(what.to_string())
}

/// The CA certificate's file in a certificate directory.
pub(crate) const CA_FILE: &str = "ca.pem";

/// Every role of `t` by its `mcx run` name (`kms`, `gms`, `controlling`,
/// MC server and user URIs), with what its certificate names.
pub(crate) fn subjects(t: &Topology) -> Vec<(String, Subject)> {
    let subject = |identity: &str, addr: SocketAddr| Subject::new(identity, ips_of(addr));
    // Every instance of a KMS or GMS serves the role's one certificate,
    // which names each instance's address.
    let service = |identity: &str, first: SocketAddr, replicas: &[SocketAddr]| {
        let mut ips = ips_of(first);
        for ip in replicas.iter().flat_map(|r| ips_of(*r)) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        Subject::new(identity, ips)
    };
    let mut out = vec![
        (
            "kms".to_owned(),
            service(&t.kms.uri, t.kms.http, &t.kms.replicas),
        ),
        (
            "gms".to_owned(),
            service(&t.gms.uri, t.gms.http, &t.gms.replicas),
        ),
        (
            "controlling".to_owned(),
            subject(&t.controlling.uri, t.controlling.sip),
        ),
    ];
    if let Some(i) = &t.idms {
        out.push(("idms".to_owned(), subject(&i.uri, i.http)));
    }
    out.extend(
        t.mc_servers
            .iter()
            .map(|s| (s.uri.clone(), subject(&s.uri, s.sip))),
    );
    out.extend(
        t.users
            .iter()
            .map(|u| (u.uri.clone(), subject(&u.uri, u.sip))),
    );
    out
}

/// The addresses a certificate for a role listening on `addr` names: that
/// IP, or loopback (both families) when it listens on every address.
fn ips_of(addr: SocketAddr) -> Vec<IpAddr> {
    if addr.ip().is_unspecified() {
        vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]
    } else {
        vec![addr.ip()]
    }
}

/// A role's file name stem: the role name with what a file name cannot
/// hold (`:`, `/`) replaced by `_`.
pub(crate) fn file_stem(role: &str) -> String {
    role.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '@' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Where `role`'s certificate and key are in `dir`.
pub(crate) fn role_files(dir: &Path, role: &str) -> (PathBuf, PathBuf) {
    let stem = file_stem(role);
    (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    )
}

/// Writes a demo CA's certificate and a certificate and key for every
/// role of `t` into `dir` (created if missing; keys 0600). Returns the
/// files written. The CA's key is not kept: re-run to add roles.
pub(crate) fn write_dir(t: &Topology, dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    std::fs::create_dir_all(dir).map_err(|source| CliError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    let ca = Ca::generate("mcx demo CA").map_err(failed)?;
    let ca_path = dir.join(CA_FILE);
    write_file(&ca_path, ca.cert_pem().as_bytes(), false)?;
    let mut written = vec![ca_path];
    for (role, subject) in subjects(t) {
        let id = ca
            .issue(&subject)
            .map_err(|e| failed(format!("{role}: {e}")))?;
        let (cert, key) = role_files(dir, &role);
        write_file(&cert, id.cert_pem().as_bytes(), false)?;
        write_file(&key, id.key_pem().as_bytes(), true)?;
        written.extend([cert, key]);
    }
    Ok(written)
}

/// Writes `bytes` to `path`, replacing it; a `secret` file is created
/// readable by its owner only (never widened and then narrowed).
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), CliError> {
    use std::io::Write as _;
    let err = |source| CliError::Write {
        path: path.display().to_string(),
        source,
    };
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
        _ => {}
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = options.open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The certificates of the roles this process runs, and the CA they and
/// their peers chain to.
pub(crate) struct TlsMaterial {
    trust: Trust,
    identities: BTreeMap<String, Identity>,
    https: bool,
    key_log: Option<Arc<KeyLogWriter>>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("roles", &self.identities.keys().collect::<Vec<_>>())
            .field("https", &self.https)
            .finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// The material for the roles `sel` picks, if `t` has a `[tls]`
    /// section: read from its `dir`, or generated when every role runs here.
    pub(crate) fn for_topology(t: &Topology, sel: &Selection) -> Result<Option<Self>, CliError> {
        let Some(settings) = &t.tls else {
            return Ok(None);
        };
        let wanted: Vec<(String, Subject)> = subjects(t)
            .into_iter()
            .filter(|(role, _)| {
                sel.wants(role) || (role == "controlling" && sel.wants(&t.controlling.uri))
            })
            .collect();
        let (trust, identities) = match (&settings.dir, sel) {
            (Some(dir), _) => {
                let ca_path = dir.join(CA_FILE);
                let trust = Trust::from_pem(&read(&ca_path)?, &ca_path.display().to_string())
                    .map_err(failed)?;
                let mut identities = BTreeMap::new();
                for (role, _) in wanted {
                    let (cert, key) = role_files(dir, &role);
                    let key_text = zeroize::Zeroizing::new(read(&key)?);
                    let id = Identity::from_pem(
                        &read(&cert)?,
                        &key_text,
                        &format!("{} / {}", cert.display(), key.display()),
                    )
                    .map_err(failed)?;
                    identities.insert(role, id);
                }
                (trust, identities)
            }
            (None, Selection::All) => {
                let ca = Ca::generate("mcx demo CA").map_err(failed)?;
                let mut identities = BTreeMap::new();
                for (role, subject) in wanted {
                    let id = ca
                        .issue(&subject)
                        .map_err(|e| failed(format!("{role}: {e}")))?;
                    identities.insert(role, id);
                }
                (ca.trust().map_err(failed)?, identities)
            }
            (None, Selection::One(role)) => {
                return Err(failed(format!(
                    "{role}: [tls] has no dir: one role per process needs the certificates on disk (mcx tls ca --topology FILE --out DIR, then dir = \"DIR\" in [tls])"
                )));
            }
        };
        Ok(Some(Self {
            trust,
            identities,
            https: settings.https,
            key_log: None,
        }))
    }

    /// Sends every TLS secret of the configurations made from now on to
    /// `path` (NSS key log format; for lab captures only).
    pub(crate) fn log_keys_to(&mut self, path: &Path) -> Result<(), CliError> {
        self.key_log = Some(KeyLogWriter::create(path).map_err(failed)?);
        Ok(())
    }

    fn identity(&self, role: &str) -> Result<&Identity, CliError> {
        self.identities
            .get(role)
            .ok_or_else(|| failed(format!("{role}: no certificate")))
    }

    /// A SIP node's TLS: its certificate, offered to connecting peers
    /// (which may present theirs); a server also presents it when it
    /// connects (mutual TLS between servers), a user does not.
    pub(crate) fn node(&self, role: &str, server: bool) -> Result<NodeTls, CliError> {
        let id = self.identity(role)?;
        let server_config =
            mcx_tls::server_config(id, &self.trust, ClientAuth::Optional, self.key_log.clone())
                .map_err(|e| failed(format!("{role}: {e}")))?;
        let client =
            mcx_tls::client_config(&self.trust, server.then_some(id), self.key_log.clone())
                .map_err(|e| failed(format!("{role}: {e}")))?;
        Ok(NodeTls {
            server: server_config,
            client,
        })
    }

    /// The HTTPS configuration of the IdMS, KMS or GMS (`role`), if HTTPS
    /// is on.
    pub(crate) fn https_server(
        &self,
        role: &str,
    ) -> Result<Option<Arc<mcx_tls::rustls::ServerConfig>>, CliError> {
        if !self.https {
            return Ok(None);
        }
        let id = self.identity(role)?;
        mcx_tls::server_config(id, &self.trust, ClientAuth::None, self.key_log.clone())
            .map(Some)
            .map_err(|e| failed(format!("{role}: {e}")))
    }
}

/// How to reach the KMS or GMS at `addr`, whose certificate names
/// `identity`: HTTPS if the topology says so, plain HTTP otherwise.
pub(crate) fn endpoint(
    tls: Option<&TlsMaterial>,
    addr: SocketAddr,
    identity: &str,
) -> Result<Endpoint, CliError> {
    match tls.filter(|m| m.https) {
        None => Ok(Endpoint::from(addr)),
        Some(m) => {
            let config = mcx_tls::client_config(&m.trust, None, m.key_log.clone())
                .map_err(|e| failed(format!("HTTPS to {identity}: {e}")))?;
            Ok(Endpoint::https(
                addr,
                TlsTarget {
                    config,
                    identity: Some(identity.to_owned()),
                },
            ))
        }
    }
}
