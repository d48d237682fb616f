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
 * Operations: allocating and attaching a paging domain (iommufd attach),
 * mapping (IOMMU_IOAS_MAP), allocating a remapped MSI
 * (VFIO_DEVICE_SET_IRQS through the remapping domain), and allocating an
 * IMS interrupt (qemu_edu's IMS: its IMS domain, the MSI core, the
 * remapping domain and the IMSIC under it), and probing the IOMMU itself
 * (binding riscv_iommu to it: queues, directory, MSI remapping domain,
 * registration with the IOMMU core and its probe of the devices behind).
 */
#include <poll.h>
#include <sched.h>
#include <time.h>
#include <sys/eventfd.h>

#include "kselftest_harness.h"
#include "vfio_utils.h"

#define PAGE		4096
#define IOVA		0x400000ULL
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

static const char *const fail_attrs[] = { "failslab", "fail_page_alloc" };

/*
 * Sets both injectors' `how` ("require" or "reject") stack range to
 * [start, end): with `require`, only allocations with code of the range on
 * the stack may fail; with `reject`, none of those may. 0 or -ENOSYS.
 */
static int set_stack_range(const char *how, unsigned long start, unsigned long end)
{
	char path[128], val[32];

	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/%s-start", fail_attrs[i], how);
		snprintf(val, sizeof(val), "%#lx", start);
		if (msr_write(path, val))
			return -ENOSYS;
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/%s-end", fail_attrs[i], how);
		snprintf(val, sizeof(val), "%#lx", end);
		msr_write(path, val);
	}
	return 0;
}

/*
 * Only allocations made with `module`'s code on the stack may fail (its
 * text, from /proc/modules), sleeping ones included, quietly (no stack
 * dumps). 0 or -errno.
 */
static int setup_injection(const char *module)
{
	char line[256], name[64], path[128];
	unsigned long size = 0, base = 0;
	FILE *f = fopen("/proc/modules", "r");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %lu %*s %*s %*s %lx", name, &size, &base) == 3 && !strcmp(name, module))
			break;
		else
			base = 0;
	fclose(f);
	if (!base)
		return -ENOENT;
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/ignore-gfp-wait", fail_attrs[i]);
		msr_write(path, "N");
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s/verbose", fail_attrs[i]);
		msr_write(path, "0");
	}
	if (set_stack_range("require", base, base + size) || set_stack_range("reject", 0, 0))
		return -ENOSYS;
	msr_write("/sys/kernel/debug/fail_page_alloc/ignore-gfp-highmem", "N");
	msr_write("/sys/kernel/debug/fail_page_alloc/min-order", "0");
	return 0;
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
	ASSERT_EQ(0, setup_injection("riscv_iommu"));
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, self->bdf, sizeof(self->bdf)));
	ASSERT_EQ(0, _vfio_pci_take(self->bdf));
	ASSERT_EQ(0, _vfio_open_bound(self->bdf, &self->iommufd, &self->devfd, &self->devid));
	ASSERT_EQ(0, vfio_enable_bus_master(self->devfd));
	test_ioas_alloc(self->iommufd, &self->ioas);
	self->buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->buf);
	memset(self->buf, 0x5a, 2 * PAGE);
}

FIXTURE_TEARDOWN(vfio)
{
	vfio_release(self->bdf, self->bar, self->bar_size, self->devfd, self->iommufd);
}

/*
 * Allocations with a function of the kernel's on the stack (its text, from
 * /proc/kallsyms: its address up to the next symbol's) are kept from
 * failing (`reject`) or are the only ones that may (`require`, the
 * module's range replaced); NULL restores the module's range alone.
 * 0 or -errno.
 */
static int filter_function(const char *module, const char *func, const char *how)
{
	unsigned long start = 0, end = ~0UL, a;
	char line[256], name[128];
	FILE *f;

	if (func) {
		f = fopen("/proc/kallsyms", "r");
		if (!f)
			return -errno;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "%lx %*s %127s", &a, name) == 2 && !strcmp(name, func))
				start = a;
		rewind(f);
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "%lx", &a) == 1 && a > start && a < end)
				end = a;
		fclose(f);
		if (!start || end == ~0UL)
			return -ENOENT;
	}
	if (!func || !strcmp(how, "require")) {
		int ret = setup_injection(module);

		if (ret || !func)
			return ret;
	}
	return set_stack_range(how, start, end);
}

/*
 * A sweep: `op` with its Nth allocation failing, until it runs clean; every
 * `step`th N (1: every one).
 */
