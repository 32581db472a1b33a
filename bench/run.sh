#!/usr/bin/env bash
# netcost benchmarks (issue 4). Every figure in BENCHMARKS.md comes from one of these commands.
#
#   bench/run.sh sim [N ...]       the pipeline on the simulator, in process, one thread (cargo bench);
#                                  3 runs per size, default sizes 10k 100k 1M 2M
#   bench/run.sh agent-sim [N]     `netcost simulate --agent` (default 1M entries): the cycle time and
#                                  entries a user sees on /metrics, and the process's peak RSS; then the
#                                  simulator alone (`--for`) for its own share
#   bench/run.sh soak [MINUTES]    1M entries, 20% churn per minute, `--agent`, RSS sampled every 30 s
#                                  (default 10 minutes)
#   bench/run.sh kernel [N]        real kernel (root): N UDP entries (default 1M) in a scratch network
#                                  namespace; the agent's cycle vs a bare dump that only counts entries
#                                  vs `conntrack -L -o extended`, and the agent's peak RSS
#
# Medians are of the runs named. Timings depend on the machine's other load; the sim figures
# also report thread CPU time, which does not.
set -euo pipefail
cd "$(dirname "$0")/.."

# NETCOST_BIN: a netcost binary built elsewhere (for example from a clean checkout); else this tree.
BIN=${NETCOST_BIN:-target/release/netcost}
COUNT_DUMP=${COUNT_DUMP:-target/release/examples/count_dump}
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "n/a"}'; }
status_kib() { awk -v f="$2:" '$1==f {print $2}' "/proc/$1/status" 2>/dev/null || true; }
metric() { # metric NAME, from /metrics at $METRICS_URL, run through $CURL
    $CURL -s "$METRICS_URL" | awk -v m="$1" '$1==m {print $2}'
}
build() { [[ -n "${NETCOST_BIN:-}" ]] || cargo build --release -q -p netcost --bin netcost; }

# Runs the agent (command in "$@") until it has done $CYCLES cycles; prints the parse time of
# cycles 2..$CYCLES, one per line, on fd 3, and the peak RSS (KiB) on fd 4.
measure_agent() {
    "$@" >/tmp/netcost-bench-agent.log 2>&1 &
    local pid=$! seen=0 cycles
    while :; do
        sleep 0.5
        kill -0 "$pid" 2>/dev/null || { echo "agent exited; see /tmp/netcost-bench-agent.log" >&2; return 1; }
        cycles=$(metric netcost_cycles_total || true)
        [[ -n "$cycles" && "$cycles" != "$seen" ]] || continue
        seen=$cycles
        if (( cycles >= 2 )); then
            echo "cycle $cycles: parse_time_ms=$(metric kubecost_network_costs_parse_time) parsed_entries=$(metric kubecost_network_costs_parsed_entries) rss_mib=$(( $(status_kib "$pid" VmRSS) / 1024 ))" >&2
            metric kubecost_network_costs_parse_time >&3
        fi
        (( cycles >= CYCLES )) && break
    done
    status_kib "$pid" VmHWM >&4
    kill -TERM "$pid"; wait "$pid" || true
}

