#!/usr/bin/env bash
# `make bench`: the kernel's dma_map_benchmark against edu, through our Rust
# RISC-V IOMMU driver and through the in-tree C driver (a kernel variant with
# the same IOMMU_DMA patch), on the same QEMU profile, one after the other in
# one run; prints both figures and their ratio, and the IOMMU commands our
# driver queued per unmap. A benchmark, not a test: it judges nothing.
#
# BENCH_SECONDS (default 10): length of each measurement.
set -euo pipefail
SELF=bench
. "$(dirname "$0")/lib.sh"
. "$TOP/scripts/profile.sh"
. "$TOP/scripts/qemu.sh"

secs=${BENCH_SECONDS:-10}
profile=riscv64
out=$BUILD/bench
mkdir -p "$out/extra"

ours=$("$TOP/scripts/kernel.sh" riscv64)
"$TOP/scripts/modules.sh" riscv64 "$ours"
cref=$("$TOP/scripts/kernel.sh" riscv64 cdriver)

riscv64-linux-gnu-gcc -static -O2 -I"$ours/usr/include" -o "$out/extra/dma_map_benchmark" \
	"$KSRC/tools/dma/dma_map_benchmark.c" || die "cannot build tools/dma/dma_map_benchmark.c"
cat >"$out/cmd" <<SH
set -e
for d in /sys/bus/pci/devices/*; do
	[ "\$(cat \$d/vendor)" = 0x1234 ] && [ "\$(cat \$d/device)" = 0x11e8 ] && bdf=\${d##*/}
done
stats() { cat /sys/kernel/debug/riscv_iommu/*/stats 2>/dev/null | sed "s/^/\$1 /" || true; }
[ -e /sys/bus/pci/devices/\$bdf/driver ] && echo \$bdf > /sys/bus/pci/devices/\$bdf/driver/unbind
echo dma_map_benchmark > /sys/bus/pci/devices/\$bdf/driver_override
echo \$bdf > /sys/bus/pci/drivers_probe
echo "domain \$(cat /sys/bus/pci/devices/\$bdf/iommu_group/type) iommu \$(ls /sys/class/iommu)"
stats before
./dma_map_benchmark -t 1 -s $secs -g 1 -b 28
stats after
SH

declare -A map unmap cmds
for side in rust c; do
	if [ $side = rust ]; then
		kobj=$ours
		"$TOP/scripts/guest.sh" riscv64 "$kobj" "$out/initramfs-$side.cpio" "$out/cmd" "$out/extra"
	else
		kobj=$cref
		NO_MODULES=1 "$TOP/scripts/guest.sh" riscv64 "$kobj" "$out/initramfs-$side.cpio" "$out/cmd" "$out/extra"
	fi
	qemu_cmd "$profile" "$kobj" "$out/initramfs-$side.cpio" "msiremap.mode=cmd" "-device edu"
	say "running dma_map_benchmark for $secs s through the $side driver"
	qemu_batch "$out/$side.log" $((secs + 120)) || die "the $side run failed (log: $out/$side.log)"
	map[$side]=$(sed -n 's/^average map latency(us):\([0-9.]*\).*/\1/p' "$out/$side.log")
	unmap[$side]=$(sed -n 's/^average unmap latency(us):\([0-9.]*\).*/\1/p' "$out/$side.log")
	[ -n "${map[$side]}" ] && [ -n "${unmap[$side]}" ] ||
		die "no benchmark figures from the $side run (log: $out/$side.log)"
	# Both sides must have measured a translated (DMA) domain.
	grep -qE '^domain DMA(-FQ)? iommu riscv-iommu' "$out/$side.log" ||
		die "the $side run did not measure a translated domain (log: $out/$side.log)"
	say "$side: $(grep -E '^domain ' "$out/$side.log")"
done

delta() { # delta KEY: after - before of our driver's counter KEY
	local b a
	b=$(awk -v k="$1" '$1 == "before" && $2 == k { print $3 }' "$out/rust.log")
	a=$(awk -v k="$1" '$1 == "after" && $2 == k { print $3 }' "$out/rust.log")
	echo $((a - b))
}
syncs=$(delta unmap_syncs)
commands=$(delta commands)
fences=$(delta syncs)
echo "dma_map_benchmark, profile $profile, 1 thread, 1 page, $secs s each, edu (28-bit DMA)"
printf '%-26s %12s %12s\n' "" "map (us)" "unmap (us)"
printf '%-26s %12s %12s\n' "Rust driver (riscv_iommu)" "${map[rust]}" "${unmap[rust]}"
printf '%-26s %12s %12s\n' "C driver (in-tree)" "${map[c]}" "${unmap[c]}"
awk -v m1="${map[rust]}" -v m2="${map[c]}" -v u1="${unmap[rust]}" -v u2="${unmap[c]}" 'BEGIN {
	printf "%-26s %12.2f %12.2f\n", "ratio Rust / C", (m2 > 0 ? m1 / m2 : 0), (u2 > 0 ? u1 / u2 : 0) }'
if [ "$syncs" -gt 0 ]; then
	awk -v c="$commands" -v f="$fences" -v s="$syncs" 'BEGIN {
		printf "Rust driver: %d unmaps, %.2f invalidation commands and %.2f fences per unmap\n", s, c / s, f / s }'
fi
