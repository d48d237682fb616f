/* SPDX-License-Identifier: GPL-2.0 */
/*
 * VFIO cdev + iommufd helpers for the guest tests, in the style of the
 * kernel's tools/testing/selftests/iommu/iommufd_utils.h: `_x()` returns 0 or
 * -errno, `test_x()` asserts success, `test_err_x(errno, ...)` asserts the
 * errno. The `test_` forms need the kselftest harness's `_metadata`.
 */
#ifndef MSIREMAP_VFIO_UTILS_H
#define MSIREMAP_VFIO_UTILS_H

#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <linux/iommufd.h>
#include <linux/vfio.h>

#include "msiremap.h"

/* Unbinds PCI device `bdf` from its driver, if it has one; 0 or -errno. */
static inline int _pci_unbind(const char *bdf)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
	return access(path, F_OK) == 0 ? msr_write(path, bdf) : 0;
}

/*
 * Unbinds PCI device `bdf` from its driver, sets its driver_override
 * (`override`, or "\n" to clear it) and lets the bus probe it again.
 */
static inline int _pci_rebind(const char *bdf, const char *override)
{
	char path[256];
	int ret;

	if ((ret = _pci_unbind(bdf)))
		return ret;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver_override", bdf);
	if ((ret = msr_write(path, override)))
		return ret;
	return msr_write("/sys/bus/pci/drivers_probe", bdf);
}

/* Hands the PCI device `bdf` to vfio-pci. */
static inline int _vfio_pci_take(const char *bdf)
{
	return _pci_rebind(bdf, "vfio-pci");
}

/* Gives `bdf` back to whichever driver matches it. */
static inline int _vfio_pci_release(const char *bdf)
{
	return _pci_rebind(bdf, "\n");
}

/* Opens the VFIO character device of `bdf` (/dev/vfio/devices/vfioN). */
static inline int _vfio_cdev_open(const char *bdf)
{
	char path[256];
	struct dirent *de;
	DIR *d;
	int fd = -ENOENT;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "vfio", 4)) {
			snprintf(path, sizeof(path), "/dev/vfio/devices/%s", de->d_name);
			fd = open(path, O_RDWR | O_CLOEXEC);
			fd = fd < 0 ? -errno : fd;
			break;
		}
	closedir(d);
	return fd;
}

static inline int _ioctl(int fd, unsigned long cmd, void *arg)
{
	return ioctl(fd, cmd, arg) ? -errno : 0;
}

static inline int _vfio_bind_iommufd(int devfd, int iommufd, __u32 *devid)
{
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind), .iommufd = iommufd };
	int ret = _ioctl(devfd, VFIO_DEVICE_BIND_IOMMUFD, &bind);

	if (!ret && devid)
		*devid = bind.out_devid;
	return ret;
}

/*
 * Opens a new iommufd context and `bdf`'s VFIO cdev into *iommufd and
 * *devfd (-1 for one not opened; the caller closes what was) and binds the
 * device to the context. 0, or -errno of the step that failed.
 */
static inline int _vfio_open_bound(const char *bdf, int *iommufd, int *devfd, __u32 *devid)
{
	*devfd = -1;
	*iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (*iommufd < 0)
		return -errno;
	*devfd = _vfio_cdev_open(bdf);
	if (*devfd < 0)
		return *devfd;
	return _vfio_bind_iommufd(*devfd, *iommufd, devid);
}

static inline int _vfio_attach(int devfd, __u32 pt_id)
{
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at), .pt_id = pt_id };

	return _ioctl(devfd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
}

static inline int _vfio_detach(int devfd)
{
	struct vfio_device_detach_iommufd_pt de = { .argsz = sizeof(de) };

	return _ioctl(devfd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &de);
}

static inline int _ioas_alloc(int iommufd, __u32 *id)
{
	struct iommu_ioas_alloc a = { .size = sizeof(a) };
	int ret = _ioctl(iommufd, IOMMU_IOAS_ALLOC, &a);

	if (!ret)
		*id = a.out_ioas_id;
	return ret;
}

static inline int _ioas_map_fixed(int iommufd, __u32 ioas, void *va, __u64 len, __u64 iova)
{
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
			 IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas,
		.user_va = (uintptr_t)va,
		.length = len,
		.iova = iova,
	};

	return _ioctl(iommufd, IOMMU_IOAS_MAP, &m);
}

