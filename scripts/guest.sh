#!/usr/bin/env bash
# Build the guest initramfs for one architecture.
#
# Usage: scripts/guest.sh <arch> <kernel-build-dir> <out.cpio> [cmd-file] [extra-dir]
#   cmd-file   a shell command file the guest runs in cmd mode (/etc/msiremap/cmd)
#   extra-dir  a host directory copied to /extra in the guest
#
# Contents: Debian's busybox-static, tests/guest/init, our modules (from
# $BUILD/<arch>[-$KVARIANT]/modules, KVARIANT naming the kernel's config
# variant) with their load order, the test programs of every
# group built for the architecture, and what the tests check the guest against
# (kernel release, config fragments).
set -euo pipefail
SELF=guest
. "$(dirname "$0")/lib.sh"
arch=${1:?usage: guest.sh <arch> <kernel-build-dir> <out.cpio> [cmd-file] [extra-dir]}
kobj=${2:?}
out=${3:?}
cmdfile=${4:-}
extra=${5:-}

case "$arch" in
riscv64) cc=riscv64-linux-gnu-gcc ;;
arm64) cc=aarch64-linux-gnu-gcc ;;
*) die "unknown architecture '$arch'" ;;
esac

bb=$BUILD/$arch/busybox
"$TOP/scripts/guest-busybox.sh" "$arch" "$bb"

# Test programs: tests/<group>/*.c, one static kselftest binary each.
tbin=$BUILD/$arch/tests
for src in "$TOP"/tests/*/*.c; do
	[ -e "$src" ] || continue
	group=$(basename "$(dirname "$src")")
	bin=$tbin/$group/$(basename "$src" .c)
	hdrs=("$(dirname "$src")"/*.h "$TOP"/tests/lib/*.h)
	if [ ! -x "$bin" ] || [ -n "$(find "$src" "${hdrs[@]}" -newer "$bin" 2>/dev/null)" ]; then
		mkdir -p "$(dirname "$bin")"
		$cc -static -O2 -g -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare -Wno-format-truncation -D_GNU_SOURCE \
			-I"$TOP/tests/lib" -I"$(dirname "$src")" \
			-I"$KSRC/tools/testing/selftests" -I"$kobj/usr/include" \
			-o "$bin" "$src" || die "$arch: test program ${src#"$TOP"/} does not build"
	fi
done

root=$BUILD/$arch/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,etc/msiremap,lib/modules/msiremap,tests,proc,sys,dev,tmp}
install -m 0755 "$bb" "$root/bin/busybox"
install -m 0755 "$TOP/tests/guest/init" "$root/init"

# Our modules for this architecture, in load order (none with NO_MODULES=1,
# for kernels they were not built against).
: >"$root/etc/msiremap/modules"
[ -n "${NO_MODULES:-}" ] || while read -r name path arches; do
	case "$name" in ''|'#'*) continue ;; esac
	case " $arches " in *" $arch "*) ;; *) continue ;; esac
	ko=$BUILD/$arch${KVARIANT:+-$KVARIANT}/modules/$path
	[ -f "$ko" ] || die "$arch: module $name not built ($ko missing)"
	install -m 0644 "$ko" "$root/lib/modules/msiremap/"
	echo "$name" >>"$root/etc/msiremap/modules"
done <"$TOP/drivers/modules.conf"

cp "$kobj/include/config/kernel.release" "$root/etc/msiremap/release"
cat "$TOP/config/common.config" "$TOP/config/$arch.config" >"$root/etc/msiremap/config"
echo "$arch" >"$root/etc/msiremap/arch"
[ -d "$tbin" ] && cp -a "$tbin/." "$root/tests/"
for conf in "$TOP"/tests/*/group.conf; do
	g=$(basename "$(dirname "$conf")")
	# Data files a group ships next to its programs (not C sources or configs).
	for f in "$TOP/tests/$g"/*; do
		case "$f" in *.c | *.h | */group.conf) continue ;; esac
		[ -f "$f" ] && mkdir -p "$root/tests/$g" && cp "$f" "$root/tests/$g/"
	done
done
[ -n "$cmdfile" ] && install -m 0644 "$cmdfile" "$root/etc/msiremap/cmd"
if [ -n "$extra" ]; then
	[ -d "$extra" ] || die "GUEST_FILES: '$extra' is not a directory"
	mkdir -p "$root/extra"
	cp -a "$extra/." "$root/extra/"
fi
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$out.tmp"
mv "$out.tmp" "$out"
