#!/usr/bin/env bash
# Builds the Debian packages (cargo-deb) from the binaries the test command
# already built and checks their contents with dpkg-deb: binaries, units,
# configs as conffiles, the system user, enabled services, purge deleting
# the data. CI uses the dev profile to avoid a second RocksDB build; a
# release package is `cargo deb -p nightjar-collector` (release profile).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    echo "installing cargo-deb $CARGO_DEB_VERSION..." >&2
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked --quiet
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for package in nightjar-collector nightjar-agent; do
    # cargo-deb warns that the dev profile is meant for testing; it is.
    cargo deb -p "$package" --profile dev --no-build --fast -o "$out/" 2>&1 |
        grep -v -e "dev profile is not supported" -e "To enable debug symbols" >&2 || true
done

failures=0
fail() { echo "check-debs: $*" >&2; failures=$((failures + 1)); }

check() {
    local deb=$1 package=$2 user=$3 state=$4; shift 4
    [ -f "$deb" ] || { fail "$deb was not built"; return; }
    local listing ctl
    listing=$(dpkg-deb -c "$deb")
    for path in "$@" "./usr/lib/systemd/system/$package.service"; do
        grep -q " $path\$" <<<"$listing" || fail "$package: $path missing from the package"
    done
    [ "$(dpkg-deb -f "$deb" Package)" = "$package" ] || fail "$package: wrong Package field"
    dpkg-deb -f "$deb" Depends | grep -q adduser || fail "$package: does not depend on adduser"
    ctl=$(mktemp -d)
    dpkg-deb -e "$deb" "$ctl"
    grep -qx "/etc/nightjar/${package#nightjar-}.toml" "$ctl/conffiles" || fail "$package: config is not a conffile"
    grep -q "adduser --system --group --home $state" "$ctl/postinst" || fail "$package: postinst does not create the user $user"
    grep -q "deb-systemd-helper enable $package.service" "$ctl/postinst" || fail "$package: service not enabled"
    { grep -q "_dh_action=start" "$ctl/postinst" &&
        grep -q "deb-systemd-invoke \$_dh_action $package.service" "$ctl/postinst"; } ||
        fail "$package: service not started"
    # Purge deletes the data; plain removal does not.
    awk '/"\$1" = purge/,/^fi/' "$ctl/postrm" | grep -q "rm -rf $state" || fail "$package: purge does not delete $state"
    rm -rf "$ctl"
}

check "$out"/nightjar-collector_*_amd64.deb nightjar-collector nightjar /var/lib/nightjar \
    ./usr/bin/nightjar-collector ./usr/bin/nightjar ./etc/nightjar/collector.toml \
    ./usr/share/doc/nightjar-collector/examples/rules.d/host.toml
check "$out"/nightjar-agent_*_amd64.deb nightjar-agent nightjar-agent /var/lib/nightjar-agent \
    ./usr/bin/nightjar-agent ./etc/nightjar/agent.toml

if [ "$failures" -gt 0 ]; then
    echo "check-debs: $failures problem(s)" >&2
    exit 1
fi
echo "check-debs: nightjar-collector and nightjar-agent packages OK" >&2
