#!/usr/bin/env bash
# cluster/local.sh — a one-machine Ray cluster for dpsweep (laptop or a single workstation).
#
# When to use it: you want `dpsweep sweep` to run against a long-lived Ray cluster on this
# machine (so several sweeps, `ray job submit` and the dashboard share one Ray instance),
# before moving to the cluster launcher (cluster/ray-cluster.yaml) or KubeRay
# (cluster/kuberay/). For a quick try you do not need it at all: `dpsweep sweep FILE.yaml`
# without --address starts and stops a private Ray instance by itself.
#
#   cluster/local.sh start     start a head node (token auth on by default, see below)
#   cluster/local.sh status    `ray status` of that head node
#   cluster/local.sh stop      stop THIS session's Ray processes and remove its stale files
#
# Settings (environment variables):
#   DPSWEEP_RAY_TMP             Ray temp dir, default /tmp/dpsweep-ray-<uid>/head. Keep it short: Ray
#                               puts Unix sockets under it and socket paths must stay < 108 bytes.
#                               Logs (including worker stdout) land under it: keep it on a local,
#                               non-shared disk. Ray makes this folder 0777 each time it starts, so
#                               its parent must be yours and 0700 (created so when missing).
#   DPSWEEP_RAY_NUM_CPUS        CPUs to offer, default: all (nproc)
#   DPSWEEP_RAY_AUTH            token (default) or disabled. With token, every client needs
#                               `export RAY_AUTH_MODE=token` and the token (default file
#                               ~/.ray/auth_token, created if missing; or RAY_AUTH_TOKEN /
#                               RAY_AUTH_TOKEN_PATH). See cluster/README.md, "Security".
#   DPSWEEP_RAY_PORT            GCS port, default 6379
#   DPSWEEP_RAY_DASHBOARD_PORT  dashboard / job API port, default 8265 (bound to 127.0.0.1)
#   DPSWEEP_RAY_AGENT_PORT      dashboard agent HTTP port, default 52365
#   DPSWEEP_RAY_CLIENT_PORT     Ray client server port, default 10001 (only with ray[client])
#   DPSWEEP_RAY_STOP_GRACE_S    seconds `stop` waits before SIGKILL, default 15
#   DPSWEEP_RAY_BIN             the `ray` executable; default: <repo>/.venv/bin/ray, else PATH
#
# Why `stop` does not call `ray stop`: `ray stop` kills every Ray process of this user on the
# machine (other sweeps, other ray.init() sessions, other people's tests on a shared box).
# `stop` here terminates only the processes of this session (those naming its temp dir or
# its GCS address, and their children), in `ray stop`'s order: raylet, the rest, GCS.
#
# Measured with Ray 2.60 on Linux: `--node-ip-address=127.0.0.1` is rewritten by Ray to the
# machine's routable address and the GCS listens on all interfaces; only the dashboard
# honours 127.0.0.1. That is why token auth is on by default here.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TMP_DIR="${DPSWEEP_RAY_TMP:-/tmp/dpsweep-ray-$(id -u)/head}"
TMP_DIR="${TMP_DIR%/}"
NUM_CPUS="${DPSWEEP_RAY_NUM_CPUS:-$(nproc)}"
AUTH="${DPSWEEP_RAY_AUTH:-token}"
GCS_PORT="${DPSWEEP_RAY_PORT:-6379}"
DASHBOARD_PORT="${DPSWEEP_RAY_DASHBOARD_PORT:-8265}"
AGENT_PORT="${DPSWEEP_RAY_AGENT_PORT:-52365}"
CLIENT_PORT="${DPSWEEP_RAY_CLIENT_PORT:-10001}"
STOP_GRACE_S="${DPSWEEP_RAY_STOP_GRACE_S:-15}"
ADDRESS_FILE="$TMP_DIR/ray_current_cluster"
AUTH_FILE="$TMP_DIR/dpsweep_auth_mode"
DEFAULT_ADDRESS_FILE="/tmp/ray/ray_current_cluster"

export RAY_USAGE_STATS_ENABLED=0

die() { echo "local.sh: $*" >&2; exit 2; }

find_ray() {
    if [[ -n "${DPSWEEP_RAY_BIN:-}" ]]; then
        [[ -x "$DPSWEEP_RAY_BIN" ]] || die "DPSWEEP_RAY_BIN=$DPSWEEP_RAY_BIN is not executable"
        echo "$DPSWEEP_RAY_BIN"
    elif [[ -x "$REPO_ROOT/.venv/bin/ray" ]]; then
        echo "$REPO_ROOT/.venv/bin/ray"
    elif command -v ray >/dev/null 2>&1; then
        command -v ray
    else
        die "no 'ray' found: install the project (pip install -e '.[model]') or set DPSWEEP_RAY_BIN"
    fi
}

# Python of the `ray` script, to ask what is installed next to it.
ray_python() { head -n1 "$1" | sed -e 's/^#!//' -e 's/ .*$//'; }

# shellcheck disable=SC2016  # the $ in the bracket is a literal character to escape
regex_escape() { printf '%s' "$1" | sed -e 's#[][\.*^$()+?{}|]#\\&#g'; }

