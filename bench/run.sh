#!/usr/bin/env bash
# netcost benchmarks. Every figure in BENCHMARKS.md comes from one of these commands.
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
#   bench/run.sh churn [RATE ...]  real kernel (root): short UDP flows (bench/churn.c, one 128-byte
#                                  datagram each, 1 s UDP timeout) at each RATE (default 1000 5000
#                                  20000 50000 100000 flows/s) for CHURN_SECONDS (30), per table size
#                                  (CHURN_TABLE_SIZES, default "0 1000000" idle pre-filled entries)
#                                  and CPU setting (CHURN_CPUS, default "none 500m"): the bytes the
#                                  agent counted vs the bytes sent, events lost, RSS, CPU, cycle time
#   bench/run.sh churn-kill [RATE] the same at RATE (default 5000), with the agent killed (-9)
#                                  CHURN_KILL_AT (15) s into the run and restarted CHURN_DOWN_SECONDS
#                                  (5) later on its state file: the bytes lost vs the flows that began
#                                  and ended while no agent could see them
#   bench/run.sh sockets [N ...]  real kernel (root): N loopback TCP connections (default 1000 9000)
#                                  in a scratch namespace, made from a cgroup named like a pod's;
#                                  one cycle of socket lookups of their node ends, batch (one dump
#                                  joined by tuple) vs per-flow (one inet_diag query each), and the
#                                  next cycle from the kept answers (examples/sock_lookup_cost.rs)
#   (churn: CHURN_AGENT_ARGS adds agent flags; CHURN_INTERVAL (10s) the agent's --interval;
#   CHURN_REPEAT (1) runs per point;
#   CHURN_KEEP_TMP=1 keeps the last run's scrapes and logs; agents' output in
#   /tmp/netcost-bench-churn-agent.log)
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
        # The process's CPU time (user + system, all threads) from the end of cycle 2 on: what
        # whole intervals cost, event reading and checkpoints included.
        if (( cycles == 2 )); then cpu_from=$(proc_cpu_ticks "$pid"); cycles_from=$cycles; fi
        (( cycles >= CYCLES )) && break
    done
    status_kib "$pid" VmHWM >&4
    if [[ -n "${cpu_from:-}" ]] && (( cycles > cycles_from )); then
        echo "scale=1; ($(proc_cpu_ticks "$pid") - $cpu_from) * 1000 / $(getconf CLK_TCK) / ($cycles - $cycles_from)" | bc >&5
    fi
    kill -TERM "$pid"; wait "$pid" || true
}
proc_cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

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
        [[ -z "${CHURN_CGROUP:-}" ]] || rmdir "$CHURN_CGROUP" 2>/dev/null || true
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
    # KERNEL_STATE_FILE=0 runs the agent without its checkpoint; KERNEL_CPU=500m under a cgroup CPU
    # quota (as `churn` does).
    local state_args=(--state-file /tmp/netcost-bench-state)
    rm -f /tmp/netcost-bench-state
    [[ "${KERNEL_STATE_FILE:-1}" == 1 ]] || state_args=()
    local interval=${KERNEL_INTERVAL:-10s}
    echo "agent, 6 cycles of $interval, ${state_args[*]:-no state file}, cpu ${KERNEL_CPU:-none}:" >&2
    METRICS_URL=http://127.0.0.1:39203/metrics CURL="ip netns exec $ns curl" CYCLES=6
    exec 3>/tmp/netcost-bench-times 4>/tmp/netcost-bench-rss 5>/tmp/netcost-bench-cpu
    local wrap=()
    if [[ -n "${KERNEL_CPU:-}" ]]; then
        churn_cgroup
        # shellcheck disable=SC2016
        wrap=(sh -c 'echo $$ >"$1/cgroup.procs" || exit 1; shift; exec "$@"' sh "$CHURN_CGROUP")
    fi
    measure_agent "${wrap[@]}" ip netns exec "$ns" "$BIN" agent --node-name bench-node \
        --inventory /tmp/netcost-bench-inventory.yaml --listen 127.0.0.1:39203 --interval "$interval" \
        "${state_args[@]}"
    exec 3>&- 4>&- 5>&-
    local agent_ms; agent_ms=$(median </tmp/netcost-bench-times)
    local cpu_ms; cpu_ms=$(cat /tmp/netcost-bench-cpu 2>/dev/null || echo n/a)
    echo "kernel entries=$n bare_dump_ms=$floor conntrack_L_ms=$tool agent_cycle_ms=$agent_ms agent_cpu_per_cycle_ms=$cpu_ms agent_peak_rss_mib=$(( $(cat /tmp/netcost-bench-rss) / 1024 )) state_file=${KERNEL_STATE_FILE:-1} interval=$interval"
    echo "ratios: agent/bare=$(echo "scale=2; $agent_ms / $floor" | bc) agent_cpu/bare=$(echo "scale=2; $cpu_ms / $floor" | bc 2>/dev/null) conntrack-L/bare=$(echo "scale=2; $tool / $floor" | bc) agent/conntrack-L=$(echo "scale=2; $agent_ms / $tool" | bc)"
}

