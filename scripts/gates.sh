#!/usr/bin/env bash
# The tree's lint gates, each a counted test of `make check`:
#   gate/rustfmt      every .rs file formatted with the kernel's .rustfmt.toml
#   gate/checkpatch/P checkpatch.pl --strict over each patch of the series:
#                     no error, no warning
#   gate/series       one numbering over the series, [PATCH n/N] in file
#                     order; one author; no Signed-off-by (the person who
#                     posts the series adds theirs, Documentation/patches.md)
#   gate/series-am    `make series` applied with `git am` to the pristine tree
#                     gives the tree the layer builds from
#   gate/qemu-checkpatch/P
#                     QEMU's scripts/checkpatch.pl (from Debian's tarball)
#                     over each patch of patches/qemu/series: no error, no
#                     warning, a Signed-off-by
#   gate/clippy       our modules built with CLIPPY=1 and our kernel-crate
#                     additions through clippy-driver (riscv64, where all
#                     of it builds), no warning
#
# Usage: scripts/gates.sh TOTALS   (appends `passed failed skipped label` rows)
set -euo pipefail
SELF=gates
. "$(dirname "$0")/lib.sh"
totals=${1:?usage: gates.sh TOTALS}
out=$BUILD/check/gates
mkdir -p "$out"

# verdict LABEL OK [DETAIL-FILE]: prints the result, appends the row.
verdict() {
	if [ "$2" = 0 ]; then
		echo "# $1: ok"
		echo "1 0 0 $1" >>"$totals"
	else
		echo "# $1: FAIL"
		[ -z "${3:-}" ] || sed 's/^/#   /' "$3" | head -n 40
		echo "0 1 0 $1" >>"$totals"
	fi
}

# --- rustfmt ---------------------------------------------------------------
mapfile -t rs < <(cd "$TOP" && find drivers rust scripts -name '*.rs' -not -path '*/target/*' | sort)
: >"$out/rustfmt"
for f in "${rs[@]}"; do
	rustfmt --edition 2021 --check --config-path "$KSRC_PRISTINE/.rustfmt.toml" "$TOP/$f" >/dev/null 2>&1 ||
		echo "$f (run: rustfmt --config-path \$KSRC/.rustfmt.toml $f)" >>"$out/rustfmt"
done
verdict gate/rustfmt "$(wc -l <"$out/rustfmt")" "$out/rustfmt"

# --- checkpatch and the series' shape -----------------------------------------
mapfile -t patches < <(find "$TOP/patches" -maxdepth 1 -name '*.patch' | sort)
for p in "${patches[@]}"; do
	name=$(basename "$p" .patch)
	# From inside the kernel tree, as a maintainer runs it.
	# The pristine tree has no git history to look `Fixes:` ids up in
	# (UNKNOWN_COMMIT_ID); they were checked against upstream's.
	(cd "$KSRC_PRISTINE" && ./scripts/checkpatch.pl --strict --no-signoff --ignore UNKNOWN_COMMIT_ID "$p") \
		>"$out/checkpatch-$name" 2>&1 || true
	# Errors and warnings fail; --strict's checks are shown (trace-event
	# macros, as upstream writes them, trip its alignment check).
	read -r e w c < <(sed -n 's/^total: \([0-9]*\) errors, \([0-9]*\) warnings, \([0-9]*\) checks.*/\1 \2 \3/p' \
		"$out/checkpatch-$name") || true
	[ -n "${e:-}" ] || e=1
	[ "${c:-0}" = 0 ] || echo "# gate/checkpatch/$name: $c checks (--strict), not failing"
	verdict "gate/checkpatch/$name" "$((e + w))" "$out/checkpatch-$name"
done

