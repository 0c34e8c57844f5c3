#!/usr/bin/env bash
# Install pgRouting for a local PostgreSQL (Debian package postgresql-<major>-pgrouting), for the
# routing benchmark. Does nothing when pgRouting is already available or PostgreSQL is not local;
# needs root for apt-get. The extension is created only in the benchmark's own database.
set -euo pipefail

if ! command -v pg_config >/dev/null 2>&1 && [ ! -d /usr/lib/postgresql ]; then
    echo "pgrouting: no local PostgreSQL, nothing to do"; exit 0
fi
major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n1)
if [ -z "$major" ]; then echo "pgrouting: no local PostgreSQL, nothing to do"; exit 0; fi
if [ -f "/usr/share/postgresql/$major/extension/pgrouting.control" ]; then
    echo "pgrouting: available for PostgreSQL $major"; exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "pgrouting: not installed; install postgresql-$major-pgrouting as root to enable it" >&2; exit 1
fi
echo "pgrouting: installing postgresql-$major-pgrouting"
. "$(dirname "$0")/apt.sh"
apt_install "postgresql-$major-pgrouting"
echo "pgrouting: installed"
