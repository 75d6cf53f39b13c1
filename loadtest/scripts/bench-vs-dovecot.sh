#!/usr/bin/env bash
# Realistic mail, side by side with Dovecot, in one run (issue 10 items 8 and 9).
#
# On this machine, release build: starts a private Dovecot 2.3 (own config directory, port and
# passwd-file users, sdbox, login service in Dovecot's high-performance mode, Debian's defaults
# otherwise; see DOVECOT_LOGIN), `yubin dev` on a temporary data directory, and Yubin's
# distributed stack (redis-server with appendonly yes / appendfsync always, the repository's
# s3s-fs test server as a process, `yubin meta`, one `yubin imap`);
# makes the same users on each (load0..load<USERS-1>, password = name, and `bench`); loads the
# same generated corpus into each (`yubin-loadtest populate`: MAILBOX_SIZE messages per INBOX
# and a MESSAGES-message mailbox for `bench`); restarts the servers so that the first FETCH of
# bodies is cold; then, one server at a time while the others idle:
#   (a) `yubin-loadtest realistic-mailbox`: large-mailbox command latencies, ROUNDS rounds;
#   (b) `yubin-loadtest mixed --corpus realistic`: USERS users, CLIENTS clients, DURATION s,
#       REPEAT times in turns (dovecot, dev, distributed, dovecot, ...), so that load from
#       outside the benchmark falls on every server alike; `compare` takes the medians.
# For the distributed stack it also reads Redis `INFO commandstats` and the front-end's S3
# request counts around each command. Prints one table per server and the ratios to Dovecot
# (`yubin-loadtest compare`), and keeps the result files in OUT (default: a new directory
# under the temporary one, printed at the end and kept).
#
# Usage: loadtest/scripts/bench-vs-dovecot.sh [OUT]
# Environment: USERS=50 CLIENTS=50 DURATION=30 (seconds) MAILBOX_SIZE=100 MESSAGES=3000 ROUNDS=10 SEED=1
#   REPEAT=3 PARALLEL=4 (populating connections) SERVERS="dovecot dev distributed"
#   DROP_CACHES=0 (1: also drop the kernel page cache before the cold FETCH; needs root)
#   KEEP=0 (1: keep the servers' data directories)
#   DOVECOT_LOGIN=performance (security: Dovecot's default login mode, a new imap-login process
#     per connection; on a small machine that costs more than the session itself)
#   PROFILE=release (dev: a quick smoke run of the script itself; its numbers mean nothing)
set -euo pipefail
cd "$(dirname "$0")/../.."

USERS=${USERS:-50}
CLIENTS=${CLIENTS:-50}
DURATION=${DURATION:-30}
MAILBOX_SIZE=${MAILBOX_SIZE:-100}
MESSAGES=${MESSAGES:-3000}
ROUNDS=${ROUNDS:-10}
SEED=${SEED:-1}
PARALLEL=${PARALLEL:-4}
REPEAT=${REPEAT:-3}
SERVERS=${SERVERS:-"dovecot dev distributed"}
DROP_CACHES=${DROP_CACHES:-0}
KEEP=${KEEP:-0}
DOVECOT_LOGIN=${DOVECOT_LOGIN:-performance}
PROFILE=${PROFILE:-release}
BUCKET=yubin-bench

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
missing=()
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v bc >/dev/null 2>&1 || missing+=(bc)
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
case "$(dovecot --version)" in
2.3.*) ;;
*) echo "this script writes a Dovecot 2.3 configuration, found $(dovecot --version)" >&2; exit 1 ;;
esac

# Two invocations: built together, the loadtest's test-server feature of yubin-blob would be
# unified into the yubin binary too and rebuild it.
cargo build --profile "$PROFILE" -p yubin
cargo build --profile "$PROFILE" -p yubin-loadtest --features s3-server
bin=$PWD/target/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")
YUBIN=$bin/yubin
LOAD=$bin/yubin-loadtest
S3SERVER=$bin/yubin-s3-test-server