: >"$out/series-shape"
n=${#patches[@]} i=0 author=
for p in "${patches[@]}"; do
	i=$((i + 1))
	name=$(basename "$p")
	want=$(printf '[PATCH %02d/%02d]' "$i" "$n")
	subj=$(sed -n 's/^Subject: //p' "$p" | head -n 1)
	[[ $subj == "$want "* ]] || echo "$name: subject '$subj' does not start with '$want'" >>"$out/series-shape"
	[[ $name == "$(printf '%04d' "$i")-"* ]] || echo "$name: file is not number $i of the series" >>"$out/series-shape"
	from=$(sed -n 's/^From: //p' "$p" | head -n 1)
	author=${author:-$from}
	[ "$from" = "$author" ] || echo "$name: author '$from', the others '$author'" >>"$out/series-shape"
	! grep -q '^Signed-off-by:' "$p" || echo "$name: has a Signed-off-by" >>"$out/series-shape"
done
verdict gate/series "$(wc -l <"$out/series-shape")" "$out/series-shape"

# --- make series, applied with git am, is the layer -----------------------------
rc=0
"$TOP/scripts/series.sh" --check "$out/series-patches" >"$out/series-am" 2>&1 || rc=1
verdict gate/series-am "$rc" "$out/series-am"

# --- QEMU's checkpatch over the strict emulator's patches ----------------------
mapfile -t qpatches < <(grep -vE '^[[:space:]]*(#|$)' "$TOP/patches/qemu/series" 2>/dev/null | awk '{ print $1 }')
if [ ${#qpatches[@]} -gt 0 ]; then
	qcp=$("$TOP/scripts/qemu-build.sh" --checkpatch) || die "cannot get QEMU's checkpatch.pl"
	for name in "${qpatches[@]}"; do
		label=gate/qemu-checkpatch/${name%.patch}
		# QEMU's checkpatch requires a Signed-off-by (unlike our kernel
		# series, these are posted as they are).
		(cd "$(dirname "$qcp")" && ./checkpatch.pl --no-tree "$TOP/patches/qemu/$name") \
			>"$out/qemu-checkpatch-$name" 2>&1 || true
		read -r e w < <(sed -n 's/^total: \([0-9]*\) errors, \([0-9]*\) warnings.*/\1 \2/p' \
			"$out/qemu-checkpatch-$name") || true
		[ -n "${e:-}" ] || e=1
		verdict "$label" "$((e + ${w:-0}))" "$out/qemu-checkpatch-$name"
	done
fi

# --- clippy ----------------------------------------------------------------
kobj=$("$TOP/scripts/kernel.sh" riscv64)
mo=$BUILD/riscv64/clippy
rm -rf "$mo"
mkdir -p "$mo"
rc=0
make -C "$kobj" M="$TOP" MO="$mo" ARCH=riscv LLVM="$LLVM_SUFFIX" CLIPPY=1 \
	-j"$(($(nproc) + 1))" modules >"$mo/build.log" 2>&1 || rc=$?
grep -E '^(warning|error)' -A6 "$mo/build.log" >"$out/clippy" || true
[ "$rc" = 0 ] || echo "module build with CLIPPY=1 failed (log: $mo/build.log)" >>"$out/clippy"
# Our kernel-crate additions: kbuild's own command for the kernel crate,
# through clippy-driver, emitting metadata only (the build's objects stay
# as they are); upstream's files are not ours to lint.
cmd=$(sed -n 's/^savedcmd_rust\/kernel.o := //p' "$kobj/rust/.kernel.o.cmd")
if [[ $cmd != *" rustc "* ]]; then
	echo "no kernel-crate command in $kobj/rust/.kernel.o.cmd" >>"$out/clippy"
else
	cmd=${cmd/ rustc / clippy-driver }
	cmd=$(sed -E 's/ --emit=[^ ]+//g' <<<"$cmd")
	(cd "$kobj" && export RUSTC_BOOTSTRAP=1 && eval "$cmd --error-format=short --emit=metadata=$mo/libkernel.rmeta") \
		>"$mo/kernel-clippy.log" 2>&1 || echo "clippy over the kernel crate failed (log: $mo/kernel-clippy.log)" >>"$out/clippy"
	mapfile -t ours < <(cd "$TOP" && find rust/kernel -name '*.rs')
	for f in "${ours[@]}"; do
		grep -F "$f:" "$mo/kernel-clippy.log" >>"$out/clippy" || true
	done
fi
[ -s "$out/clippy" ] || rm -f "$out/clippy"
verdict gate/clippy "$([ -e "$out/clippy" ] && echo 1 || echo 0)" "$out/clippy"
