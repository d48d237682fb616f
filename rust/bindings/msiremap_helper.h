/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Headers our abstractions need beyond the kernel's bindings_helper.h;
 * included from it by scripts/layer.sh.
 */
#include <linux/irqchip/riscv-imsic.h>
#include <linux/iommu.h>
#include <trace/events/iommu.h>
