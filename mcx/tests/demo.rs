//! `mcx demo`: the README's main command. Exit 0 only when every check
//! holds; a member that refuses the initiator makes it fail, naming the
//! member.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const DEFAULT_TOPOLOGY: &str = include_str!("../topologies/default.toml");

fn demo(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mcx"))
        .arg("demo")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn default_topology_runs_the_nine_steps_and_every_check_passes() {
    let (code, out, err) = demo(&[]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for step in 1..=9 {
        assert!(
            out.contains(&format!("step {step} ")),
            "no step {step}:\n{out}"
        );
    }
    for g in ["sip:group-a@mcx.example", "sip:group-b@mcx.example"] {
        assert!(
            out.lines().any(|l| l.contains(g)
                && l.contains("3 accepted, 0 rejected")
                && l.ends_with("ok")),
            "{g}:\n{out}"
        );
    }
    // Every member line carries the initiator's TGMK-ID and confirmation.
    let reference = out
        .lines()
        .find(|l| l.contains("(initiator)"))
        .unwrap()
        .split_whitespace()
        .skip(1)
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    let same = out
        .lines()
        .filter(|l| l.contains(&reference) && l.ends_with("same  ok"))
        .count();
    assert_eq!(same, 6, "{out}");
    assert!(
        out.contains("sip:rogue@mcx.example            not a member: holds no TGMK  ok"),
        "{out}"
    );
    assert!(out.contains("call ended at 6/6 members"), "{out}");
    // Floor control under the CSKs of the dispatcher and the six members
    // (the non-member has no home server) and the SPK; nothing dropped.
    assert!(
        out.contains("floor protection: SRTCP under the CSK each of 7 clients uploaded"),
        "{out}"
    );
    assert!(out.contains("floor packets dropped: 0"), "{out}");
    assert!(out.contains("result: OK"), "{out}");
}

/// The per-member voice lines of a demo's output.
fn voice_lines(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.contains("authenticated") && l.contains("audio"))
        .collect()
}

#[test]
fn every_member_hears_exactly_what_the_initiator_sent() {
    let dir = std::env::temp_dir().join(format!("mcx-demo-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (code, out, err) = demo(&["--record-dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("as 150 SRTP packets (PCMU, 20 ms, AEAD_AES_128_GCM under the TGMK"),
        "{out}"
    );
    let lines = voice_lines(&out);
    assert_eq!(lines.len(), 6, "{out}");
    for l in &lines {
        assert!(
            l.contains("received 150, authenticated 150, failed authentication 0, lost 0, late 0")
                && l.ends_with("audio equals the µ-law decoding of what was sent  ok"),
            "{l}"
        );
    }
    // The servers relayed every packet to every member, without a key.
    assert!(
        out.contains("controlling server relayed 150 packets as 300 copies, unchanged and undecrypted (no key), dropped 0"),
        "{out}"
    );
    assert!(
        out.contains("MC servers relayed 300 packets as 900 copies, unchanged and undecrypted (no key), dropped 0"),
        "{out}"
    );
    // Each recording is a WAV of 3 s at 8 kHz (16-bit mono: 44 + 48,000
    // octets), readable by an independent reader when python3 is here.
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 6, "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert_eq!(&bytes[..4], b"RIFF");
        assert_eq!(bytes.len(), 44 + 3 * 8000 * 2, "{}", f.display());
    }
    let script = "import sys, wave\nw = wave.open(sys.argv[1])\nprint(w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getnframes())";
    match Command::new("python3")
        .args(["-c", script])
        .arg(&files[0])
        .output()
    {
        Ok(o) if o.status.success() => {
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1 8000 2 24000");
        }
        _ => eprintln!("SKIPPED python3 wave check: python3 not available"),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_late_joiner_is_invited_in_and_decrypts_from_where_it_joined() {
    let (code, out, err) = demo(&["--late-joiner"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.lines().any(|l| l.contains("sip:group-b@mcx.example")
            && l.contains("2 accepted, 1 rejected")
            && l.ends_with("ok")),
        "b3 is not called at the start:\n{out}"
    );
    let late = out
        .lines()
        .find(|l| l.contains("late entry: sip:b3@mcx.example registered"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(late.contains("holds the initiator's TGMK"), "{late}");
    // In the call and Floor Taken, each within TS 22.179's 350 ms.
    let ms_after = |what: &str| -> f64 {
        let rest = &late[late.find(what).unwrap() + what.len()..];
        rest.split(" ms").next().unwrap().trim().parse().unwrap()
    };
    assert!(ms_after("after ") < 350.0, "{late}");
    assert!(ms_after("Floor Taken after ") < 350.0, "{late}");
    // It heard the rest of the voice, sample for sample.
    let b3 = out
        .lines()
        .find(|l| l.trim_start().starts_with("sip:b3@mcx.example") && l.contains("authenticated"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        b3.ends_with("audio equals the µ-law decoding of what was sent  ok"),
        "{b3}"
    );
    let received: u32 = b3
        .split("received ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((50..150).contains(&received), "joined mid-stream: {b3}");
    assert!(out.contains("call ended at 6/6 members"), "{out}");
}

#[test]
fn a_users_wav_at_44_1_khz_stereo_is_sent_and_heard() {
    // 1 s of a 440 Hz tone, 44.1 kHz stereo 16-bit, written here by hand.
    let rate = 44_100u32;
    let frames = rate as usize;
    let mut data = Vec::with_capacity(frames * 4);
    for i in 0..frames {
        let v = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / f64::from(rate)).sin())
            as i16;
        data.extend_from_slice(&v.to_le_bytes());
        data.extend_from_slice(&v.to_le_bytes());
    }
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&2u16.to_le_bytes()); // stereo
    wav.extend_from_slice(&rate.to_le_bytes());
    wav.extend_from_slice(&(rate * 4).to_le_bytes());
    wav.extend_from_slice(&4u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&(data.len() as u32).to_le_bytes());
    wav.extend_from_slice(&data);
    let path = std::env::temp_dir().join(format!("mcx-demo-tone-{}.wav", std::process::id()));
    std::fs::write(&path, wav).unwrap();
    let (code, out, err) = demo(&["--audio", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("voice: 1 s of"), "{out}");
    assert!(out.contains("as 50 SRTP packets"), "{out}");
    assert_eq!(voice_lines(&out).len(), 6, "{out}");

    // Not a WAV: one clear line naming the file, nothing sent.
    let bad = std::env::temp_dir().join(format!("mcx-demo-bad-{}.wav", std::process::id()));
    std::fs::write(&bad, b"not a wav").unwrap();
    let (code, out, err) = demo(&["--audio", bad.to_str().unwrap()]);
    let _ = std::fs::remove_file(&bad);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(bad.to_str().unwrap()), "{err}");
}

#[test]
fn generated_topology_with_groups_sharing_an_mc_server() {
    // Three groups: two on one MC server, one on another.
    let (code, out, err) = demo(&[
        "--groups",
        "3",
        "--members",
        "2",
        "--calls",
        "2",
        "--no-audio",
    ]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for g in 0..3 {
        assert!(
            out.lines()
                .any(|l| l.contains(&format!("sip:group-{g}@mcx.example"))
                    && l.contains("2 accepted, 0 rejected")),
            "group {g}:\n{out}"
        );
    }
    assert!(out.contains("call set-up time over 2 calls"), "{out}");
}

#[test]
fn a_member_refusing_the_initiator_fails_the_demo() {
    // a3 accepts temporary group calls only from someone else: it must
    // refuse the dispatcher's wrapped TGMK (403) and hold no TGMK.
    let topology = DEFAULT_TOPOLOGY.replace(
        "password = \"demo-password-a3\"",
        "password = \"demo-password-a3\"\nallowed_initiators = [\"sip:someone-else@mcx.example\"]",
    );
    assert_ne!(topology, DEFAULT_TOPOLOGY);
    let path = std::env::temp_dir().join(format!("mcx-demo-refuse-{}.toml", std::process::id()));
    std::fs::write(&path, topology).unwrap();
    let (code, out, err) = demo(&["--topology", path.to_str().unwrap(), "--no-audio"]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 1, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("result: FAILED"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("sip:group-a@mcx.example") && l.contains("2 accepted, 1 rejected")),
        "{out}"
    );
    assert!(out.contains("sip:a3@mcx.example: no TGMK"), "{out}");
    assert!(err.contains("checks failed"), "{err}");
}

#[test]
fn invalid_topology_is_one_line_naming_the_file() {
    let path = std::env::temp_dir().join(format!("mcx-demo-bad-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        DEFAULT_TOPOLOGY.replace(
            "groups = [\"sip:group-b@mcx.example\"]",
            "groups = [\"sip:group-c@mcx.example\"]",
        ),
    )
    .unwrap();
    let (code, out, err) = demo(&["--topology", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(path.to_str().unwrap()) && err.contains("sip:group-c@mcx.example"),
        "{err}"
    );
}

/// `mcx demo --kpi`: the TS 22.179 KPI rows with figures, and each p95
/// within its 3GPP budget, so that a change that blows a budget fails
/// here. (The project's goal, under 10 % of each budget, is measured in
/// docs/BENCHMARKS.md, not asserted: a loaded CI machine may miss it.)

#[test]
fn kpi_figures_are_printed_and_each_p95_is_within_its_3gpp_budget() {
    let (code, out, err) = demo(&["--kpi", "--calls", "3"]);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("KPIs over 3 calls"), "{out}");
    // name → (n, p50, p95, max, budget) in ms.
    let row = |name: &str| -> (usize, f64, f64, f64, f64) {
        let line = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}:\n{out}"));
        let f: Vec<&str> = line.split_whitespace().collect();
        let ms = |i: usize| -> f64 {
            f[i].parse()
                .unwrap_or_else(|_| panic!("{name}: field {i} of {line}"))
        };
        (f[1].parse().unwrap(), ms(2), ms(3), ms(4), ms(5))
    };
    for (name, calls_or_packets, budget) in [
        ("setup", 3, 1000.0),
        ("floor-access", 3, 300.0),
        // 5 members on duty from the start × 50 packets (1 s) × 3 calls.
        ("mouth-to-ear", 750, 300.0),
        ("late-in-call", 3, 350.0),
        ("late-floor-taken", 3, 350.0),
        ("late-first-voice", 3, 350.0),
    ] {
        let (n, p50, p95, max, b) = row(name);
        assert_eq!(n, calls_or_packets, "{name}:\n{out}");
        assert_eq!(b, budget, "{name}: TS 22.179's budget");
        assert!(0.0 < p50 && p50 <= p95 && p95 <= max, "{name}:\n{out}");
        assert!(
            p95 < budget,
            "{name}: p95 {p95} ms over the {budget} ms budget:\n{out}"
        );
    }
    // A late joiner hears only once it is in the call.
    assert!(row("late-first-voice").1 >= row("late-in-call").1, "{out}");
    assert!(
        out.contains("excludes the receivers' deliberate playout delay (60 ms"),
        "{out}"
    );
}
