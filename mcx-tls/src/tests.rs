//! Handshakes over in-memory pipes with certificates of the demo CA.
#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn server_name() -> ServerName<'static> {
    ServerName::IpAddress(LOOPBACK.into())
}

/// Runs a handshake and one ping/pong; the server's result carries the
/// client's names, if it presented a certificate.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
) -> (
    Result<Option<PeerIdentity>, std::io::Error>,
    Result<Option<PeerIdentity>, std::io::Error>,
) {
    let (c, s) = duplex(64 * 1024);
    let serve = async move {
        let mut tls = TlsAcceptor::from(server).accept(s).await?;
        let peer = PeerIdentity::of(tls.get_ref().1);
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        tls.write_all(b"pong").await?;
        tls.flush().await?;
        Ok(peer)
    };
    let connect = async move {
        let mut tls = TlsConnector::from(client).connect(server_name(), c).await?;
        let peer = PeerIdentity::of(tls.get_ref().1);
        tls.write_all(b"ping").await?;
        tls.flush().await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        Ok(peer)
    };
    tokio::join!(serve, connect)
}

fn server_identity(ca: &Ca) -> Identity {
    ca.issue(&Subject::new("sip:mcs-a@mcx.example", [LOOPBACK]))
        .unwrap()
}

#[tokio::test]
async fn handshake_with_demo_ca_succeeds_and_names_the_server() {
    let ca = Ca::generate("test CA").unwrap();
    let trust = ca.trust().unwrap();
    let server = server_config(&server_identity(&ca), &trust, ClientAuth::None, None).unwrap();
    let client = client_config(&trust, None, None).unwrap();
    let (s, c) = handshake(server, client).await;
    assert_eq!(s.unwrap(), None, "the client presented no certificate");
    let names = c.unwrap().unwrap();
    assert!(names.names("sip:mcs-a@mcx.example"), "{names:?}");
    assert_eq!(names.ips, vec![LOOPBACK]);
}

#[tokio::test]
async fn certificate_of_another_ca_is_refused() {
    let ca = Ca::generate("test CA").unwrap();
    let other = Ca::generate("impostor CA").unwrap();
    let server = server_config(
        &server_identity(&other),
        &other.trust().unwrap(),
        ClientAuth::None,
        None,
    )
    .unwrap();
    let client = client_config(&ca.trust().unwrap(), None, None).unwrap();
    let (_, c) = handshake(server, client).await;
    let err = c.unwrap_err().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn certificate_for_another_address_is_refused() {
    let ca = Ca::generate("test CA").unwrap();
    let trust = ca.trust().unwrap();
    let elsewhere = ca
        .issue(&Subject::new(
            "sip:mcs-a@mcx.example",
            [IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))],
        ))
        .unwrap();
    let server = server_config(&elsewhere, &trust, ClientAuth::None, None).unwrap();
    let client = client_config(&trust, None, None).unwrap();
    let (_, c) = handshake(server, client).await;
    let err = c.unwrap_err().to_string();
    assert!(err.contains("not valid for name"), "{err}");
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_certificate() {
    let ca = Ca::generate("test CA").unwrap();
    let trust = ca.trust().unwrap();
    let server = server_config(&server_identity(&ca), &trust, ClientAuth::Required, None).unwrap();
    let client = client_config(&trust, None, None).unwrap();
    let (s, _) = handshake(server, client).await;
    let err = s.unwrap_err().to_string();
    assert!(err.contains("peer sent no certificates"), "{err}");
}

