// SPDX-License-Identifier: GPL-2.0

#include <linux/cpumask.h>
#include <linux/irq.h>

__rust_helper void rust_helper_irq_move_irq(struct irq_data *data)
{
	irq_move_irq(data);
}

__rust_helper void rust_helper_irq_data_update_effective_affinity(struct irq_data *d,
								   const struct cpumask *m)
{
	irq_data_update_effective_affinity(d, m);
}

__rust_helper const struct cpumask *rust_helper_cpumask_of(unsigned int cpu)
{
	return cpumask_of(cpu);
}

__rust_helper bool rust_helper_irqd_irq_masked(struct irq_data *d)
{
	return irqd_irq_masked(d);
}

__rust_helper bool rust_helper_irqd_irq_disabled(struct irq_data *d)
{
	return irqd_irq_disabled(d);
}
