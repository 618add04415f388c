#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need, then
# checks formatting, builds every binary, runs every test, and lints.
set -euo pipefail
cd "$(dirname "$0")"

# System packages the end-to-end tests drive for real.
need=()
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/sbin/php-fpm* >/dev/null 2>&1 || need+=(php-fpm)
php -m 2>/dev/null | grep -qi '^redis$' || need+=(php-redis)
php -m 2>/dev/null | grep -qi '^curl$' || need+=(php-curl)
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
command -v chromium >/dev/null || need+=(chromium)
command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# The browser test's driver (playwright-core) and Pusher's own JS clients, pinned by package-lock.json.
(cd e2e/browser && npm ci --silent --no-audit --no-fund)
# The Pusher server SDK from PyPI (pinned), in a venv of its own.
[ -x e2e/python/.venv/bin/python ] || python3 -m venv e2e/python/.venv
e2e/python/.venv/bin/pip install -q --disable-pip-version-check -r e2e/python/requirements.txt

cargo fmt --all -- --check
# No import cycle between a crate's top-level modules (docs/ARCHITECTURE.md).
for crate in protocol runtime ws-deflate gateway router chat-app; do scripts/import-cycles.py "$crate"; done
# The e2e tests start the real binaries, so build them first.
cargo build --workspace --bins --locked
# The Debian package (cargo-deb), installed as a sysadmin would: the deb
# test (e2e/tests/deb_package.rs) runs what it put in place.
command -v cargo-deb >/dev/null || cargo install cargo-deb --locked --quiet
cargo deb -p fk --locked --quiet
SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
$SUDO dpkg -i "$(ls -t target/debian/fk_*.deb | head -1)" >/dev/null
cargo test --workspace --locked
cargo clippy --workspace --all-targets --locked -- -D warnings
# Autobahn's WebSocket compliance suite, all of its cases, against the
# gateway's own codec; it fails on any case that is not OK.
scripts/autobahn.sh
