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
# With BENCH_DMA_ID_RUNS, the same through both drivers' identity domains
# (iommu.passthrough=1): dma-direct maps, and the counters show whether
# the driver was called at all.
#
# First, hw::pgtable on the host: ns per page mapped and unmapped, in runs
# and page by page.
#
# Then the MSI rate of edu through the remapping domain, in a DMA and in the
# identity domain, against no remapping, in alternating rounds.
#
# Then unmap in one paging domain shared by 1, 2 and 8 devices (8 edus
# through VFIO cdev + iommufd, one HWPT): ns per IOMMU_IOAS_UNMAP, and the
# invalidations and fences our driver queues per unmap.
#
# Then PCI/IMS: the time and memory per vector to allocate and free 4096
# IMS vectors on edu (qemu_edu's IMS), with MSI page tables (remapped) and
# without (sw_msi: every CPU's doorbell prepared per vector), side by side.
#
# Then KVM: edu passed through to a bare-metal guest (tests/kvm/kvm_edu.c),
# its MSIs posted (riscv64: to the vCPU's VS-file through our remapping
# domain; arm64: GICv4 vLPIs) against relayed by the host, measured by the
# guest.
#
# BENCH_SECONDS (default 5): length of each dma_map_benchmark measurement.
# BENCH_DMA_RUNS (default "1x1 16x1 256x1 1x2 16x2 256x2"): the
#   dma_map_benchmark runs, each PAGESxTHREADS (its granule and threads).
# BENCH_DMA_ID_RUNS (default "1x1 16x1 256x1"): the runs through identity
#   domains; empty: none.
# BENCH_ROUNDS (default 4): boots of each driver (DMA) and of each MSI
#   mode, alternating. DMA: the best figure of the rounds counts. MSI
#   (and unmap, BENCH_UNMAP_ROUNDS): the median, with the
#   spread (min..max) beside it. More, shorter rounds than 2 of 10 s, in
#   the same time: the machine's slow spells last minutes, and one of them
#   can cover a whole round of one driver.
# BENCH_MSIS (default 20000): MSIs per batch.
# BENCH_UNMAP_AREAS (default 4000): areas mapped and unmapped per
#   measurement of the unmap benchmark.
# BENCH_UNMAP_ROUNDS (default 12): its rounds, all in one boot.
# BENCH_IMS (default 4096): IMS vectors per batch.
# BENCH_KVM_MSIS (default 2000): guest MSIs per KVM run.
# BENCH_ONLY=host|dma|msi|unmap|ims|kvm: run one of the six.
set -euo pipefail
SELF=bench
. "$(dirname "$0")/lib.sh"
. "$TOP/scripts/profile.sh"
. "$TOP/scripts/qemu.sh"

secs=${BENCH_SECONDS:-5}
runs=${BENCH_DMA_RUNS:-1x1 16x1 256x1 1x2 16x2 256x2}
idruns=${BENCH_DMA_ID_RUNS-1x1 16x1 256x1}
rounds=${BENCH_ROUNDS:-4}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS: '$rounds' is not a positive number"
nruns=$(wc -w <<<"$runs")
for run in $runs $idruns; do
	[[ $run =~ ^[0-9]+x[0-9]+$ ]] || die "BENCH_DMA_RUNS, BENCH_DMA_ID_RUNS: '$run' is not PAGESxTHREADS (e.g. 16x2)"
done
profile=riscv64
out=$BUILD/bench
mkdir -p "$out/extra"

ours=$("$TOP/scripts/kernel.sh" riscv64)
"$TOP/scripts/modules.sh" riscv64 "$ours"
# med_spread VALUES...: "median min max" of the numbers given.
med_spread() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		print m, v[1], v[NR] }'
}

