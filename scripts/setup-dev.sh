#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine (idempotent):
# system packages (redis-server for the broker tests, chromium for the browser
# test, openssl for the certificate of the wss:// test), the package itself in
# editable mode with its test extras (this also compiles the optional C
# accelerator), and the Node.js clients of the interoperability tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore DEBIAN_FRONTEND=noninteractive

apt_packages=()
command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
command -v openssl >/dev/null 2>&1 || apt_packages+=(openssl)  # certificate of the wss:// test
if ((${#apt_packages[@]})); then
    echo "setup-dev: apt-get install ${apt_packages[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

echo "setup-dev: pip install -e .[test]"
python -m pip install -q -e '.[test]'

if [ -f tests/interop/node/package.json ] && command -v npm >/dev/null 2>&1; then
    echo "setup-dev: npm install (interop clients)"
    (cd tests/interop/node && npm install --no-audit --no-fund --silent)
fi
echo "setup-dev: done"