work=$(mktemp -d "${TMPDIR:-/tmp}/yubin-bench.XXXXXX")
chmod 755 "$work"
OUT=${1:-$work/results}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
declare -A pids=()

stop() { # name
    local pid=${pids[$1]:-}
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "pids[$1]"
}
cleanup() {
    for name in imap meta s3 redis dev dovecot; do stop "$name"; done
    if [ "$KEEP" = 1 ]; then
        echo "kept: $work"
    elif [ "${OUT#"$work"/}" != "$OUT" ]; then
        # The results live under $work: keep them, drop the servers' data.
        find "$work" -mindepth 1 -maxdepth 1 ! -path "$OUT" -exec rm -rf {} +
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # name port
    for _ in $(seq 600); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        if ! kill -0 "${pids[$1]}" 2>/dev/null; then break; fi
        sleep 0.1
    done
    echo "$1 did not come up on port $2; its log:" >&2
    tail -n 40 "$work/$1.log" >&2 || true
    exit 1
}

users=(bench)
for i in $(seq 0 $((USERS - 1))); do users+=("load$i"); done

# --- Dovecot, as services/yubin/tests/dovecot_diff.rs starts it --------------------------------
DOVECOT_PORT=$(free_port)
dovecot_dir=$work/dovecot
mkdir -p "$dovecot_dir"/{mail,run,state}
if [ "$(id -u)" = 0 ]; then
    # Login processes run unprivileged; mail processes refuse UID 0.
    login_user=dovenull internal_user=dovecot internal_group=dovecot
    mail_user=nobody mail_group=$(id -gn nobody)
    chown "$mail_user:$mail_group" "$dovecot_dir/mail"
else
    login_user=$(id -un) internal_user=$(id -un) internal_group=$(id -gn)
    mail_user=$(id -un) mail_group=$(id -gn)
