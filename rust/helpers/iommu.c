// SPDX-License-Identifier: GPL-2.0

#include <linux/gfp.h>
#include <linux/io.h>
#include <linux/iommu.h>

__rust_helper struct iommu_fwspec *rust_helper_dev_iommu_fwspec_get(struct device *dev)
{
	return dev_iommu_fwspec_get(dev);
}

__rust_helper void *rust_helper_dev_iommu_priv_get(struct device *dev)
{
	return dev_iommu_priv_get(dev);
}

__rust_helper void rust_helper_dev_iommu_priv_set(struct device *dev, void *priv)
{
	dev_iommu_priv_set(dev, priv);
}

__rust_helper unsigned long rust_helper___get_free_pages(gfp_t gfp, unsigned int order)
{
	return __get_free_pages(gfp, order);
}

__rust_helper phys_addr_t rust_helper_virt_to_phys(volatile void *addr)
{
	return virt_to_phys(addr);
}

__rust_helper void *rust_helper_phys_to_virt(phys_addr_t addr)
{
	return phys_to_virt(addr);
}