#define SWEEP(n, injected, op, on_error, on_absorbed)				\
	SWEEP_STEP(n, 1, injected, op, on_error, on_absorbed)
#define SWEEP_STEP(n, step, injected, op, on_error, on_absorbed)		\
	for (n = 1; n < 5000; n += (step)) {					\
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
 * mapping into it: every failure is returned, leaves the IOVA unmapped
 * (map), and the retry succeeds; with the domain attached and the pages
 * mapped, the device's DMA lands in them.
 */
TEST_F_TIMEOUT(vfio, attach_then_map, 600)
{
	int n, attach = 0, map = 0;

	SWEEP(n, attach, _vfio_attach(self->devfd, self->ioas),
	      /* Whatever was half done is undone by the next attach. */
	      (void)0,
	      ASSERT_EQ(0, _vfio_detach(self->devfd)));
	TH_LOG("attach: %d injected failures before N=%d went through", attach, n);

	SWEEP(n, map, _ioas_map_fixed(self->iommufd, self->ioas, self->buf, 2 * PAGE, IOVA),
	      EXPECT_EQ(-ENOENT, _ioas_unmap(self->iommufd, self->ioas, IOVA, 2 * PAGE)),
	      ASSERT_EQ(0, _ioas_unmap(self->iommufd, self->ioas, IOVA, 2 * PAGE)));
	TH_LOG("map: %d injected failures before N=%d went through", map, n);
	EXPECT_LT(0, attach);
	EXPECT_LT(0, map);

	/* edu copies page A to page B through the domain. */
	self->bar = vfio_map_bar(self->devfd, VFIO_PCI_BAR0_REGION_INDEX, &self->bar_size);
	ASSERT_NE(NULL, self->bar);
	memset((char *)self->buf + PAGE, 0, PAGE);
	ASSERT_EQ(0, vfio_edu_dma(self->bar, IOVA, EDU_BUF, 64, 0));
	ASSERT_EQ(0, vfio_edu_dma(self->bar, EDU_BUF, IOVA + PAGE, 64, 1));
	EXPECT_EQ(0, memcmp(self->buf, (char *)self->buf + PAGE, 64));
}

/* The MRIF entries of `bdf`'s MSI table; -ENOENT without a table. */
static int mrif_entries(const char *bdf)
{
	unsigned long long mrif, notice;
	int id;

	if (!msr_riscv_mrif())
		return 0;
	return msr_riscv_mrif_entry(bdf, 0, &mrif, &notice, &id);
}

/*
 * Allocating edu's MSI through the remapping domain (and its MSI table
 * entry): every failure leaves no vector allocated; once it goes through,
 * raising the MSI from user space signals the eventfd.
 */
TEST_F_TIMEOUT(vfio, msi_allocation, 600)
{
	char path[256];
	int n, injected = 0, efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v = 0;

	ASSERT_LE(0, efd);
	test_vfio_attach(self->devfd, self->ioas);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/msi_irqs", self->bdf);
	SWEEP(n, injected, _vfio_set_msi(self->devfd, efd),
	      {
		      EXPECT_EQ(0, msr_dir_entries(path));
		      /*
		       * MRIF mode: no entry of the device's table is left
		       * naming an MRIF, whose memory went with the failed
		       * allocation (the IOMMU would write pending bits there).
		       */
		      EXPECT_GE(0, mrif_entries(self->bdf)) TH_LOG("N=%d", n);
	      },
	      ASSERT_EQ(0, _vfio_set_msi(self->devfd, -1)));
	TH_LOG("MSI: %d injected failures before N=%d went through", injected, n);
	EXPECT_LT(0, injected);
	EXPECT_EQ(1, msr_dir_entries(path));

	self->bar = vfio_map_bar(self->devfd, VFIO_PCI_BAR0_REGION_INDEX, &self->bar_size);
	ASSERT_NE(NULL, self->bar);
	self->bar[EDU_REG_INTR_RAISE] = 1;
	ASSERT_EQ(1, poll(&p, 1, 1000));
	ASSERT_EQ(sizeof(v), read(efd, &v, sizeof(v)));
	EXPECT_EQ(1, v);
	EXPECT_EQ(0, _vfio_set_msi(self->devfd, -1));
	close(efd);
}

/*
 * Allocating an IMS interrupt on edu (debugfs qemu_edu/<BDF>/ims), with
 * allocations under qemu_edu's code failing: every failure is returned and
 * leaves no interrupt allocated; once it goes through, a submission with
 * the device's PASID fires its handler.
 */
FIXTURE(ims)
{
	int unused;
};

FIXTURE_SETUP(ims)
{
}

FIXTURE_TEARDOWN(ims)
{
}

TEST_F_TIMEOUT(ims, allocation, 600)
{
	char bdf[32], path[256], state[4096];
	int n, injected = 0;

	/*
	 * Allocations of register_irq_proc() fail too: it ignores them, and
	 * freeing the interrupt warned about the missing /proc entries until
	 * patch 0014.
	 */
	ASSERT_EQ(0, setup_injection("qemu_edu"));
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/ims", bdf);
	ASSERT_EQ(0, msr_write(path, "free all"));
	ASSERT_EQ(0, msr_write(path, "pasid 5"));
	SWEEP(n, injected, msr_write(path, "alloc 1"),
	      EXPECT_EQ(0, msr_irq_lines("qemu_edu-ims")),
	      ASSERT_EQ(0, msr_write(path, "free all")));
	TH_LOG("IMS: %d injected failures before N=%d went through", injected, n);
	EXPECT_LT(0, injected);
	EXPECT_EQ(1, msr_irq_lines("qemu_edu-ims"));
	ASSERT_EQ(0, msr_write(path, "submit 0 5"));
	usleep(50000);
	ASSERT_LT(0, msr_read(path, state, sizeof(state)));
	EXPECT_NE(NULL, strstr(state, "slot 0 irq ")) TH_LOG("%s", state);
	EXPECT_NE(NULL, strstr(state, " fired 1 ")) TH_LOG("%s", state);
	EXPECT_EQ(0, msr_write(path, "free all"));
}

/*
 * Probing the IOMMU: riscv_iommu bound to the IOMMU's PCI function with its
 * Nth allocation failing (those with riscv_iommu's code on the stack: its
 * own, and the IOMMU core's and the IRQ core's on its behalf, including
 * the core's probe of the devices behind the IOMMU). A failed bind leaves
 * nothing: the driver unbound, no IOMMU registered, no MSI remapping
 * domain, no debugfs directory, no device in an IOMMU group; a bind that
 * absorbed the failure unbinds cleanly. The sweep runs with edu unbound
 * (its driver would hold the IOMMU's module); at the end the IOMMU binds
 * clean, edu comes back to qemu_edu, and its DMA and MSI work through it.
 */
#define RISCV_IOMMU_DRV	"/sys/bus/pci/drivers/riscv_iommu"

/* The IOMMU's PCI address: the one device riscv_iommu is bound to. */
static int iommu_bdf(char *bdf, size_t len)
{
	struct dirent *de;
	DIR *d = opendir(RISCV_IOMMU_DRV);
	int ret = -ENOENT;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "0000:", 5)) {
			snprintf(bdf, len, "%s", de->d_name);
			ret = 0;
			break;
		}
	closedir(d);
	return ret;
}

