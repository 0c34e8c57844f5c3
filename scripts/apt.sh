# Sourced by the install scripts: apt_install [OPTION...] PACKAGE... installs Debian packages quietly, waiting
# (up to 5 minutes) for another apt or dpkg run to release its locks instead of failing at once.
apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    local lock=(-o DPkg::Lock::Timeout=300) try
    for try in $(seq 60); do
        apt-get "${lock[@]}" update -qq >/dev/null 2>&1 && break
        [ "$try" -eq 60 ] && { apt-get "${lock[@]}" update -qq >/dev/null || return 1; }
        sleep 5
    done
    apt-get "${lock[@]}" install -y -qq "$@" >/dev/null
}
