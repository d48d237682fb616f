#!/usr/bin/env bash
# `make check`: host unit tests, the lint gates (scripts/gates.sh), then every
# guest test group on every profile it names, each run judged by scripts/ktap;
# ends with `N passed, M failed`.
#
# Narrowing, for development: CHECK_GROUPS="rig edu" and/or
# CHECK_PROFILES="arm64" run only those (the closing line says so).
# CHECK_APPEND adds to every guest's kernel command line (`make soak`).
#
# riscv64 profiles run on the strict QEMU (scripts/qemu.sh); when one is
# selected, its build (cached, a no-op when nothing changed) starts in the
# background first and overlaps the host tests and the kernel builds.
set -euo pipefail
SELF=check
. "$(dirname "$0")/lib.sh"
. "$TOP/scripts/profile.sh"
. "$TOP/scripts/qemu.sh"
# Each kernel's runs come together, and the kernels of later runs build in
# the background, at idle priority, while earlier runs go; CHECK_APPEND
# comes before a group's own kernel command-line words (a test reads the
# first value of a key). CHECK_PREBUILD=0 builds each kernel when its first
# run comes, as before.
. "$TOP/scripts/schedule.sh"

out=$BUILD/check
rm -rf "$out"
mkdir -p "$out/logs"
totals=$out/totals
: >"$totals"
export CARGO_TARGET_DIR=$BUILD/target
start=$SECONDS

# The guest runs, group and profile: "group profile" lines.
mapfile -t groups < <(cd "$TOP/tests" && for g in */group.conf; do echo "${g%/group.conf}"; done)
[ -z "${CHECK_GROUPS:-}" ] || mapfile -t groups < <(printf "%s\n" $CHECK_GROUPS | grep -vx gates)
runs=()
for group in "${groups[@]}"; do
	[ -f "$TOP/tests/$group/group.conf" ] || die "no test group '$group' (tests/$group/group.conf)"
	# SOAK_PROFILES: soak-length runs, only in `make soak` (CHECK_SOAK=1).
	for profile in $(group_var "$group" PROFILES) ${CHECK_SOAK:+$(group_var "$group" SOAK_PROFILES)}; do
		if [ -n "${CHECK_PROFILES:-}" ] && [[ " $CHECK_PROFILES " != *" $profile "* ]]; then
			continue
		fi
		arch=$(profile_field "$profile" arch) ||
			die "tests/$group/group.conf names unknown profile '$profile'"
		runs+=("$group $profile")
		if [ "$arch" = riscv64 ] && [ -z "${QEMU_STRICT_PID:-}" ] &&
			[[ " $(profile_field "$profile" args) " != *" qemu:debian "* ]]; then
			qemu_strict_start "$out/qemu-path"
		fi
	done
done
# Each kernel's runs together; the later kernels build beside the runs.
mapfile -t runs < <(printf '%s\n' "${runs[@]}" | runs_by_kernel)
trap kernels_prebuild_stop EXIT
kernels_prebuild "${runs[@]}"

# --- Host tests ----------------------------------------------------------------
echo "# host: cargo test"
rc=0
(cd "$TOP" && cargo test --workspace --color never) >"$out/logs/cargo-test.log" 2>&1 || rc=$?
grep -E '^test |^test result:' "$out/logs/cargo-test.log" | grep -v '^test result' | sed 's/^/# /' || true
read -r p f s < <(awk '/^test result:/ {
	for (i = 1; i <= NF; i++) {
		if ($(i+1) ~ /^passed/) p += $i
		if ($(i+1) ~ /^failed/) f += $i
		if ($(i+1) ~ /^ignored/) s += $i
	}} END { print p + 0, f + 0, s + 0 }' "$out/logs/cargo-test.log")
if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
	tail -n 20 "$out/logs/cargo-test.log" | sed 's/^/# /'
	echo "# host: FAIL: cargo test exited with status $rc"
	f=1
fi
echo "# host: $p passed, $f failed (log: $out/logs/cargo-test.log)"
echo "$p $f $s host/cargo-test" >>"$totals"
(cd "$TOP" && cargo build --quiet --release -p ktap) || die "cannot build scripts/ktap"
ktap=$CARGO_TARGET_DIR/release/ktap

# --- Lint gates (rustfmt, checkpatch, the series' shape, clippy) ---------------
# Always, but when CHECK_GROUPS narrows the run and does not name `gates`.
if [ -z "${CHECK_GROUPS:-}" ] || [[ " $CHECK_GROUPS " == *" gates "* ]]; then
	echo "# gates"
	"$TOP/scripts/gates.sh" "$totals"
fi

# --- Guest test groups ----------------------------------------------------------
declare -A built=()
for run in "${runs[@]}"; do
	read -r group profile <<<"$run"
	arch=$(profile_field "$profile" arch)
	variant=$(profile_field "$profile" variant)
	kname=$arch${variant:+-$variant}
	if [ -z "${built[$kname]:-}" ]; then
		kobj=$(kernel_ready "$arch" $variant)
		"$TOP/scripts/modules.sh" "$arch" "$kobj" $variant
		KVARIANT=$variant "$TOP/scripts/guest.sh" "$arch" "$kobj" "$BUILD/$kname/initramfs-check.cpio"
		built[$kname]=$kobj
	fi
	label=$profile/$group
	log=$out/logs/$profile-$group.log
	timeout=$(group_var "$group" TIMEOUT)
	timeout=${timeout:-300}
	# The guest kills a test still running a minute before QEMU's
	# timeout, printing where it is stuck (tests/guest/init).
	append="msiremap.mode=check msiremap.group=$group msiremap.deadline=$((timeout - 60))"
	# CHECK_APPEND before the group's words: a test takes the first value
	# of a key (msr_cmdline), so `make soak`'s counts win over the group's.
	append+=" ${CHECK_APPEND:-} $(group_var "$group" "APPEND_$arch")"
	append+=" $(group_var "$group" "APPEND_PROFILE_${profile//-/_}")"
	append+=" $(trace_cmdline "$(group_var "$group" TRACE)")"
	qemu_cmd "$profile" "${built[$kname]}" "$BUILD/$kname/initramfs-check.cpio" \
		"$append" "$(group_qemu_args "$group" "$arch" "$out/disks/$profile" "$profile")"
	t0=$SECONDS
	status=0
	qemu_batch "$log" "$timeout" || status=$?
	echo "# $label: guest ran $((SECONDS - t0)) s on $QEMU_USED"
	"$ktap" report "$label" "$log" "$status" "$totals" || true
done

echo "# make check: $((SECONDS - start)) s${CHECK_GROUPS:+, groups: $CHECK_GROUPS}${CHECK_PROFILES:+, profiles: $CHECK_PROFILES}"
"$ktap" total "$totals"
