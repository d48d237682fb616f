# How `make check` orders its guest runs and overlaps the kernel builds
# with them. Sourced, not run (needs lib.sh and profile.sh).
#
# On a fresh machine the four kernels are most of the time, and a guest
# run leaves most of the two cores idle (QEMU's vCPUs wait for the
# emulated devices and timers; a fresh clone's riscv64 `blk` run used
# 3 s of CPU in 7 s). So the runs are grouped by kernel, each kernel's
# runs together, and while one kernel's runs go, the kernels of the next
# are built in the background at idle priority (SCHED_IDLE): they take
# only what the guests leave (the guests lose the CPU to them only for
# the scheduler's wake-up, and share the caches), and a run waits only
# for a kernel still building when it comes up.
# Documentation/rig.md, section 8, has the figures.

# KERNEL_ORDER: the kernels in the order their runs come, those not
# named after them in the order groups first name them. riscv64 first:
# the gates need it (clippy) before any run, and its runs are the most
# guest time, beside which the next kernels build. arm64 last: the runs
# of the last kernel have no build beside them, and arm64's are the
# shortest.
KERNEL_ORDER=${KERNEL_ORDER:-riscv64 riscv64-debug arm64-debug arm64}

# run_kernel PROFILE: the kernel a profile boots, <arch>[-<variant>].
run_kernel() {
	local arch variant
	arch=$(profile_field "$1" arch) || die "unknown profile '$1'"
	variant=$(profile_field "$1" variant)
	printf '%s\n' "$arch${variant:+-$variant}"
}

# runs_by_kernel: reads "group profile" lines, writes them back with each
# kernel's runs together, kernels in KERNEL_ORDER; within a kernel the
# runs keep their order (groups by name, a group's profiles as it lists
# them).
runs_by_kernel() {
	local group profile
	while read -r group profile; do
		[ -n "$profile" ] || continue
		printf '%s %s %s\n' "$(run_kernel "$profile")" "$group" "$profile"
	done | awk -v order="$KERNEL_ORDER" '
		BEGIN { n = split(order, o, " "); for (i = 1; i <= n; i++) rank[o[i]] = i }
		!($1 in rank) { rank[$1] = ++n }
		{ printf "%d %d %s %s\n", rank[$1], NR, $2, $3 }' |
		sort -n -k1,1 -k2,2 | cut -d' ' -f3-
}

# kernels_prebuild RUN...: builds, in one background chain, the kernels of
# the given "group profile" runs but the first run's (the caller builds that
# one, and the gates the riscv64 kernel), at idle priority, in run order.
# scripts/kernel.sh locks each build, so the run that needs a kernel still
# building waits for it, and one already built is not built again. The
# chain's output goes to $BUILD/check/logs/kernels-background.log.
# CHECK_PREBUILD=0 builds every kernel when its first run comes, instead.
PREBUILD_PID= PREBUILD_NOW=
kernels_prebuild() {
	[ "${CHECK_PREBUILD:-1}" != 0 ] || return 0
	local run group profile k first= list=() seen=" "
	for run in "$@"; do
		read -r group profile <<<"$run"
		k=$(run_kernel "$profile")
		[ -n "$first" ] || first=$k
		[ "$k" != "$first" ] || continue
		[[ $seen == *" $k "* ]] && continue
		seen+="$k "
		list+=("$k")
	done
	[ ${#list[@]} -gt 0 ] || return 0
	echo "# kernels: ${list[*]} build in the background, at idle priority"
	# SCHED_IDLE where the system allows it, nice 19 in any case.
	local idle=(chrt --idle 0)
	"${idle[@]}" true 2>/dev/null || idle=()
	# Its own session, so that kernels_prebuild_stop ends the whole chain
	# (kernel.sh, make and the compilers). PREBUILD_NOW names the kernel
	# it builds.
	PREBUILD_NOW=$BUILD/check/kernels-background.now
	setsid "${idle[@]}" nice -n 19 bash -c '
		now=$1 kernel=$2; shift 2
		for k in "$@"; do
			echo "$k" >"$now"
			arch=${k%%-*} variant=
			[ "$arch" = "$k" ] || variant=${k#*-}
			"$kernel" "$arch" $variant >/dev/null || echo "kernel $k: background build failed (the run needing it builds it)"
		done
		: >"$now"' prebuild "$PREBUILD_NOW" "$TOP/scripts/kernel.sh" "${list[@]}" \
		>>"$BUILD/check/logs/kernels-background.log" 2>&1 </dev/null &
	PREBUILD_PID=$!
}

# kernels_prebuild_stop: ends the background chain (the check is over or
# interrupted); an unfinished build resumes, incrementally, next time.
kernels_prebuild_stop() {
	[ -n "$PREBUILD_PID" ] || return 0
	kill -- -"$PREBUILD_PID" 2>/dev/null || true
	wait "$PREBUILD_PID" 2>/dev/null || true
	PREBUILD_PID=
}

# kernels_prebuild_promote KERNEL: when the background chain is building
# KERNEL, which a run now waits for, its build leaves idle priority (the
# chain's next builds do not): on a machine busy with other work an idle
# build would hardly advance. Needs the privilege to raise a priority
# (root, as `make check` runs in CI); without it the build stays idle.
kernels_prebuild_promote() {
	[ -n "$PREBUILD_PID" ] && kill -0 "$PREBUILD_PID" 2>/dev/null || return 0
	[ "$(cat "$PREBUILD_NOW" 2>/dev/null)" = "$1" ] || return 0
	command -v pgrep >/dev/null || return 0
	local pass pid
	# Twice: make may have forked from a process not yet promoted.
	for pass in 1 2; do
		for pid in $(pgrep -g "$PREBUILD_PID"); do
			[ "$pid" != "$PREBUILD_PID" ] || continue
			chrt --other -p 0 "$pid" 2>/dev/null && renice -n 0 -p "$pid" >/dev/null 2>&1 || true
		done
	done
}

# kernel_ready ARCH [VARIANT]: scripts/kernel.sh in the foreground, after
# promoting the background build of that kernel; says so when the run had
# to wait.
kernel_ready() {
	local t0=$SECONDS kobj
	kernels_prebuild_promote "$1${2:+-$2}"
	kobj=$("$TOP/scripts/kernel.sh" "$@") || return 1
	[ $((SECONDS - t0)) -lt 5 ] ||
		echo "# kernel $1${2:+-$2}: ready after $((SECONDS - t0)) s${PREBUILD_PID:+ (built or waited for beside the runs before)}" >&2
	printf '%s\n' "$kobj"
}
