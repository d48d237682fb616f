#!/usr/bin/env bash
# Build the strict QEMU: the riscv64 system emulator from Debian's source of
# the QEMU the rig runs (the installed qemu-system-riscv), with our patches
# (patches/qemu/series, in that order) that make its RISC-V IOMMU do what the
# specifications say where QEMU is lenient. Documentation/rig.md tells what
# each patch changes.
#
# Debian's orig tarball is fetched once through a private apt state (a
# deb-src stanza of the suite the package came from), kept in
# $MSIREMAP_CACHE/qemu/, and unpacked, patched and synchronised by content
# into $MSIREMAP_CACHE/qemu/src, so that ninja rebuilds only what a changed
# patch touches. Only riscv64-softmmu is configured, without default
# features and with the devices of patches/qemu/devices.mak. Firmware
# (OpenSBI) is Debian's installed one (scripts/qemu.sh passes -L).
#
# The build is keyed by the Debian version and the content of this script,
# the series, its patches and the devices file. Each key's binary is kept
# apart, in $MSIREMAP_CACHE/qemu/bin/<key>/ (the last few keys), so a clone
# whose patches differ never replaces the binary another clone's guests are
# running; when the key's binary exists, nothing runs. The build directory
# is shared, so switching keys rebuilds only what differs. Prints the path
# of the key's qemu-system-riscv64 on stdout.
#
# Usage: scripts/qemu-build.sh [--checkpatch]
#   --checkpatch  print the path of the tarball's scripts/checkpatch.pl
#                 instead (fetching the tarball if needed, building nothing),
#                 for scripts/gates.sh
set -euo pipefail
SELF=qemu
. "$(dirname "$0")/lib.sh"

pkg=qemu-system-riscv
venv=$TOOLS/qemu-venv
dir=$MSIREMAP_CACHE/qemu
pdir=$TOP/patches/qemu
bin=$dir/build/qemu-system-riscv64

debver=$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null) ||
	die "$pkg is not installed (run scripts/setup.sh)"
[ -x "$venv/bin/meson" ] && [ -x "$venv/bin/ninja" ] ||
	die "no meson and ninja in $venv (run scripts/setup.sh)"
upver=${debver#*:}
upver=${upver%-*}

patches=()
if [ -f "$pdir/series" ]; then
	while read -r name _; do
		case "$name" in '' | '#'*) continue ;; esac
		[ -f "$pdir/$name" ] || die "patches/qemu/series names $name, which is not in patches/qemu/"
		patches+=("$pdir/$name")
	done <"$pdir/series"
fi

orig=$dir/qemu_$upver.orig.tar.xz

# fetch_orig: Debian's orig tarball into $orig, once. Only the orig tarball is
# needed (and, for backports, the only file apt can still fetch: the .dsc and
# debian.tar.xz of a rebuilt backport may 404). Under a lock of its own
# (fd 7: cache_lock's fd 9 holds the build's), so that --checkpatch does not
# wait for a build.
fetch_orig() {
	exec 7>"$MSIREMAP_CACHE/.lock-qemu-orig"
	flock 7
	[ ! -f "$orig" ] || { flock -u 7; return 0; }
	local suite apt aptopts
	case "$debver" in
	*~bpo12*) suite=bookworm-backports ;;
	*~bpo13*) suite=trixie-backports ;;
	*) suite=$(. /etc/os-release && echo "${VERSION_CODENAME:?}") ;;
	esac
	say "fetching Debian's source of QEMU $debver ($suite, orig tarball only)"
	apt=$dir/apt
	rm -rf "$apt"
	mkdir -p "$apt/etc/sources.list.d" "$apt/etc/preferences.d" "$apt/state/lists/partial" \
		"$apt/cache/archives/partial" "$apt/dl"
	: >"$apt/etc/sources.list"
	cat >"$apt/etc/sources.list.d/qemu-src.sources" <<-SRC
		Types: deb-src
		URIs: http://deb.debian.org/debian
		Suites: $suite
		Components: main
		Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	SRC
	aptopts=(-o "Dir::Etc=$apt/etc" -o "Dir::State=$apt/state" -o "Dir::Cache=$apt/cache"
		-o APT::Sandbox::User=root -q)
	apt-get "${aptopts[@]}" update >"$apt/update.log" 2>&1 ||
		{ tail -n 5 "$apt/update.log" >&2; die "apt-get update of the $suite sources failed"; }
	# apt checks the tarball against the Sources index; the .dsc's 404 makes
	# it exit non-zero, so what counts is the tarball being there.
	(cd "$apt/dl" && apt-get "${aptopts[@]}" source --download-only "qemu=$debver") \
		>"$apt/source.log" 2>&1 || true
	[ -f "$apt/dl/qemu_$upver.orig.tar.xz" ] ||
		{ grep -E '^(E|W):' "$apt/source.log" >&2; die "cannot fetch qemu_$upver.orig.tar.xz (log: $apt/source.log)"; }
	mv "$apt/dl/qemu_$upver.orig.tar.xz" "$orig"
	rm -rf "$apt"
	flock -u 7
}

