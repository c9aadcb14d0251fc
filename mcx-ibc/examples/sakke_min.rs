//! Minimum times of the SAKKE operations a client's start-up and a
//! receiver pay, over many runs: on a shared machine the minimum is
//! what the code costs (load only ever adds time), so two builds can be
//! compared while other jobs run; the last rows time Debian's libwolfssl
//! (generic build, through the test shim) on the same keys, so that the
//! ratio of minima holds however loaded the machine is. Run:
//! `cargo run --release -p mcx-ibc --example sakke_min [runs]`.
#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use mcx_ibc::sakke::{self, MasterSecret, ReceiverKey, Rsk, Ssv};
use mcx_ibc_wolfssl::Sakke;

const Z: &str = "aff429d35f84b110d094803b3595a6e2998bc99f";
const ID: &[u8] = b"2011-02\0tel:+447700900123\0";
const SSV: &str = "123456789abcdef0123456789abcdef0";

fn min_of<T>(runs: usize, mut setup: impl FnMut() -> T, mut f: impl FnMut(T)) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let input = setup();
        let t = Instant::now();
        f(input);
        best = best.min(t.elapsed());
    }
    best
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(40);
    sakke::internal::warm_up();
    let z = MasterSecret::from_bytes(&hex::decode(Z).unwrap()).unwrap();
    let kms = z.public_key();
    let rsk = sakke::extract_rsk(&z, ID).unwrap();
    let rsk = Rsk::from_bytes(rsk.to_bytes().as_ref()).unwrap();
    let ssv = Ssv::from_bytes(&hex::decode(SSV).unwrap()).unwrap();
    let sed = sakke::encapsulate(&kms, ID, &ssv).unwrap();
    let steady = ReceiverKey::new(&kms, ID, &rsk).unwrap().with_lines();
    let rsk_bytes = rsk.to_bytes();
    let mut wolf = Sakke::receiver(&kms.to_bytes(), ID, rsk_bytes.as_ref(), false).unwrap();
    let mut wolf_table = Sakke::receiver(&kms.to_bytes(), ID, rsk_bytes.as_ref(), true).unwrap();
    let sed_array: [u8; sakke::SED_LEN] = sed;
    let rows: [(&str, Duration); 6] = [
        (
            "ReceiverKey::new (RSK load + validation)",
            min_of(
                runs,
                || (),
                |()| {
                    black_box(ReceiverKey::new(&kms, black_box(ID), &rsk).unwrap());
                },
            ),
        ),
        (
            "first decapsulation (R's loop walked)",
            min_of(
                runs,
                || ReceiverKey::new(&kms, ID, &rsk).unwrap(),
                |k| {
                    black_box(k.decapsulate(black_box(&sed)).unwrap());
                },
            ),
        ),
        (
            "decapsulation, lines stored",
            min_of(
                runs,
                || (),
                |()| {
                    black_box(steady.decapsulate(black_box(&sed)).unwrap());
                },
            ),
        ),
        (
            "wolfCrypt decapsulation",
            min_of(
                runs,
                || (),
                |()| {
                    black_box(wolf.decapsulate(black_box(&sed_array)).unwrap());
                },
            ),
        ),
        (
            "wolfCrypt decapsulation, RSK table",
            min_of(
                runs,
                || (),
                |()| {
                    black_box(wolf_table.decapsulate(black_box(&sed_array)).unwrap());
                },
            ),
        ),
        (
            "RSK lines build (with_lines, load included)",
            min_of(
                runs / 4 + 1,
                || (),
                |()| {
                    black_box(ReceiverKey::new(&kms, ID, &rsk).unwrap().with_lines());
                },
            ),
        ),
    ];
    for (name, d) in rows {
        println!("{name:<48} {:>8.3} ms", d.as_secs_f64() * 1e3);
    }
    let ratio =
        |ours: usize, theirs: usize| rows[theirs].1.as_secs_f64() / rows[ours].1.as_secs_f64();
    println!(
        "decapsulation, ours faster by {:.1}x (than wolfCrypt with its RSK table: {:.1}x)",
        ratio(2, 3),
        ratio(2, 4)
    );
}
