/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Headers our abstractions need beyond the kernel's bindings_helper.h;
 * included from it by scripts/layer.sh.
 */
#include <linux/irqchip/riscv-imsic.h>
#include <linux/iommu.h>
#include <linux/iommufd.h>
#include <linux/irq.h>
#include <linux/irqdomain.h>
#include <linux/msi.h>
#include <linux/of.h>
#include <trace/events/iommu.h>
