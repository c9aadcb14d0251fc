//! `mcx selfcheck`: the published test vectors (embedded in the binary) and
//! a round trip through a freshly generated community.
//!
//! Every check only calls `mcx_ibc` and compares octets with the vectors.

use std::io::{StdoutLock, Write};
use std::time::Instant;

use mcx_ibc::eccsi::{self, Kpak, Ksak, Pvt, SigningKey, Ssk, hazmat};
use mcx_ibc::kms::Community;
use mcx_ibc::sakke::{self, KmsPublicKey, MasterSecret, ReceiverKey, Rsk, Ssv};
use mcx_ibc::uid::{key_period_no, mikey_sakke_uid};
use serde_json::Value;

use crate::error::CliError;
use crate::input;
use crate::keyfile::{KeyFile, UserKeysFile};
use crate::output;

/// RFC 6507, RFC 6508 and RFC 6509 Appendix A vectors.
const RFC_VECTORS: &str = include_str!("../../../mcx-ibc/tests/data/rfc6507-6508-6509.json");
/// Streamwide MIKEY-SAKKE interop vectors.
const STREAMWIDE_VECTORS: &str =
    include_str!("../../../mcx-ibc/tests/data/streamwide-mikey-sakke.json");

/// Width of the check name column.
const NAME_WIDTH: usize = 72;

/// What a check returns: a value for later checks, or why it failed.
type Check<T> = Result<T, String>;

/// Runs the checks and prints one line each.
struct Runner {
    /// Where the report goes.
    out: StdoutLock<'static>,
    /// Checks passed so far.
    passed: usize,
    /// Checks failed so far.
    failed: usize,
}

impl Runner {
    /// Writes one line of the report.
    fn print(&mut self, text: &str) -> Result<(), CliError> {
        writeln!(self.out, "{text}").map_err(|source| CliError::Write {
            path: "<stdout>".to_owned(),
            source,
        })
    }

    /// Starts a group of checks.
    fn section(&mut self, title: &str) -> Result<(), CliError> {
        self.print("")?;
        self.print(title)
    }

    /// Runs one check, timing it, and reports it. `None` if it failed.
    fn check<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Check<T>,
    ) -> Result<Option<T>, CliError> {
        let start = Instant::now();
        let result = f();
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let padded = format!("{name} ");
        match result {
            Ok(value) => {
                self.passed += 1;
                self.print(&format!("  ok    {padded:.<NAME_WIDTH$} {ms:>8.1} ms"))?;
                Ok(Some(value))
            }
            Err(why) => {
                self.failed += 1;
                self.print(&format!("  FAIL  {padded:.<NAME_WIDTH$} {ms:>8.1} ms"))?;
                self.print(&format!("        {why}"))?;
                Ok(None)
            }
        }
    }

    /// Reports a check that could not run because an earlier one failed.
    fn skip(&mut self, name: &str) -> Result<(), CliError> {
        self.check(name, || {
            Check::<()>::Err("not run: an earlier check it needs failed".to_owned())
        })
        .map(|_| ())
    }
}

/// Runs `mcx selfcheck`.
pub(crate) fn run() -> Result<(), CliError> {
    let start = Instant::now();
    let mut runner = Runner {
        out: std::io::stdout().lock(),
        passed: 0,
        failed: 0,
    };
    runner.print(&format!(
        "mcx {} selfcheck: published vectors, then a fresh community",
        env!("CARGO_PKG_VERSION")
    ))?;
    let vectors = runner.check("embedded vector files parse", || {
        let rfc: Value = serde_json::from_str(RFC_VECTORS).map_err(|e| e.to_string())?;
        let streamwide: Value =
            serde_json::from_str(STREAMWIDE_VECTORS).map_err(|e| e.to_string())?;
        Ok((rfc, streamwide))
    })?;
    if let Some((rfc, streamwide)) = vectors {
        rfc6507(&mut runner, &rfc["eccsi_rfc6507_appendix_a"])?;
        rfc6508(&mut runner, &rfc["sakke_rfc6508_appendix_a"])?;
        streamwide_vectors(&mut runner, &streamwide)?;
    }
    fresh_community(&mut runner)?;

    let total = runner.passed + runner.failed;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    runner.print("")?;
    runner.print(&format!(
        "selfcheck: {} passed, {} failed ({ms:.0} ms)",
        runner.passed, runner.failed
    ))?;
    runner.out.flush().map_err(|source| CliError::Write {
        path: "<stdout>".to_owned(),
        source,
    })?;
    if runner.failed == 0 {
        Ok(())
    } else {
        Err(CliError::SelfcheckFailed {
            failed: runner.failed,
            total,
        })
    }
}

