#!/bin/sh
# Installs the Debian packages unipool's guest build, tests and the emulated
# KVM host need, when they are missing. Idempotent; says what it does.
set -eu
PKGS="gcc binutils make qemu-system-x86 busybox-static zlib1g-dev liblz4-dev libzstd-dev libyaml-dev kmod cpio flex bison ccache docker-registry"
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
	case " $missing " in
	*" docker-registry "*)
		# The package starts a system-wide registry on :5000 at install time.
		# unipool's tests and `bench distribute` start their own, on loopback
		# with their own config, storage, TLS and passwords; the system one
		# is not used and would hold port 5000, so it is stopped and disabled.
		echo "deps: stopping and disabling the docker-registry system service (unipool starts its own registries)"
		if [ -d /run/systemd/system ]; then
			systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
		else
			invoke-rc.d docker-registry stop >/dev/null 2>&1 || true
			update-rc.d docker-registry disable >/dev/null 2>&1 || true
		fi
		;;
	esac
fi
echo "deps: all present"