# --- churn: short flows that begin and end between two dumps ------------------------------------
# Two scratch namespaces joined by a veth: the agent and bench/churn.c run in $CHURN_NS
# (10.203.0.1, the node's InternalIP in the inventory, so the generator's traffic is node
# traffic); the peer (10.203.0.2) drops everything at prerouting, before anything in it could
# answer, so no ICMP port unreachable and no reply bytes. Every packet stays in these namespaces.
CHURN_NS=netcost-churn-a CHURN_PEER=netcost-churn-b
CHURN_SRC=10.203.0.1 CHURN_DST=10.203.0.2
CHURN_PORT=39204
CHURN_CGROUP_NAME=netcost-churn
CHURN_UDP_TIMEOUT=1
CHURN_GEN=target/churn
# Every agent run of the last `churn` or `churn-kill`, appended.
CHURN_AGENT_LOG=/tmp/netcost-bench-churn-agent.log
CHURN_SECONDS=${CHURN_SECONDS:-30}
CHURN_INTERVAL=${CHURN_INTERVAL:-10s}
# Extra agent flags, word-split (for example "--reliable-events on").
CHURN_AGENT_ARGS=${CHURN_AGENT_ARGS:-}
# How long to wait after the generator for the table to lose its short flows.
CHURN_DRAIN_TIMEOUT=${CHURN_DRAIN_TIMEOUT:-120}

now_ns() { date +%s%N; }
ns_ct_count() { ip netns exec "$CHURN_NS" conntrack -C; }
# CPU seconds (user + system) of a process so far.
proc_cpu_s() {
    local tck; tck=$(getconf CLK_TCK)
    sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk -v t="$tck" '{printf "%.2f", ($12 + $13) / t}'
}
# One /metrics scrape into a file, so that every figure of a snapshot comes from the same instant.
scrape() { ip netns exec "$CHURN_NS" curl -sf "http://127.0.0.1:$CHURN_PORT/metrics" >"$1"; }
# Sum of every series of the families named (a family without series sums to 0).
msum() {
    local file=$1; shift
    awk -v names=" $* " '/^#/ {next} {n = $1; sub(/\{.*/, "", n)} index(names, " " n " ") {s += $NF} END {printf "%.0f", s}' "$file"
}
# The value of a series without labels, as written.
mval() { awk -v n="$2" '$1 == n {print $2; exit}' "$1"; }
# Bytes the agent has counted as sent: node traffic plus pod traffic.
counted_egress() { msum "$1" netcost_node_network_egress_bytes_total kubecost_pod_network_egress_bytes_total; }
# Unattributed bytes other than loopback (the scrapes themselves are loopback).
unattributed() {
    awk '/^netcost_unattributed_bytes_total\{/ && !/reason="loopback"/ {s += $NF} END {printf "%.0f", s}' "$1"
}
# Packets and bytes of the nft counter whose comment is $1, in the agent's namespace.
nft_counter() {
    ip netns exec "$CHURN_NS" nft list chain inet bench out |
        awk -v c="\"$1\"" '$0 ~ "comment " c {for (i = 1; i < NF; i++) {if ($i == "packets") p = $(i+1); if ($i == "bytes") b = $(i+1)}} END {print p + 0, b + 0}'
}
# From a log of "CLOCK_REALTIME_ns value" lines (the generator's flows sent, the sampler's table
# size): the value at each of the instants (ns) given.
value_at() {
    local log=$1; shift
    awk -v ts="$*" 'BEGIN {n = split(ts, t, " "); for (i = 1; i <= n; i++) v[i] = 0}
        {for (i = 1; i <= n; i++) if ($1 + 0 <= t[i] + 0) v[i] = $2}
        END {for (i = 1; i <= n; i++) printf "%s%s", v[i], (i < n ? " " : "\n")}' "$log"
}

