#!/usr/bin/env bash
# Our MC server's cost per forwarded SIP message beside Kamailio's
# (docs/BENCHMARKS.md, "Side by side with Kamailio"), issue 13 point 3.
#
# The same load through each forwarder in turn, at the same call rate:
#
#   SIPp uac (the controlling server) → forwarder → SIPp uas (the member)
#
# - forwarder = our MC server (`mcx run TOPOLOGY sip:mcs-a@mcx.example`,
#   group A = one member, SIP over UDP): a back-to-back user agent that
#   takes the call request, checks it, sends the member its own INVITE,
#   answers with the call result and ACKs the member;
# - forwarder = Kamailio 5.6 (Debian `kamailio`), stateful: `t_relay` in
#   the tm module, Record-Route so the ACK passes it too
#   (scripts/kamailio-side-by-side/kamailio.cfg), 2 UDP workers.
#
# Each call is INVITE (a TS 24.379 call request with a fresh wrapped TGMK
# per call, ~2.3 kB), 200 OK (SDP), ACK: three messages forwarded per
# call. CPU = user + system of the forwarder's processes (/proc/PID/stat,
# all threads; for Kamailio the main process and its children) from just
# before the first call to just after the last, divided by the messages
# forwarded. Not part of ./scripts/test.
#
# Usage: scripts/kamailio-side-by-side.sh   (after cargo build --release -p mcx)
# Environment: CALLS (default 2000), RATE (calls/s, default 200),
# ROUNDS (default 3; each round runs both forwarders), MCX (the binary).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
MCX=${MCX:-$root/target/release/mcx}
CALLS=${CALLS:-2000}
RATE=${RATE:-200}
ROUNDS=${ROUNDS:-3}
MPATH=${MPATH:-/usr/lib/x86_64-linux-gnu/kamailio/modules/}

for tool in sipp kamailio "$MCX"; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install sip-tester kamailio; cargo build --release -p mcx)" >&2; exit 2; }
done

dir=$(mktemp -d /tmp/mcx-kamailio-side-by-side.XXXXXX)
pids=()
keep=no
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$keep" = no ]; then rm -rf "$dir"; fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
uac=$(free_port); fwd=$(free_port); uas=$(free_port)

