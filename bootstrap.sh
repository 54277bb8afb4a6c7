#!/bin/sh
# Install what dirtytrack needs on Debian 12 (only what is missing), then
# run make with the given targets:  ./bootstrap.sh demo   ./bootstrap.sh check
# The tool is then build/dirtytrack; `make install` installs it.
set -e
cd "$(dirname "$0")"
PKGS="make gcc libc6-dev pkg-config libprotobuf-c-dev protobuf-c-compiler libcap-dev
      libnl-3-dev libnl-genl-3-dev libunwind-dev libcmocka-dev criu python3
      util-linux procps rsync clang libclang-rt-14-dev"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	echo "bootstrap: installing$missing"
	$SUDO apt-get update -q
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
fi
make -j"$(nproc)" "$@"
echo "bootstrap: the binary is build/dirtytrack; 'make install' (as root, or with"
echo "  PREFIX=\$HOME/.local) puts it on PATH with its man page and bash completion"
