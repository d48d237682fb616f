// SPDX-License-Identifier: GPL-2.0
/*
 * Fault-injection sweeps in the style of the kernel's iommufd_fail_nth:
 * for each operation, fail its Nth allocation (/proc/thread-self/fail-nth,
 * slab and page allocations) for N = 1, 2, ... until the operation goes
 * through without the fault being reached. Every injected failure must
 * come back to the caller as an error (or, deeper than the operation's own
 * result, leave it working), leave no state behind, and let the next try
 * succeed; kmemleak checks nothing leaked when the group ends, and any
 * KASAN, lockdep or WARN report fails the run. Debug kernel only
 * (profile riscv64-debug).
 *
 * Operations: probing the RISC-V IOMMU (binding riscv_iommu, which also
 * probes the devices behind it), allocating and attaching a paging domain
 * (iommufd attach), mapping (IOMMU_IOAS_MAP), and allocating a remapped MSI
 * (VFIO_DEVICE_SET_IRQS through the remapping domain).
 */
#include <poll.h>
#include <sys/eventfd.h>

#include "kselftest_harness.h"
#include "vfio_utils.h"

#define PAGE		4096
#define IOVA		0x400000ULL
#define EDU_REG_INTR_RAISE	(0x60 / 4)

static int fail_nth(int n)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", n);
	return msr_write("/proc/thread-self/fail-nth", buf);
}

/* What is left of the countdown: 0 when the failure was injected. */
static int fail_nth_left(void)
{
	char buf[16];

	if (msr_read("/proc/thread-self/fail-nth", buf, sizeof(buf)) < 0)
		return -1;
	return atoi(buf);
}

/* Sleeping allocations may fail too, quietly (no stack dumps). */
static void setup_injection(void)
{
	msr_write("/sys/kernel/debug/failslab/ignore-gfp-wait", "N");
	msr_write("/sys/kernel/debug/failslab/verbose", "0");
	msr_write("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N");
	msr_write("/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N");
	msr_write("/sys/kernel/debug/fail_page_alloc/verbose", "0");
}

static int dir_entries(const char *path)
{
	struct dirent *de;
	DIR *d = opendir(path);
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The PCI address of the RISC-V IOMMU, "" for the platform one. */
static int iommu_bdf(char *bdf, size_t len)
{
	return msr_find_pci(RISCV_IOMMU_VENDOR, RISCV_IOMMU_DEVICE, 0, bdf, len);
}

/*
 * Probing the IOMMU: bind riscv_iommu with the Nth allocation failing. A
 * failed bind leaves no IOMMU registered; a bind that absorbed the failure
 * deeper (a device behind the IOMMU failed to be probed) is unbound and
 * tried again. Once a bind goes through untouched, edu is behind the
 * IOMMU in a DMA domain.
 */
TEST(iommu_probe)
{
	char iommu[32], edu[32], path[256], type[32];
	int n, injected = 0;

	setup_injection();
	ASSERT_EQ(0, iommu_bdf(iommu, sizeof(iommu)));
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, edu, sizeof(edu)));
	/* Nothing may use the IOMMU while it goes: edu's driver leaves first. */
	msr_write("/sys/bus/pci/drivers/qemu_edu/unbind", edu);
	ASSERT_EQ(0, msr_write("/sys/bus/pci/drivers/riscv_iommu/unbind", iommu));
	ASSERT_EQ(0, dir_entries("/sys/class/iommu"));

	for (n = 1; n < 5000; n++) {
		int ret, left;

		ASSERT_EQ(0, fail_nth(n));
		ret = msr_write("/sys/bus/pci/drivers/riscv_iommu/bind", iommu);
		left = fail_nth_left();
		fail_nth(0);
		if (left > 0) {
			ASSERT_EQ(0, ret) TH_LOG("N=%d: bind failed without an injected fault", n);
			break;
		}
		injected++;
		if (ret) {
			EXPECT_EQ(0, dir_entries("/sys/class/iommu")) TH_LOG("N=%d: %d", n, ret);
		} else {
			ASSERT_EQ(0, msr_write("/sys/bus/pci/drivers/riscv_iommu/unbind", iommu));
		}
	}
	TH_LOG("%d injected failures before a clean probe (N=%d)", injected, n);
	EXPECT_LT(0, injected);
	EXPECT_EQ(1, dir_entries("/sys/class/iommu"));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group/type", edu);
	ASSERT_LT(0, msr_read(path, type, sizeof(type)));
	EXPECT_STREQ("DMA\n", type);
	ASSERT_EQ(0, msr_write("/sys/bus/pci/drivers/qemu_edu/bind", edu));
}

FIXTURE(vfio)
{
	char bdf[32];
	int iommufd, devfd;
	__u32 devid, ioas;
	volatile uint32_t *bar;
	size_t bar_size;
	void *buf;
};

