# Booting a guest under QEMU. Sourced, not run (needs lib.sh and profile.sh).
#
# riscv64 profiles run on the strict QEMU (scripts/qemu-build.sh: Debian's
# source of the installed QEMU with patches/qemu/series), built on first
# use; a profile with the word `qemu:debian` runs on Debian's binary
# instead. arm64 profiles run on Debian's qemu-system-aarch64.

# qemu_strict_start LOG: starts the strict QEMU's build in the background
# (its progress lines on stderr), for qemu_strict to wait for, so that it
# overlaps other work (`make check`: the kernel builds).
qemu_strict_start() {
	QEMU_STRICT_OUT=$1
	mkdir -p "$(dirname "$QEMU_STRICT_OUT")"
	"$TOP/scripts/qemu-build.sh" >"$QEMU_STRICT_OUT" &
	QEMU_STRICT_PID=$!
}

# qemu_strict: sets QEMU_STRICT to the strict QEMU's path, building it if
# needed (or waiting for the build qemu_strict_start began). Not to be run
# in a subshell: the path is kept for the next call, and only this shell
# can wait for its background build.
qemu_strict() {
	[ -z "${QEMU_STRICT:-}" ] || return 0
	if [ -n "${QEMU_STRICT_PID:-}" ]; then
		wait "$QEMU_STRICT_PID" || die "the strict QEMU did not build (its log: $MSIREMAP_CACHE/qemu/build/build.log)"
		QEMU_STRICT=$(cat "$QEMU_STRICT_OUT")
		QEMU_STRICT_PID=
	else
		QEMU_STRICT=$("$TOP/scripts/qemu-build.sh") || exit 1
	fi
	[ -x "$QEMU_STRICT" ] || die "no strict QEMU at '$QEMU_STRICT'"
	QEMU_STRICT_DESC="the strict QEMU (Debian's source of $(dpkg-query -W -f='${Version}' qemu-system-riscv 2>/dev/null || true) with patches/qemu/series; build $(cat "$MSIREMAP_CACHE/qemu/.msiremap-key" 2>/dev/null || true))"
}

# qemu_cmd PROFILE KOBJ INITRD APPEND [EXTRA-QEMU-ARGS]: fills the array
# QCMD, and QEMU_USED with a description of the QEMU it runs.
qemu_cmd() {
	local profile=$1 kobj=$2 initrd=$3 append=$4 extra=${5:-} arch pargs qemu image console
	# Which emulator, for tests whose outcome the specification and QEMU
	# 10.0.2 disagree on (msr_strict_qemu() in tests/lib/msiremap.h).
	local emulator=debian
	arch=$(profile_field "$profile" arch) || die "unknown profile '$profile' (make profiles lists them)"
	pargs=$(profile_field "$profile" args)
	case "$arch" in
	riscv64)
		# QEMU gives every PCI device an iommu-map to the RISC-V IOMMU:
		# built-in drivers of those devices defer their probe until our
		# IOMMU module (loaded first by the guest's init) registers.
		image=$kobj/arch/riscv/boot/Image console=ttyS0
		if [[ " $pargs " == *" qemu:debian "* ]]; then
			qemu=qemu-system-riscv64
			QEMU_USED="Debian's QEMU ($(dpkg-query -W -f='${Version}' qemu-system-riscv 2>/dev/null || true))"
		else
			qemu_strict
			# Its firmware (OpenSBI) is Debian's: the +ds source has none.
			qemu="$QEMU_STRICT -L /usr/share/qemu"
			QEMU_USED=$QEMU_STRICT_DESC
			emulator=strict
		fi
		;;
	arm64)
		qemu=qemu-system-aarch64 image=$kobj/arch/arm64/boot/Image console=ttyAMA0
		QEMU_USED="Debian's QEMU ($(dpkg-query -W -f='${Version}' qemu-system-arm 2>/dev/null || true))"
		;;
	esac
	if [[ " $pargs " =~ \ -dtb\ @([A-Za-z0-9_-]+)\  ]]; then
		local name=${BASH_REMATCH[1]} dtb
		dtb=$(profile_dtb "$profile" "$qemu" "$name" "${pargs/-dtb @$name/}") || exit 1
		pargs=${pargs/-dtb @$name/-dtb $dtb}
	fi
	# A profile's `kernel:ARG` words go to the kernel command line (module
	# parameters: the guest's init passes them to the modules it loads).
	local w kargs=() qargs=()
	for w in $pargs; do
		case "$w" in
		kernel:*) kargs+=("${w#kernel:}") ;;
		qemu:debian) ;;
		qemu:*) die "profile $profile: unknown word '$w' (qemu:debian is the only one)" ;;
		*) qargs+=("$w") ;;
		esac
	done
	# shellcheck disable=SC2206 # user arguments are a word list
	QCMD=($qemu "${qargs[@]}" $extra -kernel "$image" -initrd "$initrd" -no-reboot
		-append "console=$console panic=-1 quiet msiremap.profile=$profile msiremap.qemu=$emulator ${kargs[*]} $append")
}

