#!/usr/bin/env bash
# `make bench`: the kernel's dma_map_benchmark against edu, through our Rust
# RISC-V IOMMU driver and through the in-tree C driver (a kernel variant with
# the same IOMMU_DMA patch), on the same QEMU profile, one after the other in
# one run, for granules of 1, 16 and 256 pages with 1 and 2 threads; prints
# both figures and their ratio per run, and the IOMMU commands our driver
# queued per unmap. A third build of our driver, the floor (--cfg
# bench_floor), maps and unmaps without touching its page table: what is
# left is the cost of the rest of the path, common to both drivers, and
# each driver's page-table share is its figure minus the floor's. The
# averages are to the nanosecond (patch 0020: the kernel's own are in
# units of 100 ns, as large as the difference at one page). A benchmark,
# not a test: it judges nothing.
#
# First, hw::pgtable on the host: ns per page mapped and unmapped, in runs
# and page by page.
#
# Then the MSI rate of edu through the remapping domain, in a DMA and in the
# identity domain, against no remapping at all.
#
# Then PCI/IMS: the time and memory per vector to allocate and free 4096
# IMS vectors on edu (qemu_edu's IMS), with MSI page tables (remapped) and
# without (sw_msi: every CPU's doorbell prepared per vector), side by side.
#
# BENCH_SECONDS (default 5): length of each dma_map_benchmark measurement.
# BENCH_DMA_RUNS (default "1x1 16x1 256x1 1x2 16x2 256x2"): the
#   dma_map_benchmark runs, each PAGESxTHREADS (its granule and threads).
# BENCH_ROUNDS (default 4): boots of each driver, alternating; the best
#   figure of the rounds counts. More, shorter rounds than 2 of 10 s, in
#   the same time: the machine's slow spells last minutes, and one of them
#   can cover a whole round of one driver.
# BENCH_MSIS (default 20000): MSIs per batch.
# Then KVM: edu passed through to a bare-metal guest (tests/kvm/kvm_edu.c),
# its MSIs posted (riscv64: to the vCPU's VS-file through our remapping
# domain; arm64: GICv4 vLPIs) against relayed by the host, measured by the
# guest.
#
# BENCH_IMS (default 4096): IMS vectors per batch.
# BENCH_KVM_MSIS (default 2000): guest MSIs per KVM run.
# BENCH_ONLY=host|dma|msi|ims|kvm: run one of the five.
set -euo pipefail
SELF=bench
. "$(dirname "$0")/lib.sh"
. "$TOP/scripts/profile.sh"
. "$TOP/scripts/qemu.sh"

secs=${BENCH_SECONDS:-5}
runs=${BENCH_DMA_RUNS:-1x1 16x1 256x1 1x2 16x2 256x2}
rounds=${BENCH_ROUNDS:-4}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS: '$rounds' is not a positive number"
nruns=$(wc -w <<<"$runs")
for run in $runs; do
	[[ $run =~ ^[0-9]+x[0-9]+$ ]] || die "BENCH_DMA_RUNS: '$run' is not PAGESxTHREADS (e.g. 16x2)"
done
profile=riscv64
out=$BUILD/bench
mkdir -p "$out/extra"

ours=$("$TOP/scripts/kernel.sh" riscv64)
"$TOP/scripts/modules.sh" riscv64 "$ours"
dma_bench() {
cref=$("$TOP/scripts/kernel.sh" riscv64 cdriver)
say "building the floor: our modules with --cfg bench_floor"
MODULES_RUSTFLAGS="--cfg bench_floor" "$TOP/scripts/modules.sh" riscv64 "$ours" floor

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
for run in $runs; do
	g=\${run%x*} t=\${run#*x}
	stats before-\$run
	echo "run \$run"
	./dma_map_benchmark -t \$t -s $secs -g \$g -b 28
	stats after-\$run
done
SH

# Rounds alternate the drivers (Rust, C, floor, Rust, ...), so that a slow
# spell of the machine weighs on all; each figure is the best of its rounds.
declare -A map unmap
for side in rust c floor; do
	case $side in
	rust) "$TOP/scripts/guest.sh" riscv64 "$ours" "$out/initramfs-$side.cpio" "$out/cmd" "$out/extra" ;;
	c) NO_MODULES=1 "$TOP/scripts/guest.sh" riscv64 "$cref" "$out/initramfs-$side.cpio" "$out/cmd" "$out/extra" ;;
	floor) KVARIANT=floor "$TOP/scripts/guest.sh" riscv64 "$ours" "$out/initramfs-$side.cpio" "$out/cmd" "$out/extra" ;;
	esac