fi
for u in "${users[@]}"; do echo "$u:{PLAIN}$u::::::"; done >"$dovecot_dir/users"
login_mode="" imap_mode=""
if [ "$DOVECOT_LOGIN" = performance ]; then
    # Dovecot's documented high-performance login mode: long-lived login processes, one per
    # CPU, each serving many connections; and imap processes reused for later sessions.
    login_mode="service_count = 0
  process_min_avail = $(nproc)"
    imap_mode="service imap {
  service_count = 1000
  process_min_avail = $(nproc)
}"
fi
cat >"$dovecot_dir/dovecot.conf" <<EOF
protocols = imap
listen = 127.0.0.1
base_dir = $dovecot_dir/run
state_dir = $dovecot_dir/state
instance_name = yubin-bench-$DOVECOT_PORT
log_path = $dovecot_dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = $login_user
default_internal_user = $internal_user
default_internal_group = $internal_group
first_valid_uid = 0
mail_location = sdbox:$dovecot_dir/mail/%u
# Room for every benchmark client (the defaults are 100 processes and 10 connections per user
# and address, made for many addresses, not one load generator).
default_process_limit = 500
default_client_limit = 4000
mail_max_userip_connections = 1000
namespace inbox {
  inbox = yes
  separator = /
  prefix =
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dovecot_dir/users
}
userdb {
  driver = static
  args = uid=$mail_user gid=$mail_group home=$dovecot_dir/mail/%u
}
service imap-login {
  chroot =
  $login_mode
  inet_listener imap {
    address = 127.0.0.1
    port = $DOVECOT_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
$imap_mode
EOF
start_dovecot() {
    dovecot -F -c "$dovecot_dir/dovecot.conf" </dev/null >"$work/dovecot.log" 2>&1 &
    pids[dovecot]=$!
    wait_port dovecot "$DOVECOT_PORT"
}

# --- yubin dev --------------------------------------------------------------------------------
DEV_IMAP=$(free_port) DEV_IMAPS=$(free_port) DEV_HTTP=$(free_port) DEV_LMTP=$(free_port)
start_dev() {
    RUST_LOG=warn "$YUBIN" dev --data-dir "$work/dev" \
        --imap-listen "127.0.0.1:$DEV_IMAP" --imaps-listen "127.0.0.1:$DEV_IMAPS" \
        --http-listen "127.0.0.1:$DEV_HTTP" --lmtp-listen "127.0.0.1:$DEV_LMTP" \
        </dev/null >"$work/dev.log" 2>&1 &
    pids[dev]=$!
    wait_port dev "$DEV_IMAP"
    wait_port dev "$DEV_HTTP"
}

# --- distributed: redis-server, s3s-fs, yubin meta, one yubin imap ---------------------------
REDIS_PORT=$(free_port) GRPC=$(free_port) META_HTTP=$(free_port)
DIST_IMAP=$(free_port) DIST_HTTP=$(free_port)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/grpc-secret"
export YUBIN_GRPC_SECRET_FILE=$work/grpc-secret
start_redis() {
    mkdir -p "$work/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --dir "$work/redis" \
        --appendonly yes --appendfsync always </dev/null >"$work/redis.log" 2>&1 &
    pids[redis]=$!
    wait_port redis "$REDIS_PORT"
}
start_s3() {
    rm -f "$work/s3.env"
    "$S3SERVER" --root "$work/s3" --bucket "$BUCKET" --env-file "$work/s3.env" \
        </dev/null >"$work/s3.log" 2>&1 &
    pids[s3]=$!
    for _ in $(seq 300); do [ -f "$work/s3.env" ] && break; sleep 0.1; done
    [ -f "$work/s3.env" ] || { cat "$work/s3.log" >&2; exit 1; }
}
# The S3 variables go to the Yubin roles only. `exec`, so that a role started in the background
# is the process whose id `$!` gives.
# shellcheck disable=SC2046
with_s3() { exec env RUST_LOG=warn $(cat "$work/s3.env") "$@"; }
start_meta() {
    with_s3 "$YUBIN" meta --redis-url "redis://127.0.0.1:$REDIS_PORT" \
        --grpc-listen "127.0.0.1:$GRPC" --http-listen "127.0.0.1:$META_HTTP" \
        --s3-bucket "$BUCKET" </dev/null >"$work/meta.log" 2>&1 &
    pids[meta]=$!
    wait_port meta "$GRPC"
    wait_port meta "$META_HTTP"
}
start_imap() {
    with_s3 "$YUBIN" imap --meta-url "http://127.0.0.1:$GRPC" \
        --s3-bucket "$BUCKET" --imap-listen "127.0.0.1:$DIST_IMAP" \
        --http-listen "127.0.0.1:$DIST_HTTP" --allow-plaintext-auth true \
        </dev/null >"$work/imap.log" 2>&1 &
    pids[imap]=$!
    wait_port imap "$DIST_IMAP"
    wait_port imap "$DIST_HTTP"
}

addr_of() {
    case $1 in
    dovecot) echo "127.0.0.1:$DOVECOT_PORT" ;;
    dev) echo "127.0.0.1:$DEV_IMAP" ;;
    distributed) echo "127.0.0.1:$DIST_IMAP" ;;
    esac
}
probes_of() {
    [ "$1" = distributed ] && echo "--redis 127.0.0.1:$REDIS_PORT --metrics 127.0.0.1:$DIST_HTTP"
    return 0
}
start_server() {
    case $1 in
    dovecot) start_dovecot ;;
    dev) start_dev ;;
    distributed) start_redis; start_s3; start_meta; start_imap ;;
    esac
}
restart_front() { # the processes that serve IMAP; Redis and S3 keep their data running
    case $1 in
    dovecot) stop dovecot; start_dovecot ;;
    dev) stop dev; start_dev ;;
    distributed) stop imap; stop meta; start_meta; start_imap ;;
    esac
}
add_users() {
    local admin
    case $1 in
    dovecot) return 0 ;; # the passwd-file above
    dev) admin=http://127.0.0.1:$DEV_HTTP ;;
    distributed) admin=http://127.0.0.1:$META_HTTP ;;
    esac
    for u in "${users[@]}"; do
        env -u YUBIN_ADMIN_TOKEN "$YUBIN" user --admin "$admin" add "$u" --password "$u" >/dev/null
    done
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for s in $SERVERS; do
    echo "== starting $s"
    start_server "$s"
    add_users "$s"
