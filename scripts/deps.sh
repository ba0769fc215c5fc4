#!/bin/sh
# Installs the Debian packages unipool's guest build, tests and the emulated
# KVM host need, when they are missing. Idempotent; says what it does.
set -eu
PKGS="gcc binutils make qemu-system-x86 busybox-static zlib1g-dev liblz4-dev libzstd-dev libyaml-dev kmod cpio flex bison"
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing Debian packages:$missing; run as root or: sudo apt-get install$missing" >&2
		exit 1
	fi
	echo "deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null || true
	apt-get install -y -q --no-install-recommends $missing >/dev/null
fi
echo "deps: all present"