static inline int _ioas_unmap(int iommufd, __u32 ioas, __u64 iova, __u64 len)
{
	struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = ioas, .iova = iova, .length = len };

	return _ioctl(iommufd, IOMMU_IOAS_UNMAP, &u);
}

/* Maps BAR `index` of an open VFIO device; NULL on failure. */
static inline volatile uint32_t *vfio_map_bar(int devfd, int index, size_t *size)
{
	struct vfio_region_info info = { .argsz = sizeof(info), .index = index };
	void *p;

	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &info) || !(info.flags & VFIO_REGION_INFO_FLAG_MMAP))
		return NULL;
	p = mmap(NULL, info.size, PROT_READ | PROT_WRITE, MAP_SHARED, devfd, info.offset);
	if (p == MAP_FAILED)
		return NULL;
	*size = info.size;
	return p;
}

/* Sets memory decoding and bus mastering in the device's command register. */
static inline int vfio_enable_bus_master(int devfd)
{
	struct vfio_region_info info = { .argsz = sizeof(info), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	uint16_t cmd;

	if (ioctl(devfd, VFIO_DEVICE_GET_REGION_INFO, &info))
		return -errno;
	if (pread(devfd, &cmd, 2, info.offset + 4) != 2)
		return -errno;
	cmd |= 0x6;
	if (pwrite(devfd, &cmd, 2, info.offset + 4) != 2)
		return -errno;
	return 0;
}

#define VFIO_MAX_VECTORS	16

/*
 * Sets eventfds `efds[0..n)` as the triggers of vectors 0..n-1 of interrupt
 * `index` (VFIO_PCI_MSI_IRQ_INDEX or VFIO_PCI_MSIX_IRQ_INDEX) with
 * VFIO_DEVICE_SET_IRQS, or with `n` == 0 tears them down; 0 or -errno.
 */
static inline int _vfio_set_irqs(int devfd, unsigned int index, const int *efds, unsigned int n)
{
	struct {
		struct vfio_irq_set set;
		int32_t fd[VFIO_MAX_VECTORS];
	} irqs = {
		.set = {
			.argsz = sizeof(irqs.set) + n * sizeof(int32_t),
			.flags = (n ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) |
				 VFIO_IRQ_SET_ACTION_TRIGGER,
			.index = index,
			.count = n,
		},
	};

	if (n > VFIO_MAX_VECTORS)
		return -EINVAL;
	for (unsigned int i = 0; i < n; i++)
		irqs.fd[i] = efds[i];
	return _ioctl(devfd, VFIO_DEVICE_SET_IRQS, &irqs);
}

/*
 * Sets an eventfd as the trigger of the device's MSI (VFIO_DEVICE_SET_IRQS),
 * or with `efd` < 0 tears the MSI down; 0 or -errno.
 */
static inline int _vfio_set_msi(int devfd, int efd)
{
	return _vfio_set_irqs(devfd, VFIO_PCI_MSI_IRQ_INDEX, &efd, efd >= 0);
}

/*
 * Waits up to `ms` milliseconds for eventfd `efd` to be signalled and
 * returns its count (0 on timeout), resetting it.
 */
static inline uint64_t vfio_eventfd_wait(int efd, int ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v = 0;

	if (poll(&p, 1, ms) == 1 && read(efd, &v, sizeof(v)) != sizeof(v))
		v = 0;
	return v;
}

/*
 * The usable IOVA ranges of `ioas` (IOMMU_IOAS_IOVA_RANGES), at most `max`
 * into `r`; their number, or -errno.
 */
static inline int _ioas_iova_ranges(int iommufd, __u32 ioas, struct iommu_iova_range *r, unsigned int max)
{
	struct iommu_ioas_iova_ranges q = {
		.size = sizeof(q),
		.ioas_id = ioas,
		.num_iovas = max,
		.allowed_iovas = (uintptr_t)r,
	};
	int ret = _ioctl(iommufd, IOMMU_IOAS_IOVA_RANGES, &q);

	return ret ? ret : (int)q.num_iovas;
}

/* Maps `len` bytes at `va` at an IOVA iommufd picks (*iova); 0 or -errno. */
static inline int _ioas_map(int iommufd, __u32 ioas, void *va, __u64 len, __u64 *iova)
{
	struct iommu_ioas_map m = {
		.size = sizeof(m),
		.flags = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
		.ioas_id = ioas,
		.user_va = (uintptr_t)va,
		.length = len,
	};
	int ret = _ioctl(iommufd, IOMMU_IOAS_MAP, &m);

	if (!ret)
		*iova = m.iova;
	return ret;
}

/* Undoes what a test took: the BAR mapping, the fds, vfio-pci's hold. */
static inline void vfio_release(const char *bdf, volatile uint32_t *bar, size_t bar_size, int devfd, int iommufd)
{
	if (bar)
		munmap((void *)bar, bar_size);
	if (devfd >= 0)
		close(devfd);
	if (iommufd >= 0)
		close(iommufd);
	_vfio_pci_release(bdf);
}

/* edu's registers (BAR0, 32-bit words) driven from user space. */
#define EDU_REG_INTR_RAISE	(0x60 / 4)
#define EDU_REG_DMA_SRC		(0x80 / 4)
#define EDU_REG_DMA_DST		(0x88 / 4)
#define EDU_REG_DMA_CNT		(0x90 / 4)
#define EDU_REG_DMA_CMD		(0x98 / 4)
#define EDU_DMA_START		0x1
#define EDU_DMA_TO_RAM		0x2
#define EDU_BUF			0x40000		/* edu's internal buffer */

/* One DMA transfer by edu, waited for (edu completes on a ~100 ms timer). */
static inline int vfio_edu_dma(volatile uint32_t *bar, uint32_t src, uint32_t dst, uint32_t len, int to_ram)
{
	bar[EDU_REG_DMA_SRC] = src;
	bar[EDU_REG_DMA_DST] = dst;
	bar[EDU_REG_DMA_CNT] = len;
	bar[EDU_REG_DMA_CMD] = EDU_DMA_START | (to_ram ? EDU_DMA_TO_RAM : 0);
	for (int i = 0; i < 400; i++) {
		if (!(bar[EDU_REG_DMA_CMD] & EDU_DMA_START))
			return 0;
		usleep(5000);
	}
	return -ETIMEDOUT;
}

/*
 * QEMU's igb (Intel 82576) driven from user space: BAR0 registers (32-bit
 * words). In MSI-X mode (GPIE) a write of bit N to EICS raises extended
 * cause N, which with EIMS bit N set signals MSI-X vector N (10 on the
 * physical function); with EIAC bit N the cause clears itself, so each
 * write is one MSI. EITR (throttling) is 0 from reset.
 */
#define IGB_VENDOR		0x8086
#define IGB_DEVICE		0x10c9
#define IGB_REG_EICS		(0x1520 / 4)
#define IGB_REG_EIMS		(0x1524 / 4)
#define IGB_REG_EIMC		(0x1528 / 4)
#define IGB_REG_EIAC		(0x152c / 4)
#define IGB_REG_GPIE		(0x1514 / 4)
#define IGB_REG_EICR		(0x1580 / 4)
#define IGB_GPIE_MSIX_MODE	0x10
#define IGB_MSIX_VECTORS	10

/* Puts igb in MSI-X mode with vectors 0..n-1 unmasked and auto-cleared. */
static inline void vfio_igb_msix_setup(volatile uint32_t *bar, unsigned int n)
{
	uint32_t bits = (1u << n) - 1;

	bar[IGB_REG_EIMC] = ~0u;
	bar[IGB_REG_GPIE] = IGB_GPIE_MSIX_MODE;
	bar[IGB_REG_EIAC] = bits;
	bar[IGB_REG_EICR] = ~0u;
	bar[IGB_REG_EIMS] = bits;
}

#define test_ioas_alloc(fd, id) ASSERT_EQ(0, _ioas_alloc(fd, id))
#define test_ioas_map_fixed(fd, ioas, va, len, iova) ASSERT_EQ(0, _ioas_map_fixed(fd, ioas, va, len, iova))
#define test_err_ioas_map_fixed(err, fd, ioas, va, len, iova) \
	ASSERT_EQ(-(err), _ioas_map_fixed(fd, ioas, va, len, iova))
#define test_ioas_unmap(fd, ioas, iova, len) ASSERT_EQ(0, _ioas_unmap(fd, ioas, iova, len))
#define test_vfio_attach(devfd, pt) ASSERT_EQ(0, _vfio_attach(devfd, pt))
#define test_vfio_detach(devfd) ASSERT_EQ(0, _vfio_detach(devfd))

#endif /* MSIREMAP_VFIO_UTILS_H */