/* IRQ domains whose name starts with `prefix` (debugfs irq/domains). */
static int irq_domains(const char *prefix)
{
	struct dirent *de;
	DIR *d = opendir("/sys/kernel/debug/irq/domains");
	int n = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		n += !strncmp(de->d_name, prefix, strlen(prefix));
	closedir(d);
	return n;
}

/* What a bound IOMMU leaves behind when it is gone: all of it, 0 when none. */
static int iommu_remains(const char *iommu, const char *edu, char *what, size_t len)
{
	char path[256];

	snprintf(path, sizeof(path), RISCV_IOMMU_DRV "/%s", iommu);
	if (access(path, F_OK) == 0)
		snprintf(what, len, "the driver is bound");
	else if (msr_dir_entries("/sys/class/iommu") > 0)
		snprintf(what, len, "an IOMMU is registered");
	else if (irq_domains("riscv-iommu-ir-") != 0)
		snprintf(what, len, "an MSI remapping domain is left");
	else if (msr_dir_entries("/sys/kernel/debug/riscv_iommu") > 0)
		snprintf(what, len, "a debugfs directory is left");
	else if (snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", edu),
		 access(path, F_OK) == 0)
		snprintf(what, len, "edu is still in an IOMMU group");
	else
		return 0;
	return -1;
}

/*
 * The IOMMU's own registers, read from user space through its BAR (the
 * PCI resource file), as a device sees them: after a failed bind the
 * IOMMU must be off, translating nothing (DDTP mode Off) and using no
 * queue (CQCSR, FQCSR and PQCSR neither enabled nor on), for it would
 * otherwise go on writing fault records and reading commands from memory
 * the failed probe freed. Memory decoding is turned on for the reads if
 * the failed probe left it off. 0 when off, -1 with `what` saying why.
 */