churn_cleanup() {
    set +e
    [[ -n "${CHURN_AGENT_PID:-}" ]] && kill -KILL "$CHURN_AGENT_PID" 2>/dev/null && wait "$CHURN_AGENT_PID" 2>/dev/null
    [[ -n "${CHURN_GEN_PID:-}" ]] && kill -TERM "$CHURN_GEN_PID" 2>/dev/null && wait "$CHURN_GEN_PID" 2>/dev/null
    churn_stop_sampler
    CHURN_AGENT_PID= CHURN_GEN_PID=
    ip netns del "$CHURN_NS" 2>/dev/null
    ip netns del "$CHURN_PEER" 2>/dev/null
    [[ -n "${CHURN_CGROUP:-}" && -d "$CHURN_CGROUP" ]] && rmdir "$CHURN_CGROUP"
    [[ -n "${churn_old_max:-}" ]] && sysctl -qw net.netfilter.nf_conntrack_max="$churn_old_max"
    [[ -n "${churn_old_hash:-}" ]] && echo "$churn_old_hash" >/sys/module/nf_conntrack/parameters/hashsize
    if [[ -n "${CHURN_KEEP_TMP:-}" ]]; then echo "churn: kept $CHURN_TMP" >&2
    elif [[ -n "${CHURN_TMP:-}" && -d "$CHURN_TMP" ]]; then rm -rf "$CHURN_TMP"; fi
    set -e
}

churn_prereqs() {
    [[ $EUID -eq 0 ]] || { echo "$1: needs root (network namespaces, nftables, a CPU cgroup)" >&2; exit 1; }
    local tool
    for tool in ip nft conntrack curl cc getconf; do
        command -v "$tool" >/dev/null || { echo "$1: needs $tool (apt-get install iproute2 nftables conntrack curl gcc)" >&2; exit 1; }
    done
    build
    mkdir -p target
    cc -O2 -Wall -o "$CHURN_GEN" bench/churn.c
    churn_old_max=$(sysctl -n net.netfilter.nf_conntrack_max)
    churn_old_hash=$(cat /sys/module/nf_conntrack/parameters/hashsize)
    CHURN_TMP=$(mktemp -d /tmp/netcost-churn.XXXXXX)
    : >"$CHURN_AGENT_LOG"
    trap churn_cleanup EXIT
    trap 'exit 130' INT TERM
    ip netns del "$CHURN_NS" 2>/dev/null || true
    ip netns del "$CHURN_PEER" 2>/dev/null || true
    cat >"$CHURN_TMP/inventory.yaml" <<INV
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Node
  metadata: {name: bench-node, labels: {topology.kubernetes.io/zone: zone-a, topology.kubernetes.io/region: region-1}}
  status: {addresses: [{type: InternalIP, address: $CHURN_SRC}]}
INV
}

# The CPU cgroup for "cpu=500m": cgroup v1's cpu controller if mounted, else cgroup2's.
churn_cgroup() {
    if [[ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]]; then
        CHURN_CGROUP=/sys/fs/cgroup/cpu/$CHURN_CGROUP_NAME
        [[ -d "$CHURN_CGROUP" ]] || mkdir "$CHURN_CGROUP"
        echo 100000 >"$CHURN_CGROUP/cpu.cfs_period_us"
        echo 50000 >"$CHURN_CGROUP/cpu.cfs_quota_us"
    else
        local root; root=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
        [[ -n "$root" ]] && grep -qw cpu "$root/cgroup.controllers" ||
            { echo "churn: no CPU controller (cgroup v1 cpu or cgroup2 cpu) to limit the agent" >&2; exit 1; }
        grep -qw cpu "$root/cgroup.subtree_control" || echo +cpu >"$root/cgroup.subtree_control"
        CHURN_CGROUP=$root/$CHURN_CGROUP_NAME
        [[ -d "$CHURN_CGROUP" ]] || mkdir "$CHURN_CGROUP"
        echo "50000 100000" >"$CHURN_CGROUP/cpu.max"
    fi
}
# Periods throttled / periods, from the cgroup's cpu.stat.
churn_throttled() {
    [[ -n "${CHURN_CGROUP:-}" && -f "$CHURN_CGROUP/cpu.stat" ]] || { echo "0 0"; return; }
    awk '$1 == "nr_periods" {p = $2} $1 == "nr_throttled" {t = $2} END {print t + 0, p + 0}' "$CHURN_CGROUP/cpu.stat"
}

