#!/usr/bin/env bash
# Lay our kernel layer over a pristine linux-source-7.3 tree.
#
# In order: the enabling series (patches/*.patch, applied in file-name order),
# then rust/ copied over the kernel's rust/ so our abstractions build as part
# of the `kernel` crate. A new Rust file whose parent module is a kernel file
# gets its `pub mod` line added there; a new rust/helpers/*.c file gets its
# #include added to rust/helpers/helpers.c; rust/bindings/msiremap_helper.h,
# when present, is #included from bindings_helper.h.
#
# The result is synchronised into $KSRC by content, so files the layer did not
# change keep their timestamps and kbuild rebuilds only what depends on the
# files that did change.
set -euo pipefail
SELF=layer
. "$(dirname "$0")/lib.sh"

cache_lock layer
[ -f "$KSRC_PRISTINE/.msiremap-version" ] || die "no kernel source in $KSRC_PRISTINE (run scripts/setup.sh)"
read -r debver kver <"$KSRC_PRISTINE/.msiremap-version"

patches=()
[ ! -d "$TOP/patches" ] || mapfile -t patches < <(find "$TOP/patches" -maxdepth 1 -name '*.patch' | sort)
mapfile -t rustfiles < <(cd "$TOP" && find rust -type f \( -name '*.rs' -o -name '*.c' -o -name '*.h' \) | sort)
key=$(hash_files "$KSRC_PRISTINE/.msiremap-version" "$0" "$TOP/scripts/lib.sh" "${patches[@]}" \
	"${rustfiles[@]/#/$TOP/}")

if [ "$(cat "$KSRC/.msiremap-layer" 2>/dev/null)" = "$key" ]; then
	echo "$key"
	exit 0
fi

# Builds read the tree under the shared lock; change it only when none runs.
cache_lock source
stage=$MSIREMAP_CACHE/linux.stage
rm -rf "$stage"
say "laying our kernel layer over Linux $kver (linux-source-7.3 $debver)"
# The tree's contents (`/.`): were the pristine tree a symbolic link, `cp -a`
# of the link would make the stage the pristine tree itself.
mkdir "$stage"
cp -al "$KSRC_PRISTINE/." "$stage/"

for p in "${patches[@]}"; do
	name=$(basename "$p")
	# GNU patch writes each file anew, so the hard links to the pristine
	# tree are broken rather than written through.
	if ! out=$(patch -d "$stage" -p1 -N -s -f --no-backup-if-mismatch --dry-run -i "$p" 2>&1) ||
		! out=$(patch -d "$stage" -p1 -N -s -f --no-backup-if-mismatch -i "$p" 2>&1); then
		printf '%s\n' "$out" | sed 's/^/  /' >&2
		die "patch $name does not apply to Linux $kver (linux-source-7.3 $debver)"
	fi
	say "applied $name"
done

for f in "${rustfiles[@]}"; do
	lay_rust_file "$stage" "$f"
done

printf '%s\n' "$key" >"$stage/.msiremap-layer"
if [ -d "$KSRC" ]; then
	# By content: unchanged files keep their timestamps, changed ones get new.
	rsync -rlc --delete "$stage/" "$KSRC/"
	rm -rf "$stage"
else
	mv "$stage" "$KSRC"
fi
say "kernel source ready: $KSRC (layer $key)"
echo "$key"
