#!/usr/bin/env bash
# Install Debian's Chromium for the console's browser tests when it is missing (package chromium),
# with a small Chinese font (fonts-wqy-microhei) so that the tests' screenshots show the zh-CN
# console's text instead of empty boxes. The tests drive /usr/bin/chromium through Playwright; no
# browser is ever downloaded by Playwright. Does nothing when both are there; needs root for apt-get.
set -euo pipefail

packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
if ! command -v fc-list >/dev/null 2>&1 || [ -z "$(fc-list :lang=zh 2>/dev/null | head -1)" ]; then
    packages+=(fonts-wqy-microhei)
fi
if [ ${#packages[@]} -eq 0 ]; then
    echo "chromium: available"; exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium: missing ${packages[*]}; install the Debian packages as root to run the browser tests" >&2
    [ -x /usr/bin/chromium ] && exit 0
    exit 1
fi
echo "chromium: installing the Debian packages ${packages[*]}"
. "$(dirname "$0")/apt.sh"
apt_install --no-install-recommends "${packages[@]}"
echo "chromium: installed"