#define REG_CAPS	0x00
#define REG_DDTP	0x10
#define DDTP_MODE	0xfULL
static const struct { const char *name; int off; uint32_t on; } iommu_queues[] = {
	{ "cqcsr", 0x48, 1u << 0 | 1u << 16 },	/* cqen, cqon */
	{ "fqcsr", 0x4c, 1u << 0 | 1u << 16 },	/* fqen, fqon */
	{ "pqcsr", 0x50, 1u << 0 | 1u << 16 },	/* pqen, pqon */
};

static int iommu_regs_off(const char *bdf, char *what, size_t len)
{
	char path[256];
	unsigned char cmd[2];
	volatile uint32_t *r;
	int fd, ret = 0, decode;
	uint64_t ddtp;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, cmd, 2, 4) != 2) {
		snprintf(what, len, "cannot read %s", path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	decode = cmd[0] & 2;	/* PCI_COMMAND_MEMORY */
	if (!decode)
		msr_pci_config_write32(bdf, 4, cmd[0] | cmd[1] << 8 | 2);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(path, O_RDONLY | O_SYNC | O_CLOEXEC);
	r = fd < 0 ? MAP_FAILED : mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
	if (r == MAP_FAILED) {
		snprintf(what, len, "cannot map %s: %s", path, strerror(errno));
		ret = -1;
		goto out;
	}
	/* Registers are what they say only if this is the IOMMU, v1.0. */
	ddtp = r[REG_DDTP / 4] | (uint64_t)r[REG_DDTP / 4 + 1] << 32;
	if ((r[REG_CAPS / 4] & 0xff) != 0x10) {
		snprintf(what, len, "capabilities read %#x: not the IOMMU's registers", r[REG_CAPS / 4]);
		ret = -1;
	} else if (ddtp & DDTP_MODE) {
		snprintf(what, len, "ddtp %#llx: translation on", (unsigned long long)ddtp);
		ret = -1;
	}
	for (size_t i = 0; !ret && i < sizeof(iommu_queues) / sizeof(iommu_queues[0]); i++)
		if (r[iommu_queues[i].off / 4] & iommu_queues[i].on) {
			snprintf(what, len, "%s %#x: queue on", iommu_queues[i].name,
				 r[iommu_queues[i].off / 4]);
			ret = -1;
		}
	munmap((void *)r, PAGE);
out:
	if (fd >= 0)
		close(fd);
	if (!decode)
		msr_pci_config_write32(bdf, 4, cmd[0] | cmd[1] << 8);
	return ret;
}

FIXTURE(iommu)
{
	char iommu[32], edu[32];
};

FIXTURE_SETUP(iommu)
{
	ASSERT_EQ(0, setup_injection("riscv_iommu"));
	ASSERT_EQ(0, iommu_bdf(self->iommu, sizeof(self->iommu)));
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, self->edu, sizeof(self->edu)));
	ASSERT_EQ(0, _pci_unbind(self->edu));
	ASSERT_EQ(0, _pci_unbind(self->iommu));
}

FIXTURE_TEARDOWN(iommu)
{
	char path[256];

	fail_nth(0);
	snprintf(path, sizeof(path), RISCV_IOMMU_DRV "/%s", self->iommu);
	if (access(path, F_OK))
		msr_write(RISCV_IOMMU_DRV "/bind", self->iommu);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", self->edu);
	if (access(path, F_OK))
		msr_write("/sys/bus/pci/drivers_probe", self->edu);
}

/*
 * After a bind with an injected failure: when it failed, nothing is left
 * and the IOMMU is off; when it absorbed the failure, unbinding leaves
 * nothing. Counts it in `count`.
 */
static void after_failure(struct __test_metadata *_metadata, FIXTURE_DATA(iommu) *self,
			  int n, bool failed, int *count)
{
	char what[64];

	if (failed) {
		ASSERT_EQ(0, iommu_remains(self->iommu, self->edu, what, sizeof(what))) {
			TH_LOG("N=%d: failed bind, but %s", n, what);
		}
		ASSERT_EQ(0, iommu_regs_off(self->iommu, what, sizeof(what))) {
			TH_LOG("N=%d: failed bind, but the IOMMU is not off: %s", n, what);
		}
	} else {
		ASSERT_EQ(0, msr_write(RISCV_IOMMU_DRV "/unbind", self->iommu)) TH_LOG("N=%d", n);
		ASSERT_EQ(0, iommu_remains(self->iommu, self->edu, what, sizeof(what))) {
			TH_LOG("N=%d: unbound after an absorbed failure, but %s", n, what);
		}
	}
	(*count)++;
}

