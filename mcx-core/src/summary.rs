//! What an operator sees of a role's calls (`mcx calls`): one summary per
//! call record, named by the SIP Call-ID that created it (unique per
//! role, unlike the temporary group ID: an MC server serving two groups
//! of one temporary group holds two records of it).

use std::time::Instant;

/// Where a call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// Asked for, not answered yet.
    SettingUp,
    /// Answered (2xx).
    Established,
}

impl CallState {
    /// Its token (`setting-up`, `established`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SettingUp => "setting-up",
            Self::Established => "established",
        }
    }
}

/// One call a role holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSummary {
    /// The Call-ID of the INVITE that created the record: what
    /// `end_call` takes.
    pub call_id: String,
    /// The temporary group.
    pub temporary_group_id: String,
    /// The constituent group (an MC server's record; a member's group).
    pub group_id: Option<String>,
    /// The initiator's MCPTT ID.
    pub initiator: String,
    /// Where it stands.
    pub state: CallState,
    /// Parties joined through this record: groups (controlling server),
    /// members (MC server), 1 for a client in the call.
    pub joined: usize,
    /// When the record was created.
    pub started: Instant,
}