done
for round in $(seq "$rounds"); do
	for side in rust c floor; do
		if [ $side = c ]; then kobj=$cref; else kobj=$ours; fi
		log=$out/$side-$round.log
		qemu_cmd "$profile" "$kobj" "$out/initramfs-$side.cpio" "msiremap.mode=cmd" "-device edu"
		say "round $round of $rounds, $side driver: $nruns runs of $secs s (pages x threads: $runs)"
		qemu_batch "$log" $((nruns * (secs + 30) + 120)) || die "the $side run failed (log: $log)"
		# Both sides must have measured a translated (DMA) domain.
		grep -qE '^domain DMA(-FQ)? iommu riscv-iommu' "$log" ||
			die "the $side run did not measure a translated domain (log: $log)"
		[ "$round" -gt 1 ] || say "$side: $(grep -E '^domain ' "$log")"
		for run in $runs; do
			read -r m u < <(awk -v r="$run" '
				$1 == "run" { on = $2 == r }
				on && /^average map latency/ { sub(/.*:/, "", $3); m = $3 }
				on && /^average unmap latency/ { sub(/.*:/, "", $3); u = $3 }
				END { print m, u }' "$log")
			[ -n "$m" ] && [ -n "$u" ] || die "no benchmark figures for $run from the $side run (log: $log)"
			map[$side,$run]=$(awk -v a="${map[$side,$run]:-}" -v b="$m" 'BEGIN { print (a == "" || b < a) ? b : a }')
			unmap[$side,$run]=$(awk -v a="${unmap[$side,$run]:-}" -v b="$u" 'BEGIN { print (a == "" || b < a) ? b : a }')
		done
	done
done
cp "$out/rust-1.log" "$out/rust.log"

delta() { # delta RUN KEY: after - before of our driver's counter KEY in RUN
	local b a
	b=$(awk -v r="before-$1" -v k="$2" '$1 == r && $2 == k { print $3 }' "$out/rust.log")
	a=$(awk -v r="after-$1" -v k="$2" '$1 == r && $2 == k { print $3 }' "$out/rust.log")
	echo $((a - b))
}
echo "dma_map_benchmark, profile $profile, $secs s per run, best of $rounds alternating rounds, edu (28-bit DMA),"
echo "latency in us per map and per unmap; floor: our driver built to leave its page table alone"
echo "(its unmaps still invalidate); pt: the page tables' map ratio, (Rust - floor) / (C - floor),"
echo "'-' where C is within 0.1 us of the floor"
printf '%-5s %-7s | %8s %7s %7s %6s %6s | %9s %8s %8s %6s\n' pages threads \
	"map Rust" "map C" floor ratio pt "unmap Rust" "unmap C" floor ratio
for run in $runs; do
	awk -v g="${run%x*}" -v t="${run#*x}" -v m1="${map[rust,$run]}" -v m2="${map[c,$run]}" \
		-v m0="${map[floor,$run]}" -v u1="${unmap[rust,$run]}" -v u2="${unmap[c,$run]}" \
		-v u0="${unmap[floor,$run]}" '
		function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
		function share(a, b, f) { return b - f > 0.1 ? sprintf("%.2f", (a - f) / (b - f)) : "-" }
		BEGIN {
		printf "%-5s %-7s | %8.2f %7.2f %7.2f %6s %6s | %9.2f %8.2f %8.2f %6s\n", g, t,
			m1, m2, m0, ratio(m1, m2), share(m1, m2, m0), u1, u2, u0, ratio(u1, u2) }'
done
echo "Rust driver, IOMMU commands per unmap (round 1):"
for run in $runs; do
	syncs=$(delta "$run" unmap_syncs)
	[ "$syncs" -gt 0 ] || die "no unmap counted in run $run (log: $out/rust.log)"
	awk -v r="$run" -v c="$(delta "$run" commands)" -v f="$(delta "$run" syncs)" -v s="$syncs" 'BEGIN {
		printf "  %-8s %9d unmaps, %6.2f invalidations and %4.2f fences each\n", r, s, c / s, f / s }'