/*
 * The bind's allocations, one failing at a time. The IOMMU core's DMA
 * set-up of each device behind the IOMMU (iommu_setup_dma_ops(): the
 * IOVA domain and its caches, and one entry a page of the device's MSI
 * window, 256 in MRIF mode) is about a thousand allocations in MRIF mode
 * and a few dozen without MSI tables, with one failure path, which the
 * core absorbs (the device keeps its platform DMA ops): the first sweep
 * keeps them from failing, the second fails only them, every
 * FAIL_STRIDE'th (37; msiremap.fail_stride=1 on the kernel command line
 * for all of them, as `make soak` does). A bind takes about a third of a
 * second on the debug kernel.
 */
TEST_F_TIMEOUT(iommu, probe, 900)
{
	char path[256], what[64], stride_s[16];
	int n, injected = 0, absorbed = 0, failed = 0, setup = 0, stride;

	stride = atoi(msr_cmdline("msiremap.fail_stride", stride_s, sizeof(stride_s)) ?: "37");
	ASSERT_LT(0, stride);
	ASSERT_EQ(0, iommu_remains(self->iommu, self->edu, what, sizeof(what))) TH_LOG("unbound: %s", what);
	ASSERT_EQ(0, iommu_regs_off(self->iommu, what, sizeof(what))) TH_LOG("unbound: %s", what);
	ASSERT_EQ(0, filter_function("riscv_iommu", "iommu_setup_dma_ops", "reject"));
	SWEEP(n, injected, msr_write(RISCV_IOMMU_DRV "/bind", self->iommu),
	      after_failure(_metadata, self, n, true, &failed),
	      after_failure(_metadata, self, n, false, &absorbed));
	TH_LOG("IOMMU probe: %d injected failures (%d absorbed) before N=%d went through; "
	       "registers read off after each of the %d failed binds", injected, absorbed, n, failed);
	EXPECT_LT(100, injected);
	EXPECT_LT(100, failed);

	ASSERT_EQ(0, msr_write(RISCV_IOMMU_DRV "/unbind", self->iommu));
	ASSERT_EQ(0, filter_function("riscv_iommu", "iommu_setup_dma_ops", "require"));
	absorbed = 0;
	SWEEP_STEP(n, stride, setup, msr_write(RISCV_IOMMU_DRV "/bind", self->iommu),
		   after_failure(_metadata, self, n, true, &failed),
		   after_failure(_metadata, self, n, false, &absorbed));
	TH_LOG("the core's DMA set-up: %d injected failures, every %dth up to N=%d (%d absorbed)",
	       setup, stride, n, absorbed);
	EXPECT_LT(0, setup);
	EXPECT_EQ(setup, absorbed);
	ASSERT_EQ(0, filter_function("riscv_iommu", NULL, NULL));

	/* The bind that went through works: edu's DMA and MSI through it. */
	EXPECT_EQ(1, msr_dir_entries("/sys/class/iommu"));
	EXPECT_EQ(1, irq_domains("riscv-iommu-ir-"));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", self->edu);
	ASSERT_EQ(0, access(path, F_OK));
	ASSERT_EQ(0, msr_write("/sys/bus/pci/drivers/qemu_edu/bind", self->edu));
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/dma", self->edu);
	EXPECT_EQ(0, msr_write(path, "64"));
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/irq", self->edu);
	EXPECT_EQ(0, msr_write(path, "10"));
}

/*
 * Freeing a notice while its handler runs (MRIF mode). A notice's chained
 * handler reads its data, then counts itself running; the handler is held
 * between the two (debugfs `debug`, `notice_delay_us`: a debug-kernel
 * knob) while the notice is freed (`notice_drop_race`: a notice made on
 * CPU 1, raised, and freed once its handler is held). The free must wait
 * for the held handler, and nothing may touch freed memory (no KASAN
 * report; the rig fails the run on one too).
 */
