//! End-to-end tests of the `mcx` binary: published vectors through the
//! subcommands, a full KMS/user flow, and error reporting.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;

const RFC_VECTORS: &str = include_str!("../../mcx-ibc/tests/data/rfc6507-6508-6509.json");
const STREAMWIDE_VECTORS: &str =
    include_str!("../../mcx-ibc/tests/data/streamwide-mikey-sakke.json");
const KDF_VECTORS: &str = include_str!("../../mcx-ibc/tests/data/ts33180-kdf.json");

/// What a run of the binary gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn mcx_with_stdin(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcx"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn mcx(args: &[&str]) -> Run {
    mcx_with_stdin(args, b"")
}

/// Runs `args`, expects success and no stderr, returns trimmed stdout.
fn ok(args: &[&str]) -> String {
    let run = mcx(args);
    assert_eq!(run.code, 0, "{args:?} failed: {}", run.stderr);
    assert!(run.stderr.is_empty(), "{args:?}: stderr {}", run.stderr);
    run.stdout.trim().to_owned()
}

/// Runs `args`, expects exit 1 with exactly one stderr line `error: ...`
/// containing `needle`, and nothing on stdout.
fn fails(args: &[&str], needle: &str) -> String {
    let run = mcx(args);
    assert_eq!(run.code, 1, "{args:?} should fail: stdout {}", run.stdout);
    assert!(run.stdout.is_empty(), "{args:?}: stdout {}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
    assert!(run.stderr.ends_with('\n'));
    assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    assert!(
        run.stderr.contains(needle),
        "{args:?}: {:?} does not contain {needle:?}",
        run.stderr
    );
    run.stderr
}

fn rfc() -> Value {
    serde_json::from_str(RFC_VECTORS).unwrap()
}

fn field(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap().to_owned()
}

/// A fresh directory for one test's files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("mcx-cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path(dir: &std::path::Path, file: &str) -> String {
    dir.join(file).to_str().unwrap().to_owned()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn help_documents_every_subcommand() {
    let help = ok(&["--help"]);
    for command in [
        "kms init",
        "kms public",
        "kms issue",
        "uid",
        "eccsi sign",
        "eccsi verify",
        "sakke encap",
        "sakke decap",
        "selfcheck",
        "mikey decode",
        "mikey wrap-tgmk",
        "mikey gmk",
        "mikey csk",
        "kdf guk-id",
        "kdf srtp",
        "--ephemeral",
        "--uid",
        "srtp decrypt --key",
        "Exit status",
    ] {
        assert!(help.contains(command), "mcx --help lacks {command}");
    }
    for (command, flags) in [
        (
            vec!["kms", "init"],
            vec!["--kms-uri", "--key-period", "--key-period-offset", "--out"],
        ),
        (vec!["kms", "public"], vec!["COMMUNITY.json", "--out"]),
        (vec!["kms", "issue"], vec!["--user", "--period-no", "--at"]),
        (
            vec!["uid"],
            vec!["--uri", "--kms-uri", "--community", "--json"],
        ),
        (
            vec!["eccsi", "sign"],
            vec!["--keys", "--msg-hex", "--msg-file", "129 octets"],
        ),
        (
            vec!["eccsi", "verify"],
            vec!["--kpak", "--id", "--sig", "--community"],
        ),
        (
            vec!["sakke", "encap"],
            vec!["--z", "--id", "--ssv", "\"sed\""],
        ),
        (vec!["sakke", "decap"], vec!["--keys", "--rsk", "--sed"]),
        (vec!["selfcheck"], vec!["RFC 6507"]),
    ] {
        let mut args = command.clone();
        args.push("--help");
        let help = ok(&args);
        for flag in flags {
            assert!(help.contains(flag), "mcx {command:?} --help lacks {flag}");
        }
    }
    assert!(ok(&["kms", "--help"]).contains("\"z_public\""));
}

#[test]
fn rfc6507_vector_verifies_and_a_flipped_bit_fails() {
    let v = &rfc()["eccsi_rfc6507_appendix_a"];
    let (kpak, id, msg, sig) = (
        field(v, "KPAK"),
        field(v, "ID"),
        field(v, "M"),
        field(v, "SIG"),
    );
    let verify = |sig: &str| {
        vec![
            "eccsi",
            "verify",
            "--kpak",
            &kpak,
            "--id",
            &id,
            "--msg-hex",
            &msg,
            "--sig",
            sig,
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    let args = verify(&sig);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(ok(&args), "valid");

    // Upper case and surrounding whitespace are accepted.
    let loose = format!("  {}\n", sig.to_uppercase());
    let args = verify(&loose);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(ok(&args), "valid");

    // One bit of s flipped.
    let mut bytes = hex::decode(&sig).unwrap();
    bytes[63] ^= 0x01;
    let flipped = hex::encode(bytes);
    let args = verify(&flipped);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&args, "ECCSI signature is invalid");

    // The message as a file and from stdin.
    let dir = temp_dir("rfc6507");
    let msg_file = path(&dir, "msg.bin");
    std::fs::write(&msg_file, hex::decode(&msg).unwrap()).unwrap();
    assert_eq!(
        ok(&[
            "eccsi",
            "verify",
            "--kpak",
            &kpak,
            "--id",
            &id,
            "--msg-file",
            &msg_file,
            "--sig",
            &sig
        ]),
        "valid"
    );
    let run = mcx_with_stdin(
        &[
            "eccsi",
            "verify",
            "--kpak",
            &kpak,
            "--id",
            &id,
            "--msg-file",
            "-",
            "--sig",
            &sig,
        ],
        &hex::decode(&msg).unwrap(),
    );
    assert_eq!(
        (run.code, run.stdout.trim()),
        (0, "valid"),
        "{}",
        run.stderr
    );
}

#[test]
fn rfc6507_keys_sign_with_explicit_flags() {
    let v = &rfc()["eccsi_rfc6507_appendix_a"];
    let (kpak, id) = (field(v, "KPAK"), field(v, "ID"));
    let sig = ok(&[
        "eccsi",
        "sign",
        "--kpak",
        &kpak,
        "--id",
        &id,
        "--ssk",
        &field(v, "SSK"),
        "--pvt",
        &field(v, "PVT"),
        "--msg-hex",
        &field(v, "M"),
    ]);
    assert_eq!(sig.len(), 2 * 129);
    assert_ne!(sig, field(v, "SIG"), "j must be random");
    assert_eq!(
        ok(&[
            "eccsi",
            "verify",
            "--kpak",
            &kpak,
            "--id",
            &id,
            "--msg-hex",
            &field(v, "M"),
            "--sig",
            &sig
        ]),
        "valid"
    );
    // An SSK that does not belong to the identifier is refused before signing.
    fails(
        &[
            "eccsi",
            "sign",
            "--kpak",
            &kpak,
            "--id",
            "00",
            "--ssk",
            &field(v, "SSK"),
            "--pvt",
            &field(v, "PVT"),
            "--msg-hex",
            "00",
        ],
        "does not validate",
    );
}

#[test]
fn rfc6508_sed_decapsulates_and_encapsulation_reproduces_it() {
    let v = &rfc()["sakke_rfc6508_appendix_a"];
    let (z, id, rsk, sed, ssv) = (
        field(v, "Z_S"),
        field(v, "ID_b"),
        field(v, "RSK"),
        field(v, "SED"),
        field(v, "SSV"),
    );
    assert_eq!(
        ok(&[
            "sakke", "decap", "--z", &z, "--id", &id, "--rsk", &rsk, "--sed", &sed
        ]),
        ssv
    );
    let out = json(&ok(&[
        "sakke", "encap", "--z", &z, "--id", &id, "--ssv", &ssv,
    ]));
    assert_eq!(out["ssv"], ssv.as_str());
    assert_eq!(out["sed"], sed.as_str());

    // Altered H: opaque failure, exit 1.
    let mut bytes = hex::decode(&sed).unwrap();
    *bytes.last_mut().unwrap() ^= 0x80;
    fails(
        &[
            "sakke",
            "decap",
            "--z",
            &z,
            "--id",
            &id,
            "--rsk",
            &rsk,
            "--sed",
            &hex::encode(bytes),
        ],
        "SAKKE decapsulation failed",
    );
    // The RSK of another identifier does not validate.
    fails(
        &[
            "sakke", "decap", "--z", &z, "--id", "01", "--rsk", &rsk, "--sed", &sed,
        ],
        "--rsk: SAKKE RSK does not validate",
    );
}

#[test]
fn streamwide_uid_vectors() {
    let v: Value = serde_json::from_str(STREAMWIDE_VECTORS).unwrap();
    let cases = v["uid_format_2"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let num = |key: &str| case[key].as_u64().unwrap().to_string();
        let (period, offset, no) = (
            num("key_period"),
            num("key_period_offset"),
            num("key_period_no"),
        );
        let args = [
            "uid",
            "--uri",
            case["uri"].as_str().unwrap(),
            "--kms-uri",
            case["kms_uri"].as_str().unwrap(),
            "--key-period",
            &period,
            "--key-period-offset",
            &offset,
            "--period-no",
            &no,
        ];
        assert_eq!(ok(&args), case["uid"].as_str().unwrap(), "{case}");
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let out = json(&ok(&with_json));
        assert_eq!(out["uid"], case["uid"]);
        assert_eq!(out["key_period_no"], case["key_period_no"]);
    }
    // A user of the Streamwide KMS, with the period taken from a time in it
    // (KeyPeriodNo 236 of 16777215 s from 1900: the second half of 2025).
    let kms = &v["kms"];
    let alice = &v["users"]["Alice"];
    let out = json(&ok(&[
        "uid",
        "--uri",
        alice["UserUri"].as_str().unwrap(),
        "--kms-uri",
        kms["KmsUri"].as_str().unwrap(),
        "--key-period",
        kms["UserKeyPeriod"].as_str().unwrap(),
        "--key-period-offset",
        kms["UserKeyOffset"].as_str().unwrap(),
        "--at",
        "1760000000",
        "--json",
    ]));
    assert_eq!(out["uid"], alice["UserID"]);
    assert_eq!(out["key_period_no"], 236);
    let (start, end) = (
        out["key_period_start"].as_u64().unwrap(),
        out["key_period_end"].as_u64().unwrap(),
    );
    assert!(start <= 1_760_000_000 && 1_760_000_000 < end && end - start == 16_777_215);
}

#[test]
fn full_flow_kms_issue_sign_verify_encap_decap() {
    let dir = temp_dir("flow");
    let (community, public, alice, bob) = (
        path(&dir, "community.json"),
        path(&dir, "public.json"),
        path(&dir, "alice.json"),
        path(&dir, "bob.json"),
    );
    assert_eq!(
        ok(&[
            "kms",
            "init",
            "--kms-uri",
            "kms.example.org",
            "--out",
            &community
        ]),
        ""
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&community).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "community file must not be group/world readable"
        );
    }
    // Secrets are not overwritten by accident.
    fails(
        &[
            "kms",
            "init",
            "--kms-uri",
            "kms.example.org",
            "--out",
            &community,
        ],
        "already exists",
    );

    ok(&["kms", "public", &community, "--out", &public]);
    let pub_json = json(&std::fs::read_to_string(&public).unwrap());
    assert!(pub_json.get("ksak").is_none() && pub_json.get("z").is_none());
    assert_eq!(pub_json["key_period"], 2_592_000);

    let period = "1500";
    ok(&[
        "kms",
        "issue",
        &community,
        "--user",
        "sip:alice@example.org",
        "--period-no",
        period,
        "--out",
        &alice,
    ]);
    ok(&[
        "kms",
        "issue",
        &community,
        "--user",
        "sip:bob@example.org",
        "--period-no",
        period,
        "--out",
        &bob,
    ]);
    let alice_json = json(&std::fs::read_to_string(&alice).unwrap());
    for key in [
        "user_uri",
        "kms_uri",
        "key_period",
        "key_period_offset",
        "key_period_no",
        "uid",
        "kpak",
        "z_public",
        "ssk",
        "pvt",
        "rsk",
    ] {
        assert!(alice_json.get(key).is_some(), "user keys lack {key}");
    }
    let alice_uid = ok(&[
        "uid",
        "--community",
        &public,
        "--uri",
        "sip:alice@example.org",
        "--period-no",
        period,
    ]);
    let bob_uid = ok(&[
        "uid",
        "--community",
        &public,
        "--uri",
        "sip:bob@example.org",
        "--period-no",
        period,
    ]);
    assert_eq!(alice_json["uid"], alice_uid.as_str());

    // Alice signs; anyone with the public values verifies with her UID.
    let sig = ok(&["eccsi", "sign", "--keys", &alice, "--msg-text", "hello bob"]);
    assert_eq!(
        ok(&[
            "eccsi",
            "verify",
            "--community",
            &public,
            "--id",
            &alice_uid,
            "--msg-text",
            "hello bob",
            "--sig",
            &sig
        ]),
        "valid"
    );
    assert_eq!(
        ok(&[
            "eccsi",
            "verify",
            "--keys",
            &alice,
            "--msg-hex",
            &hex::encode("hello bob"),
            "--sig",
            &sig
        ]),
        "valid"
    );
    fails(
        &[
            "eccsi",
            "verify",
            "--community",
            &public,
            "--id",
            &bob_uid,
            "--msg-text",
            "hello bob",
            "--sig",
            &sig,
        ],
        "ECCSI signature is invalid",
    );
    fails(
        &[
            "eccsi",
            "verify",
            "--community",
            &public,
            "--id",
            &alice_uid,
            "--msg-text",
            "hello bob!",
            "--sig",
            &sig,
        ],
        "ECCSI signature is invalid",
    );

    // Encapsulate to Bob; Bob decapsulates the same SSV; Alice cannot.
    let encap = json(&ok(&[
        "sakke",
        "encap",
        "--community",
        &public,
        "--id",
        &bob_uid,
    ]));
    let (ssv, sed) = (
        encap["ssv"].as_str().unwrap(),
        encap["sed"].as_str().unwrap(),
    );
    assert_eq!(ssv.len(), 32);
    assert_eq!(sed.len(), 2 * 273);
    assert_eq!(ok(&["sakke", "decap", "--keys", &bob, "--sed", sed]), ssv);
    fails(
        &["sakke", "decap", "--keys", &alice, "--sed", sed],
        "SAKKE decapsulation failed",
    );

    // The keys file can come from stdin.
    let run = mcx_with_stdin(
        &["sakke", "decap", "--keys", "-", "--sed", sed],
        std::fs::read_to_string(&bob).unwrap().as_bytes(),
    );
    assert_eq!((run.code, run.stdout.trim()), (0, ssv), "{}", run.stderr);
}