done
redis_info() { # field
    redis-cli -p "$REDIS_PORT" INFO all | tr -d '\r' | awk -F: -v f="$1" '$1 == f {print $2}'
}
redis_cpu() { echo "$(redis_info used_cpu_sys) + $(redis_info used_cpu_user)" | bc -l; }
# The messages still queued for the full-text index (every idx hash's length, summed).
redis_queued() {
    local n=0 key
    while read -r key; do
        [ -n "$key" ] && n=$((n + $(redis-cli -p "$REDIS_PORT" HLEN "$key")))
    done < <(redis-cli -p "$REDIS_PORT" --scan --pattern '*:idx:*')
    echo "$n"
}
for s in $SERVERS; do
    echo "== populating $s"
    if [ "$s" = distributed ]; then
        mem0=$(redis_info used_memory) cpu0=$(redis_cpu)
        evals0=$(redis_info cmdstat_evalsha | sed 's/calls=\([0-9]*\).*/\1/')
    fi
    "$LOAD" populate --addr "$(addr_of "$s")" --users "$USERS" --per-user "$MAILBOX_SIZE" \
        --bench-user bench --bench-password bench --bench-messages "$MESSAGES" \
        --seed "$SEED" --parallel "$PARALLEL" | tee -a "$OUT/populate-$s.txt"
    if [ "$s" = distributed ]; then
        # Redis holds a message's search text until meta's indexer has taken it: wait for the
        # queue to drain, then measure what stays.
        for _ in $(seq 600); do [ "$(redis_queued)" = 0 ] && break; sleep 0.5; done
        total=$((USERS * MAILBOX_SIZE + MESSAGES))
        mem1=$(redis_info used_memory) cpu1=$(redis_cpu)
        evals1=$(redis_info cmdstat_evalsha | sed 's/calls=\([0-9]*\).*/\1/')
        ix_bytes=$(du -sb "$work/s3/$BUCKET/ix" 2>/dev/null | cut -f1)
        body_bytes=$(du -sb "$work/s3/$BUCKET/u" 2>/dev/null | cut -f1)
        {
            echo "redis: $total messages appended, queue drained ($(redis_queued) left)"
            echo "redis used_memory per message: $(( (mem1 - mem0) / total )) bytes"
            echo "redis CPU per message: $(echo "($cpu1 - $cpu0) * 1000000 / $total" | bc) us" \
                "(all scripts: appends, selects, the indexer's claims and commits;" \
                "$((${evals1:-0} - ${evals0:-0})) EVALSHA)"
            echo "full-text index in S3 per message: $(( ${ix_bytes:-0} / total )) bytes" \
                "(bodies: $(( ${body_bytes:-0} / total )) bytes per message)"
        } | tee -a "$OUT/populate-$s.txt"
    fi
done
for s in $SERVERS; do
    rm -f "$OUT/$s.tsv"
    echo "== $s: large mailbox (restarted, so the first FETCH of bodies is cold)"
    restart_front "$s"
    if [ "$DROP_CACHES" = 1 ]; then sync; echo 3 | $sudo tee /proc/sys/vm/drop_caches >/dev/null; fi
    # shellcheck disable=SC2046
    "$LOAD" realistic-mailbox --addr "$(addr_of "$s")" --user bench --password bench \
        --messages "$MESSAGES" --rounds "$ROUNDS" --seed "$SEED" --out "$OUT/$s.tsv" \
        $(probes_of "$s")