TEST(notice_freed_under_its_handler)
{
	char iommu[32], path[256], stats[2048];
	const char *log, *p;
	cpu_set_t cpu0;
	long us;

	ASSERT_EQ(0, iommu_bdf(iommu, sizeof(iommu)));
	snprintf(path, sizeof(path), "/sys/kernel/debug/riscv_iommu/%s/stats", iommu);
	ASSERT_LT(0, msr_read(path, stats, sizeof(stats)));
	if (!strstr(stats, " mode mrif\n"))
		SKIP(return, "no MRIF notices on %s", msr_profile());
	snprintf(path, sizeof(path), "/sys/kernel/debug/riscv_iommu/%s/debug", iommu);
	ASSERT_EQ(0, msr_write(path, "notice_delay_us 400000"));
	/* On CPU 0: the held handler runs on CPU 1, not over this write. */
	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpu0), &cpu0));
	ASSERT_EQ(0, msr_write("/dev/kmsg", "notice_freed_under_its_handler: start"));
	EXPECT_EQ(0, msr_write(path, "notice_drop_race 1"));
	/* The held handler has resumed, wherever its data was. */
	usleep(600000);
	EXPECT_EQ(0, msr_write(path, "notice_delay_us 0"));
	log = msr_kernel_log_since("notice_freed_under_its_handler: start");
	p = strstr(log, "notice_drop_race: freed ");
	ASSERT_NE(NULL, p) TH_LOG("%s", log);
	us = atol(p + strlen("notice_drop_race: freed "));
	TH_LOG("the free returned %ld ms after the handler was held for 400 ms", us / 1000);
	/* It waited for the handler: most of the hold. */
	EXPECT_LE(300000, us);
	EXPECT_EQ(NULL, strstr(log, "KASAN"));
}

/*
 * A notice handler resumes after the last set it saw, by the set's number:
 * a set freed between two of its batches shifts the list's indices, and a
 * handler that resumed at the old index skipped the set after the last one
 * it took, whose pending MSIs waited for the next write to the notice's
 * CPU, lost if none came.
 *
 * edu's IMS vectors fill MRIF sets of 63 in order: X, B and Y, the last
 * three, all delivered on CPU 1. Debug knobs widen the windows (debugfs
 * `debug`): a handler takes one set at a time and busy-waits between two
 * batches, a handler waits before it counts itself running (so that a
 * free's wait for running handlers passes it), and the free of a set's
 * last vector waits for a handler between two batches before it takes
 * the set off the list. The
 * interleaving, with the test on CPU 0:
 *
 *   1. h (in Y) is submitted and its handler held (`hold_handlers`): the
 *      handler run R0 on CPU 1 has scanned X, B and Y, interrupts off.
 *   2. b (in B) and y1..y4 (in Y) are submitted: pending in their MRIFs,
 *      one notice pending at CPU 1's interrupt file.
 *   3. h is let go; R0 returns and R1 claims the notice, both sets pending,
 *      and waits 400 ms before it counts itself running.
 *   4. X's last vector is freed: the free's wait for running handlers
 *      passes R1, then the free waits (up to 1 s) for a handler to be
 *      between two batches.
 *   5. R1 takes B (X is empty) and busy-waits 800 ms; X comes off the list
 *      meanwhile; R1's next batch must take Y. Resuming at B's old index
 *      plus one, it found the list's end and returned with y1..y4 pending.
 *
 * The kernel log tells whether the free landed between two batches of a
 * handler run; the free's second wait for running handlers then waited
 * for that run, R1 (or a later one), so every MSI raised must have fired
 * by the time the free returns. If it missed (the host left CPU 1's vCPU
 * behind), the round is tried again, up to three times. In every round
 * each MSI must fire exactly once within 3 s. A round takes 4-8 s on the
 * debug kernel.
 */
#define RESUME_SET	63	/* vectors per MRIF set (mrif::USABLE) */
#define RESUME_YS	4
#define RESUME_PASID	5
#define RESUME_BOUND_MS	3000	/* after the free returned */
/* What the kernel logs when a set came off the list between two batches. */
#define RESUME_WINDOW	"a set was freed between two batches of a notice handler on CPU 1"

struct ims_slot {
	int slot, irq, fired;
	unsigned int data;
};

/* The allocated slots of edu's IMS (debugfs `ims`), in slot order. */
static int ims_read_slots(const char *ims, struct ims_slot *out, int max)
{
	static char buf[1 << 16];
	char *line, *save;
	int n = 0;

	if (msr_read(ims, buf, sizeof(buf)) < 0)
		return -errno;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct ims_slot x;

		if (sscanf(line, "slot %d irq %d fired %d ctrl %*x address %*x data %x",
			   &x.slot, &x.irq, &x.fired, &x.data) == 4 && n < max)
			out[n++] = x;
	}
	return n;
}


