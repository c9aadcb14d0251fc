//! Interop with Wireshark's MCPTT floor control dissector: our packets,
//! written to a pcap (built by hand: libpcap header, Ethernet, IPv4, UDP),
//! decode in `tshark` as `rtcp.mcptt.*` / `rtcp.app_data.mcptt.*` fields.
//! Skipped (with a message) when tshark is not installed.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;
use std::time::Instant;

use mcx_floor::{
    ArbitratorConfig, BroadcastArbitrator, Field, INITIATOR, Message, MessageType, ParticipantId,
    Source,
};

const PORT: u16 = 5001;

fn pcap(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    // libpcap global header: magic, version 2.4, thiszone, sigfigs, snaplen, Ethernet.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, payload) in packets.iter().enumerate() {
        let udp_len = 8 + payload.len();
        let ip_len = 20 + udp_len;
        let mut frame = Vec::new();
        // Ethernet: dst, src, EtherType IPv4.
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        // IPv4: version/IHL, TOS, total length, id, DF, TTL 64, UDP, checksum, src, dst.
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&u16::try_from(ip_len).unwrap().to_be_bytes());
        ip.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let sum: u32 = ip
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !u16::try_from((sum & 0xffff) + (sum >> 16)).unwrap();
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        // UDP: ports, length, no checksum.
        frame.extend_from_slice(&PORT.to_be_bytes());
        frame.extend_from_slice(&PORT.to_be_bytes());
        frame.extend_from_slice(&u16::try_from(udp_len).unwrap().to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(payload);
        // Record header: seconds, microseconds, captured and original length.
        out.extend_from_slice(&u32::try_from(1_760_000_000 + i).unwrap().to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        let n = u32::try_from(frame.len()).unwrap();
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

#[test]
fn tshark_dissects_floor_messages() {
    if Command::new("tshark").arg("-v").output().is_err() {
        eprintln!("skipped: tshark not installed (apt-get install tshark)");
        return;
    }
    let now = Instant::now();
    let mut arb = BroadcastArbitrator::new(
        ArbitratorConfig::new(0xf100_0001),
        "sip:dispatcher@example.org",
    )
    .unwrap();
    let r = arb.add_receiver(now, "sip:user1@example.org").unwrap();
    arb.start(now).unwrap();
    let request = Message::new(MessageType::FloorRequest, 0x102)
        .with(Field::FloorPriority(3))
        .with(Field::FloorIndicator(mcx_floor::FloorIndicator(0x4100)))
        .to_bytes()
        .unwrap();
    arb.handle(now, r, &request).unwrap();
    let release = Message::new(MessageType::FloorRelease, 0x101)
        .with(Field::UserId("sip:dispatcher@example.org".into()))
        .to_bytes()
        .unwrap();
    arb.handle(now, INITIATOR, &release).unwrap();
    let mut packets = vec![request, release];
    while let Some(t) = arb.poll_transmit() {
        assert!(t.destination == INITIATOR || t.destination == ParticipantId(1));
        packets.push(t.contents);
    }
    packets.push(
        Message::new(MessageType::FloorAck, 0x102)
            .with(Field::Source(Source::FLOOR_PARTICIPANT))
            .with(Field::MessageType(0x12))
            .to_bytes()
            .unwrap(),
    );
    let dir = std::env::temp_dir().join(format!("mcx-floor-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("floor.pcap");
    std::fs::write(&file, pcap(&packets)).unwrap();

    // Wireshark 4.0 (Debian 12) names every TS 24.380 field ID and checks
    // the TLV framing and padding, but decodes the values of the 1xx IDs
    // only for Granted Party's Identity; newer releases decode them all.
    let fields = [
        "rtcp.app.name",
        "rtcp.app.subtype",
        "rtcp.mcptt.fld_id",
        "rtcp.mcptt.fld_len",
        "rtcp.mcptt.fld_val",
        "rtcp.mcptt.granted_partys_id",
        "_ws.malformed",
    ];
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(&file)
        .args(["-d", &format!("udp.port=={PORT},rtcp"), "-T", "fields"])
        .args(["-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    println!("{text}");
    let party = "sip:dispatcher@example.org";
    #[rustfmt::skip]
    let expected: Vec<[&str; 7]> = vec![
        // name, subtype, field IDs, lengths, undecoded values, granted party, malformed
        ["MCPT", "0", "102,116", "2,2", "0300,4100", "", ""],                  // Floor Request
        ["MCPT", "4", "109", "26", "7369703a64697370617463686572406578616d706c652e6f7267", "", ""], // Floor Release
        ["MCPT", "17", "103,116", "2,2", "012c,4100", "", ""],                 // Floor Granted (ack req)
        ["MCPT", "18", "106,108,111,116", "26,2,2,2", "0000,0000,4100", party, ""], // Floor Taken (ack req)
        ["MCPT", "3", "104,116", "14,2", "000572656365697665206f6e6c79,4100", "", ""], // Floor Deny, cause 5
        ["MCPT", "21", "111,108,116", "2,2,2", "0000,0000,4100", "", ""],      // Floor Idle to the initiator
        ["MCPT", "21", "111,108,116", "2,2,2", "0001,0000,4100", "", ""],      // Floor Idle to the receiver
        ["MCPT", "10", "113,115", "2,2", "0000,1200", "", ""],                 // Floor Ack
    ];
    let expected: Vec<Vec<&str>> = expected.iter().map(|r| r.to_vec()).collect();
    assert_eq!(rows, expected);
}
