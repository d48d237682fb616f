# SPDX-License-Identifier: GPL-2.0
#
# MSI remapping for devices behind an IOMMU: the rig's commands.
# `make help` lists them; README.md and Documentation/rig.md explain them.

ARCH ?= riscv64
PROFILE ?=
CMD ?=
GUEST_FILES ?=
QEMU_ARGS ?=
GROUP ?= rig
TRACE ?=
SOAK_CYCLES ?= 1000

SHELL := /bin/bash
.SUFFIXES:
MAKEFLAGS += --no-print-directory

# Checked when the makefile is read, so a mistake is one line, not make noise.
ifeq ($(filter $(ARCH),riscv64 arm64),)
$(error ARCH=$(ARCH) is not supported: use ARCH=riscv64 or ARCH=arm64)
endif
ifneq ($(GUEST_FILES),)
ifeq ($(wildcard $(GUEST_FILES)/.),)
$(error GUEST_FILES=$(GUEST_FILES) is not a directory)
endif
endif
ifeq ($(wildcard tests/$(GROUP)/group.conf),)
$(error GROUP=$(GROUP) is not a test group (tests/*/group.conf))
endif
ifneq ($(PROFILE),)
ifeq ($(shell awk '!/^\#/ && $$1 == "$(PROFILE)"' tests/profiles.conf),)
$(error PROFILE=$(PROFILE) is not a profile: `make profiles` lists them)
endif
endif

run_args = $(if $(PROFILE),--profile '$(PROFILE)',--arch $(ARCH)) \
	--group '$(GROUP)' $(if $(GUEST_FILES),--extra '$(GUEST_FILES)') \
	$(if $(QEMU_ARGS),--qemu-args '$(QEMU_ARGS)') \
	$(if $(TRACE),--trace '$(TRACE)')

.PHONY: help setup kernel modules run check soak bench series profiles clean
help:
	@echo 'make run      boot ARCH=riscv64|arm64 (or PROFILE=name) with our modules loaded:'
	@echo '              a shell on a terminal; CMD=... runs a command and exits with its'
	@echo '              status; GUEST_FILES=dir appears at /extra; QEMU_ARGS=... appended;'
	@echo '              GROUP=name adds the devices of that test group (default: rig);'
	@echo '              TRACE=iommu prints trace events (iommu, or iommu:map,...) to the'
	@echo '              console and dmesg as they happen'
	@echo 'make check    host tests and every guest test group on every profile'
	@echo 'make soak     the rig group with SOAK_CYCLES (default 1000) module load/unload'
	@echo '              cycles instead of 100, on riscv64 and arm64, and with 100 on its'
	@echo '              other profiles (10 or 25 in check), the ims group on the'
	@echo '              riscv64 debug kernel, and the ims group'
	@echo '              without MSI tables on 17 harts, and the IOMMU probe sweep failing'
	@echo '              every allocation of the core DMA set-up (not part of check)'
	@echo 'make bench    dma_map_benchmark: our RISC-V IOMMU driver versus the C one,'
	@echo '              and the MSI rate through the remapping domain'
	@echo 'make series   the kernel layer as one git format-patch series (build/series/)'
	@echo 'make profiles the QEMU profiles'
	@echo 'make setup    install what the build needs (run by run and check too)'
	@echo 'make kernel   build the kernel for ARCH;  make modules: our modules for ARCH'
	@echo 'make clean    remove build/ (kernel builds stay cached, see README.md)'

setup:
	@scripts/setup.sh

kernel: setup
	@scripts/kernel.sh $(ARCH) >/dev/null

modules: setup
	@scripts/modules.sh $(ARCH) "$$(scripts/kernel.sh $(ARCH))"

run: setup
	@if [ -n "$(CMD)" ]; then \
		exec scripts/run.sh $(run_args) --cmd "$$CMD"; \
	elif [ -t 0 ] && [ -t 1 ]; then \
		exec scripts/run.sh $(run_args) --mode shell; \
	else \
		exec scripts/run.sh $(run_args) --mode show; \
	fi

check: setup
	@scripts/check.sh

soak: setup
	@CHECK_GROUPS=rig CHECK_PROFILES="riscv64 arm64" \
		CHECK_APPEND="msiremap.load_cycles=$(SOAK_CYCLES)" scripts/check.sh
	@CHECK_GROUPS=rig CHECK_PROFILES="riscv64-sys riscv64-nointremap riscv64-debug arm64-debug" \
		CHECK_APPEND="msiremap.load_cycles=100" scripts/check.sh
	@CHECK_GROUPS=ims CHECK_PROFILES="riscv64-nointremap riscv64-debug" CHECK_SOAK=1 scripts/check.sh
	@CHECK_GROUPS=faults CHECK_PROFILES="riscv64-debug riscv64-nointremap-debug" \
		CHECK_APPEND="msiremap.fail_stride=1" scripts/check.sh

bench: setup
	@scripts/bench.sh

series: setup
	@scripts/series.sh

profiles:
	@awk '!/^#/ && NF >= 3 { d = $$3 == "yes" ? " (default for " $$2 ")" : ""; \
		$$3 = ""; printf "%-20s %s%s\n", $$1, substr($$0, index($$0, $$4)), d }' tests/profiles.conf

clean:
	rm -rf build target
