//! `MCX_SIP_TRACE=DIR`: every SIP message of each role of the process in
//! DIR/ROLE.sip.log, one file per role as SIPp's `-trace_msg` keeps
//! one per scenario: a separator with the time, the direction and peer,
//! then the message as `mcx-net`'s trace shows it (credentials redacted,
//! bodies by type and length only). Independent of `MCX_LOG`: the trace
//! is taken at `trace` level for this layer alone.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Writes the `mcx::sip` events of each role to a file of its own.
pub(crate) struct SipTrace {
    dir: PathBuf,
    files: Mutex<HashMap<String, File>>,
}

impl SipTrace {
    /// Traces into `dir` (created if missing).
    pub(crate) fn new(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            files: Mutex::new(HashMap::new()),
        })
    }

    /// `DIR/<role>.sip.log`, the URI made a safe file name.
    fn path_of(&self, role: &str) -> PathBuf {
        let name: String = role
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{name}.sip.log"))
    }
}

#[derive(Default)]
struct Fields {
    role: String,
    dir: String,
    peer: String,
    message: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "role" => value.clone_into(&mut self.role),
            "dir" => value.clone_into(&mut self.dir),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let slot = match field.name() {
            "message" => &mut self.message,
            "peer" => &mut self.peer,
            _ => return,
        };
        let _ = write!(slot, "{value:?}");
    }
}

impl<S: Subscriber> Layer<S> for SipTrace {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "mcx::sip" {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        if f.role.is_empty() {
            return;
        }
        // The message after its first line ("SIP in from …").
        let body = f.message.split_once('\n').map_or("", |(_, rest)| rest);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let entry = format!(
            "----------------------------------------------- {}.{:06}\n{} {}\n\n{body}\n\n",
            now.as_secs(),
            now.subsec_micros(),
            f.dir,
            f.peer
        );
        let mut files = self
            .files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !files.contains_key(&f.role) {
            match File::create(self.path_of(&f.role)) {
                Ok(file) => {
                    files.insert(f.role.clone(), file);
                }
                // Nowhere to write: the trace is lost, the role goes on.
                Err(_) => return,
            }
        }
        if let Some(file) = files.get_mut(&f.role) {
            let _ = file.write_all(entry.as_bytes());
        }
    }
}
