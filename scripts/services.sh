#!/usr/bin/env bash
# Check the services the integration tests use on 127.0.0.1 (PostgreSQL, NATS, Mosquitto) and start the ones
# that are down. Add a service here when a test starts to need it.
#   scripts/services.sh ensure
set -uo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {
    local port=$1 name=$2
    for _ in $(seq 1 30); do up "$port" && return 0; sleep 1; done
    echo "error: $name did not come up on 127.0.0.1:$port" >&2
    return 1
}

ensure() {
    local name=$1 port=$2; shift 2
    if up "$port"; then echo "$name: up on $port"; return 0; fi
    echo "$name: down, starting it"
    "$@" >/dev/null 2>&1 || true
    wait_for "$port" "$name"
}

case "${1:-ensure}" in
    ensure)
        status=0
        ensure PostgreSQL 5432 pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql 2>/dev/null | head -n1)" main start || status=1
        ensure NATS 4222 start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
            -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || status=1
        ensure Mosquitto 1883 mosquitto -d -c /etc/mosquitto/mosquitto.conf || status=1
        exit "$status"
        ;;
    *) echo "usage: scripts/services.sh ensure" >&2; exit 2 ;;
esac
