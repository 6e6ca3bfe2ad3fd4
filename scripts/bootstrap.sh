#!/usr/bin/env bash
# First step on a fresh Debian bookworm machine (as root): installs make
# and a compiler when missing, then `make deps` installs the rest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v make >/dev/null 2>&1 || ! command -v gcc >/dev/null 2>&1; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make gcc libc6-dev
fi
make deps