#[test]
fn malformed_input_is_one_line_naming_the_culprit() {
    let v = &rfc()["eccsi_rfc6507_appendix_a"];
    let (kpak, id, sig) = (field(v, "KPAK"), field(v, "ID"), field(v, "SIG"));
    let verify = |kpak: &str, sig: &str| {
        [
            "eccsi",
            "verify",
            "--kpak",
            kpak,
            "--id",
            &id,
            "--msg-hex",
            "00",
            "--sig",
            sig,
        ]
        .map(str::to_owned)
    };
    let run = |args: [String; 10], needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, needle);
    };
    // Bad hex, with the position.
    run(
        verify(&kpak, &format!("{}zz", &sig[..4])),
        "--sig: invalid hex character 'z' at position 4",
    );
    run(
        verify(&kpak, &sig[1..]),
        "--sig: invalid hex: odd number of digits",
    );
    // Wrong lengths.
    run(
        verify(&kpak, &sig[..256]),
        "--sig: ECCSI signature: expected 129 octets, got 128",
    );
    run(
        verify(&kpak[..128], &sig),
        "--kpak: ECCSI KPAK: expected 65 octets, got 64",
    );
    // A point off the curve.
    let mut off_curve = hex::decode(&kpak).unwrap();
    off_curve[64] ^= 1;
    run(
        verify(&hex::encode(off_curve), &sig),
        "--kpak: ECCSI KPAK: point is not on the curve",
    );

    let dir = temp_dir("malformed");
    let missing = path(&dir, "missing.json");
    fails(
        &["sakke", "decap", "--keys", &missing, "--sed", "00"],
        "missing.json: cannot read",
    );
    fails(&["kms", "public", &missing], "missing.json");
    fails(
        &[
            "eccsi",
            "verify",
            "--kpak",
            &kpak,
            "--id",
            &id,
            "--msg-file",
            &missing,
            "--sig",
            &sig,
        ],
        "missing.json",
    );

    let bad = path(&dir, "bad.json");
    std::fs::write(&bad, "{\"user_uri\": ").unwrap();
    fails(
        &["eccsi", "sign", "--keys", &bad, "--msg-hex", "00"],
        "bad.json: EOF while parsing",
    );
    fails(
        &["uid", "--community", &bad, "--uri", "sip:a@b"],
        "bad.json",
    );

    // A user keys file with a field missing, or a field altered.
    let community = path(&dir, "community.json");
    let user = path(&dir, "user.json");
    ok(&[
        "kms",
        "init",
        "--kms-uri",
        "kms.example.org",
        "--out",
        &community,
    ]);
    ok(&[
        "kms",
        "issue",
        &community,
        "--user",
        "sip:carol@example.org",
        "--at",
        "1760000000",
        "--out",
        &user,
    ]);
    let mut keys = json(&std::fs::read_to_string(&user).unwrap());
    keys.as_object_mut().unwrap().remove("rsk");
    let no_rsk = path(&dir, "no-rsk.json");
    std::fs::write(&no_rsk, keys.to_string()).unwrap();
    fails(
        &["sakke", "decap", "--keys", &no_rsk, "--sed", "00"],
        "no-rsk.json: missing field `rsk`",
    );

    let mut keys = json(&std::fs::read_to_string(&user).unwrap());
    keys["ssk"] = Value::from("12");
    let short_ssk = path(&dir, "short-ssk.json");
    std::fs::write(&short_ssk, keys.to_string()).unwrap();
    fails(
        &["eccsi", "sign", "--keys", &short_ssk, "--msg-hex", "00"],
        "short-ssk.json: ssk: ECCSI SSK: expected 32 octets, got 1",
    );

    let mut keys = json(&std::fs::read_to_string(&user).unwrap());
    keys["user_uri"] = Value::from("sip:mallory@example.org");
    let renamed = path(&dir, "renamed.json");
    std::fs::write(&renamed, keys.to_string()).unwrap();
    fails(
        &["eccsi", "sign", "--keys", &renamed, "--msg-hex", "00"],
        "renamed.json: uid is not the UID",
    );

    let mut c = json(&std::fs::read_to_string(&community).unwrap());
    c["ksak"] = Value::from("zz");
    let bad_ksak = path(&dir, "bad-ksak.json");
    std::fs::write(&bad_ksak, c.to_string()).unwrap();
    fails(
        &["kms", "public", &bad_ksak],
        "bad-ksak.json: ksak: invalid hex",
    );

    // Decapsulation input of the wrong length.
    fails(
        &["sakke", "decap", "--keys", &user, "--sed", "0400"],
        "--sed: SAKKE encapsulated data: expected 273 octets, got 2",
    );
    fails(&["sakke", "encap", "--z", "04", "--id", "00"], "--z: ");
    fails(
        &[
            "kms",
            "init",
            "--kms-uri",
            "kms.example.org",
            "--key-period",
            "0",
        ],
        "key period length is zero",
    );

    // Usage errors: one line too, exit status 2.
    let usage = mcx(&["kms", "issue", &community]);
    assert_eq!(usage.code, 2);
    assert_eq!(usage.stderr.lines().count(), 1, "{}", usage.stderr);
    assert!(usage.stderr.contains("--user"));
}