done
}

# MSI rate: edu raises its MSI and qemu_edu waits for its handler, one at a
# time (interrupt round trips), through the remapping domain in a DMA
# domain with MRIFs (the default) and with flat entries (riscv64-flat), in
# the identity domain (the MSI page table still remaps), in a DMA domain
# without MSI tables (intremap=off: the doorbell translated by the page
# table at an IOVA, sw_msi), and with no remapping at all (intremap=off,
# identity domain).
msi_bench() {
msis=${BENCH_MSIS:-20000}
# The raising task and the interrupt on one CPU, then on different ones:
# left to the scheduler, the two placements give round trips about 1.5
# times apart, which run to run looked like a difference between modes.
cat >"$out/msi-cmd" <<SH
set -e
d=\$(ls -d /sys/kernel/debug/qemu_edu/*)
echo "domain \$(cat /sys/bus/pci/devices/\${d##*/}/iommu_group/type)"
irq=\$(sed -n 's/^irq //p' \$d/stats)
for place in same:0 cross:1; do
	echo \${place#*:} > /proc/irq/\$irq/smp_affinity_list
	taskset -c 0 sh -c "echo 1000 > \$d/irq"
	for i in 1 2 3; do
		taskset -c 0 sh -c "echo $msis > \$d/irq"
		echo "\${place%:*} \$(grep ^last_raise \$d/stats)"
	done
done
SH
"$TOP/scripts/guest.sh" riscv64 "$ours" "$out/initramfs-msi.cpio" "$out/msi-cmd" "$out/extra"
declare -A rate
names=()
for run in mrif-dma:riscv64: flat-dma:riscv64-flat: mrif-identity:riscv64:iommu.passthrough=1 \
	sw_msi-dma:riscv64-nointremap: none-identity:riscv64-nointremap:iommu.passthrough=1; do
	IFS=: read -r name prof append <<<"$run"
	names+=("$name")
	qemu_cmd "$prof" "$ours" "$out/initramfs-msi.cpio" "msiremap.mode=cmd qemu_edu.dma_bits=32 $append" \
		"-device edu,dma_mask=0xffffffff"
	say "raising $msis MSIs x3 x2 placements: $name ($prof${append:+, $append})"
	qemu_batch "$out/msi-$name.log" 300 || die "the $name run failed (log: $out/msi-$name.log)"
	# The best of three batches, in ns per MSI, per placement.
	for place in same cross; do
		rate[$name-$place]=$(awk -v p="$place" '$1 == p && $2 == "last_raise" && $3 > 0 {
			v = $4 / $3; if (!b || v < b) b = v } END { printf "%.0f", b }' "$out/msi-$name.log")
		[ "${rate[$name-$place]}" -gt 0 ] ||
			die "no MSI figures ($place) from the $name run (log: $out/msi-$name.log)"
	done
	say "$name: $(grep -E '^domain ' "$out/msi-$name.log")"
done
echo
echo "edu MSI round trips (raise, handler, next), $msis per batch, best of 3, profile riscv64;"
echo "the raising task on CPU 0, the interrupt on CPU 0 (same) or 1 (cross)"
printf '%-24s %12s %12s %12s %12s\n' "" "same ns/MSI" "MSIs/s" "cross ns/MSI" "MSIs/s"
for name in "${names[@]}"; do
	printf '%-24s %12s %12.0f %12s %12.0f\n' "$name" "${rate[$name-same]}" \
		"$(awk -v n="${rate[$name-same]}" 'BEGIN { print 1e9 / n }')" "${rate[$name-cross]}" \
		"$(awk -v n="${rate[$name-cross]}" 'BEGIN { print 1e9 / n }')"
done
for place in same cross; do
	awk -v p="$place" -v a="${rate[mrif-dma-$place]}" -v b="${rate[mrif-identity-$place]}" \
		-v c="${rate[none-identity-$place]}" -v d="${rate[sw_msi-dma-$place]}" \
		-v f="${rate[flat-dma-$place]}" 'BEGIN {
		printf "%s CPU: MSI rate MRIF / flat entries (DMA domain): %.2f (goal: at least 0.9)\n", p, f / a
		printf "%s CPU: MSI rate MRIF (DMA domain) / not remapped (identity): %.2f\n", p, c / a
		printf "%s CPU: MSI rate MRIF (identity domain) / not remapped (identity): %.2f\n", p, c / b
		printf "%s CPU: MSI rate flat (DMA domain) / not remapped (identity): %.2f\n", p, c / f
		printf "%s CPU: MSI rate sw_msi (DMA domain, no MSI table) / not remapped (identity): %.2f\n", p, c / d }'