# trace_cmdline EVENTS: kernel arguments that print trace events to the
# console and the kernel log as they happen (`trace_event=` enables them at
# boot, `tp_printk` sends each to printk, `loglevel=5` lets printk's default
# level through to the console). EVENTS is a comma-separated list of events
# (`iommu:map`) or of whole systems (`iommu`, for `iommu:*`).
trace_cmdline() {
	local events=() e
	[ -n "$1" ] || return 0
	IFS=, read -ra events <<<"$1"
	for e in "${!events[@]}"; do
		[[ ${events[$e]} =~ ^[A-Za-z0-9_]+(:[A-Za-z0-9_*]+)?$ ]] ||
			die "TRACE: '${events[$e]}' is not an event (system:event) or a system"
		[[ ${events[$e]} == *:* ]] || events[$e]+=':*'
	done
	local IFS=,
	printf 'trace_event=%s tp_printk loglevel=5' "${events[*]}"
}

# profile_dtb PROFILE QEMU NAME ARGS: a profile's `-dtb @NAME`: the device
# tree QEMU makes for ARGS, with tests/dt/NAME.dtsi laid over it (dtc merges
# its nodes into QEMU's), compiled to $BUILD/dt/PROFILE.dtb; prints the path.
profile_dtb() {
	local profile=$1 qemu=$2 name=$3 args=$4 dir=$BUILD/dt
	local dtsi=$TOP/tests/dt/$name.dtsi out=$dir/$profile.dtb w qargs=()
	# The profile's words for the kernel command line and the rig are not
	# QEMU's.
	for w in $args; do
		case "$w" in kernel:* | qemu:*) ;; *) qargs+=("$w") ;; esac
	done
	[ -f "$dtsi" ] || die "profile $profile: no device tree overlay tests/dt/$name.dtsi"
	command -v dtc >/dev/null || die "dtc not found (Debian: device-tree-compiler; make setup installs it)"
	mkdir -p "$dir"
	# shellcheck disable=SC2086 # the profile's arguments are a word list
	$qemu "${qargs[@]}" -machine dumpdtb="$dir/$profile.qemu.dtb" -display none >"$dir/$profile.log" 2>&1 ||
		die "profile $profile: QEMU could not dump its device tree (log: $dir/$profile.log)"
	dtc -q -I dtb -O dts -o "$dir/$profile.qemu.dts" "$dir/$profile.qemu.dtb" 2>>"$dir/$profile.log" &&
		cat "$dir/$profile.qemu.dts" "$dtsi" >"$dir/$profile.dts" &&
		dtc -q -I dts -O dtb -o "$out" "$dir/$profile.dts" 2>>"$dir/$profile.log" ||
		die "profile $profile: cannot build its device tree from tests/dt/$name.dtsi (log: $dir/$profile.log)"
	printf '%s' "$out"
}

# qemu_batch LOG TIMEOUT: run QCMD without a terminal, console to LOG (CRs
# stripped). Returns QEMU's status, 124 on timeout.
qemu_batch() {
	local log=$1 timeout=$2 rc
	mkdir -p "$(dirname "$log")"
	set +e
	timeout -k 5 "$timeout" "${QCMD[@]}" -display none -monitor none -serial stdio \
		</dev/null 2>&1 | tr -d '\r' >"$log"
	rc=${PIPESTATUS[0]}
	set -e
	return "$rc"
}
