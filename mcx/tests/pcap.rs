//! The lab view of a call (issue 10 point 5): `mcx demo --pcap FILE`
//! captures the whole run on loopback; without its TLS key log the
//! capture holds no SIP, no HTTP, no token, no user key and no SRTP key in
//! clear (issue 11 point 1: signalling and provisioning run over TLS);
//! with the key log (FILE.tlskeys) tshark (Wireshark 4.0) dissects it as
//! SIP and HTTP inside TLS, RTP whose payload is SRTP with the call's MKI,
//! and RTCP floor control; no 16-octet run of the audio appears in the
//! capture; and `mcx srtp decrypt` with the key file gives back the
//! dispatcher's audio sample for sample, from the pcap and from the same
//! capture converted to pcapng by tshark, while a wrong key decrypts
//! nothing.
//!
//! Needs dumpcap and tshark (Debian/Ubuntu: apt-get install tshark) and
//! the right to capture on `lo` (root, or dumpcap's capabilities): without
//! the tools the capture test says so and passes without checking.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::proc::Proc;
use common::tshark::{Tshark, missing};
use mcx_media::{pcmu, signal, wav};

/// What `mcx demo` may take, capture included.
const DEMO_TIME: Duration = Duration::from_secs(90);
/// What `mcx srtp decrypt` may take.
const DECRYPT_TIME: Duration = Duration::from_secs(30);

/// The default topology's call: one INVITE to the controlling server, one
/// per MC server (2), one per member (3 in each of groups A and B).
const INVITES: usize = 1 + 2 + 6;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mcx-pcap-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `mcx ARGS…`: exit success and stdout.
fn mcx(name: &str, args: &[&std::ffi::OsStr], within: Duration) -> (bool, String, String) {
    let mut p = Proc::mcx(name, args);
    let (status, out) = p.finish(within);
    (status.success(), out, p.stderr())
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// `mcx srtp decrypt --pcap FILE KEYS… --out DIR`.
fn decrypt(pcap: &Path, keys: &[&str], out: &Path) -> (bool, String, String) {
    let mut args = vec![os("srtp"), os("decrypt"), os("--pcap"), pcap.as_os_str()];
    args.extend(keys.iter().map(|k| os(k)));
    args.extend([os("--out"), out.as_os_str()]);
    mcx("decrypt", &args, DECRYPT_TIME)
}

/// `name=value` of the one `stream …` line.
fn stream_field(out: &str, name: &str) -> String {
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("stream ")).collect();
    assert_eq!(lines.len(), 1, "one stream expected:\n{out}");
    common::field(lines[0], name).to_owned()
}

/// The port of `https://ADDR` on the demo's line for `role` (KMS, GMS).
fn http_port(stdout: &str, role: &str) -> String {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(role) && l.contains("https://"))
        .unwrap_or_else(|| panic!("no {role} line over HTTPS in {stdout}"));
    line.rsplit(':').next().unwrap().trim().to_owned()
}

/// The SIP ports the demo lists (`sip 127.0.0.1:PORT Tls`), each over TLS.
fn sip_ports(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.split_once(" sip 127.0.0.1:"))
        .map(|(_, rest)| {
            let (port, transport) = rest.split_once(' ').unwrap();
            assert!(transport.starts_with("Tls"), "SIP not over TLS: {rest}");
            port.to_owned()
        })
        .collect()
}

/// tshark options decoding `sip` and `http` ports as TLS, and what runs
/// inside as SIP and HTTP; with the key log if given.
fn tls_options(sip: &[String], http: &[&String], key_log: Option<&Path>) -> Vec<String> {
    let mut options = Vec::new();
    let inner = sip
        .iter()
        .map(|p| (p, "sip"))
        .chain(http.iter().map(|p| (*p, "http")));
    for (p, proto) in inner {
        options.extend(["-d".to_owned(), format!("tcp.port=={p},tls")]);
        options.extend(["-d".to_owned(), format!("tls.port=={p},{proto}")]);
    }
    if let Some(k) = key_log {
        options.extend(["-o".to_owned(), format!("tls.keylog_file:{}", k.display())]);
    }
    options
}

/// Every value of `<tag>HEX</tag>` in `text`, decoded.
fn tagged_hex(text: &str, tag: &str) -> Vec<Vec<u8>> {
    let open = format!("<{tag}>");
    text.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split('<').next())
        .map(|h| hex::decode(h.trim()).unwrap())
        .collect()
}