# CPU ticks (user + system) of a process and its children.
ticks() {
    local total=0 p
    for p in "$1" $(pgrep -P "$1" || true); do
        if [ -r "/proc/$p/stat" ]; then
            total=$((total + $(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$p/stat")))
        fi
    done
    echo "$total"
}

# Fresh wrapped TGMKs for group A, one per call, signed by the dispatcher.
(
    cd "$dir"
    "$MCX" kms init --kms-uri kms.mcx.example --out community.json >/dev/null
    "$MCX" kms issue community.json --user sip:dispatcher@mcx.example >dispatcher.json
)
make_wraps() {
    echo SEQUENTIAL >"$dir/wraps.csv"
    seq "$CALLS" | xargs -P 2 -I{} "$MCX" mikey wrap-tgmk --keys "$dir/dispatcher.json" \
        --temporary-group sip:tg-1@mcx.example \
        --group sip:group-a@mcx.example:0a000001:000102030405060708090a0b0c0d0e0f |
        awk '{ print $2 }' >>"$dir/wraps.csv"
}

cat >"$dir/topology.toml" <<EOF
[kms]
uri = "kms.mcx.example"
http = "127.0.0.1:$(free_port)"
[gms]
uri = "sip:gms@mcx.example"
token = "token-gms"
http = "127.0.0.1:$(free_port)"
[controlling]
uri = "sip:controlling@mcx.example"
sip = "127.0.0.1:$uac"
floor = "127.0.0.1:$(free_port)"
allowed_initiators = ["sip:dispatcher@mcx.example"]
[[controlling.temporary_group]]
id = "sip:tg-1@mcx.example"
groups = ["sip:group-a@mcx.example"]
[[mc_server]]
uri = "sip:mcs-a@mcx.example"
sip = "127.0.0.1:$fwd"
groups = ["sip:group-a@mcx.example"]
[[group]]
id = "sip:group-a@mcx.example"
name = "Group A"
members = ["sip:dispatcher@mcx.example", "sip:a1@mcx.example"]
[[user]]
uri = "sip:dispatcher@mcx.example"
token = "token-dispatcher"
sip = "127.0.0.1:$(free_port)"
floor = "127.0.0.1:$(free_port)"
[[user]]
uri = "sip:a1@mcx.example"
token = "token-a1"
sip = "127.0.0.1:$uas"
floor = "127.0.0.1:$(free_port)"
[deadlines]
# SIPp as the controlling server sends no keep-alive.
keepalive_ms = 0
[limits]
mc_server_calls = $((CALLS + 100))
EOF
sed -e "s|@LISTEN@|127.0.0.1:$fwd|; s|@NEXT@|127.0.0.1:$uas|; s|@MPATH@|$MPATH|" \
    "$here/kamailio-side-by-side/kamailio.cfg" >"$dir/kamailio.cfg"

start_forwarder() {
    case "$1" in
    mcx)
        "$MCX" run "$dir/topology.toml" sip:mcs-a@mcx.example >"$dir/mcx.log" 2>&1 &
        fpid=$!
        for _ in $(seq 100); do grep -q '^ready' "$dir/mcx.log" && break; sleep 0.1; done
        ;;
    kamailio)
        kamailio -f "$dir/kamailio.cfg" -DD -E -w "$dir" -Y "$dir" >"$dir/kamailio.log" 2>&1 &
        fpid=$!
        sleep 1.5
        ;;
    esac
    pids+=("$fpid")
}

# One run through forwarder $1: sets $line to "name calls ticks load".
run() {
    local name=$1
    start_forwarder "$name"
    sipp -sf "$here/kamailio-side-by-side/uas.xml" -i 127.0.0.1 -p "$uas" -t u1 -m "$CALLS" \
        -nostdin -timeout 120s -trace_err -error_file "$dir/uas-$name.err" >/dev/null 2>&1 &
    local uas_pid=$!
    pids+=("$uas_pid")
    sleep 0.3
    local before after
    before=$(ticks "$fpid")
    local ok=yes
    sipp "127.0.0.1:$fwd" -sf "$here/kamailio-side-by-side/uac.xml" -inf "$dir/wraps.csv" \
        -i 127.0.0.1 -p "$uac" -t u1 -r "$RATE" -m "$CALLS" -nostdin -timeout 120s \
        -trace_err -error_file "$dir/uac-$name.err" -trace_stat -stf "$dir/uac-$name.csv" \
        >/dev/null 2>&1 || ok=no
    sleep 0.5
    after=$(ticks "$fpid")
    wait "$uas_pid" || ok=no
    kill "$fpid" 2>/dev/null || true
    wait "$fpid" 2>/dev/null || true
    local load
    load=$(cut -d' ' -f1 /proc/loadavg)
    if [ "$ok" != yes ]; then
        echo "$name: SIPp reported failed calls; see $dir (kept)" >&2
        head -c 600 "$dir/uac-$name.err" >&2 || true
        keep=yes
        exit 1
    fi
    line="$name $CALLS $((after - before)) $load"
}

hz=$(getconf CLK_TCK)
echo "side by side: $CALLS calls at $RATE calls/s per run (INVITE, 200, ACK: 3 messages forwarded per call), $ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
results=()
for round in $(seq "$ROUNDS"); do
    make_wraps
    for fwd_name in mcx kamailio; do
        run "$fwd_name"
        results+=("$line")
        set -- $line
        awk -v n="$1" -v calls="$2" -v t="$3" -v hz="$hz" -v load="$4" -v r="$round" 'BEGIN {
            cpu = t / hz; printf "round %d %-9s CPU %.2f s: %.1f µs per call, %.1f µs per forwarded message (load average %s)\n",
                r, n, cpu, cpu * 1e6 / calls, cpu * 1e6 / (3 * calls), load }'
    done
done
for name in mcx kamailio; do
    printf '%s\n' "${results[@]}" | awk -v n="$name" -v hz="$hz" '$1 == n { printf "%.1f\n", ($3 / hz) * 1e6 / (3 * $2) }' |
        sort -n | awk -v n="$name" '{ v[NR] = $1 } END {
            printf "%-9s µs per forwarded message: median %.1f (range %.1f–%.1f over %d rounds)\n", n, v[int((NR + 1) / 2)], v[1], v[NR], NR }'
done