#[tokio::test]
async fn mutual_tls_names_the_client_and_refuses_a_foreign_one() {
    let ca = Ca::generate("test CA").unwrap();
    let trust = ca.trust().unwrap();
    let me = ca
        .issue(&Subject::new("sip:controlling@mcx.example", [LOOPBACK]))
        .unwrap();
    let server = server_config(&server_identity(&ca), &trust, ClientAuth::Optional, None).unwrap();
    let client = client_config(&trust, Some(&me), None).unwrap();
    let (s, c) = handshake(server.clone(), client).await;
    c.unwrap();
    let names = s.unwrap().unwrap();
    assert!(names.names("sip:controlling@mcx.example"), "{names:?}");
    assert!(!names.names("sip:mcs-a@mcx.example"));

    let other = Ca::generate("impostor CA").unwrap();
    let forged = other
        .issue(&Subject::new("sip:controlling@mcx.example", [LOOPBACK]))
        .unwrap();
    let client = client_config(&trust, Some(&forged), None).unwrap();
    let (s, _) = handshake(server, client).await;
    let err = s.unwrap_err().to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn identity_survives_pem_and_hides_its_key() {
    let ca = Ca::generate("test CA").unwrap();
    let id = server_identity(&ca);
    let key = id.key_pem();
    let again = Identity::from_pem(&id.cert_pem(), &key, "test").unwrap();
    assert_eq!(again.chain(), id.chain());
    let trust = Trust::from_pem(&ca.cert_pem(), "ca").unwrap();
    let server = server_config(&again, &trust, ClientAuth::None, None).unwrap();
    let (_, c) = handshake(server, client_config(&trust, None, None).unwrap()).await;
    c.unwrap();
    let shown = format!("{id:?}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!shown.contains(&body[..16]), "{shown}");
    assert!(Identity::from_pem(&id.cert_pem(), "nothing", "x").is_err());
    assert!(Trust::from_pem("", "ca").is_err());
}

#[tokio::test]
async fn key_log_has_the_nss_format() {
    let dir = std::env::temp_dir().join(format!("mcx-tls-keylog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys");
    let log = KeyLogWriter::create(&path).unwrap();
    let ca = Ca::generate("test CA").unwrap();
    let trust = ca.trust().unwrap();
    let server = server_config(&server_identity(&ca), &trust, ClientAuth::None, None).unwrap();
    let client = client_config(&trust, None, Some(log)).unwrap();
    let (_, c) = handshake(server, client).await;
    c.unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    // TLS 1.3 (RFC 8446): the four traffic secrets of NSS's key log format.
    let labels: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    for want in [
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET",
        "SERVER_HANDSHAKE_TRAFFIC_SECRET",
        "CLIENT_TRAFFIC_SECRET_0",
        "SERVER_TRAFFIC_SECRET_0",
    ] {
        assert!(labels.contains(&want), "{want} missing in {text}");
    }
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(fields[1].len(), 64, "client random is 32 octets: {line}");
        assert!(fields[1..].iter().all(|f| hex::decode(f).is_ok()), "{line}");
        assert!(fields[2].len() >= 64, "{line}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "key log readable by others: {mode:o}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn san_reader_skips_other_names_and_refuses_garbage() {
    let ca = Ca::generate("test CA").unwrap();
    let mut subject = Subject::new(
        "kms.mcx.example",
        [LOOPBACK, IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)],
    );
    subject.dns.push("localhost".into());
    let id = ca.issue(&subject).unwrap();
    let names = id.names().unwrap();
    assert_eq!(names.dns, vec!["kms.mcx.example", "localhost"]);
    assert!(names.uris.is_empty());
    assert_eq!(names.ips.len(), 2);
    // The CA certificate has no SAN extension.
    assert_eq!(
        PeerIdentity::from_cert(&ca.cert_der()).unwrap(),
        PeerIdentity::default()
    );
    let der = id.chain()[0].to_vec();
    assert!(PeerIdentity::from_cert(&der[..der.len() / 2]).is_err());
    assert!(PeerIdentity::from_cert(&[]).is_err());
    assert!(PeerIdentity::from_cert(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
}

/// The key-exchange group a handshake between `server` and `client`
/// settled on (read on the client's side).
async fn negotiated_group(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
) -> rustls::NamedGroup {
    let (c, s) = duplex(64 * 1024);
    let serve = async move {
        let mut tls = TlsAcceptor::from(server).accept(s).await.unwrap();
        tls.write_all(b"x").await.unwrap();
        tls.flush().await.unwrap();
    };
    let connect = async move {
        let mut tls = TlsConnector::from(client)
            .connect(server_name(), c)
            .await
            .unwrap();
        let mut buf = [0u8; 1];
        tls.read_exact(&mut buf).await.unwrap();
        tls.get_ref()
            .1
            .negotiated_key_exchange_group()
            .unwrap()
            .name()
    };
    tokio::join!(serve, connect).1
}

#[tokio::test]
async fn x25519_is_preferred_and_a_secp384r1_only_peer_still_interworks() {
    let ca = Ca::generate("test CA").unwrap();
    let trust = ca.trust().unwrap();
    let server = server_config(&server_identity(&ca), &trust, ClientAuth::None, None).unwrap();
    let ours = client_config(&trust, None, None).unwrap();
    assert_eq!(
        negotiated_group(server.clone(), ours).await,
        rustls::NamedGroup::X25519
    );
    // A peer offering only secp384r1 (ring's own first choice).
    #[allow(deprecated)]
    let p384_only = Arc::new(CryptoProvider {
        kx_groups: vec![rustls::crypto::ring::kx_group::SECP384R1],
        ..rustls::crypto::ring::default_provider()
    });
    let theirs = rustls::ClientConfig::builder_with_provider(p384_only)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(trust.roots.clone())
        .with_no_client_auth();
    assert_eq!(
        negotiated_group(server, Arc::new(theirs)).await,
        rustls::NamedGroup::secp384r1
    );
}
