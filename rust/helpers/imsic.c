// SPDX-License-Identifier: GPL-2.0

#include <linux/irqchip/riscv-imsic.h>
#include <linux/of.h>
#include <linux/percpu.h>

#ifndef CONFIG_OF_DYNAMIC
/* A real function with CONFIG_OF_DYNAMIC, a static inline without. */
__rust_helper void rust_helper_of_node_put(struct device_node *node)
{
	of_node_put(node);
}
#endif

#ifdef CONFIG_RISCV_IMSIC
__rust_helper phys_addr_t rust_helper_imsic_local_msi_pa(const struct imsic_global_config *global,
							  unsigned int cpu)
{
	return per_cpu_ptr(global->local, cpu)->msi_pa;
}

__rust_helper u32 rust_helper_imsic_local_nr_guest_files(const struct imsic_global_config *global,
							  unsigned int cpu)
{
	return per_cpu_ptr(global->local, cpu)->nr_guest_files;
}
#endif