// ---------------------------------------------------------------------------
// Vector access
// ---------------------------------------------------------------------------

/// A string field of a vector.
fn text<'a>(v: &'a Value, key: &str) -> Check<&'a str> {
    v[key]
        .as_str()
        .ok_or_else(|| format!("vector field {key} is missing or not a string"))
}

/// A hex field of a vector.
fn octets(v: &Value, key: &str) -> Check<Vec<u8>> {
    hex::decode(text(v, key)?).map_err(|e| format!("vector field {key}: {e}"))
}

/// An integer field of a vector, as a number or a decimal string.
fn number(v: &Value, key: &str) -> Check<u64> {
    v[key]
        .as_u64()
        .or_else(|| v[key].as_str().and_then(|s| s.parse().ok()))
        .ok_or_else(|| format!("vector field {key} is missing or not an integer"))
}

/// An `mcx_ibc` result, its error prefixed with what was being done.
fn ibc<T>(what: &str, result: Result<T, mcx_ibc::Error>) -> Check<T> {
    result.map_err(|e| format!("{what}: {e}"))
}

/// Equal octets, or a message showing both (shortened).
fn same(what: &str, got: &[u8], expected: &[u8]) -> Check<()> {
    if got == expected {
        return Ok(());
    }
    let short = |b: &[u8]| {
        let h = hex::encode(b);
        if h.len() > 24 {
            format!("{}…", &h[..24])
        } else {
            h
        }
    };
    Err(format!(
        "{what}: got {} ({} octets), expected {} ({} octets)",
        short(got),
        got.len(),
        short(expected),
        expected.len()
    ))
}

/// A copy of `bytes` with one bit flipped at octet `index`.
fn flip_bit(bytes: &[u8], index: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if let Some(b) = out.get_mut(index) {
        *b ^= 0x01;
    }
    out
}

// ---------------------------------------------------------------------------
// RFC 6507 Appendix A
// ---------------------------------------------------------------------------

