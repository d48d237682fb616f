#!/usr/bin/env bash
# Install everything the build needs on a Debian bookworm machine, idempotently.
#
# Silent when already satisfied; otherwise says what it installs. Any failure
# ends with a one-line message naming what could not be had.
#
# bindgen and the Python environment that builds the strict QEMU (meson,
# ninja, pycotap from PyPI) go to $MSIREMAP_CACHE/tools, and the pristine
# linux-source-7.3 tree to $MSIREMAP_CACHE/linux-pristine (see scripts/lib.sh).
set -euo pipefail
SELF=setup
. "$(dirname "$0")/lib.sh"

tools=$TOOLS
ksrc=$KSRC_PRISTINE
BINDGEN_VERSION=0.72.1
LLVM_VER=${LLVM_SUFFIX#-}

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || die "not root and no sudo: cannot install packages"
	SUDO=sudo
fi

# --- Debian packages -------------------------------------------------------
BACKPORTS=/etc/apt/sources.list.d/msiremap-backports.sources
PIN=/etc/apt/preferences.d/msiremap-backports
PKGS_MAIN=(make flex bison bc libelf-dev libssl-dev cpio xz-utils
	clang-$LLVM_VER lld-$LLVM_VER llvm-$LLVM_VER libclang-$LLVM_VER-dev
	gcc-riscv64-linux-gnu gcc-aarch64-linux-gnu
	libc6-dev-riscv64-cross libc6-dev-arm64-cross
	python3 rsync device-tree-compiler
	gcc pkgconf patch python3-venv libglib2.0-dev zlib1g-dev libfdt-dev)
PKGS_BPO=(qemu-system-riscv qemu-system-arm)

missing=()
for p in "${PKGS_MAIN[@]}" "${PKGS_BPO[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
# QEMU must be new enough to have riscv-iommu-pci (bookworm's 7.2 is not).
if command -v qemu-system-riscv64 >/dev/null &&
	! qemu-system-riscv64 -device help 2>/dev/null | grep -q riscv-iommu-pci; then
	missing+=(qemu-system-riscv)
fi

if [ ! -f "$BACKPORTS" ]; then
	say "adding Debian backports sources (bookworm-backports, trixie-backports), pinned at priority 100"
	$SUDO tee "$BACKPORTS" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	$SUDO tee "$PIN" >/dev/null <<'PINF'
Package: *
Pin: release a=bookworm-backports
Pin-Priority: 100

Package: *
Pin: release a=trixie-backports
Pin-Priority: 100
PINF
	updated=
else
	updated=done
fi

apt_update() {
	[ -n "${updated:-}" ] && return 0
	say "apt-get update"
	$SUDO apt-get update -qq >/dev/null 2>&1 || $SUDO apt-get update -qq ||
		die "apt-get update failed"
	updated=done
}

if [ ${#missing[@]} -gt 0 ]; then
	apt_update
	say "installing: ${missing[*]}"
	main=() bpo=()
	for p in "${missing[@]}"; do
		case " ${PKGS_BPO[*]} " in *" $p "*) bpo+=("$p") ;; *) main+=("$p") ;; esac
	done
	export DEBIAN_FRONTEND=noninteractive
	if [ ${#main[@]} -gt 0 ]; then
		$SUDO apt-get install -y -qq --no-install-recommends "${main[@]}" >/dev/null ||
			die "apt-get install failed for: ${main[*]}"
	fi
	if [ ${#bpo[@]} -gt 0 ]; then
		$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${bpo[@]}" >/dev/null ||
			die "apt-get install (bookworm-backports) failed for: ${bpo[*]}"
	fi
fi
qemu-system-riscv64 -device help 2>/dev/null | grep -q riscv-iommu-pci ||
	die "qemu-system-riscv64 has no riscv-iommu-pci device (need QEMU >= 9.1 from bookworm-backports)"

# --- Rust: rust-src and bindgen ---------------------------------------------
command -v rustc >/dev/null || die "rustc not found (the machine's rustup toolchain is expected)"
sysroot=$(rustc --print sysroot)
if [ ! -d "$sysroot/lib/rustlib/src/rust/library/core" ]; then
	say "installing the rust-src component"
	rustup component add rust-src >/dev/null 2>&1 || die "rustup component add rust-src failed"
fi

if ! "$tools/bin/bindgen" --version 2>/dev/null | grep -q " $BINDGEN_VERSION\$"; then
	say "building bindgen-cli $BINDGEN_VERSION into $tools (about a minute)"
	LIBCLANG_PATH=/usr/lib/llvm-$LLVM_VER/lib \
		cargo install --quiet --locked "bindgen-cli@$BINDGEN_VERSION" --root "$tools" ||
		die "cargo install bindgen-cli@$BINDGEN_VERSION failed"
fi

# --- The strict QEMU's build tools (scripts/qemu-build.sh) -------------------
# The versions QEMU 10.0's pythondeps.toml installs from its python/wheels,
# which Debian's +ds tarball leaves out; configure finds ninja on PATH.
QEMU_PYDEPS=(meson==1.5.0 pycotap==1.3.1 ninja==1.13.0)
venv=$tools/qemu-venv
if [ "$(cat "$venv/.msiremap-deps" 2>/dev/null)" != "${QEMU_PYDEPS[*]}" ]; then
	say "installing ${QEMU_PYDEPS[*]} from PyPI into $venv"
	rm -rf "$venv"
	python3 -m venv "$venv" || die "python3 -m venv $venv failed"
	"$venv/bin/pip" install -q --disable-pip-version-check "${QEMU_PYDEPS[@]}" ||
		die "pip install ${QEMU_PYDEPS[*]} failed"
	printf '%s\n' "${QEMU_PYDEPS[*]}" >"$venv/.msiremap-deps"
fi

# --- Kernel source: Debian's linux-source-7.3 ------------------------------
if [ ! -f "$ksrc/.msiremap-version" ]; then
	apt_update
	ver=$(apt-cache policy linux-source-7.3 2>/dev/null | awk '/Candidate:/ {print $2}')
	if [ -z "$ver" ] || [ "$ver" = "(none)" ]; then
		apt_update_forced=1 updated= apt_update
		ver=$(apt-cache policy linux-source-7.3 2>/dev/null | awk '/Candidate:/ {print $2}')
	fi
	[ -n "$ver" ] && [ "$ver" != "(none)" ] ||
		die "package linux-source-7.3 is not served by the configured Debian sources"
	say "fetching linux-source-7.3 $ver"
	dl=$(mktemp -d)
	trap 'rm -rf "$dl"' EXIT
	(cd "$dl" && apt-get download -qq "linux-source-7.3=$ver" >/dev/null 2>&1) ||
		die "apt-get download linux-source-7.3=$ver failed"
	dpkg -x "$dl"/linux-source-7.3_*.deb "$dl/x"
	tarball=$(ls "$dl"/x/usr/src/linux-source-7.3.tar.* 2>/dev/null | head -n1)
	[ -n "$tarball" ] || die "linux-source-7.3 $ver holds no linux-source-7.3.tar.*"
	say "unpacking $(basename "$tarball") into $ksrc"
	rm -rf "$ksrc.tmp"
	mkdir -p "$ksrc.tmp"
	tar -xf "$tarball" -C "$ksrc.tmp" --strip-components=1
	kv=$(make -s -C "$ksrc.tmp" kernelversion)
	printf '%s %s\n' "$ver" "$kv" >"$ksrc.tmp/.msiremap-version"
	rm -rf "$ksrc"
	mv "$ksrc.tmp" "$ksrc"
	say "kernel source: linux-source-7.3 $ver (Linux $kv)"
fi