/// True if `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every 16-octet run of `bytes`.
fn runs(bytes: &[u8]) -> HashSet<[u8; 16]> {
    bytes
        .windows(16)
        .map(|w| <[u8; 16]>::try_from(w).unwrap())
        .collect()
}

/// 16-octet windows across `bytes`, every `step` octets, leaving out the
/// near-constant ones (silence or a slow stretch could occur anywhere by
/// chance; a varied run of audio could not).
fn windows(bytes: &[u8], step: usize) -> Vec<[u8; 16]> {
    bytes
        .windows(16)
        .step_by(step)
        .filter(|w| w.iter().collect::<BTreeSet<_>>().len() >= 8)
        .map(|w| <[u8; 16]>::try_from(w).unwrap())
        .collect()
}

fn le_bytes(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

#[test]
fn demo_capture_dissects_hides_the_audio_and_decrypts_to_what_was_sent() {
    if let Some(why) = missing(&["dumpcap", "tshark"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = scratch("demo");
    let pcap = dir.join("call.pcap");
    let (ok, stdout, stderr) = mcx(
        "demo",
        &[os("demo"), os("--pcap"), pcap.as_os_str()],
        DEMO_TIME,
    );
    assert!(ok, "mcx demo --pcap failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("result: OK"), "{stdout}");
    let keys = PathBuf::from(format!("{}.keys", pcap.display()));
    let tls_keys = PathBuf::from(format!("{}.tlskeys", pcap.display()));
    // The demo says where both went, and that the key file is secret.
    assert!(
        stdout.contains(&format!("written to {}", pcap.display())),
        "{stdout}"
    );
    let keys_line = stdout.lines().find(|l| l.starts_with("keys: ")).unwrap();
    assert!(
        keys_line.contains(&keys.display().to_string()) && keys_line.contains("SECRET"),
        "{keys_line}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&keys).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key file is readable by others");
        let mode = std::fs::metadata(&tls_keys).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the TLS key log is readable by others");
    }
    let tls_line = stdout
        .lines()
        .find(|l| l.starts_with("TLS keys: "))
        .unwrap();
    assert!(
        tls_line.contains(&format!("tls.keylog_file:{}", tls_keys.display())),
        "{tls_line}"
    );
    let key_file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&keys).unwrap()).unwrap();
    let tgmk_id = key_file["calls"][0]["tgmk_id"].as_str().unwrap().to_owned();
    assert_eq!(key_file["calls"][0]["mki"].as_str(), Some(tgmk_id.as_str()));
    // The TGMK-ID the demo printed (key ID, never the key) is the MKI.
    assert!(
        stdout.contains(&format!("TGMK-ID {tgmk_id} confirmation")),
        "{tgmk_id} not in {stdout}"
    );

    // Without the TLS key log: nothing of the signalling or provisioning
    // in clear, even with every TLS port decoded as what runs inside.
    let (kms, gms) = (http_port(&stdout, "KMS"), http_port(&stdout, "GMS"));
    let idms = http_port(&stdout, "IdMS");
    let sip = sip_ports(&stdout);
    assert_eq!(sip.len(), 3 + 8, "controlling, 2 MC servers, 8 clients");
    let blind = Tshark {
        file: pcap.clone(),
        options: tls_options(&sip, &[&idms, &kms, &gms], None),
    };
    let tls_records = blind.fields("tls.app_data", &["frame.number"]).len();
    assert!(
        tls_records > 50,
        "TLS application data records: {tls_records}"
    );
    assert!(blind.fields("sip || http", &["frame.number"]).is_empty());
    let raw = std::fs::read(&pcap).unwrap();
    for clear in [
        "Bearer",
        // IdMS logins: Basic credentials, passwords, codes, access tokens
        // (our JWTs' header, {"alg":"ES256",…}, starts as below: long
        // enough never to turn up by chance in encrypted bytes, as "eyJ"
        // alone did).
        "Basic ",
        "demo-password-",
        "code_verifier",
        "access_token",
        "eyJhbGciOiJFUzI1Ni",
        "<UserSigningKeySSK>",
        "<UserDecryptKey>",
        "<UserPubTokenPVT>",
        "INVITE sip:",
        "SIP/2.0",
        "application/sdp",
        "application/mikey",
        "mcptt-info",
        "sip:dispatcher@mcx.example",
    ] {
        assert!(
            !contains(&raw, clear.as_bytes()),
            "{clear:?} in clear in the capture"
        );
    }

    // With the key log, tshark reads all of it: the same strings are there
    // (so the checks above could fail), and the users' private keys and
    // the call's SRTP key, none of whose octets are in the capture as such.
    let plain = Tshark {
        file: pcap.clone(),
        options: tls_options(&sip, &[&idms, &kms, &gms], Some(&tls_keys)),
    };
    let auth = plain.fields("http.request", &["http.authorization"]);
    assert!(
        auth.iter()
            .any(|r| r[0].iter().any(|a| a.starts_with("Bearer eyJ"))),
        "no Bearer token read through TLS: {auth:?}"
    );
    assert!(
        auth.iter()
            .any(|r| r[0].iter().any(|a| a.starts_with("Basic "))),
        "no IdMS login read through TLS: {auth:?}"
    );
    let bodies: String = plain
        .fields("http.response", &["http.file_data"])
        .into_iter()
        .flat_map(|r| r.into_iter().flatten())
        .collect();
    let ssks = tagged_hex(&bodies, "UserSigningKeySSK");
    let rsks = tagged_hex(&bodies, "UserDecryptKey");
    // The GMS and 3 servers fetch their keys plainly inside TLS; the 8
    // clients get theirs InK-signed and TrK-encrypted on top (the KMS
    // security extension), so not even the TLS key log shows them.
    assert!(
        ssks.len() >= 4 && rsks.len() >= 4,
        "{} SSKs, {} RSKs",
        ssks.len(),
        rsks.len()
    );
    assert!(
        bodies.matches("SignedKmsResponse").count() >= 8,
        "signed, encrypted key sets for the clients"
    );
    for key in ssks.iter().chain(&rsks) {
        assert!(
            !contains(&raw, key),
            "a user's private key in clear in the capture"
        );
    }
    let srtp_key = hex::decode(key_file["calls"][0]["master_key"].as_str().unwrap()).unwrap();
    assert!(!contains(&raw, &srtp_key), "the SRTP master key in clear");

    // The voice and floor ports, from the SDP in the capture as tshark
    // reads it through TLS.
    let mut audio = BTreeSet::new();
    let mut floor = BTreeSet::new();
    for row in plain.fields("sdp", &["sdp.media.media", "sdp.media.port"]) {
        for (media, port) in row[0].iter().zip(&row[1]) {
            match media.as_str() {
                "audio" => audio.insert(port.clone()),
                "application" => floor.insert(port.clone()),
                other => panic!("SDP media {other:?}"),
            };
        }
    }
    // The dispatcher, 6 members and 3 servers' relays announce voice.
    assert!(audio.len() >= 10, "voice ports in SDP: {audio:?}");
    assert!(!floor.is_empty(), "floor ports in SDP");
    let mut options = plain.options.clone();
    for p in &audio {
        options.extend(["-d".to_owned(), format!("udp.port=={p},rtp")]);
    }
    for p in &floor {
        options.extend(["-d".to_owned(), format!("udp.port=={p},rtcp")]);
    }
    let ts = Tshark {
        file: pcap.clone(),
        options,
    };

    // SIP: every INVITE of the call, and its end.
    let sip = ts.fields(
        "sip && !(sip.resend == 1)",
        &["sip.Method", "sip.CSeq.method", "sip.Status-Code"],
    );
    let requests = |m: &str| sip.iter().filter(|r| r[0] == [m]).count();
    assert_eq!(requests("INVITE"), INVITES, "INVITEs");
    assert_eq!(requests("BYE"), INVITES, "BYEs");
    // HTTP: the clients' provisioning from the KMS and the GMS.
    let http = ts.fields("http.request", &["tcp.dstport", "http.request.method"]);
    for (role, port) in [("KMS", &kms), ("GMS", &gms)] {
        assert!(
            http.iter().any(|r| r[0] == [port.clone()]),
            "no HTTP request to the {role} (port {port}): {http:?}"
        );
    }
    // RTP with PT 0 whose payload tshark takes for SRTP (RTP/SAVP in the
    // SDP) and whose last 8 octets are the MKI (the TGMK-ID) and the ROC.
    let rtp = ts.fields(
        "rtp",
        &["rtp.p_type", "rtp.ssrc", "rtp.seq", "srtp.enc_payload"],
    );
    assert!(!rtp.is_empty(), "no RTP");
    let ssrcs: BTreeSet<&str> = rtp.iter().map(|r| r[1][0].as_str()).collect();
    assert_eq!(
        ssrcs.len(),
        1,
        "one voice stream (the dispatcher's): {ssrcs:?}"
    );
    for r in &rtp {
        assert_eq!(r[0], ["0"], "payload type: {r:?}");
        let payload = r[3].first().map(String::as_str).unwrap_or_default();
        assert!(
            payload.len() > 16 && payload[payload.len() - 16..].starts_with(&tgmk_id),
            "SRTP payload without MKI {tgmk_id} before the ROC: {r:?}"
        );
    }
    let sequences: BTreeSet<&str> = rtp.iter().map(|r| r[2][0].as_str()).collect();
    // RTCP: floor control as SRTCP (under each client's CSK and the
    // servers' SPK): tshark sees RTCP APP headers, but the name "MCPT" and
    // the MCPTT message are encrypted.
    let rtcp = ts.fields("rtcp", &["rtcp.app.name", "rtcp.app.subtype"]);
    assert!(!rtcp.is_empty(), "no RTCP");
    // (An encrypted name is 4 random octets: tshark may print them.)
    assert!(
        rtcp.iter().all(|r| r[0] != ["MCPT"]),
        "floor in clear: {rtcp:?}"
    );
    assert!(rtcp.iter().all(|r| !r[1].is_empty()), "{rtcp:?}");
    let udp_frames = ts.fields("udp", &["frame.number"]).len();

    // No audio in clear: no 16-octet run of the µ-law encoding of the
    // test signal, nor of its linear samples, anywhere in the capture.
    let sent = signal::test_signal();
    let mut codes = vec![0u8; sent.len()];
    pcmu::encode(&sent, &mut codes);
    let mut expected = Vec::new();
    pcmu::decode_append(&codes, &mut expected);
    let mu_law = windows(&codes, 97);
    let linear = windows(&le_bytes(&expected), 97);
    assert!(mu_law.len() > 100 && linear.len() > 100, "too few windows");
    let captured = runs(&std::fs::read(&pcap).unwrap());
    let in_clear = mu_law
        .iter()
        .chain(&linear)
        .filter(|w| captured.contains(*w))
        .count();
    assert_eq!(in_clear, 0, "runs of the audio in clear in the capture");

    // Decrypted with the key file: the dispatcher's stream, as many
    // datagrams and packets as tshark counts, and its audio.
    let heard = dir.join("heard");
    let (ok, out, err) = decrypt(&pcap, &["--keys", keys.to_str().unwrap()], &heard);
    assert!(ok, "decrypt failed:\n{out}\n{err}");
    let summary = out.lines().next().unwrap();
    assert_eq!(
        common::field(summary, "udp"),
        udp_frames.to_string(),
        "{out}"
    );
    assert_eq!(
        format!("0x{}", stream_field(&out, "ssrc")),
        *ssrcs.first().unwrap(),
        "{out}"
    );
    assert_eq!(stream_field(&out, "mki"), tgmk_id);
    assert_eq!(stream_field(&out, "datagrams"), rtp.len().to_string());
    assert_eq!(stream_field(&out, "packets"), sequences.len().to_string());
    assert_eq!(stream_field(&out, "decrypted"), sequences.len().to_string());
    assert_eq!(stream_field(&out, "failed"), "0");
    let wav_path = PathBuf::from(stream_field(&out, "wav"));
    let wav_bytes = std::fs::read(&wav_path).unwrap();
    let audio = wav::read(&wav_bytes).unwrap();
    assert_eq!((audio.sample_rate, audio.channels), (8000, 1));
    // Aligned by the first packet: the signal, then the silence that
    // pads the last 20 ms frame.
    assert!(audio.samples.len() >= expected.len(), "{out}");
    assert!(
        audio.samples[..expected.len()] == expected[..],
        "the decrypted audio differs from the µ-law decoding of the test signal"
    );
    assert!(audio.samples[expected.len()..].iter().all(|&s| s == 0));
    // The check above could fail: the same windows are all in the clear
    // audio the decryption wrote (linear in the WAV, µ-law once encoded
    // again: decoding is exact for the codes of a non-zero sample).
    let in_wav = runs(&wav_bytes);
    assert!(linear.iter().all(|w| in_wav.contains(w)));
    let mut again = vec![0u8; audio.samples.len()];
    pcmu::encode(&audio.samples, &mut again);
    let in_codes = runs(&again);
    assert!(mu_law.iter().all(|w| in_codes.contains(w)));

    // The same capture as pcapng (written by tshark): the same WAV.
    let ng = dir.join("call.pcapng");
    plain.run(&["-F", "pcapng", "-w", ng.to_str().unwrap()]);
    assert_eq!(&std::fs::read(&ng).unwrap()[..4], [0x0a, 0x0d, 0x0d, 0x0a]);
    let heard_ng = dir.join("heard-ng");
    let (ok, out_ng, err) = decrypt(&ng, &["--keys", keys.to_str().unwrap()], &heard_ng);
    assert!(ok, "decrypt of the pcapng failed:\n{out_ng}\n{err}");
    let ng_wav = std::fs::read(PathBuf::from(stream_field(&out_ng, "wav"))).unwrap();
    assert!(ng_wav == wav_bytes, "pcapng and pcap give different audio");

    // A wrong master key with the right MKI: every packet fails, no WAV.
    let wrong = dir.join("wrong");
    let (ok, out, err) = decrypt(
        &pcap,
        &[
            "--master-key",
            &"00".repeat(16),
            "--master-salt",
            &"00".repeat(12),
            "--mki",
            &tgmk_id,
        ],
        &wrong,
    );
    assert!(!ok, "decrypt with a wrong key succeeded:\n{out}");
    assert!(err.contains("no packet decrypted"), "{err}");
    assert_eq!(stream_field(&out, "decrypted"), "0");
    assert_eq!(stream_field(&out, "failed"), sequences.len().to_string());
    assert_eq!(stream_field(&out, "wav"), "-");
    assert!(!wrong.exists(), "a WAV directory was made for nothing");
    // A wrong TGMK for the right TGMK-ID (the TGMK derivation path): the
    // same.
    let (ok, out, _) = decrypt(
        &pcap,
        &[
            "--tgmk",
            &"11".repeat(16),
            "--tgmk-id",
            &tgmk_id,
            "--rand",
            &"22".repeat(16),
        ],
        &wrong,
    );
    assert!(!ok);
    assert_eq!(stream_field(&out, "failed"), sequences.len().to_string());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn decrypt_refuses_what_is_not_a_capture_naming_the_file() {
    let dir = scratch("bad");
    let junk = dir.join("junk.pcap");
    std::fs::write(&junk, b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let key = [
        "--master-key",
        "000102030405060708090a0b0c0d0e0f",
        "--master-salt",
        "000102030405060708090a0b",
        "--mki",
        "70000001",
    ];
    let (ok, _, err) = decrypt(&junk, &key, &dir.join("out"));
    assert!(!ok);
    assert!(
        err.contains("junk.pcap: not a pcap or pcapng file"),
        "{err}"
    );
    // A pcap header and a record cut short.
    let mut cut = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
    cut.extend([0; 8]);
    cut.extend(65535u32.to_le_bytes());
    cut.extend(1u32.to_le_bytes());
    cut.extend([0; 8]);
    cut.extend(100u32.to_le_bytes());
    cut.extend(100u32.to_le_bytes());
    cut.extend([0; 10]);
    std::fs::write(&junk, &cut).unwrap();
    let (ok, _, err) = decrypt(&junk, &key, &dir.join("out"));
    assert!(!ok);
    assert!(err.contains("pcap record 1 data at offset 40"), "{err}");
    // A master salt of the wrong length is named.
    let (ok, _, err) = decrypt(
        &junk,
        &[
            "--master-key",
            &"00".repeat(16),
            "--master-salt",
            "00",
            "--mki",
            "01",
        ],
        &dir.join("out"),
    );
    assert!(!ok);
    assert!(err.contains("master salt"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn demo_pcap_without_dumpcap_says_how_to_get_it() {
    let dir = scratch("nodumpcap");
    // A PATH with nothing on it: dumpcap cannot be found.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcx"))
        .arg("demo")
        .arg("--pcap")
        .arg(dir.join("call.pcap"))
        .env("PATH", &dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("mcx demo --pcap without dumpcap did not give up within 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("--pcap: dumpcap is not installed (Debian/Ubuntu: apt-get install tshark"),
        "{err}"
    );
    assert!(!dir.join("call.pcap").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
