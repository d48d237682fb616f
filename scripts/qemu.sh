# Booting a guest under QEMU. Sourced, not run (needs lib.sh and profile.sh).

# qemu_cmd PROFILE KOBJ INITRD APPEND [EXTRA-QEMU-ARGS]: fills the array QCMD.
qemu_cmd() {
	local profile=$1 kobj=$2 initrd=$3 append=$4 extra=${5:-} arch pargs qemu image console
	arch=$(profile_field "$profile" arch) || die "unknown profile '$profile' (make profiles lists them)"
	pargs=$(profile_field "$profile" args)
	case "$arch" in
	riscv64)
		# QEMU gives every PCI device an iommu-map to the RISC-V IOMMU:
		# built-in drivers of those devices defer their probe until our
		# IOMMU module (loaded first by the guest's init) registers.
		qemu=qemu-system-riscv64 image=$kobj/arch/riscv/boot/Image console=ttyS0
		;;
	arm64) qemu=qemu-system-aarch64 image=$kobj/arch/arm64/boot/Image console=ttyAMA0 ;;
	esac
	# shellcheck disable=SC2206 # profile and user arguments are word lists
	QCMD=($qemu $pargs $extra -kernel "$image" -initrd "$initrd" -no-reboot
		-append "console=$console panic=-1 quiet msiremap.profile=$profile $append")
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