# Fresh namespaces with N idle long-lived UDP entries, then the 1 s UDP timeout for what follows.
churn_setup() {
    local n=$1
    ip netns del "$CHURN_NS" 2>/dev/null || true
    ip netns del "$CHURN_PEER" 2>/dev/null || true
    # Room for the pre-filled entries and for short flows that wait for the kernel's GC.
    local max=$(( n + ${CHURN_CT_HEADROOM:-4000000} )) hash=$(( n > 1048576 ? n : 1048576 ))
    (( max > churn_old_max )) || max=$churn_old_max
    (( hash > churn_old_hash )) || hash=$churn_old_hash
    sysctl -qw net.netfilter.nf_conntrack_max="$max"
    echo "$hash" >/sys/module/nf_conntrack/parameters/hashsize
    ip netns add "$CHURN_NS"; ip netns add "$CHURN_PEER"
    local ns
    for ns in "$CHURN_NS" "$CHURN_PEER"; do
        # No IPv6 on the link: no neighbour discovery or MLD packets beside the generator's.
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
        ip -n "$ns" link set lo up
    done
    ip link add nc-churn-a netns "$CHURN_NS" type veth peer name nc-churn-b netns "$CHURN_PEER"
    ip -n "$CHURN_NS" link set nc-churn-a up; ip -n "$CHURN_PEER" link set nc-churn-b up
    ip -n "$CHURN_NS" addr add "$CHURN_SRC/24" dev nc-churn-a
    ip -n "$CHURN_PEER" addr add "$CHURN_DST/24" dev nc-churn-b
    # The ct rule makes the namespace track connections; loopback (the scrapes of /metrics) is
    # not tracked, so that the table holds only the generator's and the pre-filled entries. The
    # counters run after conntrack (priority 0 > -200) and count the layer-3 length conntrack
    # counts: "churn" the generator's datagrams, "fill" any packet of the pre-filled entries'
    # tuples (none should come after the fill). The peer drops everything before conntrack or
    # the UDP stack see it.
    ip netns exec "$CHURN_NS" nft -f - <<'NFT'
table inet bench {
    chain raw_out {
        type filter hook output priority -300;
        oif lo notrack
    }
    chain raw_in {
        type filter hook prerouting priority -300;
        iif lo notrack
    }
    chain out {
        type filter hook output priority 0;
        ct state new counter
        ip daddr 10.203.0.2 udp sport 10000-59999 udp dport 20000-20099 counter comment "churn"
        ip daddr 10.203.0.2 udp sport 1000-1099 counter comment "fill"
    }
}
NFT
    ip netns exec "$CHURN_PEER" nft -f - <<'NFT'
table inet bench {
    chain in {
        type filter hook prerouting priority -300;
        drop
    }
}
NFT
    ip netns exec "$CHURN_NS" sysctl -qw net.netfilter.nf_conntrack_acct=1 \
        net.netfilter.nf_conntrack_udp_timeout=7200 net.netfilter.nf_conntrack_udp_timeout_stream=7200
    if (( n > 0 )); then
        echo "creating $n idle UDP entries..." >&2
        local t0=$SECONDS
        # Tuples toward the peer's one address: source ports 1000.. (one socket each) x
        # destination ports 1..65535, apart from the generator's source ports 10000-59999.
        ip netns exec "$CHURN_NS" python3 - "$n" "$CHURN_DST" <<'PY'
import socket, sys
n, dst = int(sys.argv[1]), sys.argv[2]
payload = b"f" * 64
sock = None
for i in range(n):
    if i % 65535 == 0:
        if sock:
            sock.close()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("10.203.0.1", 1000 + i // 65535))
    sock.sendto(payload, (dst, 1 + i % 65535))
PY
        echo "entries: $(ns_ct_count) (created in $((SECONDS - t0)) s)" >&2
    fi
    # Existing entries keep the timeout they were given (7200 s); new ones get the short one.
    ip netns exec "$CHURN_NS" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=$CHURN_UDP_TIMEOUT \
        net.netfilter.nf_conntrack_udp_timeout_stream=$CHURN_UDP_TIMEOUT
    CHURN_BASE_ENTRIES=$(ns_ct_count)
}

# Starts the agent in $CHURN_NS (in the CPU cgroup when $2 is 500m) with state file $1; sets
# CHURN_AGENT_PID. The pid is the agent's: sh moves itself into the cgroup, then execs `ip netns
# exec`, which execs the agent.
churn_start_agent() {
    local state=$1 cpu=$2 log=$3 cg=
    [[ "$cpu" == none ]] || cg=$CHURN_CGROUP
    # shellcheck disable=SC2086
    sh -c '[ -z "$1" ] || echo $$ >"$1/cgroup.procs" || exit 1; shift; exec "$@"' sh "$cg" \
        ip netns exec "$CHURN_NS" "$BIN" agent --node-name bench-node \
        --inventory "$CHURN_TMP/inventory.yaml" --listen "127.0.0.1:$CHURN_PORT" \
        --interval "$CHURN_INTERVAL" --state-file "$state" $CHURN_AGENT_ARGS >>"$log" 2>&1 &
    CHURN_AGENT_PID=$!
}

# Waits until the agent has completed $1 cycles (netcost_cycles_total); leaves the last scrape
# in $CHURN_TMP/wait.prom.
churn_wait_cycles() {
    local want=$1 timeout=${2:-600} t0=$SECONDS c
    while :; do
        kill -0 "$CHURN_AGENT_PID" 2>/dev/null || { echo "churn: the agent exited; its log:" >&2; tail -20 "$CHURN_AGENT_LOG" >&2; exit 1; }
        if scrape "$CHURN_TMP/wait.prom" 2>/dev/null; then
            c=$(msum "$CHURN_TMP/wait.prom" netcost_cycles_total)
            (( c >= want )) && return 0
        fi
        (( SECONDS - t0 < timeout )) || { echo "churn: no cycle $want after ${timeout}s" >&2; exit 1; }
        sleep 0.25
    done
}
churn_cycles() { msum "$CHURN_TMP/wait.prom" netcost_cycles_total; }

# Runs the generator in the background (sets CHURN_GEN_PID); its summary goes to $2, its log to $3.
churn_start_gen() {
    ip netns exec "$CHURN_NS" "$CHURN_GEN" -r "$1" -d "$CHURN_SECONDS" -s "$CHURN_SRC" -t "$CHURN_DST" \
        -z 128 -l "$3" >"$2" &
    CHURN_GEN_PID=$!
}
# Waits for the generator, watching the agent and the longest cycle on the way (CHURN_MAX_CYCLE_MS).
churn_wait_gen() {
    CHURN_MAX_CYCLE_MS=0
    local ms
    while kill -0 "$CHURN_GEN_PID" 2>/dev/null; do
        sleep 1
        if [[ -n "${CHURN_AGENT_PID:-}" ]] && scrape "$CHURN_TMP/during.prom" 2>/dev/null; then
            ms=$(mval "$CHURN_TMP/during.prom" kubecost_network_costs_parse_time)
            CHURN_MAX_CYCLE_MS=$(awk -v a="$CHURN_MAX_CYCLE_MS" -v b="$ms" 'BEGIN {print (b > a ? b : a)}')
        fi
    done
    wait "$CHURN_GEN_PID" || { echo "churn: the generator failed" >&2; exit 1; }
    CHURN_GEN_PID=
}
# The namespace's table size, on every change (1 ms polling), into $1 (bench/churn.c -w).
churn_start_sampler() {
    ip netns exec "$CHURN_NS" "$CHURN_GEN" -w "$1" &
    CHURN_SAMPLER_PID=$!
}
churn_stop_sampler() {
    [[ -n "${CHURN_SAMPLER_PID:-}" ]] || return 0
    kill -TERM "$CHURN_SAMPLER_PID" 2>/dev/null || true
    wait "$CHURN_SAMPLER_PID" 2>/dev/null || true
    CHURN_SAMPLER_PID=
}
gen_field() { tr ' ' '\n' <"$1" | awk -F= -v k="$2" '$1 == k {print $2}'; }

# After the generator: the UDP timeout, the table back to its pre-filled entries (or
# CHURN_DRAIN_TIMEOUT), and two more cycles, the last of them after the drain.
churn_settle() {
    local c_end t0
    churn_wait_cycles 0; c_end=$(churn_cycles)
    sleep "$CHURN_UDP_TIMEOUT"
    t0=$SECONDS
    while (( $(ns_ct_count) > CHURN_BASE_ENTRIES && SECONDS - t0 < CHURN_DRAIN_TIMEOUT )); do sleep 1; done
    CHURN_RESIDUAL=$(( $(ns_ct_count) - CHURN_BASE_ENTRIES ))
    CHURN_DRAIN_S=$(( SECONDS - t0 ))
    churn_wait_cycles 0
    local want=$(( $(churn_cycles) + 1 ))
    (( want >= c_end + 2 )) || want=$(( c_end + 2 ))
    churn_wait_cycles "$want"
}

churn_one() {
    local n=$1 rate=$2 cpu=$3 run=$CHURN_TMP/run
    rm -rf "$run"; mkdir -p "$run"
    churn_start_agent "$run/state" "$cpu" "$CHURN_AGENT_LOG"
    churn_wait_cycles 1 900
    scrape "$run/before.prom"
    local cpu_before; cpu_before=$(proc_cpu_s "$CHURN_AGENT_PID")
    local thr_before; thr_before=$(churn_throttled)
    local churn_before fill_before
    churn_before=$(nft_counter churn); fill_before=$(nft_counter fill)

    churn_start_sampler "$run/count.log"
    churn_start_gen "$rate" "$run/gen.out" "$run/gen.log"
    churn_wait_gen
    churn_settle
    churn_stop_sampler

    scrape "$run/after.prom"
    CHURN_MAX_CYCLE_MS=$(awk -v a="$CHURN_MAX_CYCLE_MS" -v b="$(mval "$run/after.prom" kubecost_network_costs_parse_time)" 'BEGIN {print (b > a ? b : a)}')
    local cpu_after hwm; cpu_after=$(proc_cpu_s "$CHURN_AGENT_PID"); hwm=$(status_kib "$CHURN_AGENT_PID" VmHWM)
    local thr_after; thr_after=$(churn_throttled)
    local churn_after fill_after
    churn_after=$(nft_counter churn); fill_after=$(nft_counter fill)
    kill -TERM "$CHURN_AGENT_PID"; wait "$CHURN_AGENT_PID" || true; CHURN_AGENT_PID=

    local sent counted wire fill_pkts
    sent=$(gen_field "$run/gen.out" sent_bytes)
    counted=$(( $(counted_egress "$run/after.prom") - $(counted_egress "$run/before.prom") ))
    wire=$(( ${churn_after#* } - ${churn_before#* } ))
    fill_pkts=$(( ${fill_after% *} - ${fill_before% *} ))
    (( wire == sent )) || echo "churn: WARNING: nft counted $wire bytes of the generator's, it reported $sent" >&2
    (( fill_pkts == 0 )) || echo "churn: WARNING: $fill_pkts packets on the pre-filled tuples during the run; the delta is not the generator's alone" >&2
    local thr=""
    [[ "$cpu" == none ]] || thr=" throttled_periods=$(( ${thr_after% *} - ${thr_before% *} ))/$(( ${thr_after#* } - ${thr_before#* } ))"
    echo "churn table=$n rate=$rate achieved=$(gen_field "$run/gen.out" achieved) cpu=$cpu" \
        "flows=$(gen_field "$run/gen.out" flows) send_failures=$(gen_field "$run/gen.out" send_failures)" \
        "sent_bytes=$sent counted_bytes=$counted" \
        "counted_pct=$(awk -v c="$counted" -v s="$sent" 'BEGIN {if (s > 0) printf "%.3f", 100 * c / s; else print "n/a"}')" \
        "diff_bytes=$(( counted - sent ))" \
        "events_lost=$(( $(msum "$run/after.prom" netcost_conntrack_events_lost_total) - $(msum "$run/before.prom" netcost_conntrack_events_lost_total) ))" \
        "destroy_events=$(( $(msum "$run/after.prom" netcost_conntrack_destroy_events_total) - $(msum "$run/before.prom" netcost_conntrack_destroy_events_total) ))" \
        "vanished=$(( $(msum "$run/after.prom" netcost_flows_vanished_total) - $(msum "$run/before.prom" netcost_flows_vanished_total) ))" \
        "unattributed_bytes=$(( $(unattributed "$run/after.prom") - $(unattributed "$run/before.prom") ))" \
        "peak_rss_mib=$(( hwm / 1024 )) agent_cpu_s=$(awk -v a="$cpu_after" -v b="$cpu_before" 'BEGIN {printf "%.2f", a - b}')" \
        "agent_cpu_total_s=$cpu_after cycle_ms=$(printf %.0f "$(mval "$run/after.prom" kubecost_network_costs_parse_time)")" \
        "cycle_ms_max=$(printf %.0f "$CHURN_MAX_CYCLE_MS") drain_s=$CHURN_DRAIN_S residual_entries=$CHURN_RESIDUAL" \
        "peak_entries=$(awk -v b="$CHURN_BASE_ENTRIES" '$2 - b > m {m = $2 - b} END {print m + 0}' "$run/count.log")" \
        "fill_packets=$fill_pkts table_after=$(ns_ct_count)$thr"
}

churn() {
    local rates=("$@")
    (( ${#rates[@]} )) || rates=(1000 5000 20000 50000 100000)
    local sizes=(${CHURN_TABLE_SIZES:-0 1000000}) cpus=(${CHURN_CPUS:-none 500m})
    churn_prereqs churn
    [[ " ${cpus[*]} " != *" 500m "* ]] || churn_cgroup
    echo "# agent $("$BIN" --version) args: --interval $CHURN_INTERVAL --state-file FILE${CHURN_AGENT_ARGS:+ $CHURN_AGENT_ARGS}; generator $CHURN_SECONDS s per run, 156 B per flow" >&2
    local n rate cpu i
    for n in "${sizes[@]}"; do
        churn_setup "$n"
        for cpu in "${cpus[@]}"; do
            for rate in "${rates[@]}"; do
                for (( i = 0; i < ${CHURN_REPEAT:-1}; i++ )); do
                    churn_one "$n" "$rate" "$cpu"
                done
            done
        done
    done
}

# kill -9 under churn: the agent killed CHURN_KILL_AT s into the generator's run and restarted
# CHURN_DOWN_SECONDS later on the same state file.
churn_kill() {
    local rate=${1:-5000} n=${CHURN_KILL_TABLE:-0} kill_at=${CHURN_KILL_AT:-15} down=${CHURN_DOWN_SECONDS:-5}
    (( kill_at + down + 2 < CHURN_SECONDS )) || { echo "churn-kill: CHURN_SECONDS must exceed CHURN_KILL_AT + CHURN_DOWN_SECONDS + 2" >&2; exit 2; }
    churn_prereqs churn-kill
    echo "# agent $("$BIN" --version) args: --interval $CHURN_INTERVAL --state-file FILE${CHURN_AGENT_ARGS:+ $CHURN_AGENT_ARGS}; generator $CHURN_SECONDS s at $rate/s; kill -9 at ${kill_at}s, down ${down}s" >&2
    churn_setup "$n"
    local run=$CHURN_TMP/run
    rm -rf "$run"; mkdir -p "$run"
    churn_start_agent "$run/state" none "$CHURN_AGENT_LOG"
    churn_wait_cycles 1 900
    scrape "$run/before.prom"
    churn_start_sampler "$run/count.log"
    churn_start_gen "$rate" "$run/gen.out" "$run/gen.log"
    sleep "$kill_at"
    # The last cycle before the kill: its checkpoint is on disk (the agent saves before it publishes).
    scrape "$run/last.prom"
    local t_kill; t_kill=$(now_ns)
    kill -KILL "$CHURN_AGENT_PID"; wait "$CHURN_AGENT_PID" 2>/dev/null || true
    cp -p "$run/state" "$run/state.at-kill"
    sleep "$down"
    local t_restart; t_restart=$(now_ns)
    churn_start_agent "$run/state" none "$CHURN_AGENT_LOG"
    churn_wait_cycles 1 900
    cp "$CHURN_TMP/wait.prom" "$run/first.prom"
    churn_wait_gen
    churn_settle
    churn_stop_sampler
    scrape "$run/after.prom"
    kill -TERM "$CHURN_AGENT_PID"; wait "$CHURN_AGENT_PID" || true; CHURN_AGENT_PID=

    # The last checkpoint: written when the state file last changed (the agent saves it at the end
    # of a cycle), from a dump that began the cycle's duration earlier.
    local ck ck_dur b_end b_dur u=$CHURN_UDP_TIMEOUT
    ck=$(stat -c %.9Y "$run/state.at-kill")
    ck_dur=$(mval "$run/last.prom" netcost_cycle_duration_seconds)
    b_end=$(mval "$run/first.prom" netcost_last_cycle_timestamp_seconds)
    b_dur=$(mval "$run/first.prom" netcost_cycle_duration_seconds)
    # Instants (ns), in order: 0 the checkpoint's dump began, 1 the checkpoint was written,
    # 2 the kill, 3 the restart minus the UDP timeout, 4 the restart, 5 the restarted agent's first
    # dump began, minus the UDP timeout, 6 its first cycle ended.
    local ts
    ts=$(awk -v c="$ck" -v cd="$ck_dur" -v be="$b_end" -v bd="$b_dur" -v k="$t_kill" -v r="$t_restart" -v u="$u" \
        'BEGIN {printf "%.0f %.0f %s %.0f %s %.0f %.0f", (c - cd) * 1e9, c * 1e9, k, r - u * 1e9, r, (be - bd - u) * 1e9, be * 1e9}')
    awk -v e="$b_end" -v r="$t_restart" 'BEGIN {exit !(e * 1e9 < r)}' &&
        echo "churn-kill: WARNING: the restarted agent's first cycle ends before its start; figures are off" >&2
    local f c
    # shellcheck disable=SC2086
    read -r -a f <<<"$(value_at "$run/gen.log" $ts)"   # flows sent by each instant
    # shellcheck disable=SC2086
    read -r -a c <<<"$(value_at "$run/count.log" $ts)" # table size at each instant
    local per sent counted lost
    per=$(gen_field "$run/gen.out" l3_bytes_per_flow)
    sent=$(gen_field "$run/gen.out" sent_bytes)
    counted=$(( $(counted_egress "$run/after.prom") - $(counted_egress "$run/before.prom") ))
    lost=$(( sent - counted ))
    # down: flows that began after the kill and had expired by the restart (began and ended while
    # the agent was down).
    local down=$(( (f[3] - f[2]) * per ))
    # floor: flows that began while no agent listened and had expired before the restarted
    # agent's first dump. With nf_conntrack_events=2 an entry made while nobody listens has no
    # event extension, so no DESTROY event ever comes for it, and a dump skips expired entries:
    # no agent can count these.
    local fl_end=$(( f[5] < f[4] ? f[5] : f[4] ))
    local floor=$(( (fl_end > f[2] ? fl_end - f[2] : 0) * per ))
    # ceiling: flows that began after the checkpoint's dump began and before the restarted
    # agent's first cycle ended; a flow outside it is in the checkpoint or seen after the restart.
    local ceiling=$(( (f[6] - f[0]) * per ))
    # Entries the kernel destroyed (GC, 1 s after their packet at the earliest) between the
    # checkpoint and the kill, whose events went to the killed agent after its last checkpoint,
    # and while no agent ran, whose events went nowhere. The ones among them that began after the
    # checkpoint's dump are lost on top of the floor; GC's lag decides how many.
    local gone_ck_kill=$(( c[1] + f[2] - f[1] - c[2] )) gone_down=$(( c[2] + f[4] - f[2] - c[4] ))
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.3f", a / b; else print "n/a"}'; }
    echo "churn-kill table=$n rate=$rate achieved=$(gen_field "$run/gen.out" achieved)" \
        "flows=$(gen_field "$run/gen.out" flows) send_failures=$(gen_field "$run/gen.out" send_failures)" \
        "sent_bytes=$sent counted_bytes=$counted lost_bytes=$lost lost_flows=$(( lost / per ))" \
        "counted_pct=$(awk -v c="$counted" -v s="$sent" 'BEGIN {if (s > 0) printf "%.3f", 100 * c / s; else print "n/a"}')" \
        "down_s=$(awk -v a="$t_kill" -v b="$t_restart" 'BEGIN {printf "%.2f", (b - a) / 1e9}')" \
        "down_window_bytes=$down lost_over_down=$(ratio "$lost" "$down")" \
        "floor_bytes=$floor lost_over_floor=$(ratio "$lost" "$floor") lost_minus_floor_flows=$(( (lost - floor) / per ))" \
        "ceiling_bytes=$ceiling" \
        "destroyed_ckpt_to_kill=$gone_ck_kill destroyed_while_down=$gone_down" \
        "kill_after_checkpoint_s=$(awk -v e="$ck" -v k="$t_kill" 'BEGIN {printf "%.2f", k / 1e9 - e}')" \
        "first_cycle_after_restart_s=$(awk -v e="$b_end" -v r="$t_restart" 'BEGIN {printf "%.2f", e - r / 1e9}')" \
        "events_lost_after_restart=$(msum "$run/after.prom" netcost_conntrack_events_lost_total)" \
        "vanished_after_restart=$(msum "$run/after.prom" netcost_flows_vanished_total)"
}

sockets() {
    local sizes=("$@")
    ((${#sizes[@]})) || sizes=(1000 9000)
    cargo build --release -q -p netcost-conntrack --example sock_lookup_cost
    # `ip netns exec` gives the example a /sys of its own, without the host's cgroup mounts:
    # mount the cgroup2 hierarchy again where it can see it.
    local mount="/tmp/netcost-bench-cgroup2-$$"
    mkdir -p "$mount"
    mount -t cgroup2 none "$mount"
    local uid=00000000_0000_4000_8000_0000000000be
    local top="$mount/netcost-bench-$$" pod
    pod="$top/kubepods.slice/kubepods-pod$uid.slice"
    mkdir -p "$pod"
    # Leave no cgroup, mount or namespace behind, also when a run fails.
    trap 'ip netns del "netcost-bench-sockets-$$" 2>/dev/null; rmdir "$pod" "$top/kubepods.slice" "$top" 2>/dev/null; umount "$mount" 2>/dev/null; rmdir "$mount" 2>/dev/null' EXIT
    for n in "${sizes[@]}"; do
        local ns="netcost-bench-sockets-$$"
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        echo "== $n connections"
        # Two sockets per connection, plus the listeners; at most the hard limit (raising it needs
        # CAP_SYS_RESOURCE).
        local want=$(( 2 * n + 1024 )) hard
        hard=$(ulimit -Hn)
        [[ $hard != unlimited ]] && ((want > hard)) && want=$hard
        (ulimit -n "$want"; ip netns exec "$ns" "${CARGO_TARGET_DIR:-target}/release/examples/sock_lookup_cost" "$n" "$mount" "$pod")
        ip netns del "$ns"
    done
    rmdir "$pod" "$top/kubepods.slice" "$top"
    umount "$mount"
    rmdir "$mount"
}

case "${1:-}" in
    sim) shift; sim "$@" ;;
    sockets) shift; sockets "$@" ;;
    agent-sim) shift; agent_sim "$@" ;;
    soak) shift; soak "$@" ;;
    kernel) shift; kernel "$@" ;;
    churn) shift; churn "$@" ;;
    churn-kill) shift; churn_kill "$@" ;;
    *) sed -n '2,30p' "$0"; exit 2 ;;
esac