dma_bench() {
cref=$("$TOP/scripts/kernel.sh" riscv64 cdriver)
say "building the floor: our modules with --cfg bench_floor"
MODULES_RUSTFLAGS="--cfg bench_floor" "$TOP/scripts/modules.sh" riscv64 "$ours" floor

riscv64-linux-gnu-gcc -static -O2 -I"$ours/usr/include" -o "$out/extra/dma_map_benchmark" \
	"$KSRC/tools/dma/dma_map_benchmark.c" || die "cannot build tools/dma/dma_map_benchmark.c"
# dma_cmd FILE RUNS BITS: the guest's command, dma_map_benchmark's RUNS
# with a DMA mask of BITS bits.
dma_cmd() {
	cat >"$1" <<SH
set -e
for d in /sys/bus/pci/devices/*; do
	[ "\$(cat \$d/vendor)" = 0x1234 ] && [ "\$(cat \$d/device)" = 0x11e8 ] && bdf=\${d##*/}
done
stats() { cat /sys/kernel/debug/riscv_iommu/*/stats 2>/dev/null | sed "s/^/\$1 /" || true; }
[ -e /sys/bus/pci/devices/\$bdf/driver ] && echo \$bdf > /sys/bus/pci/devices/\$bdf/driver/unbind
echo dma_map_benchmark > /sys/bus/pci/devices/\$bdf/driver_override
echo \$bdf > /sys/bus/pci/drivers_probe
echo "domain \$(cat /sys/bus/pci/devices/\$bdf/iommu_group/type) iommu \$(ls /sys/class/iommu)"
for run in $2; do
	g=\${run%x*} t=\${run#*x}
	stats before-\$run
	echo "run \$run"
	./dma_map_benchmark -t \$t -s $secs -g \$g -b $3
	stats after-\$run
done
SH
}
dma_cmd "$out/cmd" "$runs" 28
# Identity domains: 32-bit mask, the guest's RAM (1 GiB at 2 GiB) below
# it, so dma-direct maps without bouncing.
dma_cmd "$out/cmd-id" "$idruns" 32

# Rounds alternate the drivers (Rust, C, floor, Rust, ...), so that a slow
# spell of the machine weighs on all; each figure is the best of its rounds.
# rust-id and c-id: the two drivers' identity domains (iommu.passthrough=1).
local sides="rust c floor" side
[ -z "$idruns" ] || sides+=" rust-id c-id"
declare -A map unmap mapall unmapall
for side in $sides; do
	case $side in
	rust) "$TOP/scripts/guest.sh" riscv64 "$ours" "$out/initramfs-$side.cpio" "$out/cmd" "$out/extra" ;;
	rust-id) "$TOP/scripts/guest.sh" riscv64 "$ours" "$out/initramfs-$side.cpio" "$out/cmd-id" "$out/extra" ;;
	c) NO_MODULES=1 "$TOP/scripts/guest.sh" riscv64 "$cref" "$out/initramfs-$side.cpio" "$out/cmd" "$out/extra" ;;
	c-id) NO_MODULES=1 "$TOP/scripts/guest.sh" riscv64 "$cref" "$out/initramfs-$side.cpio" "$out/cmd-id" "$out/extra" ;;
	floor) KVARIANT=floor "$TOP/scripts/guest.sh" riscv64 "$ours" "$out/initramfs-$side.cpio" "$out/cmd" "$out/extra" ;;
	esac
done
for round in $(seq "$rounds"); do
	for side in $sides; do
		local sruns=$runs append="msiremap.mode=cmd" domain='DMA(-FQ)?'
		case $side in *-id) sruns=$idruns append+=" iommu.passthrough=1" domain=identity ;; esac
		if [ "${side%-id}" = c ]; then kobj=$cref; else kobj=$ours; fi
		log=$out/$side-$round.log
		qemu_cmd "$profile" "$kobj" "$out/initramfs-$side.cpio" "$append" "-device edu"
		say "round $round of $rounds, $side driver: $(wc -w <<<"$sruns") runs of $secs s (pages x threads: $sruns)"
		qemu_batch "$log" $((nruns * (secs + 30) + 120)) || die "the $side run failed (log: $log)"
		# Each side must have measured the domain it names, behind the RISC-V IOMMU.
		grep -qE "^domain $domain iommu riscv-iommu" "$log" ||
			die "the $side run did not measure a domain of type $domain (log: $log)"
		[ "$round" -gt 1 ] || say "$side: $(grep -E '^domain ' "$log")"
		for run in $sruns; do
			read -r m u < <(awk -v r="$run" '
				$1 == "run" { on = $2 == r }
				on && /^average map latency/ { sub(/.*:/, "", $3); m = $3 }
				on && /^average unmap latency/ { sub(/.*:/, "", $3); u = $3 }
				END { print m, u }' "$log")
			[ -n "$m" ] && [ -n "$u" ] || die "no benchmark figures for $run from the $side run (log: $log)"
			map[$side,$run]=$(awk -v a="${map[$side,$run]:-}" -v b="$m" 'BEGIN { print (a == "" || b < a) ? b : a }')
			unmap[$side,$run]=$(awk -v a="${unmap[$side,$run]:-}" -v b="$u" 'BEGIN { print (a == "" || b < a) ? b : a }')
			mapall[$side,$run]+="$m "
			unmapall[$side,$run]+="$u "
		done
	done
done
cp "$out/rust-1.log" "$out/rust.log"

delta() { # delta LOG RUN KEY: after - before of our driver's counter KEY in RUN
	local b a
	b=$(awk -v r="before-$2" -v k="$3" '$1 == r && $2 == k { print $3 }' "$1")
	a=$(awk -v r="after-$2" -v k="$3" '$1 == r && $2 == k { print $3 }' "$1")
	echo $((a - b))
}
# spread SIDE RUN: "[min..max]" of a side's map and unmap figures over the rounds.
spread() {
	local m u
	# shellcheck disable=SC2086 # the rounds' figures
	read -r -a m < <(med_spread ${mapall[$1,$2]})
	# shellcheck disable=SC2086
	read -r -a u < <(med_spread ${unmapall[$1,$2]})
	echo "${m[1]}..${m[2]} ${u[1]}..${u[2]}"
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
	syncs=$(delta "$out/rust.log" "$run" unmap_syncs)
	[ "$syncs" -gt 0 ] || die "no unmap counted in run $run (log: $out/rust.log)"
	awk -v r="$run" -v c="$(delta "$out/rust.log" "$run" commands)" \
		-v f="$(delta "$out/rust.log" "$run" syncs)" -v s="$syncs" 'BEGIN {
		printf "  %-8s %9d unmaps, %6.2f invalidations and %4.2f fences each\n", r, s, c / s, f / s }'
done
[ -n "$idruns" ] || return 0
echo
echo "The same through identity domains (iommu.passthrough=1, 32-bit DMA), best of $rounds rounds,"
echo "[min..max] of the rounds; Rust DMA: our driver's DMA domain above, for scale"
printf '%-5s %-7s | %9s %8s %6s %8s | %9s %8s %6s %8s | %s\n' pages threads "map Rust" "map C" ratio \
	"Rust DMA" "unmap Rust" "unmap C" ratio "Rust DMA" "spread: Rust map, unmap; C map, unmap"
for run in $idruns; do
	awk -v g="${run%x*}" -v t="${run#*x}" -v m1="${map[rust-id,$run]}" -v m2="${map[c-id,$run]}" \
		-v u1="${unmap[rust-id,$run]}" -v u2="${unmap[c-id,$run]}" -v md="${map[rust,$run]:--}" \
		-v ud="${unmap[rust,$run]:--}" -v s="$(spread rust-id "$run") $(spread c-id "$run")" '
		function ratio(a, b) { return b > 0 ? sprintf("%.2f", a / b) : "-" }
		function us(a) { return a == "-" ? a : sprintf("%.2f", a) }
		BEGIN {
		printf "%-5s %-7s | %9.2f %8.2f %6s %8s | %9.2f %8.2f %6s %8s | %s\n", g, t,
			m1, m2, ratio(m1, m2), us(md), u1, u2, ratio(u1, u2), us(ud), s }'
done
echo "Rust driver, identity domain, IOMMU commands per run (round 1; dma-direct calls no IOMMU op):"
for run in $idruns; do
	printf '  %-8s %6d invalidations, %4d fences, %4d unmap syncs\n' "$run" \
		"$(delta "$out/rust-id-1.log" "$run" commands)" "$(delta "$out/rust-id-1.log" "$run" syncs)" \
		"$(delta "$out/rust-id-1.log" "$run" unmap_syncs)"
done
}

# MSI rate: edu raises its MSI and qemu_edu waits for its handler, one at a
# time (interrupt round trips), through the remapping domain in a DMA
# domain with MRIFs (the default) and with flat entries (riscv64-flat), in
# the identity domain (the MSI page table still remaps), in a DMA domain
# without MSI tables (intremap=off: the doorbell translated by the page
# table at an IOVA, sw_msi), and with no remapping at all (intremap=off,
# identity domain); MRIF and flat entries also on Debian's QEMU, against
# the strict QEMU the riscv64 profiles run on (scripts/qemu-build.sh).
#
# Each mode boots once per round, BENCH_ROUNDS rounds, the modes in turn
# and each round starting one mode later than the one before, so that a
# slow spell of the machine (it lasts minutes) weighs on every mode rather
# than on the one that happened to run in it: booted once each, one after
# the other, MRIF / flat read 0.59 to 0.99 on one CPU and 0.57 to 1.30
# across, from four runs of the same tree. A round's figure is the best of
# its three batches; the table gives the median of the rounds and their
# spread (min..max), and each ratio is taken round by round (the two modes
# of a round ran minutes apart at most) and given as the median of the
# rounds' ratios with their spread.
msi_bench() {
msis=${BENCH_MSIS:-20000}
[[ $msis =~ ^[1-9][0-9]*$ ]] || die "BENCH_MSIS: '$msis' is not a positive number"
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
# The riscv64 profiles run on the strict QEMU; riscv64-debian on Debian's,
# for MRIF and flat entries there too (flat: the module parameter
# riscv64-flat sets, and iommufd's, as flat entries do not isolate).
local modes=(mrif-dma:riscv64: flat-dma:riscv64-flat: mrif-identity:riscv64:iommu.passthrough=1
	sw_msi-dma:riscv64-nointremap: none-identity:riscv64-nointremap:iommu.passthrough=1
	mrif-debian:riscv64-debian:
	"flat-debian:riscv64-debian:riscv_iommu.msi_flat=1 iommufd.allow_unsafe_interrupts=1")
local nmodes=${#modes[@]} names=() run name prof append place round i
for run in "${modes[@]}"; do names+=("${run%%:*}"); done
# rate[NAME-PLACE]: the rounds' figures (ns per MSI), space-separated, in
# round order.
declare -A rate
for round in $(seq "$rounds"); do
	for i in $(seq 0 $((nmodes - 1))); do
		run=${modes[$(((i + round - 1) % nmodes))]}
		IFS=: read -r name prof append <<<"$run"
		qemu_cmd "$prof" "$ours" "$out/initramfs-msi.cpio" \
			"msiremap.mode=cmd qemu_edu.dma_bits=32 $append" "-device edu,dma_mask=0xffffffff"
		say "round $round of $rounds: $msis MSIs x3 x2 placements: $name ($prof${append:+, $append})"
		[ "$round" -gt 1 ] || say "$name: ${QEMU_USED:-}"
		log=$out/msi-$name-$round.log
		qemu_batch "$log" 300 || die "the $name run failed (log: $log)"
		[ "$round" -gt 1 ] || say "$name: $(grep -E '^domain ' "$log")"
		# The best of the round's three batches, in ns per MSI, per placement.
		for place in same cross; do
			v=$(awk -v p="$place" '$1 == p && $2 == "last_raise" && $3 > 0 {
				v = $4 / $3; if (!b || v < b) b = v } END { printf "%.0f", b }' "$log")
			[ "$v" -gt 0 ] || die "no MSI figures ($place) from the $name run (log: $log)"
			rate[$name-$place]+="$v "
		done
	done
done
# ratio A B PLACE: the rounds' ratios rate(B) / rate(A) (A's MSI rate
# relative to B's; below 1, A is slower) as "median min max".
ratio() {
	local a b
	read -ra a <<<"${rate[$1-$3]}"
	read -ra b <<<"${rate[$2-$3]}"
	# shellcheck disable=SC2046 # one word per round
	med_spread $(for i in "${!a[@]}"; do awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { printf "%.4f\n", y / x }'; done)
}
echo
echo "edu MSI round trips (raise, handler, next), profile riscv64, $msis MSIs per batch; a round's"
echo "figure is the best of its 3 batches; median of $rounds alternating rounds [min..max];"
echo "the raising task on CPU 0, the interrupt on CPU 0 (same) or 1 (cross)"
printf '%-16s %24s %9s %24s %9s\n' "" "same ns/MSI [spread]" "MSIs/s" "cross ns/MSI [spread]" "MSIs/s"
for name in "${names[@]}"; do
	local s c
	# shellcheck disable=SC2086 # the rounds' figures
	read -ra s < <(med_spread ${rate[$name-same]})
	# shellcheck disable=SC2086
	read -ra c < <(med_spread ${rate[$name-cross]})
	awk -v n="$name" -v s="${s[*]}" -v c="${c[*]}" 'BEGIN {
		split(s, a, " "); split(c, b, " ")
		printf "%-16s %8.0f [%5.0f..%5.0f] %9.0f %8.0f [%5.0f..%5.0f] %9.0f\n", n,
			a[1], a[2], a[3], 1e9 / a[1], b[1], b[2], b[3], 1e9 / b[1] }'
done
echo "MSI rate ratios, per round, median [min..max] of the $rounds rounds; then the ratio of the two"
echo "modes' best rounds:"
for place in same cross; do
	for pair in "mrif-dma flat-dma MRIF / flat entries (DMA domain) (goal: at least 0.9)" \
		"mrif-dma none-identity MRIF (DMA domain) / not remapped (identity)" \
		"mrif-identity none-identity MRIF (identity domain) / not remapped (identity)" \
		"flat-dma none-identity flat (DMA domain) / not remapped (identity)" \
		"sw_msi-dma none-identity sw_msi (DMA domain, no MSI table) / not remapped (identity)" \
		"mrif-debian flat-debian MRIF / flat entries (DMA domain), Debian's QEMU" \
		"mrif-dma mrif-debian MRIF (DMA domain), strict QEMU / Debian's QEMU" \
		"flat-dma flat-debian flat entries (DMA domain), strict QEMU / Debian's QEMU"; do
		read -r a b what <<<"$pair"
		read -r m lo hi < <(ratio "$a" "$b" "$place")
		# And the ratio of the two modes' best rounds (the least disturbed).
		best=$(awk -v x="${rate[$a-$place]}" -v y="${rate[$b-$place]}" 'BEGIN {
			n = split(x, u, " "); for (i = 1; i <= n; i++) if (!bx || u[i] + 0 < bx) bx = u[i] + 0
			n = split(y, v, " "); for (i = 1; i <= n; i++) if (!by || v[i] + 0 < by) by = v[i] + 0
			printf "%.2f", by / bx }')
		label=${what% (goal*}
		printf '%-5s CPU: MSI rate %s: %.2f [%.2f..%.2f], best rounds %s%s\n' "$place" "$label" "$m" \
			"$lo" "$hi" "$best" "${what#"$label"}"
	done
done
}

# Unmap in a paging domain shared by 1, 2 and 8 devices: 8 edus, bound to
# vfio-pci and one iommufd context; tests/bench/src/iommufd_unmap.c attaches
# the first N to one HWPT, maps BENCH_UNMAP_AREAS areas of 1 and of 16
# pages and unmaps them one by one, timing each ioctl and counting the
# invalidations and fences our driver queued. One boot, BENCH_UNMAP_ROUNDS
# rounds in it (a round takes seconds), the device counts taking turns
# (each round starting one later); ratios to N = 1 are taken round by
# round.
unmap_bench() {
local areas=${BENCH_UNMAP_AREAS:-4000} urounds=${BENCH_UNMAP_ROUNDS:-12} counts="1 2 8" n p
[[ $areas =~ ^[1-9][0-9]*$ ]] || die "BENCH_UNMAP_AREAS: '$areas' is not a positive number"
[[ $urounds =~ ^[1-9][0-9]*$ ]] || die "BENCH_UNMAP_ROUNDS: '$urounds' is not a positive number"
# Built here, not by guest.sh: it is no test, and make check's guests do
# without it.
riscv64-linux-gnu-gcc -static -O2 -Wall -Wextra -Wno-unused-parameter -Wno-sign-compare \
	-Wno-format-truncation -D_GNU_SOURCE -I"$TOP/tests/lib" -I"$ours/usr/include" -o "$out/extra/iommufd_unmap" \
	"$TOP/tests/bench/src/iommufd_unmap.c" || die "cannot build tests/bench/src/iommufd_unmap.c"
echo "/extra/iommufd_unmap --rounds $urounds --areas $areas --devices ${counts// /,}" >"$out/unmap-cmd"
"$TOP/scripts/guest.sh" riscv64 "$ours" "$out/initramfs-unmap.cpio" "$out/unmap-cmd" "$out/extra"
local edus=""
for _ in $(seq "${counts##* }"); do edus+=" -device edu"; done
qemu_cmd "$profile" "$ours" "$out/initramfs-unmap.cpio" "msiremap.mode=cmd" "$edus"
local log=$out/unmap.log
say "unmap with $counts devices in one domain: $urounds rounds of $areas areas of 1 and 16 pages ($profile)"
qemu_batch "$log" $((urounds * 300 + 120)) || die "the unmap run failed (log: $log)"
grep -q '^@@CMD-EXIT 0@@' "$log" || die "the unmap benchmark failed (log: $log)"
echo
echo "IOMMU_IOAS_UNMAP of one area (after IOMMU_IOAS_MAP) in one HWPT shared by N edus (VFIO cdev +"
echo "iommufd), profile $profile, $areas areas per size; median of $urounds alternating rounds [min..max];"
echo "ratio: to N = 1, round by round; invalidations and fences: per unmap, our driver's counters"
printf '%-5s %-3s | %21s | %23s %19s | %6s %7s %7s\n' pages N "map ns [spread]" "unmap ns [spread]" \
	"ratio [spread]" "inval" fences gscids
for p in 1 16; do
	for n in $counts; do
		local m u r c
		# shellcheck disable=SC2046 # one word per round
		read -r -a m < <(med_spread $(awk -v n="$n" -v p="$p" '$1 == "unmap" && $3 > 0 && $5 == n && $7 == p { print $11 }' "$log"))
		# shellcheck disable=SC2046
		read -r -a u < <(med_spread $(awk -v n="$n" -v p="$p" '$1 == "unmap" && $3 > 0 && $5 == n && $7 == p { print $13 }' "$log"))
		# shellcheck disable=SC2046
		read -r -a r < <(med_spread $(awk -v n="$n" -v p="$p" '$1 == "unmap" && $3 > 0 && $7 == p && $5 == 1 { one[$3] = $13 }
			$1 == "unmap" && $3 > 0 && $7 == p && $5 == n { v[$3] = $13 }
			END { for (k in v) printf "%.4f\n", v[k] / one[k] }' "$log"))
		# Counters of the first round (the same in every round).
		read -r -a c < <(awk -v n="$n" -v p="$p" '$1 == "unmap" && $3 > 0 && $5 == n && $7 == p && !done {
			done = 1; if ($15 < 0) print "- - " $21; else printf "%.2f %.2f %s\n", $15 / $9, $17 / $9, $21 }' "$log")
		[ "${#u[@]}" = 3 ] && [ "${#c[@]}" = 3 ] || die "no unmap figures for $n devices, $p pages (log: $log)"
		printf '%-5s %-3s | %7.0f [%5.0f..%5.0f] | %9.0f [%5.0f..%5.0f] %5.2f [%4.2f..%4.2f] | %6s %7s %7s\n' \
			"$p" "$n" "${m[@]}" "${u[@]}" "${r[@]}" "${c[@]}"
	done
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
unmap) unmap_bench ;;
ims) ims_bench ;;
kvm) kvm_bench ;;
all) host_bench; dma_bench; msi_bench; unmap_bench; ims_bench; kvm_bench ;;
*) die "BENCH_ONLY=${BENCH_ONLY} is neither host, dma, msi, unmap, ims nor kvm" ;;
esac