current_address() { [[ -s "$ADDRESS_FILE" ]] && cat "$ADDRESS_FILE" || true; }

# PIDs of this session: command lines naming the temp dir, plus children. While those run,
# the GCS address is ours too and also names the session's processes that do not mention the
# temp dir (the Ray client server); a leftover address file alone is never trusted.
session_pids() {
    local pattern address
    local -a roots
    pattern="$(regex_escape "$TMP_DIR")([/ ]|$)"
    mapfile -t roots < <(pgrep -f -- "$pattern" || true)
    ((${#roots[@]} > 0)) || return 0
    address="$(current_address)"
    if [[ -n "$address" ]]; then
        mapfile -t roots < <(pgrep -f -- "$pattern|address=$(regex_escape "$address")( |$)" || true)
    fi
    with_descendants "${roots[@]}" | sort -un
}

with_descendants() {
    local pid
    for pid in "$@"; do
        [[ "$pid" == "$$" ]] && continue
        echo "$pid"
        # shellcheck disable=SC2046
        with_descendants $(pgrep -P "$pid" || true)
    done
}

is_alive() {  # zombies count as gone: they hold no port and run no code
    local state
    state="$(ps -o stat= -p "$1" 2>/dev/null || true)"
    [[ -n "$state" && "$state" != Z* ]]
}

terminate() {  # terminate PIDS..., escalating to SIGKILL after a share of the grace period
    local wait_s="$1"; shift
    (($# > 0)) || return 0
    kill -TERM "$@" 2>/dev/null || true
    local deadline=$((SECONDS + wait_s)) pid alive
    while :; do
        alive=()
        for pid in "$@"; do is_alive "$pid" && alive+=("$pid"); done
        ((${#alive[@]} == 0)) && return 0
        ((SECONDS >= deadline)) && break
        sleep 0.5
    done
    echo "local.sh: SIGKILL to ${#alive[@]} process(es) still alive after ${wait_s}s" >&2
    kill -KILL "${alive[@]}" 2>/dev/null || true
}

# Ray chmods its temp dir 0777 on every start: only a private parent (ours, mode 0700) keeps
# other users out of its sockets, logs and spilled objects. A missing parent is created 0700;
# an existing one must already be private (we do not change the mode of a folder you chose).
ensure_private_parent() {
    local parent mode owner
    parent="$(dirname "$TMP_DIR")"
    if [[ ! -e "$parent" ]]; then
        (umask 077 && mkdir -p "$parent")
    fi
    [[ -d "$parent" && ! -L "$parent" ]] || die "the parent of DPSWEEP_RAY_TMP ($parent) must be a folder"
    owner="$(stat -c %u "$parent")"
    mode="$(stat -c %a "$parent")"
    if [[ "$owner" != "$(id -u)" || "$mode" != 700 ]]; then
        die "the parent of DPSWEEP_RAY_TMP ($parent) is mode $mode, owner uid $owner: other users could reach Ray's sockets and logs (Ray makes $TMP_DIR 0777); use a folder whose parent is yours and mode 0700 (chmod 700 $parent), or leave DPSWEEP_RAY_TMP unset"
    fi
}

ensure_token() {
    if [[ -n "${RAY_AUTH_TOKEN:-}" ]]; then
        return 0
    fi
    if [[ -n "${RAY_AUTH_TOKEN_PATH:-}" ]]; then
        [[ -s "$RAY_AUTH_TOKEN_PATH" ]] || die "RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH is missing or empty"
        return 0
    fi
    # Creates ~/.ray/auth_token only if it does not exist, mode 600 from the start (Ray writes
    # it 0644: the umask closes that window); never prints the token.
    (umask 077 && "$1" get-auth-token --generate >/dev/null)
    chmod 600 "$HOME/.ray/auth_token" 2>/dev/null || true
}

cmd_start() {
    local ray address pids
    local -a extra=()
    case "$AUTH" in token | disabled) ;; *) die "DPSWEEP_RAY_AUTH must be 'token' or 'disabled', got '$AUTH'" ;; esac
    [[ "$NUM_CPUS" =~ ^[0-9]+$ ]] || die "DPSWEEP_RAY_NUM_CPUS must be a whole number, got '$NUM_CPUS'"
    pids="$(session_pids)"
    [[ -z "$pids" ]] || die "a Ray session is already running in $TMP_DIR (pids: ${pids//$'\n'/ }); run '$0 stop' first"
    ray="$(find_ray)"
    ensure_private_parent
    mkdir -p "$TMP_DIR"
    rm -f "$ADDRESS_FILE"
    [[ "$AUTH" == token ]] && ensure_token "$ray"
    # Jobs and Ray workers inherit the cwd and PATH of `ray start`: from the repository root,
    # relative dataset paths in search_spaces/*.yaml resolve, and `dpsweep` (installed next to
    # `ray`) is found by `ray job submit -- dpsweep ...` without uploading a working dir.
    cd "$REPO_ROOT"
    PATH="$(dirname "$ray"):$PATH"
    # The Ray client server only starts (and the flag is only accepted) with ray[client].
    if "$(ray_python "$ray")" -c "import grpc" >/dev/null 2>&1; then
        extra+=(--ray-client-server-port="$CLIENT_PORT")
    fi
    # RAY_AUTH_MODE is set explicitly either way: left unset, Ray 2.60 turns token auth on
    # whenever ~/.ray/auth_token happens to exist, and clients then fail to connect.
    RAY_AUTH_MODE="$AUTH" "$ray" start --head \
        --node-ip-address=127.0.0.1 \
        --port="$GCS_PORT" \
        --dashboard-host=127.0.0.1 \
        --dashboard-port="$DASHBOARD_PORT" \
        --dashboard-agent-listen-port="$AGENT_PORT" \
        --temp-dir="$TMP_DIR" \
        --num-cpus="$NUM_CPUS" \
        --disable-usage-stats \
        "${extra[@]}"
    echo "$AUTH" >"$AUTH_FILE"
    address="$(current_address)"
    print_next_steps "$ray" "$address"
}

print_next_steps() {
    local ray="$1" address="$2" auth_line=""
    [[ "$AUTH" == token ]] && auth_line="export RAY_AUTH_MODE=token   # every client must match the cluster's auth mode"
    cat <<EOF

dpsweep: Ray head is up (GCS $address, auth: $AUTH, temp dir: $TMP_DIR).
Submit a sweep from this machine:

  ${auth_line:-# auth disabled: anyone who can reach $address can run code as you}
  dpsweep sweep search_spaces/quickstart.yaml --address auto
      # 'auto' picks any Ray instance it finds; if others run on this machine use --address $address

or as a Ray job (the job API needs ray[default] next to the ray CLI). Jobs start in
$REPO_ROOT with the installed dpsweep, so no --working-dir is needed; with
--working-dir . the job runs in an uploaded copy without data/ (.gitignore), and relative
dataset paths no longer resolve:

  ${auth_line:+export RAY_AUTH_MODE=token}
  RAY_ADDRESS=http://127.0.0.1:$DASHBOARD_PORT ray job submit -- \\
      dpsweep sweep search_spaces/quickstart.yaml     # joins via the job's RAY_ADDRESS

Dashboard: http://127.0.0.1:$DASHBOARD_PORT   Logs: $TMP_DIR/session_latest/logs
Stop:      $0 stop
EOF
    if ! "$(ray_python "$ray")" -c "import aiohttp, aiohttp_cors" >/dev/null 2>&1; then
        echo "note: ray[default] is not installed next to $ray: the dashboard runs minimal and"
        echo "      'ray job submit' will refuse. Install it with: pip install 'ray[default]==$("$ray" --version | awk '{print $NF}')'"
    fi
}

cmd_status() {
    local ray address mode
    address="$(current_address)"
    if [[ -z "$address" || -z "$(session_pids)" ]]; then
        echo "dpsweep: no Ray session running in $TMP_DIR"
        return 1
    fi
    ray="$(find_ray)"
    mode="$(cat "$AUTH_FILE" 2>/dev/null || echo "$AUTH")"
    echo "dpsweep: Ray session in $TMP_DIR, GCS $address, auth: $mode"
    # Right after `start` the autoscaler has not reported yet ("No cluster status"): wait a bit.
    local out attempt
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
        out="$(RAY_AUTH_MODE="$mode" "$ray" status --address "$address")"
        [[ "$out" == *"No cluster status"* && $attempt -lt 10 ]] || break
        sleep 1
    done
    echo "$out"
}

cmd_stop() {
    local address raylets=() others=() gcs=() pid comm share
    address="$(current_address)"
    for pid in $(session_pids); do
        comm="$(ps -o comm= -p "$pid" 2>/dev/null || true)"
        case "$comm" in
            raylet) raylets+=("$pid") ;;
            gcs_server) gcs+=("$pid") ;;
            "") ;;
            *) others+=("$pid") ;;
        esac
    done
    share=$(((STOP_GRACE_S + 2) / 3))
    terminate "$share" "${raylets[@]}"
    terminate "$share" "${others[@]}"
    terminate "$share" "${gcs[@]}"
    # `ray stop` leaves <temp-dir>/ray_current_cluster behind, after which ray.init(num_cpus=...)
    # refuses to start a local instance; remove it, and the default one if it names our GCS.
    rm -f "$ADDRESS_FILE" "$AUTH_FILE"
    if [[ -n "$address" && -f "$DEFAULT_ADDRESS_FILE" && "$(cat "$DEFAULT_ADDRESS_FILE")" == "$address" ]]; then
        rm -f "$DEFAULT_ADDRESS_FILE"
    fi
    local count=$((${#raylets[@]} + ${#others[@]} + ${#gcs[@]}))
    echo "dpsweep: stopped $count process(es) of the Ray session in $TMP_DIR"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    -h | --help | help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
    *) echo "usage: $0 start|stop|status   (see '$0 --help')" >&2; exit 2 ;;
esac
