#!/usr/bin/env python3
"""Independent computation of the floor-control SRTCP keys of a CSK and an SPK.

Written from the specification text only (standard library: hashlib, hmac):

- RFC 3830 section 4.1.2 (the MIKEY PRF): split the input key into 256-bit
  pieces s_1..s_n; PRF(inkey, label) = P(s_1, label, m) XOR ... XOR
  P(s_n, label, m), where P(s, label, m) = HMAC(s, A_1 || label) || ... ||
  HMAC(s, A_m || label), A_0 = label, A_i = HMAC(s, A_(i-1)), and the
  output is truncated to the length wanted.
- RFC 6043 section 6.1: PRF-HMAC-SHA-256 is that PRF with HMAC-SHA-256
  (256-bit pieces and 256-bit output blocks).
- RFC 3830 section 4.1.3: label = constant || CS ID (1 octet) || CSB ID
  (4 octets) || RAND; TEK constant 0x2AD01C64, salting key 0x39A2C14B.
- TS 33.180 7.4 (as for media keys), TS 24.380 13.1, TS 33.180 E.4.2 via
  TS 36.579-1 Table 5.5.9.1-1: CS ID 6 for the CSK; TGK = CSK, CSB ID =
  CSK-ID, RAND of the CSK message; 16-octet master key and 12-octet master
  salt (RFC 7714). MKI = CSK-ID. The SPK case uses the project's decision
  (docs/mikey.md): CS ID 6, CSB ID = SPK-ID, a configured RAND.
- Floor keys per call leg and direction between servers (project decision,
  docs/mikey.md "CSK and SPK"): the SPK case with RAND = configured RAND ||
  direction octet (1 down: controlling server to MC server, 2 up) ||
  SHA-256(Call-ID of the controlling server's INVITE to the MC server).

Before producing anything it reproduces two published values with the same
code: the RFC 3830 4.1.3 case of ts33180-kdf.json and Alice's GMK media keys
of the Streamwide vectors (TS 33.180 7.4.2, CS ID 4, CSB ID = GUK-ID).

Run once from this folder: python3 csk_srtcp_kdf.py > csk-srtcp-kdf.json
"""

import base64
import hashlib
import hmac
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
TEK_CONST = 0x2AD01C64
SALT_CONST = 0x39A2C14B


def prf_hmac_sha256(inkey: bytes, label: bytes, out_len: int) -> bytes:
    pieces = [inkey[i:i + 32] for i in range(0, len(inkey), 32)] or [b""]
    m = -(-out_len // 32)
    out = bytes(m * 32)
    for s in pieces:
        a = label
        p = b""
        for _ in range(m):
            a = hmac.new(s, a, hashlib.sha256).digest()
            p += hmac.new(s, a + label, hashlib.sha256).digest()
        out = bytes(x ^ y for x, y in zip(out, p))
    return out[:out_len]


def master(tgk: bytes, cs_id: int, csb_id: bytes, rand: bytes):
    def label(const):
        return const.to_bytes(4, "big") + bytes([cs_id]) + csb_id + rand

    return (prf_hmac_sha256(tgk, label(TEK_CONST), 16),
            prf_hmac_sha256(tgk, label(SALT_CONST), 12))


def load(name):
    with open(os.path.join(HERE, name)) as f:
        return json.load(f)


def self_check():
    v = load("ts33180-kdf.json")["mikey_srtp_kdf"]
    case = v["cases"][0]
    k, s = master(bytes.fromhex(v["tgk"]), case["cs_id"],
                  bytes.fromhex(case["csb_id"]), bytes.fromhex(v["rand"]))
    assert (k + s).hex() == case["master_key_then_salt"], "ts33180-kdf.json"
    sw = load("streamwide-mikey-sakke.json")
    gmk = sw["messages"]["1: GMK"]
    d = sw["derived"]
    k, s = master(bytes.fromhex(gmk["GMK"]), 4, bytes.fromhex(gmk["GUK-ID"]),
                  bytes.fromhex(gmk["GMK-RAND"]))
    assert k.hex() == d["alice_gmk_srtp_master_key"], "Streamwide key"
    assert s.hex() == d["alice_gmk_srtp_master_salt"], "Streamwide salt"


def case(name, key_name, key_hex, key_id_hex, rand_hex, cs_id, source):
    k, s = master(bytes.fromhex(key_hex), cs_id, bytes.fromhex(key_id_hex),
                  bytes.fromhex(rand_hex))
    return {
        "name": name,
        "source": source,
        key_name: key_hex,
        "key_id": key_id_hex,
        "rand": rand_hex,
        "cs_id": cs_id,
        "srtcp_master_key": k.hex(),
        "srtcp_master_salt": s.hex(),
        "mki": key_id_hex,
    }


def leg_case(name, spk_hex, key_id_hex, spk_rand_hex, call_id, direction):
    octet = {"down": 1, "up": 2}[direction]
    rand = (bytes.fromhex(spk_rand_hex) + bytes([octet])
            + hashlib.sha256(call_id.encode()).digest())
    c = case(name, "spk", spk_hex, key_id_hex, rand.hex(), 6, "made-up inputs")
    c["spk_rand"] = spk_rand_hex
    c["call_id"] = call_id
    c["direction"] = direction
    return c


def main():
    self_check()
    sw = load("streamwide-mikey-sakke.json")["messages"]["2: CSK"]
    # The CSK-ID and RAND as the vendor's I_MESSAGE carries them (CSB ID at
    # octets 4..8; RAND after the 12-octet T payload), checked against the
    # vendor's own fields.
    msg = base64.b64decode(sw["I-MESSAGE"])
    assert msg[4:8].hex() == sw["CSK-ID"]
    assert sw["CSK-RAND"] in msg.hex()
    out = {
        "_about": "Floor-control SRTCP master key, salt and MKI from a CSK and an SPK, "
                  "computed by csk_srtcp_kdf.py (RFC 3830 4.1.2/4.1.3, RFC 6043 6.1; "
                  "standard library only). See the script for the clauses.",
        "cases": [
            case("vendor CSK (Streamwide '2: CSK')", "csk", sw["CSK"], sw["CSK-ID"],
                 sw["CSK-RAND"], 6, "streamwide-mikey-sakke.json, message '2: CSK'"),
            case("CSK, 40-octet RAND", "csk", "00112233445566778899aabbccddeeff",
                 "2abcdef0", "a5" * 40, 6, "made-up inputs"),
            case("SPK (project decision: CS ID 6, configured RAND)", "spk",
                 "0f0e0d0c0b0a09080706050403020100", "3a5c0f17",
                 b"SPK-RAND-test-01".hex(), 6,
                 "made-up inputs"),
        ],
        "leg_cases": [
            leg_case("SPK leg down", "0f0e0d0c0b0a09080706050403020100", "3a5c0f17",
                     b"SPK-RAND-test-01".hex(), "8f3a1c@ctrl.mcx.test", "down"),
            leg_case("SPK leg up", "0f0e0d0c0b0a09080706050403020100", "3a5c0f17",
                     b"SPK-RAND-test-01".hex(), "8f3a1c@ctrl.mcx.test", "up"),
            leg_case("SPK other leg down", "0f0e0d0c0b0a09080706050403020100", "3a5c0f17",
                     b"SPK-RAND-test-01".hex(), "8f3a1d@ctrl.mcx.test", "down"),
        ],
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
