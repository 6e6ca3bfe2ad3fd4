#!/usr/bin/env bash
# Installs every Debian package the build and the tests need and fetches
# coturn's upstream tarball from Debian's source package into
# third_party/. Idempotent: quick when everything is present.
# --check only reports what is missing (exit 1), installing nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
	make gcc clang libc6-dev pkg-config ca-certificates dpkg-dev
	libre-dev libevent-dev libssl-dev libhiredis-dev libjansson-dev
	libngtcp2-dev libngtcp2-crypto-gnutls-dev libgnutls28-dev
	redis-server redis-sentinel
	iproute2 iptables iputils-ping iperf3 socat curl coturn postgresql
	libclang-rt-14-dev openssl procps psmisc jq
)
COTURN_PKG=coturn
COTURN_VERSION=4.6.1
COTURN_TARBALL=third_party/coturn_${COTURN_VERSION}.orig.tar.gz

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if [[ "${1:-}" == "--check" ]]; then
	rc=0
	if ((${#missing[@]})); then
		echo "deps: missing Debian packages: ${missing[*]} (run: make deps)" >&2
		rc=1
	fi
	if [[ ! -s $COTURN_TARBALL ]]; then
		echo "deps: missing $COTURN_TARBALL (run: make deps)" >&2
		rc=1
	fi
	exit $rc
fi

if [[ $(id -u) -ne 0 ]] && ((${#missing[@]})); then
	echo "deps: need root to install: ${missing[*]}" >&2
	exit 1
fi

if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian's packaged services must not hold the ports our tests use.
for svc in coturn redis-server redis-sentinel postgresql; do
	if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
		systemctl stop "$svc" || true
		systemctl disable "$svc" >/dev/null 2>&1 || true
	fi
done
pkill -x turnserver 2>/dev/null || true

if [[ ! -s $COTURN_TARBALL ]]; then
	# A private apt directory with only a deb-src entry, so the system's
	# sources stay untouched.
	apt_dir=$(mktemp -d)
	trap 'rm -rf "$apt_dir"' EXIT
	mkdir -p "$apt_dir/sources" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/dl"
	cat >"$apt_dir/sources/debian-src.sources" <<SRC
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources"
		-o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
		-o "APT::Sandbox::User=root")
	apt-get "${apt_opts[@]}" update -qq
	# Only the upstream tarball is needed: a failure to fetch the Debian
	# packaging tarball alone is not fatal, the checksum below decides.
	(cd "$apt_dir/dl" && apt-get "${apt_opts[@]}" source --download-only "$COTURN_PKG=$COTURN_VERSION-1" >/dev/null 2>&1) || true
	src="$apt_dir/dl/$(basename "$COTURN_TARBALL")"
	dsc="$apt_dir/dl/${COTURN_PKG}_${COTURN_VERSION}-1.dsc"
	if [[ ! -s $src || ! -s $dsc ]]; then
		echo "deps: could not fetch coturn $COTURN_VERSION sources from Debian" >&2
		exit 1
	fi
	want=$(awk '/^Checksums-Sha256:/{f=1;next} /^[^ ]/{f=0} f && $3 ~ /orig\.tar/ {print $1}' "$dsc")
	have=$(sha256sum "$src" | cut -d' ' -f1)
	if [[ -z $want || $want != "$have" ]]; then
		echo "deps: coturn tarball checksum mismatch (want $want, have $have)" >&2
		exit 1
	fi
	mkdir -p third_party
	mv "$src" "$COTURN_TARBALL"
	echo "deps: fetched $COTURN_TARBALL"
fi
echo "deps: all present"
