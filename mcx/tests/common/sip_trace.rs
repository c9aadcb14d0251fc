//! Reads the SIP traces `MCX_SIP_TRACE=DIR` makes (mcx/src/sip_trace.rs):
//! one file per role, each message after a separator with its wall-clock
//! time and its direction.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// The separator before each message; its time follows.
const SEPARATOR: &str = "----------------------------------------------- ";

/// One message a role sent or received.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// When the role handled it (the wall clock: every process on this
    /// machine reads the same one).
    pub(crate) at: SystemTime,
    /// Sent (`out to`) rather than received (`in from`).
    pub(crate) sent: bool,
    /// The address it was sent to or came from.
    pub(crate) peer: String,
    /// The request line or status line.
    pub(crate) start_line: String,
}

impl Entry {
    /// A request of this method (`BYE`, `INVITE`, …).
    pub(crate) fn is_request(&self, method: &str) -> bool {
        self.start_line
            .strip_prefix(method)
            .is_some_and(|r| r.starts_with(' '))
    }
}

/// Every message in `role`'s trace under `dir`, in the order written;
/// panics if the role wrote none.
pub(crate) fn read(dir: &Path, role: &str) -> Vec<Entry> {
    // The file name as the trace makes it safe (mcx/src/sip_trace.rs
    // `path_of`): of our roles' URIs, only the scheme's ':' needs it.
    let name = role.replace(':', "_");
    let file = dir.join(format!("{name}.sip.log"));
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{role}'s SIP trace {}: {e}", file.display()));
    text.split(SEPARATOR)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let mut lines = e.lines();
            let time = lines.next().unwrap_or_default();
            let (secs, micros) = time
                .split_once('.')
                .unwrap_or_else(|| panic!("{role}: trace entry time {time:?}"));
            let at = SystemTime::UNIX_EPOCH
                + Duration::from_secs(secs.parse().unwrap())
                + Duration::from_micros(micros.parse().unwrap());
            let direction = lines.next().unwrap_or_default();
            let (sent, peer) = match (
                direction.strip_prefix("out to "),
                direction.strip_prefix("in from "),
            ) {
                (Some(to), _) => (true, to),
                (None, Some(from)) => (false, from),
                (None, None) => panic!("{role}: trace entry direction {direction:?}"),
            };
            let start_line = lines.find(|l| !l.is_empty()).unwrap_or_default().to_owned();
            Entry {
                at,
                sent,
                peer: peer.to_owned(),
                start_line,
            }
        })
        .collect()
}

/// The `method` requests sent (`sent`) or received, the first to or from
/// each peer (later ones are retransmissions), in order.
pub(crate) fn requests(entries: &[Entry], sent: bool, method: &str) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for e in entries
        .iter()
        .filter(|e| e.sent == sent && e.is_request(method))
    {
        if !out.iter().any(|o| o.peer == e.peer) {
            out.push(e.clone());
        }
    }
    out
}
