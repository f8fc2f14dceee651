#!/bin/bash
# A Ray cluster of two nodes on this machine, started as a real one is (`ray start --head`, then
# `ray start --address=HEAD` for the second node), to run `gecko data run CONFIG data.engine=ray` on it
# (docs/dedup.md, "Ray"). tests/test_ray.py starts the same cluster inside the test.
#   bench/ray_local.sh start      # prints the address; 1 CPU per node (NODE_CPUS), temp under RAY_TMP
#   RAY_ADDRESS=127.0.0.1:46379 RAY_AUTH_MODE=disabled gecko data run configs/demo.yaml data.engine=ray
#   bench/ray_local.sh stop       # ends the two `ray start --block` sessions this script started
# Token auth is off: Ray 2.60 turns it on at the head when ~/.ray/auth_token exists, but a joining
# `ray start --address` does not send the token (AuthenticationError). Not `ray stop`: it stops every Ray
# on the machine, other users' included.
set -euo pipefail
RAY=${RAY:-$(dirname "$(readlink -f "$0")")/../.venv/bin/ray}
command -v "$RAY" >/dev/null || RAY=ray
PORT=${PORT:-46379}
NODE_CPUS=${NODE_CPUS:-1}
RAY_TMP=${RAY_TMP:-/tmp/gecko-ray}
export RAY_AUTH_MODE=disabled

start() {
    mkdir -p "$RAY_TMP"
    setsid "$RAY" start --block --head --port="$PORT" --num-cpus="$NODE_CPUS" --include-dashboard=false \
        --disable-usage-stats --temp-dir="$RAY_TMP/head" >"$RAY_TMP/head.out" 2>&1 &
    echo $! >"$RAY_TMP/head.pid"
    until ls "$RAY_TMP"/head/session_*/logs/gcs_server.out >/dev/null 2>&1; do sleep 0.5; done
    setsid "$RAY" start --block --address="127.0.0.1:$PORT" --num-cpus="$NODE_CPUS" --disable-usage-stats \
        --temp-dir="$RAY_TMP/node" --dashboard-agent-listen-port=0 >"$RAY_TMP/node.out" 2>&1 &
    echo $! >"$RAY_TMP/node.pid"
    for _ in $(seq 60); do
        if "$RAY" status --address="127.0.0.1:$PORT" 2>/dev/null | grep -c "^ 1 node_" | grep -q 2; then
            echo "ray_local: 2 nodes at 127.0.0.1:$PORT"
            return 0
        fi
        sleep 1
    done
    echo "ray_local: the second node did not join; see $RAY_TMP/*.out" >&2
    exit 1
}

stop() {
    for name in node head; do
        pidfile="$RAY_TMP/$name.pid"
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -9 -- "-$pid" 2>/dev/null || true # whatever is left of that session
        rm -f "$pidfile"
    done
    echo "ray_local: stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
