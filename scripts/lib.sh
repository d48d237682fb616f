# Shared helpers for the rig's scripts. Sourced, not run.
#
# Paths (all overridable from the environment):
#   MSIREMAP_CACHE  kernel source and kernel builds, shared by every clone on
#                   the machine and keyed by the content of their inputs
#                   (default: ~/.cache/msiremap; <build>/cache without HOME)
#   BUILD           this clone's build directory (default: <top>/build)

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
# Without HOME (some CI environments), the cache lives in the clone.
if [ -z "${MSIREMAP_CACHE:-}" ]; then
	if [ -n "${XDG_CACHE_HOME:-}" ]; then
		MSIREMAP_CACHE=$XDG_CACHE_HOME/msiremap
	elif [ -n "${HOME:-}" ]; then
		MSIREMAP_CACHE=$HOME/.cache/msiremap
	else
		MSIREMAP_CACHE=$BUILD/cache
	fi
fi
KSRC_PRISTINE=$MSIREMAP_CACHE/linux-pristine
KSRC=$MSIREMAP_CACHE/linux
TOOLS=$MSIREMAP_CACHE/tools
LLVM_SUFFIX=-19
export PATH="$TOOLS/bin:$PATH"

say() { printf '%s: %s\n' "${SELF:-rig}" "$*" >&2; }
die() { printf '%s: error: %s\n' "${SELF:-rig}" "$*" >&2; exit 1; }

# Guest architecture names (Debian's) to kernel ARCH values.
karch() {
	case "$1" in
	riscv64) echo riscv ;;
	arm64) echo arm64 ;;
	*) die "unknown architecture '$1' (use riscv64 or arm64)" ;;
	esac
}

# hash_files FILE...: one hash over the names (relative to the top of the
# tree, or base names outside it) and contents of the given files. A
# relative name is taken from the working directory first, so that
# `scripts/kernel.sh` and `$TOP/scripts/kernel.sh` hash their "$0" alike.
hash_files() {
	local f
	for f in "$@"; do
		[[ $f == /* ]] || f=$PWD/${f#./}
		case "$f" in
		"$TOP"/*) printf '%s\n' "${f#"$TOP"/}" ;;
		*) printf '%s\n' "${f##*/}" ;;
		esac
		sha256sum <"$f"
	done | sha256sum | cut -c1-16
}

# cache_lock NAME [-s]: serialise work on one part of the shared cache
# between clones and concurrent builds (held until the calling script
# exits). `-s` takes it shared: kernel builds share the source tree, which
# scripts/layer.sh changes only under the exclusive lock.
cache_lock() {
	local fd=9
	[ "$1" = source ] && fd=8
	mkdir -p "$MSIREMAP_CACHE"
	eval "exec $fd>\"\$MSIREMAP_CACHE/.lock-$1\""
	flock ${2:-} $fd
}

# add_line FILE LINE AFTER: adds LINE to FILE (a kernel file) after the last
# line matching the regular expression AFTER, unless it is there; writes a
# new file, so a pristine copy behind a hard link stays untouched.
add_line() {
	local file=$1 line=$2 after=$3
	grep -qxF "$line" "$file" && return 0
	python3 - "$file" "$line" "$after" <<'PY'
import os, re, sys
path, line, after = sys.argv[1:]
lines = open(path).read().split("\n")
idx = max((i for i, l in enumerate(lines) if re.match(after, l)), default=len(lines) - 1)
lines.insert(idx + 1, line)
tmp = path + ".msiremap"
open(tmp, "w").write("\n".join(lines))
os.replace(tmp, path)
PY
}

# lay_rust_file TREE FILE: puts our rust/ FILE into the kernel tree TREE
# (scripts/layer.sh; scripts/series.sh, one patch at a time): copies it and
# declares it where the kernel must know it. A new Rust file whose parent
# module is a kernel file gets its `pub mod` line there; a new
# rust/helpers/*.c file its #include in rust/helpers/helpers.c;
# rust/bindings/msiremap_helper.h is #included from bindings_helper.h.
lay_rust_file() {
	local tree=$1 f=$2 rel mod dir parent
	# rust/ only adds files; a change to a kernel file is a patch.
	[ ! -e "$KSRC_PRISTINE/$f" ] ||
		die "$f exists in the pristine kernel: change it with a patch in patches/, not in rust/"
	mkdir -p "$(dirname "$tree/$f")"
	cp "$TOP/$f" "$tree/$f"
	case "$f" in
	rust/kernel/*.rs)
		rel=${f#rust/kernel/}
		mod=$(basename "$rel" .rs)
		dir=$(dirname "$rel")
		if [ "$dir" = . ]; then
			parent=rust/kernel/lib.rs
		elif [ -e "$KSRC_PRISTINE/rust/kernel/$dir.rs" ]; then
			parent=rust/kernel/$dir.rs
		elif [ -e "$KSRC_PRISTINE/rust/kernel/$dir/mod.rs" ]; then
			parent=rust/kernel/$dir/mod.rs
		else
			return 0 # declared by a parent module of ours
		fi
		add_line "$tree/$parent" "pub mod $mod;" '^pub mod '
		;;
	rust/helpers/*.c)
		add_line "$tree/rust/helpers/helpers.c" "#include \"$(basename "$f")\"" '^#include "'
		;;
	rust/bindings/msiremap_helper.h)
		# At the very end: the last #include may sit in an #if block.
		add_line "$tree/rust/bindings/bindings_helper.h" '#include "msiremap_helper.h"' '^\b$'
		;;
	esac
}
