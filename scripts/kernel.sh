#!/usr/bin/env bash
# Configure and build our kernel for one guest architecture.
#
# The build lives in $MSIREMAP_CACHE/<arch>/ and is keyed by the content of
# its inputs (kernel version, patches, rust/, config fragments). When the key
# matches, nothing runs; otherwise kbuild rebuilds incrementally what the
# changed inputs touch.
#
# Usage: scripts/kernel.sh <riscv64|arm64> [variant]
#   variant: an extra fragment config/<variant>.config (e.g. debug); builds
#            into $MSIREMAP_CACHE/<arch>-<variant>/
# Prints the build directory on stdout.
set -euo pipefail
SELF=kernel
. "$(dirname "$0")/lib.sh"

arch=${1:?usage: kernel.sh <riscv64|arm64> [variant]}
variant=${2:-}
ka=$(karch "$arch")
command -v bindgen >/dev/null || die "bindgen not found in $TOOLS/bin (run scripts/setup.sh)"
layer=$("$TOP/scripts/layer.sh")
# Keep the tree as laid while this build reads it (scripts/layer.sh waits).
cache_lock source -s
[ "$(cat "$KSRC/.msiremap-layer")" = "$layer" ] ||
	die "the kernel source changed under this build (another clone's layer); run it again"
read -r debver kver <"$KSRC_PRISTINE/.msiremap-version"

frags=("$TOP/config/common.config" "$TOP/config/$arch.config")
if [ -n "$variant" ]; then
	[ -f "$TOP/config/$variant.config" ] || die "no config fragment config/$variant.config"
	frags+=("$TOP/config/$variant.config")
fi
obj=$MSIREMAP_CACHE/$arch${variant:+-$variant}
cache_lock "$arch${variant:+-$variant}"
mkdir -p "$obj"
key=$(printf '%s %s\n' "$layer" "$(hash_files "$0" "${frags[@]}")" | sha256sum | cut -c1-16)

image=$obj/arch/$ka/boot/Image
if [ "$(cat "$obj/.msiremap-key" 2>/dev/null)" = "$key" ] && [ -f "$image" ]; then
	echo "$obj"
	exit 0
fi

kmake=(make -C "$KSRC" O="$obj" ARCH="$ka" LLVM="$LLVM_SUFFIX" -j"$(($(nproc) + 1))")
cat "${frags[@]}" >"$obj/.msiremap-fragment"
rm -f "$obj/.msiremap-key"
say "$arch: configuring Linux $kver ($(basename -a "${frags[@]}" | tr '\n' ' '))"
"${kmake[@]}" -s KCONFIG_ALLCONFIG="$obj/.msiremap-fragment" allnoconfig >"$obj/config.log" 2>&1 ||
	{ tail -n 20 "$obj/config.log" >&2; die "$arch: configuration failed (log: $obj/config.log)"; }

# Every item of the fragments must have taken effect (for a symbol set
# twice, as a variant may do, the last setting).
bad=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=n) sym=${line%%=*}
		grep -qE "^$sym=[ym]\$" "$obj/.config" && bad+=("$line (is set)") ;;
	CONFIG_*=*) grep -qxF "$line" "$obj/.config" || bad+=("$line") ;;
	esac
done < <(cat "${frags[@]}" | grep '^CONFIG_' | tac | awk -F= '!seen[$1]++' | tac)
[ ${#bad[@]} -eq 0 ] || die "$arch: config items not in effect (missing dependency or unknown symbol): ${bad[*]}"

say "$arch: building Image, modules and uapi headers (log: $obj/build.log)"
start=$SECONDS
"${kmake[@]}" Image modules headers >"$obj/build.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
	for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null && sleep 1; done
	kill -0 "$pid" 2>/dev/null || break
	last=$(grep -E '^  [A-Z]' "$obj/build.log" | tail -n 1 | sed 's/^ *//')
	say "$arch: $((SECONDS - start)) s, $(grep -cE '^  [A-Z]' "$obj/build.log") steps, at: $last"
done
wait "$pid" || { grep -E 'error|Error' "$obj/build.log" | head -n 20 >&2
	tail -n 15 "$obj/build.log" >&2
	die "$arch: kernel build failed (log: $obj/build.log)"; }
printf '%s\n' "$key" >"$obj/.msiremap-key"
say "$arch: built $(cat "$obj/include/config/kernel.release") in $((SECONDS - start)) s"
echo "$obj"