mkdir -p "$dir"
if [ "${1:-}" = --checkpatch ]; then
	fetch_orig
	cp=$dir/checkpatch-$upver/checkpatch.pl
	if [ ! -f "$cp" ]; then
		rm -rf "$cp.d"
		mkdir -p "$cp.d"
		tar -xJf "$orig" -C "$cp.d" --wildcards --no-wildcards-match-slash \
			'*/scripts/checkpatch.pl' --strip-components=2 &&
			[ -f "$cp.d/checkpatch.pl" ] || die "no scripts/checkpatch.pl in $(basename "$orig")"
		mv "$cp.d/checkpatch.pl" "$cp"
		rm -rf "$cp.d"
	fi
	echo "$cp"
	exit 0
fi

cache_lock qemu
key=$(printf '%s %s\n' "$debver" \
	"$(hash_files "$0" "$pdir/devices.mak" "$pdir/series" "${patches[@]}")" | sha256sum | cut -c1-16)
keyed=$dir/bin/$key/qemu-system-riscv64
if [ -x "$keyed" ]; then
	echo "$keyed"
	exit 0
fi

fetch_orig

# --- Source: unpacked, patched, synchronised by content -------------------------
stage=$dir/src.stage
rm -rf "$stage"
mkdir -p "$stage"
say "unpacking $(basename "$orig")"
tar -xf "$orig" -C "$stage" --strip-components=1
for p in "${patches[@]}"; do
	if ! out=$(patch -d "$stage" -p1 -N -s -f --no-backup-if-mismatch -i "$p" 2>&1); then
		printf '%s\n' "$out" | sed 's/^/  /' >&2
		die "patch $(basename "$p") does not apply to QEMU $debver"
	fi
	say "applied $(basename "$p")"
done
# The +ds tarball has no firmware blobs: no edk2 images to unpack.
sed -i 's/^edk2_targets = \[.*\]$/edk2_targets = []/' "$stage/meson.build"
grep -qx 'edk2_targets = \[\]' "$stage/meson.build" || die "meson.build: no edk2_targets line to empty"
cp "$pdir/devices.mak" "$stage/configs/devices/riscv64-softmmu/msiremap.mak"
if [ -d "$dir/src" ]; then
	rsync -rlc --delete "$stage/" "$dir/src/"
	rm -rf "$stage"
else
	mv "$stage" "$dir/src"
fi

# --- Configure (again only when its arguments change) and build -----------------
export PATH="$venv/bin:$PATH"
conf=(--target-list=riscv64-softmmu --python="$venv/bin/python3"
	--without-default-features --without-default-devices --with-devices-riscv64=msiremap
	--enable-fdt=system --disable-docs --disable-tools --disable-user
	--disable-install-blobs --disable-debug-info --disable-werror)
if [ "$(cat "$dir/build/.msiremap-configure" 2>/dev/null)" != "${conf[*]}" ]; then
	rm -rf "$dir/build"
	mkdir -p "$dir/build"
	say "configuring QEMU $debver: riscv64-softmmu (log: $dir/build/configure.log)"
	(cd "$dir/build" && ../src/configure "${conf[@]}") >"$dir/build/configure.log" 2>&1 ||
		{ tail -n 20 "$dir/build/configure.log" >&2; die "configure failed (log: $dir/build/configure.log)"; }
	printf '%s\n' "${conf[*]}" >"$dir/build/.msiremap-configure"
fi

log=$dir/build/build.log
say "building qemu-system-riscv64 (log: $log)"
start=$SECONDS
ninja -C "$dir/build" -j"$(nproc)" qemu-system-riscv64 >"$log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
	for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null && sleep 1; done
	kill -0 "$pid" 2>/dev/null || break
	say "$((SECONDS - start)) s, step $(grep -oE '^\[[0-9]+/[0-9]+\]' "$log" | tail -n 1 | tr -d '[]')"
done
wait "$pid" || { grep -E 'error' "$log" | head -n 20 >&2; tail -n 15 "$log" >&2
	die "QEMU build failed (log: $log)"; }
"$bin" -device help 2>/dev/null | grep -q '"riscv-iommu-pci"' ||
	die "the build has no riscv-iommu-pci device ($bin -device help)"
mkdir -p "$dir/bin/$key.tmp"
cp "$bin" "$dir/bin/$key.tmp/"
rm -rf "$dir/bin/$key"
mv "$dir/bin/$key.tmp" "$dir/bin/$key"
# Keep the binaries of the four newest keys.
find "$dir/bin" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn |
	tail -n +5 | cut -d' ' -f2- | xargs -r rm -rf
say "built QEMU $debver with ${#patches[@]} patches in $((SECONDS - start)) s: $keyed"
echo "$keyed"