/* Times slot `slot` fired; -1 if it is not allocated. */
static int ims_fired(const char *ims, int slot)
{
	static struct ims_slot all[256];
	int n = ims_read_slots(ims, all, 256);

	for (int i = 0; i < n; i++)
		if (all[i].slot == slot)
			return all[i].fired;
	return -1;
}

/* Moves interrupt `irq` to CPU 1; 0 or -errno. */
static int irq_to_cpu1(int irq)
{
	char path[64];
	unsigned long effective;
	int ret;

	snprintf(path, sizeof(path), "/proc/irq/%d/smp_affinity_list", irq);
	ret = msr_write(path, "1");
	if (ret)
		return ret;
	if (msr_irq_move_settled(irq) != 1)
		return -EBUSY;
	snprintf(path, sizeof(path), "/proc/irq/%d/effective_affinity_list", irq);
	ret = msr_read_ulong(path, &effective);
	if (ret)
		return ret;
	return effective == 1 ? 0 : -EAGAIN;
}

static long resume_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The knobs of the interleaving on (1) or off (0). */
static void resume_knobs(const char *debug, int on)
{
	msr_write(debug, on ? "notice_batch 1" : "notice_batch 0");
	msr_write(debug, on ? "notice_batch_delay_us 800000" : "notice_batch_delay_us 0");
	msr_write(debug, on ? "mrif_free_wait_us 1000000" : "mrif_free_wait_us 0");
	msr_write(debug, on ? "notice_delay_us 400000" : "notice_delay_us 0");
}

FIXTURE(resume)
{
	char debug[256], ims[256];
};

FIXTURE_SETUP(resume)
{
	char iommu[32], edu[32], stats[2048];
	cpu_set_t cpu0;

	self->ims[0] = '\0';
	ASSERT_EQ(0, iommu_bdf(iommu, sizeof(iommu)));
	snprintf(self->debug, sizeof(self->debug), "/sys/kernel/debug/riscv_iommu/%s/stats", iommu);
	ASSERT_LT(0, msr_read(self->debug, stats, sizeof(stats)));
	if (!strstr(stats, " mode mrif\n"))
		SKIP(return, "no MRIF sets on %s", msr_profile());
	snprintf(self->debug, sizeof(self->debug), "/sys/kernel/debug/riscv_iommu/%s/debug", iommu);
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, edu, sizeof(edu)));
	snprintf(self->ims, sizeof(self->ims), "/sys/kernel/debug/qemu_edu/%s/ims", edu);
	/* On CPU 0: CPU 1 runs the held handlers. */
	CPU_ZERO(&cpu0);
	CPU_SET(0, &cpu0);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(cpu0), &cpu0));
}

FIXTURE_TEARDOWN(resume)
{
	if (!self->ims[0])
		return;
	msr_write(self->ims, "hold_handlers 0");
	resume_knobs(self->debug, 0);
	msr_write(self->ims, "free all");
}