done
}

# IMS: allocate and free BENCH_IMS vectors three times (best of three), with
# the kernel's slab and per-CPU memory before, with the vectors allocated,
# and after, plus the MRIF pages: in MRIF mode on 2 harts (a vector is an
# identity in an MRIF), with flat entries and without tables on 17 harts
# (QEMU's IMSIC files have 255 identities each).
ims_bench() {
n=${BENCH_IMS:-4096}
cat >"$out/ims-cmd" <<SH
set -e
d=\$(ls -d /sys/kernel/debug/qemu_edu/*)
mem() { awk '/^(Slab|Percpu):/ { s += \$2 } END { print s }' /proc/meminfo; }
echo "pasid 1" > \$d/ims
for i in 1 2 3; do
	m0=\$(mem); echo "alloc $n" > \$d/ims; m1=\$(mem)
	sets=\$(cat /sys/kernel/debug/riscv_iommu/*/msi 2>/dev/null | sed -n 's/^mrif_sets //p')
	echo "free all" > \$d/ims; m2=\$(mem)
	echo "ims \$(grep -E '^last_(alloc|free)' \$d/ims | tr '\\n' ' ')mem_kib \$m0 \$m1 \$m2 mrif_sets \${sets:-0}"
done
grep -E '^(bytes_per_slot|domain) ' \$d/ims
SH
"$TOP/scripts/guest.sh" riscv64 "$ours" "$out/initramfs-ims.cpio" "$out/ims-cmd" "$out/extra"
declare -A alloc free kib
for run in mrif:riscv64:2 flat:riscv64-flat:17 sw_msi:riscv64-nointremap:17; do
	IFS=: read -r name prof harts <<<"$run"
	qemu_cmd "$prof" "$ours" "$out/initramfs-ims.cpio" "msiremap.mode=cmd" "-device edu -smp $harts"
	say "allocating and freeing $n IMS vectors x3: $name ($prof)"
	qemu_batch "$out/ims-$name.log" 600 || die "the $name run failed (log: $out/ims-$name.log)"
	# Best of three, in ns per vector; kernel memory per vector while allocated.
	# An MRIF set takes one page on up to 8 harts.
	read -r alloc[$name] free[$name] kib[$name] < <(awk '$1 == "ims" {
		a = $4 / $3; f = $7 / $6; k = (($10 - $9) * 1024 + $13 * 4096) / $3
		if (!ba || a < ba) ba = a; if (!bf || f < bf) bf = f; if (!bk || k < bk) bk = k }
		END { printf "%.0f %.0f %.0f\n", ba, bf, bk }' "$out/ims-$name.log")
	[ "${alloc[$name]:-0}" -gt 0 ] || die "no IMS figures from the $name run (log: $out/ims-$name.log)"
done
echo
echo "edu IMS, $n vectors per batch, best of 3 (MRIF on 2 harts, the others on 17); driver bytes per slot: \
$(sed -n 's/^bytes_per_slot //p' "$out/ims-mrif.log" | head -1)"
printf '%-34s %14s %14s %22s\n' "" "alloc ns/vec" "free ns/vec" "kernel bytes/vec"
for name in mrif flat sw_msi; do
	printf '%-34s %14s %14s %22s\n' "$name" "${alloc[$name]}" "${free[$name]}" "${kib[$name]}"
done
awk -v a="${alloc[flat]}" -v b="${alloc[mrif]}" -v c="${free[flat]}" -v d="${free[mrif]}" \
	-v e="${alloc[sw_msi]}" -v f="${free[sw_msi]}" 'BEGIN {
	printf "ratio flat / MRIF: alloc %.2f, free %.2f\n", a / b, c / d
	printf "ratio sw_msi / MRIF: alloc %.2f, free %.2f\n", e / b, f / d }'
}

