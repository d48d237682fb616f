#!/usr/bin/env bash
# Boot our kernel under QEMU with the guest initramfs.
#
# Usage: scripts/run.sh [options]
#   --profile NAME     QEMU profile (tests/profiles.conf); default: the arch's
#   --arch ARCH        riscv64 (default) or arm64, when no profile is given
#   --mode MODE        shell | show | cmd | check   (see tests/guest/init)
#   --group G          test group: its devices and kernel arguments
#                      (tests/G/group.conf); in check mode, its tests run
#   --cmd CMD          command run in the guest (cmd mode)
#   --extra DIR        host directory put into the guest at /extra
#   --qemu-args ARGS   appended to the QEMU command line
#   --append ARGS      appended to the kernel command line
#   --log FILE         keep the console log there (batch modes)
#   --timeout S        kill QEMU after S seconds (batch modes; default 300)
#   --variant V        kernel config variant (config/V.config)
#   --trace EVENTS     print these trace events to the console and dmesg as
#                      they happen (`iommu`, `iommu:map,iommu:unmap`; a
#                      group's TRACE= by default)
# Exit status: cmd mode, the command's; otherwise 0 when the guest powered off
# by itself, 124 on timeout, 1 on a boot failure.
set -euo pipefail
SELF=run
. "$(dirname "$0")/lib.sh"
. "$TOP/scripts/profile.sh"
. "$TOP/scripts/qemu.sh"

profile= arch= mode=show group= cmd= extra= qargs= append= log= timeout=300 variant= trace=
while [ $# -gt 0 ]; do
	case "$1" in
	--profile) profile=$2; shift ;;
	--arch) arch=$2; shift ;;
	--mode) mode=$2; shift ;;
	--group) group=$2; shift ;;
	--cmd) cmd=$2; mode=cmd; shift ;;
	--extra) extra=$2; shift ;;
	--qemu-args) qargs=$2; shift ;;
	--append) append=$2; shift ;;
	--log) log=$2; shift ;;
	--timeout) timeout=$2; shift ;;
	--variant) variant=$2; shift ;;
	--trace) trace=$2; shift ;;
	*) die "unknown option '$1'" ;;
	esac
	shift
done

if [ -n "$profile" ]; then
	parch=$(profile_field "$profile" arch) ||
		die "unknown profile '$profile' (make profiles lists them)"
	[ -z "$arch" ] || [ "$arch" = "$parch" ] ||
		die "profile '$profile' is for $parch, not ARCH=$arch"
	arch=$parch
else
	arch=${arch:-riscv64}
	karch "$arch" >/dev/null
	profile=$(profile_default "$arch")
fi
case "$mode" in shell | show | cmd | check) ;; *) die "unknown mode '$mode'" ;; esac
[ -z "$group" ] || group_var "$group" PROFILES >/dev/null
[ -z "$extra" ] || [ -d "$extra" ] || die "GUEST_FILES: '$extra' is not a directory"

# The strict QEMU of riscv64 profiles (scripts/qemu.sh) builds beside the
# kernel, when either is not cached.
if [ "$arch" = riscv64 ] && [[ " $(profile_field "$profile" args) " != *" qemu:debian "* ]]; then
	qemu_strict_start "$BUILD/$arch/qemu-path"
fi
# The profile's kernel variant, unless --variant names one.
variant=${variant:-$(profile_field "$profile" variant)}
kobj=$("$TOP/scripts/kernel.sh" "$arch" $variant)
"$TOP/scripts/modules.sh" "$arch" "$kobj" $variant
export KVARIANT=$variant
mkdir -p "$BUILD/$arch"
initrd=$BUILD/$arch/initramfs-$mode.cpio
cmdfile=
if [ "$mode" = cmd ]; then
	cmdfile=$BUILD/$arch/cmd
	printf '%s\n' "$cmd" >"$cmdfile"
fi
"$TOP/scripts/guest.sh" "$arch" "$kobj" "$initrd" "$cmdfile" "$extra"

if [ -n "$group" ]; then
	append="msiremap.group=$group $(group_var "$group" "APPEND_$arch") $(group_var "$group" "APPEND_PROFILE_${profile//-/_}") $append"
	qargs="$(group_qemu_args "$group" "$arch" "$BUILD/$arch" "$profile") $qargs"
	trace=${trace:-$(group_var "$group" TRACE)}
fi
append="$(trace_cmdline "$trace") $append"
qemu_cmd "$profile" "$kobj" "$initrd" "msiremap.mode=$mode $append" "$qargs"
say "profile $profile on $QEMU_USED"

if [ "$mode" = shell ]; then
	exec "${QCMD[@]}" -nographic
fi

log=${log:-$BUILD/logs/run-$profile-$mode.log}
mkdir -p "$(dirname "$log")"
rc=0
qemu_batch "$log" "$timeout" || rc=$?
[ "$rc" = 124 ] && { say "QEMU timed out after $timeout s (log: $log)"; exit 124; }

case "$mode" in
cmd)
	status=$(sed -n 's/^@@CMD-EXIT \([0-9]*\)@@$/\1/p' "$log" | tail -n 1)
	# What the command printed, between the guest's markers.
	sed -n '/^@@CMD-BEGIN@@$/,/^@@CMD-EXIT/{/^@@/d; p}' "$log"
	[ -n "$status" ] || { say "the guest did not finish the command (log: $log)"; exit 1; }
	exit "$status"
	;;
show)
	cat "$log"
	;;
esac
exit "$rc"
