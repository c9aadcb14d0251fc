//! The Jacobi symbol by batched positive divsteps (mcx-ibc's, for public
//! values) against crypto-bigint's binary algorithm, on arbitrary odd
//! moduli and values of up to 1024 bits: they agree, and the divsteps
//! never panic (the fuzz build keeps the debug assertions on the exactness
//! of each batch's division and the bound on its results).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcx_ibc::sakke::internal::jacobi_both;

fuzz_target!(|data: &[u8]| {
    let mut x = [0u8; 128];
    let mut m = [0u8; 128];
    // The modulus's length comes from the input too, so that small and
    // large moduli are both reached.
    let (m_bytes, x_bytes) = data.split_at(data.len() / 2);
    let m_len = m_bytes.len().min(128);
    m[128 - m_len..].copy_from_slice(&m_bytes[..m_len]);
    let x_len = x_bytes.len().min(128);
    x[128 - x_len..].copy_from_slice(&x_bytes[..x_len]);
    if let Some((ours, reference)) = jacobi_both(&x, &m) {
        // Ours may give up (None) only after its cap of batches.
        if let Some(symbol) = ours {
            assert_eq!(symbol, reference);
        }
    }
});