done
# CPU seconds used so far by a process and its descendants, the exited ones included (a
# parent's cutime/cstime counts the children it reaped): Dovecot is a tree of processes.
tree_cpu() { # pid
    local all=" $1 " frontier=$1 next pid
    local table
    table=$(ps -e -o pid=,ppid=)
    while [ -n "$frontier" ]; do
        next=""
        for pid in $frontier; do
            next+=" $(awk -v p="$pid" '$2 == p {print $1}' <<<"$table")"
        done
        frontier=$(echo $next)
        all+="$frontier "
    done
    for pid in $all; do
        # Fields after the parenthesized command name: utime is the 12th, then stime, cutime,
        # cstime.
        sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13 + $14 + $15}'
    done | awk -v hz="$(getconf CLK_TCK)" '{t += $1} END {printf "%.2f", t / hz}'
}
processes_of() { # the processes serving a server, as name=pid
    case $1 in
    dovecot) echo "dovecot=${pids[dovecot]}" ;;
    dev) echo "yubin-dev=${pids[dev]}" ;;
    distributed) echo "redis-server=${pids[redis]} s3s-fs=${pids[s3]} yubin-meta=${pids[meta]} yubin-imap=${pids[imap]}" ;;
    esac
}
for rep in $(seq "$REPEAT"); do
    for s in $SERVERS; do
        echo "== $s: mixed workload $rep/$REPEAT, $USERS users, $CLIENTS clients, ${DURATION} s; load average $(cut -d' ' -f1-3 /proc/loadavg)"
        declare -A cpu_before=()
        for np in $(processes_of "$s"); do cpu_before[${np%%=*}]=$(tree_cpu "${np#*=}"); done
        started=$(date +%s.%N)
        TIMEFORMAT="%U %S"
        # `time` reports on fd 2 of the braces; the load generator's own stderr goes to fd 3.
        # shellcheck disable=SC2046
        { time "$LOAD" mixed --corpus realistic --addr "$(addr_of "$s")" --users "$USERS" \
            --clients "$CLIENTS" --seconds "$DURATION" --mailbox-size "$MAILBOX_SIZE" \
            --seed "$SEED" --populate-parallel "$PARALLEL" --out "$OUT/$s.tsv" \
            $(probes_of "$s") 2>&3; } 3>&2 2>"$work/time"
        elapsed=$(echo "$(date +%s.%N) - $started" | bc)
        # CPU as cores busy over the run, per process of the server and for the load generator
        # (which shares the machine's cores with them).
        {
            total=0
            for np in $(processes_of "$s"); do
                name=${np%%=*}
                used=$(echo "$(tree_cpu "${np#*=}") - ${cpu_before[$name]}" | bc)
                total=$(echo "$total + $used" | bc)
                printf 'value\tmixed CPU\t%s\t%s\tcores\n' "$name" "$(echo "scale=3; $used / $elapsed" | bc)"
            done
            printf 'value\tmixed CPU\tserver, all processes\t%s\tcores\n' "$(echo "scale=3; $total / $elapsed" | bc)"
            printf 'value\tmixed CPU\tload generator\t%s\tcores\n' \
                "$(echo "scale=3; ($(cut -d' ' -f1 "$work/time") + $(cut -d' ' -f2 "$work/time")) / $elapsed" | bc)"
        } | tee -a "$OUT/$s.tsv"
    done
done

{
    echo "# Realistic mail, side by side ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "$(nproc) CPUs, $(free -g | awk '/^Mem/ {print $2}') GiB; load average at the start: $load_start, before the report: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "Dovecot $(dovecot --version), $(redis-server --version | cut -d' ' -f3), yubin $(git rev-parse --short HEAD)"
    echo "DOVECOT_LOGIN=$DOVECOT_LOGIN USERS=$USERS CLIENTS=$CLIENTS DURATION=$DURATION REPEAT=$REPEAT MAILBOX_SIZE=$MAILBOX_SIZE MESSAGES=$MESSAGES ROUNDS=$ROUNDS SEED=$SEED"
    runs=()
    for s in $SERVERS; do runs+=("$s=$OUT/$s.tsv"); done
    "$LOAD" compare "${runs[@]}"
} | tee "$OUT/compare.md"
echo "results: $OUT"
