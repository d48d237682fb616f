#!/usr/bin/env bash
# Fetch Debian's busybox-static for a guest architecture (riscv64 or arm64).
#
# Bookworm, which the host runs, has no riscv64 port, so this asks Debian
# trixie for the foreign-architecture package through a private apt state
# (nothing in the host's apt or dpkg configuration changes).
#
# Usage: scripts/guest-busybox.sh <debian-arch> <output-binary>
set -euo pipefail
arch=${1:?usage: guest-busybox.sh <riscv64|arm64> <output>}
out=${2:?usage: guest-busybox.sh <riscv64|arm64> <output>}
die() { printf 'guest-busybox: error: %s\n' "$*" >&2; exit 1; }
[ -x "$out" ] && exit 0

mkdir -p "$(dirname "$out")"
root=$(cd "$(dirname "$out")" && pwd)/apt
mkdir -p "$root/lists/partial" "$root/cache/archives/partial" "$root/etc/preferences.d" "$root/etc/none"
cat >"$root/etc/sources.list" <<SRC
deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
SRC
apt_opts=(-o "Dir::Etc::SourceList=$root/etc/sources.list"
	-o "Dir::Etc::SourceParts=$root/etc/none"
	-o "Dir::Etc::Preferences=$root/etc/none"
	-o "Dir::Etc::PreferencesParts=$root/etc/preferences.d"
	-o "Dir::State::Lists=$root/lists"
	-o "Dir::State::status=$root/etc/status"
	-o "Dir::Cache=$root/cache"
	-o "APT::Architecture=$arch" -o "APT::Architectures::=$arch"
	-o "APT::Sandbox::User=root" -o "Debug::NoLocking=1")
: >"$root/etc/status"
printf 'guest-busybox: fetching busybox-static:%s from Debian trixie\n' "$arch" >&2
apt-get -qq "${apt_opts[@]}" update >/dev/null 2>&1 ||
	apt-get -qq "${apt_opts[@]}" update || die "apt-get update for $arch failed"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get -qq "${apt_opts[@]}" download "busybox-static:$arch" >/dev/null) ||
	die "cannot download busybox-static:$arch from Debian trixie"
dpkg -x "$tmp"/busybox-static_*.deb "$tmp/x"
bin=$(find "$tmp/x" -type f -path '*bin/busybox' | head -n1)
[ -n "$bin" ] || die "busybox-static:$arch holds no busybox binary"
install -m 0755 "$bin" "$out"
printf 'guest-busybox: using %s\n' "$(basename "$tmp"/busybox-static_*.deb | sed 's/%3a/:/')" >&2
