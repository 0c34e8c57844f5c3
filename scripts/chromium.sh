#!/usr/bin/env bash
# Install Debian's Chromium for the console's browser tests when it is missing (package chromium).
# The tests drive /usr/bin/chromium through Playwright; no browser is ever downloaded by Playwright.
# Does nothing when Chromium is already there; needs root for apt-get.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "chromium: available"; exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium: not installed; install the Debian package chromium as root to run the browser tests" >&2
    exit 1
fi
echo "chromium: installing the Debian package chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "chromium: installed"
