#!/usr/bin/env bash
# Installs Debian's chromium when it is missing, for loadtest's browser test (the live
# page driven by chromedp). Like bench-loadtest's wrk: apt-get, as root or with sudo.
# Prints nothing when chromium is already there; fails loudly when it cannot install.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
	exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "chromium missing and not root (no sudo): the browser test will skip" >&2; exit 0; }
	SUDO=sudo
fi
echo "installing chromium (Debian package) for loadtest's browser test"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
