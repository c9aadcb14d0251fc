//! `mcx demo --pcap FILE`: the whole run captured on the loopback
//! interface by Wireshark's `dumpcap`, filtered to the ports of this run.
//!
//! dumpcap writes classic pcap to its standard output, which a thread
//! gathers. Marker datagrams to a port of our own tell when the capture
//! runs (before the first role starts) and when everything sent before the
//! end is in hand: dumpcap reads the kernel's buffer in blocks, so stopping
//! it right after the call would lose the last packets. The file is cut
//! after the record holding the end marker, so it never ends in a
//! half-written record whatever dumpcap was doing when it was stopped.

use std::io::Read as _;
use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::error::CliError;
use crate::system::CapturePorts;

/// How long dumpcap may take to start capturing, and to hand over the
/// last packets.
const PATIENCE: Duration = Duration::from_secs(10);

/// The payloads of the marker datagrams (they stay in the file, at its
/// start and end, to a port of their own).
const START: &[u8] = b"mcx-pcap-start";
const END: &[u8] = b"mcx-pcap-end";

/// More ports than this and the filter is "every UDP and TCP packet on
/// lo": BPF programs have a size limit (4096 instructions) that a filter
/// naming thousands of ports (a generated topology) would exceed.
const MAX_FILTER_PORTS: usize = 64;

fn failed(what: impl std::fmt::Display) -> CliError {
    CliError::System(format!("--pcap: {what}"))
}

/// A running capture. Dropping it stops dumpcap without writing a file.
pub(crate) struct Capture {
    child: Child,
    marker: UdpSocket,
    data: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

/// What [`Capture::finish`] wrote.
pub(crate) struct Written {
    /// Packets in the file (the markers included).
    pub(crate) packets: usize,
    /// Octets of the file.
    pub(crate) octets: usize,
}

/// The capture filter for `ports` plus the marker's port.
fn filter(ports: &CapturePorts, marker: u16) -> String {
    let any = |list: &[u16]| {
        list.iter()
            .map(|p| format!("port {p}"))
            .collect::<Vec<_>>()
            .join(" or ")
    };
    if ports.udp.len() + ports.tcp.len() > MAX_FILTER_PORTS {
        return "udp or tcp".to_owned();
    }
    let mut udp = ports.udp.clone();
    udp.push(marker);
    // By protocol: a client's ephemeral TCP port (HTTP provisioning) may
    // equal a UDP-only port of the run, and the other way round.
    let mut f = format!("(udp and ({}))", any(&udp));
    if !ports.tcp.is_empty() {
        f.push_str(&format!(" or (tcp and ({}))", any(&ports.tcp)));
    }
    f
}

impl Capture {
    /// Starts dumpcap on `lo` for `ports` and waits (at most 10 s) until
    /// it captures.
    ///
    /// # Errors
    /// dumpcap is not installed, exits (not permitted to capture), or
    /// captures nothing in time.
    pub(crate) async fn start(ports: &CapturePorts) -> Result<Self, CliError> {
        let marker =
            UdpSocket::bind("127.0.0.1:0").map_err(|e| failed(format!("marker socket: {e}")))?;
        let marker_port = marker
            .local_addr()
            .map_err(|e| failed(format!("marker socket: {e}")))?
            .port();
        let mut child = Command::new("dumpcap")
            .args(["-q", "-i", "lo", "-P", "-f"])
            .arg(filter(ports, marker_port))
            .args(["-w", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => failed(
                    "dumpcap is not installed (Debian/Ubuntu: apt-get install tshark, which brings dumpcap)",
                ),
                _ => failed(format!("cannot run dumpcap: {e}")),
            })?;
        let data = Arc::new(Mutex::new(Vec::new()));
        let reader = child.stdout.take().map(|mut out| {
            let data = data.clone();
            std::thread::spawn(move || {
                let mut chunk = [0u8; 16384];
                while let Ok(n) = out.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    data.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .extend_from_slice(&chunk[..n]);
                }
            })
        });
        let mut c = Self {
            child,
            marker,
            data,
            reader,
        };
        c.sync(START).await?;
        Ok(c)
    }

    /// Sends `tag` to the marker port until a whole record of the capture
    /// holds it; returns where that record ends.
    async fn sync(&mut self, tag: &[u8]) -> Result<usize, CliError> {
        let to = self
            .marker
            .local_addr()
            .map_err(|e| failed(format!("marker socket: {e}")))?;
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().map_err(failed)? {
                let mut err = String::new();
                if let Some(mut e) = self.child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                let err = err.split_whitespace().collect::<Vec<_>>().join(" ");
                return Err(failed(format!(
                    "dumpcap exited ({status}): {err} (capturing on lo needs root, or dumpcap's capabilities: dpkg-reconfigure wireshark-common and membership of the wireshark group)"
                )));
            }
            // A lost marker is only a retry; the socket cannot block.
            let _ = self.marker.send_to(tag, to);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let end = {
                let data = self.data.lock().unwrap_or_else(PoisonError::into_inner);
                crate::pcap::pcap_record_holding(&data, tag)
            };
            if let Some(end) = end {
                return Ok(end);
            }
            if Instant::now() > deadline {
                return Err(failed(format!(
                    "dumpcap did not capture its marker datagram {:?} within {} s",
                    String::from_utf8_lossy(tag),
                    PATIENCE.as_secs()
                )));
            }
        }
    }

    /// Waits until everything sent so far is captured, stops dumpcap and
    /// writes the capture to `path`.
    ///
    /// # Errors
    /// dumpcap stopped or stalled; the file cannot be written.
    pub(crate) async fn finish(mut self, path: &Path) -> Result<Written, CliError> {
        let end = self.sync(END).await?;
        self.stop();
        let data = std::mem::take(&mut *self.data.lock().unwrap_or_else(PoisonError::into_inner));
        let file = data.get(..end).unwrap_or(&data);
        std::fs::write(path, file).map_err(|source| CliError::Write {
            path: path.display().to_string(),
            source,
        })?;
        let packets = crate::pcap::read(file).map_or(0, |f| f.len());
        Ok(Written {
            packets,
            octets: file.len(),
        })
    }

    fn stop(&mut self) {
        // Everything wanted is in hand (up to the end marker): no need for
        // dumpcap to end its file cleanly.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_names_each_port_by_protocol_and_the_marker() {
        let ports = CapturePorts {
            udp: vec![5060, 40000],
            tcp: vec![5060, 8080],
        };
        assert_eq!(
            filter(&ports, 9999),
            "(udp and (port 5060 or port 40000 or port 9999)) or (tcp and (port 5060 or port 8080))"
        );
        let many = CapturePorts {
            udp: (1..=100).collect(),
            tcp: Vec::new(),
        };
        assert_eq!(filter(&many, 9999), "udp or tcp");
    }
}
