#!/usr/bin/env bash
# `make series`: the whole kernel layer as one `git format-patch` series
# against the pristine Linux, with a cover letter: the enabling patches
# (patches/*.patch), then our rust/ additions as patches of the kernel tree
# (patches/rust.series says which files each holds and why, in build order).
#
# Usage: scripts/series.sh [--check] [OUTDIR]   (default OUTDIR: build/series)
#   --check  then apply the series with `git am` to the pristine tree and
#            compare the result with the tree the layer builds from
#            ($KSRC): the same files changed, each the same; exit 1 if not.
#
# The repositories hold only the files the layer changes (the pristine
# versions, then the series' commits), so building one takes seconds; the
# patches are the same as against the whole tree.
set -euo pipefail
SELF=series
. "$(dirname "$0")/lib.sh"

check=
[ "${1:-}" != --check ] || { check=1; shift; }
out=${1:-$BUILD/series}
"$TOP/scripts/layer.sh" >/dev/null
cache_lock source -s
read -r debver kver <"$KSRC_PRISTINE/.msiremap-version"
work=$BUILD/series-git
rm -rf "$work" "$out"
mkdir -p "$work" "$out"

export GIT_AUTHOR_NAME="msiremap developers" GIT_AUTHOR_EMAIL="dev@msiremap.invalid"
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL
git_() { git -C "$1" -c core.autocrlf=false -c advice.detachedHead=false "${@:2}"; }

# The files the layer changes: written by the layer (newer than, or unlike,
# the pristine file), and different from it.
mapfile -t changed < <(cd "$KSRC" && rsync -rln --out-format='%n' ./ "$KSRC_PRISTINE/" |
	while read -r f; do
		[ -f "$f" ] && [ "$f" != .msiremap-layer ] || continue
		cmp -s "$f" "$KSRC_PRISTINE/$f" || echo "$f"
	done | sort)
[ ${#changed[@]} -gt 0 ] || die "the layer changes nothing in $KSRC"

# base REPO: a repository holding the pristine version of each changed file.
base() {
	git init -q "$1"
	for f in "${changed[@]}"; do
		[ -e "$KSRC_PRISTINE/$f" ] || continue
		mkdir -p "$1/$(dirname "$f")"
		cp "$KSRC_PRISTINE/$f" "$1/$f"
	done
	git_ "$1" add -A
	GIT_AUTHOR_DATE="@0 +0000" GIT_COMMITTER_DATE="@0 +0000" \
		git_ "$1" commit -q -m "Linux $kver (linux-source-7.3 $debver), the files this series changes"
	git_ "$1" tag base
}
base "$work"

# The enabling patches, as they are.
mapfile -t patches < <(find "$TOP/patches" -maxdepth 1 -name '*.patch' | sort)
git_ "$work" am -q --committer-date-is-author-date "${patches[@]}" ||
	die "the enabling patches do not apply with git am (see $work)"
git_ "$work" tag enabled

# The rust/ additions, one commit an entry of patches/rust.series.
manifest=$TOP/patches/rust.series
declare -A laid=()
laid_order=()
date=$(git -C "$TOP" log -1 --format=%cD -- rust 2>/dev/null || date -R)
# The kernel files the layer declares ours in (`pub mod` lines, #includes),
# among those it changes: each commit writes them anew from the tree the
# enabling patches left, with every file laid so far added in the layer's
# order, so that the last commit gives the layer's tree.
decl_files=()
for f in "${changed[@]}"; do
	[ -e "$KSRC_PRISTINE/$f" ] && decl_files+=("$f")
done
commit_entry() {
	local subject=$1 body=$2 files=$3 f
	[ -n "$files" ] || die "$manifest: '$subject' names no files"
	for f in $files; do
		[ -f "$TOP/$f" ] || die "$manifest: '$subject': no file $f"
		[ -z "${laid[$f]:-}" ] || die "$manifest: $f is in two entries"
		laid[$f]=1
		laid_order+=("$f")
	done
	# Declarations from the tree the enabling patches left, then every
	# file laid so far in the layer's (sorted) order.
	for f in "${decl_files[@]}"; do
		git_ "$work" show "enabled:$f" >"$work/$f"
	done
	while read -r f; do
		lay_rust_file "$work" "$f"
	done < <(printf '%s\n' "${laid_order[@]}" | sort)
	git_ "$work" add -A
	printf '%s\n\n%s\n' "$subject" "$body" |
		GIT_AUTHOR_DATE=$date GIT_COMMITTER_DATE=$date git_ "$work" commit -q --cleanup=whitespace -F - ||
		die "$manifest: '$subject' changes nothing"
}
subject= files= body=
while IFS= read -r line || [ -n "$line" ]; do
	case "$line" in
	'#'*) [ -n "$subject" ] || continue ;;
	'=== '*)
		[ -z "$subject" ] || commit_entry "$subject" "$body" "$files"
		subject=${line#=== } files= body=
		continue
		;;
	'files: '*) [ -n "$subject" ] && [ -z "$files" ] && { files=${line#files: }; continue; } ;;
	esac
	[ -n "$subject" ] || continue
	# The body, without its first blank line nor trailing ones.
	if [ -n "$body" ] || [ -n "$line" ]; then
		body+=${body:+$'\n'}$line
	fi
done <"$manifest"
[ -z "$subject" ] || commit_entry "$subject" "$body" "$files"
while read -r f; do
	[ -n "${laid[$f]:-}" ] || die "$manifest: rust file $f is in no entry"
done < <(cd "$TOP" && find rust -type f \( -name '*.rs' -o -name '*.c' -o -name '*.h' \) | sort)

# The series, with its cover letter (patches/cover-letter: subject, then
# the text).
git_ "$work" format-patch -q --cover-letter --no-signature -o "$out" base..HEAD
cover=$(ls "$out"/0000-*.patch)
python3 - "$cover" "$TOP/patches/cover-letter" "$kver" "$debver" <<'PY'
import sys
path, letter, kver, debver = sys.argv[1:]
subject, _, blurb = open(letter).read().partition("\n")
blurb = blurb.strip("\n") + f"\n\nAgainst Linux {kver} (Debian's linux-source-7.3 {debver}).\n"
text = open(path).read()
text = text.replace("*** SUBJECT HERE ***", subject).replace("*** BLURB HERE ***", blurb)
open(path, "w").write(text)
PY
n=$(find "$out" -name '*.patch' ! -name '0000-*' | wc -l)
say "$n patches and a cover letter in $out (against Linux $kver)"

[ -n "$check" ] || exit 0

# --- The check: the series applied to the pristine tree is the layer ---------
am=$BUILD/series-am
rm -rf "$am"
base "$am"
mapfile -t series < <(find "$out" -name '*.patch' ! -name '0000-*' | sort)
git_ "$am" am -q "${series[@]}" ||
	die "the series does not apply with git am to Linux $kver (see $am)"
bad=0
touched=$(git_ "$am" diff --name-only base HEAD | sort)
if [ "$touched" != "$(printf '%s\n' "${changed[@]}")" ]; then
	say "the series changes other files than the layer:"
	diff <(printf '%s\n' "$touched") <(printf '%s\n' "${changed[@]}") | sed 's/^/  /' >&2 || true
	bad=1
fi
for f in "${changed[@]}"; do
	cmp -s "$am/$f" "$KSRC/$f" || { say "$f: differs from the layer's"; bad=1; }
done
[ "$bad" = 0 ] || die "the series applied to Linux $kver is not the layer's tree"
say "the series applied to Linux $kver gives the layer's tree (${#changed[@]} files)"
