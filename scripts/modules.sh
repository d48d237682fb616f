#!/usr/bin/env bash
# Build our out-of-tree modules (top-level Kbuild) for one architecture.
#
# Usage: scripts/modules.sh <riscv64|arm64> <kernel-build-dir> [variant]
# Output goes to $BUILD/<arch>[-<variant>]/modules (kbuild's MO=), the
# sources stay clean. MODULES_RUSTFLAGS: extra rustc flags (KRUSTFLAGS),
# for a variant such as make bench's floor (--cfg bench_floor).
set -euo pipefail
SELF=modules
. "$(dirname "$0")/lib.sh"
arch=${1:?usage: modules.sh <arch> <kernel-build-dir>}
kobj=${2:?usage: modules.sh <arch> <kernel-build-dir>}
ka=$(karch "$arch")
variant=${3:-}
out=$BUILD/$arch${variant:+-$variant}/modules
# kbuild does not notice every kernel change from an external module's side
# (a config change resizes struct module, say): build anew for a new kernel.
key=$(cat "$kobj/.msiremap-key" 2>/dev/null || echo none)
if [ "$(cat "$out/.kernel-key" 2>/dev/null)" != "$key" ]; then
	rm -rf "$out"
fi
mkdir -p "$out"
if ! make -C "$kobj" M="$TOP" MO="$out" ARCH="$ka" LLVM="$LLVM_SUFFIX" \
	${MODULES_RUSTFLAGS:+KRUSTFLAGS="$MODULES_RUSTFLAGS"} \
	-j"$(($(nproc) + 1))" modules >"$out/build.log" 2>&1; then
	grep -E 'error|warning' -A5 "$out/build.log" | head -n 60 >&2
	die "$arch: module build failed (log: $out/build.log)"
fi
grep -E '^(warning|error)|: warning' "$out/build.log" >&2 || true
echo "$key" >"$out/.kernel-key"
