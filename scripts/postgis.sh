#!/usr/bin/env bash
# Install PostGIS for a local PostgreSQL 15 when it is missing (Debian package postgresql-15-postgis-3).
# Does nothing when PostGIS is already available or PostgreSQL is not local; needs root for apt-get.
set -euo pipefail

if ! command -v pg_config >/dev/null 2>&1 && [ ! -d /usr/lib/postgresql ]; then
    echo "postgis: no local PostgreSQL, nothing to do"; exit 0
fi
major=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n1)
if [ -z "$major" ]; then echo "postgis: no local PostgreSQL, nothing to do"; exit 0; fi
if [ -f "/usr/share/postgresql/$major/extension/postgis.control" ]; then
    echo "postgis: available for PostgreSQL $major"; exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "postgis: not installed; install postgresql-$major-postgis-3 as root to enable it" >&2; exit 1
fi
echo "postgis: installing postgresql-$major-postgis-3"
. "$(dirname "$0")/apt.sh"
apt_install "postgresql-$major-postgis-3"
echo "postgis: installed"