TEST_F_TIMEOUT(resume, notice_resumes_after_a_freed_set, 300)
{
	static const char marker[] = "notice_resumes_after_a_freed_set: round";
	static struct ims_slot all[256];
	const char *debug = self->debug, *ims = self->ims;
	int round, reached = 0;

	for (round = 1; round <= 3 && !reached; round++) {
		int n, g = 0, start[8], h, b, ys[RESUME_YS], x_last, left = 0, lost = 0, late = 0;
		long t_held, t_go, t_freed;
		const char *log;
		char mark[96];

		ASSERT_EQ(0, msr_write(ims, "free all"));
		ASSERT_EQ(0, msr_writef(ims, "pasid %d", RESUME_PASID));
		/* Any vectors of edu's own set (at most 62) fill up first. */
		ASSERT_EQ(0, msr_writef(ims, "alloc %d", 3 * RESUME_SET + RESUME_YS + 1 + 6));
		n = ims_read_slots(ims, all, 256);
		ASSERT_LT(3 * RESUME_SET, n);
		/* A set's identities rise from where its free ones start. */
		for (int i = 0; i < n && g < 8; i++)
			if (!i || all[i].data <= all[i - 1].data)
				start[g++] = i;
		ASSERT_LE(4, g);
		/* X, B, Y: the last three sets, X and B full. */
		ASSERT_EQ(RESUME_SET, start[g - 2] - start[g - 3]);
		ASSERT_EQ(RESUME_SET, start[g - 1] - start[g - 2]);
		ASSERT_LE(RESUME_YS + 1, n - start[g - 1]);
		x_last = all[start[g - 2] - 1].slot;
		b = start[g - 2];
		h = start[g - 1];
		ASSERT_EQ(0, irq_to_cpu1(all[b].irq));
		ASSERT_EQ(0, irq_to_cpu1(all[h].irq));
		for (int i = 0; i < RESUME_YS; i++) {
			ys[i] = h + 1 + i;
			ASSERT_EQ(0, irq_to_cpu1(all[ys[i]].irq));
		}
		b = all[b].slot;
		h = all[h].slot;
		for (int i = 0; i < RESUME_YS; i++)
			ys[i] = all[ys[i]].slot;
		/* X keeps one vector. */
		for (int i = start[g - 3]; i < start[g - 2] - 1; i++)
			ASSERT_EQ(0, msr_writef(ims, "free %d", all[i].slot));

		/* Unique, so that no earlier run's log is taken for this one's. */
		snprintf(mark, sizeof(mark), "%s %d, pid %d, %ld ms", marker, round, getpid(),
			 resume_ms());
		ASSERT_EQ(0, msr_write("/dev/kmsg", mark));
		resume_knobs(debug, 1);
		/* 1. */
		ASSERT_EQ(0, msr_write(ims, "hold_handlers 1"));
		ASSERT_EQ(0, msr_writef(ims, "submit %d %d", h, RESUME_PASID));
		for (int t = 0; t < 200 && ims_fired(ims, h) < 1; t++)
			usleep(10000);
		ASSERT_EQ(1, ims_fired(ims, h));
		t_held = resume_ms();
		/* 2. */
		EXPECT_EQ(0, msr_writef(ims, "submit %d %d", b, RESUME_PASID));
		for (int i = 0; i < RESUME_YS; i++)
			EXPECT_EQ(0, msr_writef(ims, "submit %d %d", ys[i], RESUME_PASID));
		/* 3., 4., 5.: the free returns once R1 has. */
		EXPECT_EQ(0, msr_write(ims, "hold_handlers 0"));
		t_go = resume_ms();
		EXPECT_EQ(0, msr_writef(ims, "free %d", x_last));
		t_freed = resume_ms();
		/* Y's MSIs R1 left pending. */
		for (int i = 0; i < RESUME_YS; i++)
			left += ims_fired(ims, ys[i]) == 0;
		resume_knobs(debug, 0);
		log = msr_kernel_log_since(mark);
		reached = strstr(log, mark) == log && strstr(log, RESUME_WINDOW) != NULL;
		/*
		 * The run the free landed in had scanned the list before the
		 * removal, so the free's second wait for running handlers waited
		 * for it: it has returned, and it was R1 or a later run. Either
		 * way every MSI raised is in by now.
		 */
		if (reached)
			EXPECT_EQ(0, left)
				TH_LOG("round %d: %d of Y's MSIs left pending", round, left);
		/* Otherwise R1 may not have run yet: a vCPU left behind. */
		for (int t = 0; t < RESUME_BOUND_MS / 10; t++) {
			int all_in = ims_fired(ims, b) > 0;

			for (int i = 0; i < RESUME_YS; i++)
				all_in &= ims_fired(ims, ys[i]) > 0;
			if (all_in)
				break;
			usleep(10000);
		}
		/* A second delivery would come now. */
		usleep(100000);
		EXPECT_EQ(NULL, strstr(msr_kernel_log_since(mark), "KASAN"));
		EXPECT_EQ(1, ims_fired(ims, h));
		EXPECT_EQ(1, ims_fired(ims, b));
		for (int i = 0; i < RESUME_YS; i++) {
			int f = ims_fired(ims, ys[i]);

			lost += f == 0;
			EXPECT_EQ(1, f) TH_LOG("round %d: slot %d, in Y", round, ys[i]);
		}
		/* What the next write to CPU 1's notice finds. */
		if (lost) {
			EXPECT_EQ(0, msr_writef(ims, "submit %d %d", h, RESUME_PASID));
			usleep(200000);
			for (int i = 0; i < RESUME_YS; i++)
				late += ims_fired(ims, ys[i]) == 1;
		}
		TH_LOG("round %d: h held %ld ms, the free took %ld ms and %s a handler's batches",
		       round, t_go - t_held, t_freed - t_go, reached ? "landed between" : "missed");
		TH_LOG("Y: %d MSIs, %d pending when the free returned, %d after %d ms, %d taken by the next notice",
		       RESUME_YS, left, lost, RESUME_BOUND_MS, late);
	}
	EXPECT_TRUE(reached) TH_LOG("no round freed a set between two batches of a handler");
}

TEST_HARNESS_MAIN