#[test]
fn selfcheck_passes() {
    let run = mcx(&["selfcheck"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let last = run.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("selfcheck: ") && last.contains(" passed, 0 failed"),
        "{last}"
    );
    assert!(!run.stdout.contains("FAIL"));
    assert!(run.stdout.contains("RFC 6507") && run.stdout.contains("RFC 6508"));
    assert!(run.stdout.contains("Streamwide"));
}

/// A user keys file for one of Streamwide's published users.
fn streamwide_user_file(dir: &std::path::Path, user: &str) -> String {
    let v: Value = serde_json::from_str(STREAMWIDE_VECTORS).unwrap();
    let kms = &v["kms"];
    let u = &v["users"][user];
    let num = |x: &Value| -> u64 {
        x.as_u64()
            .unwrap_or_else(|| x.as_str().unwrap().parse().unwrap())
    };
    let file = serde_json::json!({
        "user_uri": u["UserUri"],
        "kms_uri": kms["KmsUri"],
        "key_period": num(&kms["UserKeyPeriod"]),
        "key_period_offset": num(&kms["UserKeyOffset"]),
        "key_period_no": num(&u["KeyPeriodNo"]),
        "uid": u["UserID"],
        "kpak": kms["PubAuthKey"],
        "z_public": kms["PubEncKey"],
        "ssk": u["UserSigningKeySSK"],
        "pvt": u["UserPubTokenPVT"],
        "rsk": u["UserDecryptKey"],
    });
    let p = path(dir, &format!("{user}.json"));
    std::fs::write(&p, file.to_string()).unwrap();
    p
}

/// `mcx mikey decode` on the vendor's GMK I_MESSAGE: the whole tree without
/// keys (including the CS ID map type 2 tshark gives up on); the signature
/// verifies with the community; with Alice's keys the published GMK, its
/// GMK-ID and Alice's SRTP master key come out; Bob's keys fail (exit 1).
#[test]
fn mikey_decode_vendor_gmk_message() {
    let v: Value = serde_json::from_str(STREAMWIDE_VECTORS).unwrap();
    let m = &v["messages"]["1: GMK"];
    let msg = format!("mikey {}", field(m, "I-MESSAGE"));
    let tree = ok(&["mikey", "decode", &msg]);
    for needle in [
        "GENERIC-ID",
        "SAKKE",
        "IDRkmsr",
        "kms.mydev.streamwide.com",
        "SIGN",
    ] {
        assert!(tree.contains(needle), "tree lacks {needle}:\n{tree}");
    }
    let dir = temp_dir("mikey");
    let alice = streamwide_user_file(&dir, "Alice");
    let bob = streamwide_user_file(&dir, "Bob");
    let verified = ok(&["mikey", "decode", &msg, "--community", &alice]);
    assert!(
        verified.contains("valid (signer UID 15a4d5b1"),
        "{verified}"
    );

    let decrypted = ok(&["mikey", "decode", &msg, "--keys", &alice, "--json"]);
    let text = decrypted.to_lowercase();
    assert!(text.contains(&field(m, "GMK")), "GMK missing: {decrypted}");
    assert!(text.contains(&field(&v["derived"], "alice_gmk_srtp_master_key")));
    assert!(text.contains(&field(&v["derived"], "alice_gmk_mki")));
    json(&decrypted);

    let run = mcx(&["mikey", "decode", &msg, "--keys", &bob]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("check"), "{}", run.stderr);

    // Truncated: exit 1, the error names the payload and offset.
    let short = &field(m, "I-MESSAGE")[..200];
    let run = mcx(&["mikey", "decode", short]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("offset"), "{}", run.stderr);
    fails(&["mikey", "decode", "not base64 !"], "MESSAGE");

    // The CSK and PCK messages decode completely too, from a file as well.
    for name in ["2: CSK", "3: PCK"] {
        let b64 = field(&v["messages"][name], "I-MESSAGE");
        let tree = ok(&["mikey", "decode", &b64]);
        assert!(tree.contains("SIGN"), "{name}: {tree}");
        let p = path(&dir, "msg.bin");
        std::fs::write(&p, BASE64.decode(&b64).unwrap()).unwrap();
        assert_eq!(ok(&["mikey", "decode", "--file", &p]), tree);
    }
}

/// A fresh community file (`mcx kms init`) in `dir`.
fn new_community(dir: &std::path::Path) -> String {
    let community = path(dir, "community.json");
    ok(&[
        "kms",
        "init",
        "--kms-uri",
        "kms.example.org",
        "--out",
        &community,
    ]);
    community
}

/// `mcx eccsi sign --ephemeral j` with RFC 6507 Appendix A's KPAK, ID,
/// SSK, PVT, M and j prints the RFC's signature octet for octet; without
/// --ephemeral j is random and the signature differs (but verifies).
#[test]
fn eccsi_sign_with_given_ephemeral_reproduces_rfc6507_appendix_a() {
    let v = &rfc()["eccsi_rfc6507_appendix_a"];
    let (kpak, id, ssk, pvt, m) = (
        field(v, "KPAK"),
        field(v, "ID"),
        field(v, "SSK"),
        field(v, "PVT"),
        field(v, "M"),
    );
    let base = [
        "eccsi",
        "sign",
        "--kpak",
        &kpak,
        "--id",
        &id,
        "--ssk",
        &ssk,
        "--pvt",
        &pvt,
        "--msg-hex",
        &m,
    ];
    let j = field(v, "j");
    let mut with_j = base.to_vec();
    with_j.extend(["--ephemeral", &j]);
    assert_eq!(ok(&with_j), field(v, "SIG"));
    let random = ok(&base);
    assert_ne!(random, field(v, "SIG"));
    let verified = ok(&[
        "eccsi",
        "verify",
        "--kpak",
        &kpak,
        "--id",
        &id,
        "--msg-hex",
        &m,
        "--sig",
        &random,
    ]);
    assert_eq!(verified, "valid");
    // j = 0 is outside [1, q-1].
    let mut zero = base.to_vec();
    let z = "00".repeat(32);
    zero.extend(["--ephemeral", &z]);
    fails(&zero, "--ephemeral: ");
}

/// `mcx kdf` against TS 33.180 F.1.3 (GUK-ID) and RFC 3830 4.1.3 with
/// PRF-HMAC-SHA-256 (the Streamwide values, recomputed independently),
/// and Alice's media keys of the Streamwide GMK message.
#[test]
fn kdf_reproduces_published_guk_id_and_srtp_master_keys() {
    let k: Value = serde_json::from_str(KDF_VECTORS).unwrap();
    let g = &k["guk_id"];
    let guk = ok(&[
        "kdf",
        "guk-id",
        "--gmk",
        &field(g, "gmk"),
        "--gmk-id",
        &field(g, "gmk_id"),
        "--user",
        &field(g, "user_uri"),
    ]);
    assert_eq!(guk, field(g, "guk_id"));

    let s = &k["mikey_srtp_kdf"];
    let case = &s["cases"][0];
    let out = json(&ok(&[
        "kdf",
        "srtp",
        "--key",
        &field(s, "tgk"),
        "--rand",
        &field(s, "rand"),
        "--cs-id",
        &case["cs_id"].to_string(),
        "--csb-id",
        &field(case, "csb_id"),
    ]));
    let both = format!(
        "{}{}",
        field(&out, "master_key"),
        field(&out, "master_salt")
    );
    assert_eq!(both, field(case, "master_key_then_salt"));
    assert!(out["mki"].is_null());

    let v: Value = serde_json::from_str(STREAMWIDE_VECTORS).unwrap();
    let m = &v["messages"]["1: GMK"];
    let d = &v["derived"];
    let out = json(&ok(&[
        "kdf",
        "srtp",
        "--key",
        &field(m, "GMK"),
        "--key-id",
        &field(m, "GMK-ID"),
        "--user",
        &field(m, "Responder URI"),
        "--rand",
        &field(m, "GMK-RAND"),
    ]));
    assert_eq!(
        field(&out, "master_key"),
        field(d, "alice_gmk_srtp_master_key")
    );
    assert_eq!(
        field(&out, "master_salt"),
        field(d, "alice_gmk_srtp_master_salt")
    );
    assert_eq!(field(&out, "mki"), field(d, "alice_gmk_mki"));
    assert_eq!(field(&out, "csb_id"), field(m, "GUK-ID"));
    fails(
        &[
            "kdf", "srtp", "--key", "11", "--key-id", "00000001", "--rand", "00",
        ],
        "--key: ",
    );
}

/// The Streamwide message `name` as octets, and the rebuilt one: `mcx
/// mikey gmk|csk` with the vector's keys, RAND, IV, time stamp and date
/// (UIDs, no ROC transmission rate in the SP, as the vendor).
fn rebuild_vendor_message(name: &str, dir: &std::path::Path) -> (Vec<u8>, Vec<u8>) {
    let v: Value = serde_json::from_str(STREAMWIDE_VECTORS).unwrap();
    let m = &v["messages"][name];
    let vendor = BASE64.decode(field(m, "I-MESSAGE")).unwrap();
    // The IV of the key parameters: after message type (1), date and
    // time (5), payload ID (4), sequence (1), algorithm (1), in the
    // General Extension before the SIGN (4 octets of payload header).
    let tree = ok(&["mikey", "decode", &field(m, "I-MESSAGE"), "--json"]);
    let iv = tree
        .split("\"IV\"")
        .nth(1)
        .and_then(|rest| rest.split('"').nth(3))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no IV in {tree}"));
    let common = |keys: &str| {
        vec![
            "--keys".to_owned(),
            keys.to_owned(),
            "--time".to_owned(),
            // T of the vector: NTP ec898da8 = Unix 1759448872.
            "1759448872".to_owned(),
            "--date-time".to_owned(),
            "1".to_owned(),
            "--identity-hiding".to_owned(),
            "--omit-sp-param".to_owned(),
            "13".to_owned(),
            "--iv".to_owned(),
            iv.clone(),
            "--hex".to_owned(),
        ]
    };
    let mut args: Vec<String> = match name {
        "1: GMK" => [
            "mikey",
            "gmk",
            "--member",
            "sip:alice@streamwide.com",
            "--gmk",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([
            field(m, "GMK"),
            "--gmk-id".to_owned(),
            field(m, "GMK-ID"),
            "--rand".to_owned(),
            field(m, "GMK-RAND"),
        ])
        .chain(common(&streamwide_user_file(dir, "GMS")))
        .collect(),
        _ => ["mikey", "csk", "--server", "gms@streamwide.com", "--csk"]
            .iter()
            .map(|s| (*s).to_owned())
            .chain([
                field(m, "CSK"),
                "--csk-id".to_owned(),
                field(m, "CSK-ID"),
                "--rand".to_owned(),
                field(m, "CSK-RAND"),
            ])
            .chain(common(&streamwide_user_file(dir, "Alice")))
            .collect(),
    };
    args.retain(|a| !a.is_empty());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    (vendor, hex::decode(ok(&refs)).unwrap())
}

/// `mcx mikey gmk` and `mcx mikey csk`, given the vendor's keys and
/// random values, rebuild Streamwide's GMK and CSK I_MESSAGEs octet for
/// octet up to the ECCSI signature (HDR, T, RAND, UIDs, KMS, SP, the
/// SAKKE encapsulation of the key, the sealed key parameters, the SIGN
/// header); our signature (another j) verifies, and the receiver gets the
/// key back.
#[test]
fn mikey_gmk_and_csk_rebuild_the_vendor_messages() {
    let dir = temp_dir("mikey-build");
    for (name, receiver, key) in [("1: GMK", "Alice", "GMK"), ("2: CSK", "GMS", "CSK")] {
        let (vendor, ours) = rebuild_vendor_message(name, &dir);
        assert_eq!(ours.len(), vendor.len(), "{name}");
        let signed = vendor.len() - 129;
        assert_eq!(
            hex::encode(&ours[..signed]),
            hex::encode(&vendor[..signed]),
            "{name}"
        );
        assert_ne!(ours[signed..], vendor[signed..], "{name}: same j?");
        let keys = streamwide_user_file(&dir, receiver);
        let tree = ok(&["mikey", "decode", &hex::encode(&ours), "--keys", &keys]);
        assert!(tree.contains("signature: valid"), "{name}: {tree}");
        let v: Value = serde_json::from_str(STREAMWIDE_VECTORS).unwrap();
        assert!(
            tree.contains(&field(&v["messages"][name], key)),
            "{name}: {tree}"
        );
    }
    // --no-sp leaves the SP out, as mcx's own clients send a CSK.
    let (alice, gms) = (
        streamwide_user_file(&dir, "Alice"),
        streamwide_user_file(&dir, "GMS"),
    );
    let csk = ok(&[
        "mikey",
        "csk",
        "--keys",
        &alice,
        "--server",
        "gms@streamwide.com",
        "--csk",
        &"11".repeat(16),
        "--csk-id",
        "20000001",
        "--time",
        "1759448872",
        "--no-sp",
    ]);
    let tree = ok(&["mikey", "decode", &csk, "--keys", &gms]);
    assert!(!tree.contains("SP (security policy)"), "{tree}");
    assert!(tree.contains("signature: valid"), "{tree}");
    // A time stamp outside the key period of the signer's keys.
    let msg = [
        "mikey",
        "gmk",
        "--keys",
        &gms,
        "--member",
        "sip:a@x",
        "--gmk",
        &"11".repeat(16),
        "--gmk-id",
        "00000001",
        "--time",
        "0",
    ];
    let err = fails(&msg, "--time: falls in key period");
    assert!(
        err.contains("GMS.json holds keys for key period 236"),
        "{err}"
    );
}

/// `mcx mikey wrap-tgmk` makes one copy per group; `mcx mikey decode
/// --gmk` opens each with its group's GMK and shows the TGMK and the
/// SRTP keys `mcx kdf srtp` gives for the TGMK and RAND; another GMK
/// fails the check; a given j refuses to sign two copies.
#[test]
fn mikey_wrap_tgmk_copies_open_with_each_groups_gmk() {
    let dir = temp_dir("wrap-tgmk");
    let community = new_community(&dir);
    let disp = path(&dir, "disp.json");
    ok(&[
        "kms",
        "issue",
        &community,
        "--user",
        "sip:disp@example.org",
        "--at",
        "1700000000",
        "--out",
        &disp,
    ]);
    let (gmk_a, gmk_b) = ("11".repeat(16), "22".repeat(16));
    let (tgmk, tgmk_id, rand) = ("33".repeat(16), "70000042", "44".repeat(16));
    let group_a = format!("sip:a@example.org:0000000a:{gmk_a}");
    let group_b = format!("sip:b@example.org:0000000b:{gmk_b}");
    let base = [
        "mikey",
        "wrap-tgmk",
        "--keys",
        &disp,
        "--temporary-group",
        "sip:tg@example.org",
        "--group",
        &group_a,
        "--group",
        &group_b,
        "--tgmk",
        &tgmk,
        "--tgmk-id",
        tgmk_id,
        "--rand",
        &rand,
        "--time",
        "1700000000",
    ];
    let mut with_json = base.to_vec();
    with_json.push("--json");
    let out = json(&ok(&with_json));
    let copies = out["copies"].as_array().unwrap();
    assert_eq!(copies.len(), 2);
    let srtp = json(&ok(&[
        "kdf", "srtp", "--key", &tgmk, "--key-id", tgmk_id, "--rand", &rand,
    ]));
    assert_eq!(out["srtp"]["master_key"], srtp["master_key"]);
    assert_eq!(out["srtp"]["mki"], tgmk_id);
    for (copy, (id, gmk, other)) in copies
        .iter()
        .zip([("0000000a", &gmk_a, &gmk_b), ("0000000b", &gmk_b, &gmk_a)])
    {
        let message = field(copy, "message");
        let opened = ok(&[
            "mikey",
            "decode",
            &message,
            "--community",
            &community,
            "--gmk",
            &format!("{id}:{gmk}"),
        ])
        .to_lowercase();
        assert!(opened.contains(&tgmk), "{opened}");
        assert!(opened.contains(&field(&srtp, "master_key")), "{opened}");
        assert!(opened.contains("signature: valid"), "{opened}");
        let run = mcx(&[
            "mikey",
            "decode",
            &message,
            "--gmk",
            &format!("{id}:{other}"),
        ]);
        assert_eq!(run.code, 1, "{}", run.stdout);
    }
    // The text form: one "GROUP MESSAGE" line per group.
    let text = ok(&base);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("sip:a@example.org "), "{text}");
    let mut with_j = base.to_vec();
    let j = "01".repeat(32);
    with_j.extend(["--ephemeral", &j]);
    fails(&with_j, "give one --group");
    fails(
        &[
            "mikey",
            "wrap-tgmk",
            "--keys",
            &disp,
            "--temporary-group",
            "sip:tg@x",
            "--group",
            "sip:a@x:0000000a",
            "--time",
            "1700000000",
        ],
        "--group GMK-ID: ",
    );
}

/// `mcx kms issue --uid` issues keys for a raw 32-octet identifier (here
/// Streamwide's published UID of Alice): the file carries that UID and
/// no user_uri; its ECCSI key signs for the UID and its RSK opens a SAKKE
/// encapsulation to it.
#[test]
fn kms_issue_for_a_raw_uid() {
    let dir = temp_dir("raw-uid");
    let community = new_community(&dir);
    let v: Value = serde_json::from_str(STREAMWIDE_VECTORS).unwrap();
    let uid = field(&v["users"]["Alice"], "UserID");
    let keys = path(&dir, "raw.json");
    ok(&[
        "kms",
        "issue",
        &community,
        "--uid",
        &uid,
        "--period-no",
        "7",
        "--out",
        &keys,
    ]);
    let file = json(&std::fs::read_to_string(&keys).unwrap());
    assert_eq!(field(&file, "uid"), uid);
    assert_eq!(file["key_period_no"], 7);
    assert!(file.get("user_uri").is_none(), "{file}");
    let sig = ok(&["eccsi", "sign", "--keys", &keys, "--msg-text", "hi"]);
    assert_eq!(
        ok(&[
            "eccsi",
            "verify",
            "--community",
            &community,
            "--id",
            &uid,
            "--msg-text",
            "hi",
            "--sig",
            &sig,
        ]),
        "valid"
    );
    let enc = json(&ok(&[
        "sakke",
        "encap",
        "--community",
        &community,
        "--id",
        &uid,
    ]));
    assert_eq!(
        ok(&[
            "sakke",
            "decap",
            "--keys",
            &keys,
            "--sed",
            &field(&enc, "sed")
        ]),
        field(&enc, "ssv")
    );
    fails(
        &["kms", "issue", &community, "--uid", "00"],
        "--uid: expected 32 octets",
    );
    // A raw-identifier file cannot sign MIKEY messages: they name the URI.
    let err = fails(
        &[
            "mikey",
            "gmk",
            "--keys",
            &keys,
            "--member",
            "sip:a@x",
            "--gmk",
            &"11".repeat(16),
            "--gmk-id",
            "00000001",
            "--time",
            "0",
        ],
        "error: ",
    );
    assert!(!err.contains(": :"), "{err}");
}

/// SRTP packets protected by mcx-srtp with a TGMK's keys (TS 33.180
/// profile: AEAD_AES_128_GCM, MKI = TGMK-ID, ROC in every packet)
/// decrypt with `mcx srtp decrypt` given the master key, salt and MKI,
/// or the TGMK, TGMK-ID and RAND; a flipped bit fails naming the packet.
#[test]
fn srtp_decrypt_packets_given_keys() {
    use mcx_mikey::{KeyId, Tgmk};
    let tgmk = Tgmk::from_bytes(&[0x33; 16]).unwrap();
    let rand = [0x44; 16];
    let keys = mcx_mikey::tgmk::srtp_keys(&tgmk, KeyId(0x7000_0042), &rand);
    let mki = mcx_srtp::Mki::new(keys.mki()).unwrap();
    let mut sender = mcx_srtp::Session::new(mcx_srtp::Config::ts33180(4)).unwrap();
    sender
        .add_key(
            mki,
            mcx_srtp::MasterKey::from_slices(keys.master_key(), keys.master_salt()).unwrap(),
        )
        .unwrap();
    let payloads = [b"first voice".to_vec(), vec![0xd5; 160]];
    let packets: Vec<String> = payloads
        .iter()
        .enumerate()
        .map(|(i, payload)| {
            let mut buf = vec![0x80, 0x00, 0xff, 0xfe + i as u8];
            buf.extend_from_slice(&(160 * i as u32).to_be_bytes());
            buf.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            buf.extend_from_slice(payload);
            let len = buf.len();
            buf.resize(len + 64, 0);
            let n = sender.protect_rtp(&mut buf, len).unwrap();
            hex::encode(&buf[..n])
        })
        .collect();
    let (k, s, m) = (
        hex::encode(keys.master_key()),
        hex::encode(keys.master_salt()),
        hex::encode(keys.mki()),
    );
    // `mcx srtp decrypt` with the master key and salt, this MKI and these packets.
    let given = |mki: &str, packets: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["srtp", "decrypt", "--key", &k, "--salt", &s, "--mki", mki]
            .iter()
            .map(|a| (*a).to_owned())
            .collect();
        args.extend(packets.iter().map(|p| (*p).to_owned()));
        args
    };
    let all: Vec<&str> = packets.iter().map(String::as_str).collect();
    let args = given(&m, &all);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = ok(&args);
    let expected: Vec<String> = payloads.iter().map(hex::encode).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);

    let dir = temp_dir("srtp-packets");
    let file = path(&dir, "packets.txt");
    std::fs::write(&file, format!("{}\n\n{}\n", packets[0], packets[1])).unwrap();
    let (t, r) = ("33".repeat(16), "44".repeat(16));
    let out = json(&ok(&[
        "srtp",
        "decrypt",
        "--tgmk",
        &t,
        "--tgmk-id",
        "70000042",
        "--rand",
        &r,
        "--packets",
        &file,
        "--json",
    ]));
    assert_eq!(out[1]["payload"], expected[1]);
    assert_eq!(out[1]["ssrc"], 0x1234_5678);
    assert_eq!(out[1]["sequence"], 0xffff);
    assert_eq!(out[0]["mki"], "70000042");

    let mut bad = hex::decode(&packets[1]).unwrap();
    bad[14] ^= 1;
    let bad = hex::encode(bad);
    let args = given(&m, &[&packets[0], &bad]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&args, "packet 2: ");
    let args = given("70000043", &[&packets[0]]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    fails(&args, "packet 1: carries none of the MKIs");
}

