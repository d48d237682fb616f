# Profile look-ups over tests/profiles.conf, and test-group settings from
# tests/<group>/group.conf. Sourced, not run.

# profile_field NAME FIELD: FIELD is arch, variant (the kernel config
# variant after a `+` in the arch column, empty for none), default or args.
profile_field() {
	awk -v n="$1" -v f="$2" '
		/^#/ || NF < 3 { next }
		$1 == n {
			split($2, av, "+")
			if (f == "arch") print av[1]
			else if (f == "variant") print av[2]
			else if (f == "default") print $3
			else { $1 = $2 = $3 = ""; sub(/^ +/, ""); print }
			found = 1
		}
		END { exit !found }' "$TOP/tests/profiles.conf"
}

# profile_default ARCH: the default profile of an architecture.
profile_default() {
	awk -v a="$1" '!/^#/ && NF >= 3 && $2 == a && $3 == "yes" { print $1; exit }' \
		"$TOP/tests/profiles.conf"
}

# profile_names: every profile, one a line, in file order.
profile_names() {
	awk '!/^#/ && NF >= 3 { print $1 }' "$TOP/tests/profiles.conf"
}

# group_var GROUP VAR: a variable of tests/GROUP/group.conf (empty if unset).
group_var() {
	[ -f "$TOP/tests/$1/group.conf" ] || die "no test group '$1' (tests/$1/group.conf)"
	(
		# shellcheck disable=SC1090
		. "$TOP/tests/$1/group.conf"
		eval "printf '%s' \"\${$2:-}\""
	)
}

# group_qemu_args GROUP ARCH DIR [PROFILE]: the QEMU options a group adds on
# ARCH, then on PROFILE (QEMU_PROFILE_<profile>, dashes as underscores); a group
# with DISK_MB gets a fresh zeroed raw disk of that size in DIR, as the
# drive `disk0` its devices can use (drive=disk0).
group_qemu_args() {
	local disk_mb img
	disk_mb=$(group_var "$1" DISK_MB)
	if [ -n "$disk_mb" ]; then
		img=$3/disk-$1.img
		mkdir -p "$3"
		rm -f "$img"
		truncate -s "${disk_mb}M" "$img" || die "cannot create $img"
		printf '%s ' "-drive if=none,id=disk0,format=raw,file=$img"
	fi
	group_var "$1" "QEMU_$2"
	[ -z "${4:-}" ] || printf ' %s' "$(group_var "$1" "QEMU_PROFILE_${4//-/_}")"
}