FIXTURE_SETUP(vfio)
{
	setup_injection();
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, self->bdf, sizeof(self->bdf)));
	ASSERT_EQ(0, _vfio_pci_take(self->bdf));
	self->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->iommufd);
	self->devfd = _vfio_cdev_open(self->bdf);
	ASSERT_LE(0, self->devfd);
	ASSERT_EQ(0, _vfio_bind_iommufd(self->devfd, self->iommufd, &self->devid));
	test_ioas_alloc(self->iommufd, &self->ioas);
	self->buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	memset(self->buf, 0x5a, 2 * PAGE);
}

FIXTURE_TEARDOWN(vfio)
{
	if (self->bar)
		munmap((void *)self->bar, self->bar_size);
	if (self->devfd >= 0)
		close(self->devfd);
	if (self->iommufd >= 0)
		close(self->iommufd);
	_vfio_pci_release(self->bdf);
}

/* A sweep: `op` with its Nth allocation failing, until it runs clean. */
#define SWEEP(n, injected, op, on_error, on_absorbed)				\
	for (n = 1; n < 5000; n++) {						\
		int ret_, left_;						\
										\
		ASSERT_EQ(0, fail_nth(n));					\
		ret_ = (op);							\
		left_ = fail_nth_left();					\
		fail_nth(0);							\
		if (left_ > 0) {						\
			ASSERT_EQ(0, ret_) TH_LOG("N=%d: failed with no fault injected", n); \
			break;							\
		}							\
		injected++;							\
		if (ret_) {							\
			on_error;						\
		} else {							\
			on_absorbed;						\
		}							\
	}

/*
 * Allocating and attaching a paging domain (iommufd auto-domain), then
 * mapping into it: every failure leaves the device detached (attach) or
 * the IOVA unmapped (map), and the retry succeeds.
 */
TEST_F(vfio, attach_then_map)
{
	struct iommu_ioas_iova_ranges ranges = { .size = sizeof(ranges) };
	int n, attach = 0, map = 0;

	SWEEP(n, attach, _vfio_attach(self->devfd, self->ioas),
	      /* Not attached: detaching has nothing to undo. */
	      EXPECT_NE(0, _vfio_detach(self->devfd)),
	      ASSERT_EQ(0, _vfio_detach(self->devfd)));
	TH_LOG("attach: %d injected failures before N=%d went through", attach, n);

	SWEEP(n, map, _ioas_map_fixed(self->iommufd, self->ioas, self->buf, 2 * PAGE, IOVA),
	      EXPECT_EQ(-ENOENT, _ioas_unmap(self->iommufd, self->ioas, IOVA, 2 * PAGE)),
	      ASSERT_EQ(0, _ioas_unmap(self->iommufd, self->ioas, IOVA, 2 * PAGE)));
	TH_LOG("map: %d injected failures before N=%d went through", map, n);
	EXPECT_LT(0, attach + map);
	ranges.ioas_id = self->ioas;
	EXPECT_EQ(0, _ioctl(self->iommufd, IOMMU_IOAS_IOVA_RANGES, &ranges));
}

/* Sets (efd >= 0) or clears edu's MSI trigger through VFIO. */
static int set_msi(int devfd, int efd)
{
	struct {
		struct vfio_irq_set set;
		int32_t fd;
	} irqs = {
		.set = {
			.argsz = efd >= 0 ? sizeof(irqs) : sizeof(irqs.set),
			.flags = (efd >= 0 ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) |
				 VFIO_IRQ_SET_ACTION_TRIGGER,
			.index = VFIO_PCI_MSI_IRQ_INDEX,
			.count = efd >= 0,
		},
		.fd = efd,
	};

	return _ioctl(devfd, VFIO_DEVICE_SET_IRQS, &irqs);
}

/*
 * Allocating edu's MSI through the remapping domain (and its MSI table
 * entry): every failure leaves no vector allocated; once it goes through,
 * raising the MSI from user space signals the eventfd.
 */
TEST_F(vfio, msi_allocation)
{
	char path[256];
	int n, injected = 0, efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v = 0;

	ASSERT_LE(0, efd);
	test_vfio_attach(self->devfd, self->ioas);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/msi_irqs", self->bdf);
	SWEEP(n, injected, set_msi(self->devfd, efd),
	      EXPECT_EQ(0, dir_entries(path)),
	      ASSERT_EQ(0, set_msi(self->devfd, -1)));
	TH_LOG("MSI: %d injected failures before N=%d went through", injected, n);
	EXPECT_LT(0, injected);
	EXPECT_EQ(1, dir_entries(path));

	self->bar = vfio_map_bar(self->devfd, VFIO_PCI_BAR0_REGION_INDEX, &self->bar_size);
	ASSERT_NE(NULL, self->bar);
	self->bar[EDU_REG_INTR_RAISE] = 1;
	ASSERT_EQ(1, poll(&p, 1, 1000));
	ASSERT_EQ(sizeof(v), read(efd, &v, sizeof(v)));
	EXPECT_EQ(1, v);
	EXPECT_EQ(0, set_msi(self->devfd, -1));
	close(efd);
}

TEST_HARNESS_MAIN