fn rfc6507(runner: &mut Runner, v: &Value) -> Result<(), CliError> {
    runner.section("RFC 6507 Appendix A: ECCSI on P-256 with SHA-256")?;
    runner.check("KPAK = [KSAK]G", || {
        let ksak = ibc("KSAK", Ksak::from_bytes(&octets(v, "KSAK")?))?;
        same("KPAK", &ksak.public_key().to_bytes(), &octets(v, "KPAK")?)
    })?;
    runner.check("issuing with v gives the SSK and PVT (5.1.1)", || {
        let ksak = ibc("KSAK", Ksak::from_bytes(&octets(v, "KSAK")?))?;
        let (ssk, pvt) = ibc(
            "issue",
            hazmat::issue_with_v(&ksak, &octets(v, "ID")?, &octets(v, "v")?),
        )?;
        same("SSK", ssk.to_bytes().as_ref(), &octets(v, "SSK")?)?;
        same("PVT", &pvt.to_bytes(), &octets(v, "PVT")?)
    })?;
    let key = runner.check("SSK and PVT validate, HS matches (5.1.2)", || {
        let kpak = ibc("KPAK", Kpak::from_bytes(&octets(v, "KPAK")?))?;
        let ssk = ibc("SSK", Ssk::from_bytes(&octets(v, "SSK")?))?;
        let pvt = ibc("PVT", Pvt::from_bytes(&octets(v, "PVT")?))?;
        let key = ibc(
            "validate",
            SigningKey::new(&kpak, &octets(v, "ID")?, ssk, pvt),
        )?;
        same("HS", key.hs(), &octets(v, "HS")?)?;
        Ok(key)
    })?;
    let name = "signing with j gives the signature (5.2.1)";
    match key {
        Some(key) => runner
            .check(name, || {
                let sig = ibc(
                    "sign",
                    hazmat::sign_with_j(&key, &octets(v, "M")?, &octets(v, "j")?),
                )?;
                same("signature", &sig.to_bytes(), &octets(v, "SIG")?)
            })
            .map(|_| ())?,
        None => runner.skip(name)?,
    }
    runner.check("the signature verifies (5.2.2)", || {
        let kpak = ibc("KPAK", Kpak::from_bytes(&octets(v, "KPAK")?))?;
        let (id, msg, sig) = (octets(v, "ID")?, octets(v, "M")?, octets(v, "SIG")?);
        ibc("verify", eccsi::verify_bytes(&kpak, &id, &msg, &sig))
    })?;
    runner.check("a bit flipped in s, or in the message, is rejected", || {
        let kpak = ibc("KPAK", Kpak::from_bytes(&octets(v, "KPAK")?))?;
        let (id, msg, sig) = (octets(v, "ID")?, octets(v, "M")?, octets(v, "SIG")?);
        if eccsi::verify_bytes(&kpak, &id, &msg, &flip_bit(&sig, 63)).is_ok() {
            return Err("signature with s altered verifies".to_owned());
        }
        if eccsi::verify_bytes(&kpak, &id, &flip_bit(&msg, 0), &sig).is_ok() {
            return Err("signature verifies for an altered message".to_owned());
        }
        Ok(())
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------
// RFC 6508 Appendix A
// ---------------------------------------------------------------------------

fn rfc6508(runner: &mut Runner, v: &Value) -> Result<(), CliError> {
    runner.section("RFC 6508 Appendix A: SAKKE with RFC 6509 parameter set 1")?;
    runner.check("Z = [z]P", || {
        let z = ibc("z", MasterSecret::from_bytes(&octets(v, "z")?))?;
        same("Z", &z.public_key().to_bytes(), &octets(v, "Z_S")?)
    })?;
    runner.check("RSK extraction gives the RSK (6.1.1)", || {
        let z = ibc("z", MasterSecret::from_bytes(&octets(v, "z")?))?;
        let rsk = ibc("extract", sakke::extract_rsk(&z, &octets(v, "ID_b")?))?;
        same("RSK", rsk.to_bytes().as_ref(), &octets(v, "RSK")?)
    })?;
    let z_public = runner.check("Z decodes and is in the order-q subgroup", || {
        ibc("Z", KmsPublicKey::from_bytes(&octets(v, "Z_S")?))
    })?;
    let [validate_name, decap_name, encap_name, altered_name] = [
        "the RSK validates (6.1.2)",
        "the SED decapsulates to the SSV (6.2.2)",
        "encapsulating the SSV gives the SED (6.2.1)",
        "a bit flipped in H is rejected",
    ];
    let Some(z_public) = z_public else {
        for name in [validate_name, decap_name, encap_name, altered_name] {
            runner.skip(name)?;
        }
        return Ok(());
    };
    let key = runner.check(validate_name, || {
        let rsk = ibc("RSK", Rsk::from_bytes(&octets(v, "RSK")?))?;
        ibc(
            "validate",
            ReceiverKey::new(&z_public, &octets(v, "ID_b")?, &rsk),
        )
    })?;
    match &key {
        Some(key) => runner
            .check(decap_name, || {
                let ssv = ibc("decapsulate", key.decapsulate(&octets(v, "SED")?))?;
                same("SSV", ssv.as_bytes(), &octets(v, "SSV")?)
            })
            .map(|_| ())?,
        None => runner.skip(decap_name)?,
    }
    runner.check(encap_name, || {
        let ssv = ibc("SSV", Ssv::from_bytes(&octets(v, "SSV")?))?;
        let sed = ibc(
            "encapsulate",
            sakke::encapsulate(&z_public, &octets(v, "ID_b")?, &ssv),
        )?;
        same("SED", &sed, &octets(v, "SED")?)
    })?;
    match &key {
        Some(key) => runner
            .check(altered_name, || {
                let sed = octets(v, "SED")?;
                match key.decapsulate(&flip_bit(&sed, sed.len().saturating_sub(1))) {
                    Err(mcx_ibc::Error::DecapsulationFailed) => Ok(()),
                    Err(e) => Err(format!("wrong error: {e}")),
                    Ok(_) => Err("altered SED decapsulates".to_owned()),
                }
            })
            .map(|_| ())?,
        None => runner.skip(altered_name)?,
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Streamwide interop vectors
// ---------------------------------------------------------------------------

fn streamwide_vectors(runner: &mut Runner, v: &Value) -> Result<(), CliError> {
    runner.section("Streamwide MIKEY-SAKKE interop vectors: UIDs (TS 33.180 F.2.1)")?;
    let cases = v["uid_format_2"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if cases.is_empty() {
        runner.check("UID vectors present", || {
            Check::<()>::Err("no uid_format_2 cases".to_owned())
        })?;
    }
    for case in cases {
        let name = format!(
            "UID: period {} s, offset {}, period no. {}",
            case["key_period"], case["key_period_offset"], case["key_period_no"]
        );
        runner.check(&name, || {
            let uid = ibc(
                "UID",
                mikey_sakke_uid(
                    text(case, "uri")?,
                    text(case, "kms_uri")?,
                    number(case, "key_period")?,
                    number(case, "key_period_offset")?,
                    number(case, "key_period_no")?,
                ),
            )?;
            same("UID", &uid, &octets(case, "uid")?)
        })?;
    }

    let kms = &v["kms"];
    runner.section(&format!(
        "Streamwide MIKEY-SAKKE interop vectors: users of {}",
        kms["KmsUri"].as_str().unwrap_or("the KMS")
    ))?;
    let keys = runner.check("KMS KPAK and Z decode (Z in the order-q subgroup)", || {
        let kpak = ibc("KPAK", Kpak::from_bytes(&octets(kms, "PubAuthKey")?))?;
        let z = ibc("Z", KmsPublicKey::from_bytes(&octets(kms, "PubEncKey")?))?;
        Ok((kpak, z))
    })?;
    for name in ["GMS", "Alice", "Bob"] {
        let user = &v["users"][name];
        let uri = user["UserUri"].as_str().unwrap_or(name);
        let uid = runner.check(&format!("{uri}: UID"), || {
            let uid = ibc(
                "UID",
                mikey_sakke_uid(
                    text(user, "UserUri")?,
                    text(kms, "KmsUri")?,
                    number(kms, "UserKeyPeriod")?,
                    number(kms, "UserKeyOffset")?,
                    number(user, "KeyPeriodNo")?,
                ),
            )?;
            same("UID", &uid, &octets(user, "UserID")?)?;
            Ok(uid)
        })?;
        let eccsi_name = format!("{uri}: SSK and PVT validate for id = UID");
        let sakke_name = format!("{uri}: RSK validates for id = UID");
        let (Some(uid), Some((kpak, z))) = (uid, &keys) else {
            runner.skip(&eccsi_name)?;
            runner.skip(&sakke_name)?;
            continue;
        };
        runner.check(&eccsi_name, || {
            let ssk = ibc("SSK", Ssk::from_bytes(&octets(user, "UserSigningKeySSK")?))?;
            let pvt = ibc("PVT", Pvt::from_bytes(&octets(user, "UserPubTokenPVT")?))?;
            ibc("validate", SigningKey::new(kpak, &uid, ssk, pvt)).map(|_| ())
        })?;
        runner.check(&sakke_name, || {
            let rsk = ibc("RSK", Rsk::from_bytes(&octets(user, "UserDecryptKey")?))?;
            ibc("validate", ReceiverKey::new(z, &uid, &rsk)).map(|_| ())
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Fresh community
// ---------------------------------------------------------------------------

/// A user issued in the fresh community, read back from its key file.
struct User {
    /// The key file, parsed back from JSON.
    file: UserKeysFile,
    /// The UID.
    uid: [u8; mcx_ibc::uid::UID_LEN],
}

fn fresh_community(runner: &mut Runner) -> Result<(), CliError> {
    const KMS_URI: &str = "kms.example.org";
    const KEY_PERIOD: u64 = 2_592_000;
    runner.section("Fresh community (OS randomness), keys through the JSON key file format")?;
    let community = runner.check(&format!("generate a community for {KMS_URI}"), || {
        let mut rng = input::os_rng().map_err(|e| e.to_string())?;
        ibc(
            "generate",
            Community::generate(KMS_URI, KEY_PERIOD, 0, &mut rng),
        )
    })?;
    let users = match &community {
        Some(community) => {
            let period_no = input::now_unix()
                .map_err(|e| e.to_string())
                .and_then(|now| ibc("key period", key_period_no(now, KEY_PERIOD, 0)));
            let name = format!(
                "issue sip:alice@example.org and sip:bob@example.org, period {}",
                period_no.as_ref().map_or(0, |n| *n)
            );
            runner.check(&name, || {
                let period_no = period_no?;
                let mut rng = input::os_rng().map_err(|e| e.to_string())?;
                let mut issue = |uri: &str| -> Check<User> {
                    let keys = ibc("issue", community.issue(uri, period_no, &mut rng))?;
                    let file = UserKeysFile::from_keys(&keys, community.public());
                    let json = output::json_text(&file).map_err(|e| e.to_string())?;
                    let file = UserKeysFile::from_json(&json, uri).map_err(|e| e.to_string())?;
                    let uid = file.uid().map_err(|e| e.to_string())?;
                    same("UID", &uid, &keys.uid)?;
                    Ok(User { file, uid })
                };
                Ok((
                    issue("sip:alice@example.org")?,
                    issue("sip:bob@example.org")?,
                ))
            })?
        }
        None => None,
    };
    let names = [
        "alice's SSK and PVT validate; she signs; the signature verifies",
        "the signature fails for bob's UID and for another message",
        "bob's RSK validates; he decapsulates a random SSV sent to him",
        "alice cannot decapsulate bob's SED",
    ];
    let (Some(community), Some((alice, bob))) = (community, users) else {
        for name in names {
            runner.skip(name)?;
        }
        return Ok(());
    };
    let kpak = community.public().kpak;
    let z = community.public().sakke_public.clone();
    let [sign_name, forge_name, encap_name, alice_name] = names;

    let sig = runner.check(sign_name, || {
        let key = alice.file.signing_key().map_err(|e| e.to_string())?;
        let mut rng = input::os_rng().map_err(|e| e.to_string())?;
        let sig = key.sign(b"selfcheck message", &mut rng);
        ibc(
            "verify",
            eccsi::verify(&kpak, &alice.uid, b"selfcheck message", &sig),
        )?;
        Ok(sig)
    })?;
    match sig {
        Some(sig) => runner
            .check(forge_name, || {
                if eccsi::verify(&kpak, &bob.uid, b"selfcheck message", &sig).is_ok() {
                    return Err("alice's signature verifies as bob's".to_owned());
                }
                if eccsi::verify(&kpak, &alice.uid, b"selfcheck messagf", &sig).is_ok() {
                    return Err("the signature verifies for another message".to_owned());
                }
                Ok(())
            })
            .map(|_| ())?,
        None => runner.skip(forge_name)?,
    }
    let sed = runner.check(encap_name, || {
        let mut rng = input::os_rng().map_err(|e| e.to_string())?;
        let ssv = Ssv::generate(&mut rng);
        let sed = ibc("encapsulate", sakke::encapsulate(&z, &bob.uid, &ssv))?;
        let key = bob.file.receiver_key().map_err(|e| e.to_string())?;
        let got = ibc("decapsulate", key.decapsulate(&sed))?;
        same("SSV", got.as_bytes(), ssv.as_bytes())?;
        Ok(sed)
    })?;
    match sed {
        Some(sed) => runner
            .check(alice_name, || {
                let key = alice.file.receiver_key().map_err(|e| e.to_string())?;
                match key.decapsulate(&sed) {
                    Err(mcx_ibc::Error::DecapsulationFailed) => Ok(()),
                    Err(e) => Err(format!("wrong error: {e}")),
                    Ok(_) => Err("alice decapsulated bob's SED".to_owned()),
                }
            })
            .map(|_| ())?,
        None => runner.skip(alice_name)?,
    }
    Ok(())
}
