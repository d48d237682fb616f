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
# tree, or base names outside it) and contents of the given files.
hash_files() {
	local f
	for f in "$@"; do
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
