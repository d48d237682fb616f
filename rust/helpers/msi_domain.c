// SPDX-License-Identifier: GPL-2.0

#include <linux/device.h>

__rust_helper struct irq_domain *rust_helper_dev_get_msi_domain(const struct device *dev)
{
	return dev_get_msi_domain(dev);
}

__rust_helper void rust_helper_dev_set_msi_domain(struct device *dev, struct irq_domain *d)
{
	dev_set_msi_domain(dev, d);
}
