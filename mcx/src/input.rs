//! Reading input: hex values, files (`-` for stdin), JSON, the clock.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;

use crate::error::CliError;

/// Set once standard input has been consumed by a `-` argument.
static STDIN_TAKEN: AtomicBool = AtomicBool::new(false);

/// Decodes hex octets: upper or lower case, an optional `0x` prefix,
/// surrounding whitespace ignored. `what` names the value in errors.
pub(crate) fn hex(what: &str, text: &str) -> Result<Vec<u8>, CliError> {
    let text = text.trim();
    let (digits, offset) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(rest) => (rest, 2),
        None => (text, 0),
    };
    hex::decode(digits).map_err(|source| CliError::Hex {
        what: what.to_owned(),
        source,
        offset,
    })
}

/// Decodes hex and then the octets with `decode` (an `mcx_ibc`
/// `from_bytes`), naming `what` in either error.
pub(crate) fn hex_with<T>(
    what: &str,
    text: &str,
    decode: impl FnOnce(&[u8]) -> Result<T, mcx_ibc::Error>,
) -> Result<T, CliError> {
    decode(&hex(what, text)?).map_err(|err| CliError::value(what, err))
}

/// Decodes hex that must be exactly `N` octets.
pub(crate) fn hex_array<const N: usize>(what: &str, text: &str) -> Result<[u8; N], CliError> {
    let bytes = hex(what, text)?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| CliError::invalid(what, format!("expected {N} octets, got {}", bytes.len())))
}

/// How a file argument is named in messages: `<stdin>` for `-`.
pub(crate) fn display_name(path: &str) -> String {
    if path == "-" {
        "<stdin>".to_owned()
    } else {
        path.to_owned()
    }
}

/// Reads a whole file, or standard input for `-` (once per process).
pub(crate) fn read_bytes(path: &str) -> Result<Vec<u8>, CliError> {
    let mut bytes = Vec::new();
    let result = if path == "-" {
        if STDIN_TAKEN.swap(true, Ordering::SeqCst) {
            return Err(CliError::invalid(
                "<stdin>",
                "only one argument can be '-' (standard input)",
            ));
        }
        std::io::stdin().lock().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut file| file.read_to_end(&mut bytes).map(|_| ()))
    };
    result.map_err(|source| CliError::Read {
        path: display_name(path),
        source,
    })?;
    Ok(bytes)
}

/// Reads and parses a JSON file (or stdin for `-`).
pub(crate) fn read_json<T: DeserializeOwned>(path: &str) -> Result<T, CliError> {
    let bytes = read_bytes(path)?;
    serde_json::from_slice(&bytes).map_err(|source| CliError::Json {
        path: display_name(path),
        source,
    })
}

/// The current time in Unix seconds.
pub(crate) fn now_unix() -> Result<u64, CliError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .map_err(|_| CliError::Clock)
}

/// The operating system's RNG, after checking once that it works (so that
/// a broken RNG is an error line, not a panic).
pub(crate) fn os_rng() -> Result<rand_core::UnwrapErr<getrandom::SysRng>, CliError> {
    getrandom::fill(&mut [0u8; 1]).map_err(CliError::Rng)?;
    Ok(rand_core::UnwrapErr(getrandom::SysRng))
}
