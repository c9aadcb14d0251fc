//! What a server checks of the wrapped copies it relays in a new call
//! request, without any key: each copy names the caller and the group it
//! is for, all carry one TGMK, each is fresh (T in the replay window) and
//! none was relayed before. So a call request replayed into another call
//! is refused before any fan-out, whoever sends it; a live call's copy
//! reaches later joiners only through the MC server's own late entry.

use bytes::Bytes;
use mcx_mikey::replay::ReplayCache;
use mcx_mikey::tgmk::CopyEnvelope;

/// Why a call request's copies were refused (the reason phrase says it).
pub(crate) const STALE_OR_REPLAYED: &str =
    "Not Acceptable Here - wrapped TGMK stale, replayed or not the caller's";

/// Checks the copies `(group, copy)` of one call request from `caller` and
/// remembers them. `Err` names what failed (for the server's log).
pub(crate) fn admit(
    copies: &[(&str, &Bytes)],
    caller: &str,
    now_unix: u64,
    seen: &mut ReplayCache,
) -> Result<(), String> {
    let mut envelopes = Vec::with_capacity(copies.len());
    for (group, copy) in copies {
        let e = CopyEnvelope::read(copy, now_unix).map_err(|e| format!("copy for {group}: {e}"))?;
        if e.group_id != *group {
            return Err(format!("copy for {group} names group {}", e.group_id));
        }
        if e.initiator_uri != caller {
            return Err(format!(
                "copy for {group} names initiator {}",
                e.initiator_uri
            ));
        }
        if envelopes
            .first()
            .is_some_and(|f: &CopyEnvelope| f.tgmk_id != e.tgmk_id)
        {
            return Err("copies carry different TGMK-IDs".into());
        }
        seen.check(e.t_unix, &e.replay_key, now_unix)
            .map_err(|r| format!("copy for {group}: {r}"))?;
        envelopes.push(e);
    }
    for e in envelopes {
        seen.insert(e.t_unix, &e.replay_key, now_unix);
    }
    Ok(())
}
