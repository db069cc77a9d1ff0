#!/usr/bin/env bash
# The test command (README, .ci/run): installs everything the tests need on a fresh Debian
# machine, then runs ruff and pytest. Needs root (or sudo) for the Debian packages; the tests
# start their own registries, token server and dockerd on loopback and stop them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker-registry docker.io skopeo busybox-static podman)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