kvm_bench() {
kmsis=${BENCH_KVM_MSIS:-2000}
[[ $kmsis =~ ^[1-9][0-9]*$ ]] || die "BENCH_KVM_MSIS: '$kmsis' is not a positive number"
echo "/tests/kvm/kvm_edu --bench $kmsis" >"$out/kvm-cmd"
local arm
arm=$("$TOP/scripts/kernel.sh" arm64)
"$TOP/scripts/modules.sh" arm64 "$arm"
"$TOP/scripts/guest.sh" riscv64 "$ours" "$out/initramfs-kvm-riscv64.cpio" "$out/kvm-cmd" "$out/extra"
"$TOP/scripts/guest.sh" arm64 "$arm" "$out/initramfs-kvm-arm64.cpio" "$out/kvm-cmd" "$out/extra"
# riscv64 switches posting per irqfd (kvm.irqbypass) and runs both paths
# in one boot; arm64 decides at boot (kvm-arm.vgic_v4_enable): two boots.
for run in riscv64:riscv64-guests arm64:arm64-kvm arm64:arm64-kvm-relay; do
	IFS=: read -r arch prof <<<"$run"
	kobj=$ours
	[ "$arch" = arm64 ] && kobj=$arm
	qemu_cmd "$prof" "$kobj" "$out/initramfs-kvm-$arch.cpio" "msiremap.mode=cmd" "-device edu"
	say "KVM: $kmsis guest MSIs x3 per path ($prof)"
	qemu_batch "$out/kvm-$prof.log" 900 || die "the KVM run on $prof failed (log: $out/kvm-$prof.log)"
	grep -q '^kvm-best ' "$out/kvm-$prof.log" || die "no KVM figures from $prof (log: $out/kvm-$prof.log)"
done
echo
echo "edu passed through to a KVM guest (TCG): $kmsis MSIs per run, best of 3; raise (the"
echo "guest's MMIO write) to the guest's handler, by the guest's counter"
printf '%-8s %-8s %14s %16s %22s\n' "" "" "ns per MSI" "guest MSIs/s" "host irqs per MSI"
for arch in riscv64 arm64; do
	cat "$out"/kvm-"$arch"*.log | awk -v a="$arch" '$1 == "kvm-best" {
		printf "%-8s %-8s %14s %16s %22s\n", a, $2, $3, $4, $5 }'
	cat "$out"/kvm-"$arch"*.log | awk -v a="$arch" '$1 == "kvm-best" { l[$2] = $3; r[$2] = $4 } END {
		printf "%s: latency bypass / relay %.2f, guest MSI rate bypass / relay %.2f\n",
			a, l["bypass"] / l["relay"], r["bypass"] / r["relay"] }'
done
}

# The page-table code on the host: range walks against page-by-page walks.
host_bench() {
	say "benchmarking hw::pgtable on the host (cargo test --release, ignored bench_pgtable)"
	(cd "$TOP" && cargo test --quiet --release -p riscv-iommu-hw -- --ignored --nocapture bench_pgtable) |
		sed -n '/^hw::pgtable/,/^$/p' | grep -vE '^(test |\.+$)' || die "the host page-table benchmark failed"
}

case "${BENCH_ONLY:-all}" in
host) host_bench ;;
dma) dma_bench ;;
msi) msi_bench ;;
ims) ims_bench ;;
kvm) kvm_bench ;;
all) host_bench; dma_bench; msi_bench; ims_bench; kvm_bench ;;
*) die "BENCH_ONLY=${BENCH_ONLY} is neither host, dma, msi, ims nor kvm" ;;
esac