sim() {
    local sizes=("$@")
    (( ${#sizes[@]} )) || sizes=(10000 100000 1000000 2000000)
    cargo bench -q -p netcost-sim --bench sim_cycle --no-run 2>/dev/null
    for n in "${sizes[@]}"; do
        for run in 1 2 3; do
            cargo bench -q -p netcost-sim --bench sim_cycle -- "$n" 2>/dev/null | tail -1
        done
    done
}

agent_sim() {
    local n=${1:-1000000}
    build
    METRICS_URL=http://127.0.0.1:39201/metrics CURL=curl CYCLES=7
    exec 3>/tmp/netcost-bench-times 4>/tmp/netcost-bench-rss
    measure_agent "$BIN" simulate --agent --entries "$n" --churn-per-min 20% --interval 10s \
        --listen 127.0.0.1:39201
    exec 3>&- 4>&-
    echo "agent-sim entries=$n median_parse_time_ms=$(median </tmp/netcost-bench-times) peak_rss_mib=$(( $(cat /tmp/netcost-bench-rss) / 1024 ))"
    # The simulator alone, same table: its dumps (encode + parse into a counting sink) and RSS.
    "$BIN" simulate --entries "$n" --churn-per-min 20% --interval 10s --for 35s >/tmp/netcost-bench-bare.log 2>&1 &
    local pid=$! hwm=0
    while kill -0 "$pid" 2>/dev/null; do hwm=$(status_kib "$pid" VmHWM || echo "$hwm"); hwm=${hwm:-0}; sleep 0.5; done
    echo "simulator-alone entries=$n peak_rss_mib=$(( hwm / 1024 )) $(grep -o 'median_dump_ms: [0-9.]*' /tmp/netcost-bench-bare.log)"
}

soak() {
    local minutes=${1:-10}
    build
    METRICS_URL=http://127.0.0.1:39202/metrics
    "$BIN" simulate --agent --entries 1000000 --churn-per-min 20% --interval 10s \
        --listen "127.0.0.1:39202" >/tmp/netcost-bench-soak.log 2>&1 &
    local pid=$! start=$SECONDS
    echo "elapsed_s rss_mib hwm_mib parse_time_ms tracked_flows destroy_events"
    while (( SECONDS - start < minutes * 60 )); do
        sleep 30
        echo "$((SECONDS - start)) $(( $(status_kib "$pid" VmRSS) / 1024 )) $(( $(status_kib "$pid" VmHWM) / 1024 )) $(curl -s "$METRICS_URL" | awk '$1=="kubecost_network_costs_parse_time"{t=$2} $1=="netcost_tracked_flows"{f=$2} $1=="netcost_conntrack_destroy_events_total"{d=$2} END {print t, f, d}')"
    done
    kill -TERM "$pid"; wait "$pid" || true
}

kernel() {
    local n=${1:-1000000}
    ns=netcost-bench-a peer=netcost-bench-b
    [[ $EUID -eq 0 ]] || { echo "kernel: needs root" >&2; exit 1; }
    build
    [[ -n "${NETCOST_BIN:-}" ]] || cargo build --release -q -p netcost-conntrack --example count_dump
    old_max=$(sysctl -n net.netfilter.nf_conntrack_max)
    old_hash=$(cat /sys/module/nf_conntrack/parameters/hashsize)
    cleanup() {
        ip netns del "$ns" 2>/dev/null || true
        ip netns del "$peer" 2>/dev/null || true
        sysctl -qw net.netfilter.nf_conntrack_max="$old_max"
        echo "$old_hash" >/sys/module/nf_conntrack/parameters/hashsize
    }
    trap cleanup EXIT
    cleanup
    # Room for the table: a bucket per entry, as a node sized for 1M flows would have.
    sysctl -qw net.netfilter.nf_conntrack_max=$(( n * 2 ))
    echo "$n" >/sys/module/nf_conntrack/parameters/hashsize
    ip netns add "$ns"; ip netns add "$peer"
    ip link add nb-a netns "$ns" type veth peer name nb-b netns "$peer"
    ip -n "$ns" link set lo up; ip -n "$ns" link set nb-a up
    ip -n "$peer" link set lo up; ip -n "$peer" link set nb-b up
    ip -n "$ns" addr add 10.200.0.1/24 dev nb-a
    ip -n "$peer" addr add 10.200.0.2/24 dev nb-b
    ip -n "$ns" route add 10.201.0.0/16 via 10.200.0.2
    # A ct rule makes the namespace track connections; the peer drops what arrives.
    ip netns exec "$ns" nft -f - <<'EOF'
table inet bench {
    chain out {
        type filter hook output priority 0;
        ct state new counter
    }
}
EOF
    ip netns exec "$peer" nft -f - <<'EOF'
table inet bench {
    chain in {
        type filter hook prerouting priority -300;
        drop
    }
}
EOF
    ip netns exec "$ns" sysctl -qw net.netfilter.nf_conntrack_acct=1 \
        net.netfilter.nf_conntrack_udp_timeout=7200 net.netfilter.nf_conntrack_udp_timeout_stream=7200
    echo "creating $n UDP entries..." >&2
    local t0=$SECONDS
    ip netns exec "$ns" python3 - "$n" <<'EOF'
import socket, sys
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload = b"x" * 64
for i in range(n):
    # 65,536 destinations x ports: one new tuple, so one new entry, per datagram.
    s.sendto(payload, ("10.201.%d.%d" % ((i >> 8) & 255, i & 255), 1024 + (i >> 16)))
EOF
    echo "entries: $(ip netns exec "$ns" conntrack -C) (created in $((SECONDS - t0)) s)" >&2

    echo "bare dump (count only), 5 runs:" >&2
    ip netns exec "$ns" "$COUNT_DUMP" 5 | tee /tmp/netcost-bench-floor >&2
    local floor; floor=$(grep -o 'ms=[0-9.]*' /tmp/netcost-bench-floor | cut -d= -f2 | median)

    echo "conntrack -L -o extended, 3 runs:" >&2
    local tool
    tool=$(for _ in 1 2 3; do
        local s e; s=$(date +%s%N)
        ip netns exec "$ns" conntrack -L -o extended >/dev/null 2>&1
        e=$(date +%s%N); echo "scale=1; ($e - $s) / 1000000" | bc
    done | tee -a /tmp/netcost-bench-tool | median)

    cat >/tmp/netcost-bench-inventory.yaml <<'EOF'
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: bench-node, labels: {topology.kubernetes.io/zone: zone-a, topology.kubernetes.io/region: region-1}}
  status: {addresses: [{type: InternalIP, address: 10.200.0.254}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: sender, namespace: bench, uid: bench-sender}
  spec: {nodeName: bench-node, containers: []}
  status: {phase: Running, podIP: 10.200.0.1}
EOF
    echo "agent, 6 cycles of 15 s:" >&2
    METRICS_URL=http://127.0.0.1:39203/metrics CURL="ip netns exec $ns curl" CYCLES=6
    exec 3>/tmp/netcost-bench-times 4>/tmp/netcost-bench-rss
    measure_agent ip netns exec "$ns" "$BIN" agent --node-name bench-node \
        --inventory /tmp/netcost-bench-inventory.yaml --listen 127.0.0.1:39203 --interval 15s
    exec 3>&- 4>&-
    local agent_ms; agent_ms=$(median </tmp/netcost-bench-times)
    echo "kernel entries=$n bare_dump_ms=$floor conntrack_L_ms=$tool agent_cycle_ms=$agent_ms agent_peak_rss_mib=$(( $(cat /tmp/netcost-bench-rss) / 1024 ))"
    echo "ratios: agent/bare=$(echo "scale=2; $agent_ms / $floor" | bc) conntrack-L/bare=$(echo "scale=2; $tool / $floor" | bc) agent/conntrack-L=$(echo "scale=2; $agent_ms / $tool" | bc)"
}

case "${1:-}" in
    sim) shift; sim "$@" ;;
    agent-sim) shift; agent_sim "$@" ;;
    soak) shift; soak "$@" ;;
    kernel) shift; kernel "$@" ;;
    *) sed -n '2,16p' "$0"; exit 2 ;;
esac
