#!/bin/sh
# Install what dirtytrack needs on Debian 12 (only what is missing), then
# run make with the given targets:  ./bootstrap.sh demo   ./bootstrap.sh check
# `check` also installs the real services the test suite runs privately
# (PostgreSQL 15 with pgbench, nginx); the system's own instances of them are
# never used and are not started by us.
# The tool is then build/dirtytrack; `make install` installs it.
set -e
cd "$(dirname "$0")"
PKGS="make gcc libc6-dev pkg-config libprotobuf-c-dev protobuf-c-compiler libcap-dev
      libnl-3-dev libnl-genl-3-dev libunwind-dev libcmocka-dev criu python3
      util-linux procps rsync clang libclang-rt-14-dev"
# initdb, postgres and pgbench are in postgresql-15, psql in its client; nginx-light
# is only nginx plus an echo module we do not use
SERVICES="postgresql-15 postgresql-client-15 nginx"
case " $* " in *" check "*) PKGS="$PKGS $SERVICES" ;; esac
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
	# Debian starts a service when its package is installed (postgresql's
	# system cluster on 5432, nginx's default site on port 80).  The tests run
	# their own instances: a policy-rc.d of ours forbids those starts for the
	# length of this install, and goes with it.  One already there (Docker
	# images ship one) is the machine's and is left alone.
	policy=/usr/sbin/policy-rc.d
	ours=""
	if [ ! -e "$policy" ]; then
		ours=1
		printf '#!/bin/sh\n# bootstrap.sh of dirtytrack: no service starts during its install\nexit 101\n' |
			$SUDO tee "$policy" >/dev/null
		$SUDO chmod 755 "$policy"
		trap '$SUDO rm -f "$policy"' EXIT
		trap 'exit 130' INT TERM
	fi
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
	if [ -n "$ours" ]; then
		$SUDO rm -f "$policy"
		trap - EXIT INT TERM
	fi
fi
make -j"$(nproc)" "$@"
echo "bootstrap: the binary is build/dirtytrack; 'make install' (as root, or with"
echo "  PREFIX=\$HOME/.local) puts it on PATH with its man page and bash completion"