/// No error line has an empty name before a colon ("error: : ..."), for
/// the key files read by every command that takes one.
#[test]
fn errors_never_have_an_empty_prefix() {
    let dir = temp_dir("prefixes");
    let bad = path(&dir, "bad.json");
    std::fs::write(
        &bad,
        r#"{"user_uri":"sip:a@x","kms_uri":"k","key_period":1,"key_period_offset":0,
            "key_period_no":1,"uid":"zz","kpak":"04","z_public":"04","ssk":"00","pvt":"04","rsk":"04"}"#,
    )
    .unwrap();
    let msg = "ARoFAQahKuoB";
    for args in [
        vec!["mikey", "decode", msg, "--keys", &bad],
        vec!["mikey", "decode", msg, "--community", &bad],
        vec!["eccsi", "sign", "--keys", &bad, "--msg-text", "x"],
        vec!["sakke", "decap", "--keys", &bad, "--sed", "00"],
        vec![
            "mikey", "gmk", "--keys", &bad, "--member", "m", "--gmk", "00", "--gmk-id", "00",
        ],
    ] {
        let run = mcx(&args);
        assert_eq!(run.code, 1, "{args:?}");
        let line = run.stderr.trim_end();
        assert!(line.starts_with("error: "), "{line}");
        assert!(
            !line.contains(": :") && !line.starts_with("error: :"),
            "{args:?}: {line}"
        );
        assert!(line.contains("bad.json"), "{args:?}: {line}");
    }
}
