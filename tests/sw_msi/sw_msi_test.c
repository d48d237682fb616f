// SPDX-License-Identifier: GPL-2.0
/*
 * sw_msi: the kernel maps the interrupt controller's doorbells into a
 * device's IOMMU domain, so the MSIs of a device passed to user space (VFIO
 * cdev + iommufd) land, at IOVAs inside the reserved SW_MSI window that
 * iommufd keeps user mappings out of. The same tests run on riscv64 (our
 * IOMMU driver and remapping domain: IMSIC files, one per hart) and on
 * arm64 (SMMUv3 + GICv3 ITS, the in-tree path), with two real devices: edu
 * (MSI) and igb (MSI-X). Where our IOMMU remaps MSIs with page tables
 * instead, they check that the IMSIC range is a hardware MSI region and
 * messages keep their physical addresses.
 */
#include <sys/eventfd.h>
#include <sys/sysinfo.h>

#include "kselftest_harness.h"
#include "vfio_utils.h"

#define PAGE		4096
#define RAISES		100
#define SW_MSI_BASE	0x8000000ULL	/* both architectures' window */
#define SMMU_MSI_LEN	0x100000ULL	/* arm-smmu-v3's MSI_IOVA_LENGTH */

/* A device whose interrupts user space raises through BAR0. */
struct msi_device {
	unsigned int vendor, device;
	unsigned int index;	/* VFIO interrupt index */
	unsigned int vectors;	/* used by the tests */
	void (*setup)(volatile uint32_t *bar, unsigned int n);
	void (*raise)(volatile uint32_t *bar, unsigned int vector);
};

static void edu_setup(volatile uint32_t *bar, unsigned int n)
{
	(void)bar;
	(void)n;
}

/* edu signals its MSI on every write to INTR_RAISE. */
static void edu_raise(volatile uint32_t *bar, unsigned int vector)
{
	(void)vector;
	bar[EDU_REG_INTR_RAISE] = 1;
}

static void igb_raise(volatile uint32_t *bar, unsigned int vector)
{
	bar[IGB_REG_EICS] = 1u << vector;
}

static const struct msi_device edu = {
	.vendor = EDU_VENDOR, .device = EDU_DEVICE, .index = VFIO_PCI_MSI_IRQ_INDEX,
	.vectors = 1, .setup = edu_setup, .raise = edu_raise,
};

static const struct msi_device igb = {
	.vendor = IGB_VENDOR, .device = IGB_DEVICE, .index = VFIO_PCI_MSIX_IRQ_INDEX,
	.vectors = 4, .setup = vfio_igb_msix_setup, .raise = igb_raise,
};

/* A device handed to vfio-pci, in an iommufd context of its own. */
struct vdev {
	const struct msi_device *kind;
	char bdf[32];
	int iommufd, devfd;
	__u32 devid, ioas;
	volatile uint32_t *bar;
	size_t bar_size;
	int efd[VFIO_MAX_VECTORS];
};

/*
 * Takes the first `kind` device: binds it to a new iommufd context,
 * attaches it to a new IOAS, maps BAR0 and sets an eventfd per vector.
 * NULL, or what failed.
 */
static const char *vdev_open(struct vdev *d, const struct msi_device *kind)
{
	*d = (struct vdev){ .kind = kind, .iommufd = -1, .devfd = -1 };
	for (int i = 0; i < VFIO_MAX_VECTORS; i++)
		d->efd[i] = -1;
	if (msr_find_pci(kind->vendor, kind->device, 0, d->bdf, sizeof(d->bdf)))
		return "device not found";
	if (_vfio_pci_take(d->bdf))
		return "vfio-pci does not take the device";
	d->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (d->iommufd < 0)
		return "/dev/iommu";
	d->devfd = _vfio_cdev_open(d->bdf);
	if (d->devfd < 0)
		return "no VFIO cdev";
	if (_vfio_bind_iommufd(d->devfd, d->iommufd, &d->devid))
		return "VFIO_DEVICE_BIND_IOMMUFD";
	if (_ioas_alloc(d->iommufd, &d->ioas) || _vfio_attach(d->devfd, d->ioas))
		return "IOAS allocation or attach";
	d->bar = vfio_map_bar(d->devfd, VFIO_PCI_BAR0_REGION_INDEX, &d->bar_size);
	if (!d->bar)
		return "BAR0 mmap";
	if (vfio_enable_bus_master(d->devfd))
		return "bus mastering";
	for (unsigned int i = 0; i < kind->vectors; i++)
		if ((d->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			return "eventfd";
	if (_vfio_set_irqs(d->devfd, kind->index, d->efd, kind->vectors))
		return "VFIO_DEVICE_SET_IRQS";
	kind->setup(d->bar, kind->vectors);
	return NULL;
}

static void vdev_close(struct vdev *d)
{
	if (d->devfd >= 0)
		_vfio_set_irqs(d->devfd, d->kind->index, NULL, 0);
	for (int i = 0; i < VFIO_MAX_VECTORS; i++)
		if (d->efd[i] >= 0)
			close(d->efd[i]);
	if (d->bdf[0])
		vfio_release(d->bdf, d->bar, d->bar_size, d->devfd, d->iommufd);
}

/*
 * Raises `vector` `n` times, waiting for each to be signalled (a lost one
 * costs `ms`); the number signalled, including any extra one that follows.
 */
static int raise_count(struct vdev *d, unsigned int vector, int n, int ms)
{
	int got = 0;

	for (int i = 0; i < n; i++) {
		d->kind->raise(d->bar, vector);
		got += (int)vfio_eventfd_wait(d->efd[vector], ms);
	}
	return got + (int)vfio_eventfd_wait(d->efd[vector], 20);
}

/* Raises every vector `n` times; how many vectors saw exactly `n`. */
static unsigned int raise_all(struct vdev *d, int n, int ms)
{
	unsigned int ok = 0;

	for (unsigned int v = 0; v < d->kind->vectors; v++)
		ok += raise_count(d, v, n, ms) == n;
	return ok;
}

/* Whether [lo, hi] overlaps [start, end]. */
static int overlaps(unsigned long long lo, unsigned long long hi, unsigned long long start, unsigned long long end)
{
	return lo <= end && hi >= start;
}

/* edu's MSI address from its config space; 0 if unreadable. */
static unsigned long long edu_msi_address(const char *bdf)
{
	unsigned long long addr;
	unsigned int data;
	int ao, dof;

	return msr_pci_msi(bdf, &addr, &data, &ao, &dof) ? 0 : addr;
}

FIXTURE(sw_msi)
{
	struct vdev d;
	unsigned long long start, end;	/* the reserved MSI region */
};

FIXTURE_VARIANT(sw_msi)
{
	const struct msi_device *kind;
};

FIXTURE_VARIANT_ADD(sw_msi, edu_msi) { .kind = &edu };
FIXTURE_VARIANT_ADD(sw_msi, igb_msix) { .kind = &igb };

FIXTURE_SETUP(sw_msi)
{
	const char *err = vdev_open(&self->d, variant->kind);

	ASSERT_EQ(NULL, err) TH_LOG("%s: %s", self->d.bdf, err);
	ASSERT_EQ(0, msr_msi_region(self->d.bdf, &self->start, &self->end));
}

FIXTURE_TEARDOWN(sw_msi)
{
	vdev_close(&self->d);
}

/*
 * The window is where each IOMMU driver says: one page per CPU's IMSIC
 * file for our driver when it translates MSIs, SMMUv3's 1 MiB on arm64;
 * the IMSIC files themselves where MSI page tables remap them.
 */
TEST_F(sw_msi, the_msi_region_is_reported)
{
	int riscv = !strcmp(msr_arch(), "riscv64"), cpus = get_nprocs_conf();

	TH_LOG("msi region %#llx-%#llx", self->start, self->end);
	if (!msr_msis_translated()) {
		for (int cpu = 0; cpu < cpus; cpu++) {
			EXPECT_TRUE(overlaps(msr_imsic_file(cpu), msr_imsic_file(cpu) + PAGE - 1, self->start, self->end))
				TH_LOG("IMSIC file of CPU %d", cpu);
		}
	} else {
		EXPECT_EQ(SW_MSI_BASE, self->start);
		EXPECT_EQ(SW_MSI_BASE + (riscv ? (unsigned long long)cpus * PAGE : SMMU_MSI_LEN) - 1, self->end);
	}
}

/* IOMMU_IOAS_IOVA_RANGES leaves exactly the region out. */
TEST_F(sw_msi, iova_ranges_exclude_the_region)
{
	struct iommu_iova_range r[16];
	int n = _ioas_iova_ranges(self->d.iommufd, self->d.ioas, r, 16);
	int below = 0, above = 0;

	ASSERT_LT(0, n);
	ASSERT_GE(16, n);
	for (int i = 0; i < n; i++) {
		TH_LOG("usable %#llx-%#llx", (unsigned long long)r[i].start, (unsigned long long)r[i].last);
		EXPECT_FALSE(overlaps(r[i].start, r[i].last, self->start, self->end));
		below |= r[i].last + 1 == self->start;
		above |= r[i].start == self->end + 1;
	}
	EXPECT_TRUE(below);
	EXPECT_TRUE(above);
}

/*
 * IOMMU_IOAS_MAP at a fixed IOVA in the region fails with EINVAL (the
 * errno iommufd documents for a reserved IOVA), whether it starts there,
 * ends there or straddles its edge; IOVAs iommufd picks avoid it. MSIs
 * still land afterwards.
 */
TEST_F(sw_msi, maps_into_the_region_are_refused)
{
	uint8_t *buf = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	__u64 iova[32];

	ASSERT_NE(MAP_FAILED, buf);
	EXPECT_EQ(-EINVAL, _ioas_map_fixed(self->d.iommufd, self->d.ioas, buf, PAGE, self->start));
	EXPECT_EQ(-EINVAL, _ioas_map_fixed(self->d.iommufd, self->d.ioas, buf, PAGE, self->end + 1 - PAGE));
	EXPECT_EQ(-EINVAL, _ioas_map_fixed(self->d.iommufd, self->d.ioas, buf, 2 * PAGE, self->start - PAGE));
	EXPECT_EQ(-EINVAL, _ioas_map_fixed(self->d.iommufd, self->d.ioas, buf, 2 * PAGE, self->end + 1 - PAGE));
	for (int i = 0; i < 32; i++) {
		ASSERT_EQ(0, _ioas_map(self->d.iommufd, self->d.ioas, buf, 2 * PAGE, &iova[i]));
		EXPECT_FALSE(overlaps(iova[i], iova[i] + 2 * PAGE - 1, self->start, self->end))
			TH_LOG("iommufd picked %#llx", (unsigned long long)iova[i]);
	}
	for (int i = 0; i < 32; i++)
		EXPECT_EQ(0, _ioas_unmap(self->d.iommufd, self->d.ioas, iova[i], 2 * PAGE));
	EXPECT_EQ(variant->kind->vectors, raise_all(&self->d, 10, 1000));
	munmap(buf, 2 * PAGE);
}

/*
 * Every raise of every vector is signalled once on its eventfd, none lost,
 * none extra. edu's message carries an IOVA in the window where MSIs are
 * translated, an IMSIC file's or an MRIF entry's address where tables
 * remap them.
 */
TEST_F(sw_msi, every_msi_lands_once)
{
	for (unsigned int v = 0; v < variant->kind->vectors; v++) {
		EXPECT_EQ(RAISES, raise_count(&self->d, v, RAISES, 1000)) TH_LOG("vector %u", v);
	}
	if (variant->kind == &edu) {
		unsigned long long addr = edu_msi_address(self->d.bdf);

		TH_LOG("edu writes its MSI to %#llx", addr);
		EXPECT_TRUE(overlaps(addr, addr + 3, self->start, self->end));
		if (!msr_msis_translated()) {
			EXPECT_NE(0, msr_doorbell_file(self->d.bdf, addr));
		}
	}
}

/*
 * Attached to a second IOAS (a new domain), MSIs still land, at the same
 * IOVA (iommufd's doorbell IOVAs belong to the context and are installed
 * in every domain its devices attach to). Detached (blocked), a translated
 * device's MSIs are blocked with its DMA, while MSI page tables keep
 * delivering them; attached again, they land again.
 */
TEST_F(sw_msi, msis_across_a_second_ioas_and_detach)
{
	unsigned int all = variant->kind->vectors;
	unsigned long long addr = 0;
	struct iommu_iova_range r[16];
	__u32 ioas2;
	int n;

	if (variant->kind == &edu)
		addr = edu_msi_address(self->d.bdf);
	EXPECT_EQ(all, raise_all(&self->d, 20, 1000)) TH_LOG("first IOAS");

	test_ioas_alloc(self->d.iommufd, &ioas2);
	test_vfio_attach(self->d.devfd, ioas2);
	EXPECT_EQ(all, raise_all(&self->d, 20, 1000)) TH_LOG("second IOAS");
	n = _ioas_iova_ranges(self->d.iommufd, ioas2, r, 16);
	ASSERT_LT(0, n);
	for (int i = 0; i < n; i++) {
		EXPECT_FALSE(overlaps(r[i].start, r[i].last, self->start, self->end));
	}

	test_vfio_detach(self->d.devfd);
	if (msr_msis_translated()) {
		for (unsigned int v = 0; v < all; v++) {
			EXPECT_EQ(0, raise_count(&self->d, v, 2, 300)) TH_LOG("vector %u while blocked", v);
		}
	} else {
		EXPECT_EQ(all, raise_all(&self->d, 20, 1000)) TH_LOG("detached, MSI table");
	}

	test_vfio_attach(self->d.devfd, self->d.ioas);
	EXPECT_EQ(all, raise_all(&self->d, 20, 1000)) TH_LOG("first IOAS again");
	if (variant->kind == &edu) {
		EXPECT_EQ(addr, edu_msi_address(self->d.bdf));
	}
}

/*
 * Moving the interrupts between CPUs changes the doorbell (IMSIC files
 * are per hart; the ITS has one): the message follows, with the IOVA of
 * the new file where MSIs are translated (mapped when the vector was
 * allocated: a move cannot sleep), and every raise still lands. edu's
 * MSI moves when it next fires (deferred, in hard interrupt context);
 * igb's MSI-X at once.
 */
TEST_F(sw_msi, msis_follow_affinity_changes)
{
	int riscv = !strcmp(msr_arch(), "riscv64");
	unsigned long long addr[2] = { 0, 0 };
	int irqs[VFIO_MAX_VECTORS], n;
	char path[128], eff[32];

	if (get_nprocs() < 2)
		SKIP(return, "one CPU");
	n = msr_pci_msi_irqs(self->d.bdf, irqs, VFIO_MAX_VECTORS);
	ASSERT_EQ((int)variant->kind->vectors, n);
	for (int round = 0; round < 4; round++) {
		int cpu = round % 2;

		for (int i = 0; i < n; i++) {
			snprintf(path, sizeof(path), "/proc/irq/%d/smp_affinity_list", irqs[i]);
			ASSERT_EQ(0, msr_write(path, cpu ? "1" : "0"));
		}
		EXPECT_EQ(variant->kind->vectors, raise_all(&self->d, 20, 1000)) TH_LOG("round %d", round);
		for (int i = 0; i < n; i++) {
			snprintf(path, sizeof(path), "/proc/irq/%d/effective_affinity_list", irqs[i]);
			ASSERT_LT(0, msr_read(path, eff, sizeof(eff)));
			EXPECT_EQ(cpu, atoi(eff)) TH_LOG("irq %d", irqs[i]);
		}
		if (variant->kind == &edu) {
			unsigned long long a = edu_msi_address(self->d.bdf);

			EXPECT_TRUE(overlaps(a, a + 3, self->start, self->end)) TH_LOG("%#llx on CPU %d", a, cpu);
			if (addr[cpu]) {
				EXPECT_EQ(addr[cpu], a);
			}
			addr[cpu] = a;
		}
	}
	if (variant->kind == &edu && riscv) {
		EXPECT_NE(addr[0], addr[1]);
	}
}

/*
 * Two devices, each in an iommufd context of its own, interrupting at
 * once: edu's MSI and igb's MSI-X vectors, raised in turn, all land on
 * their own eventfds.
 */
TEST(two_devices_in_two_iommufd_contexts)
{
	struct vdev a, b;
	const char *err;
	int got_a = 0, got_b[VFIO_MAX_VECTORS] = { 0 };

	err = vdev_open(&a, &edu);
	ASSERT_EQ(NULL, err) TH_LOG("edu: %s", err);
	err = vdev_open(&b, &igb);
	ASSERT_EQ(NULL, err) TH_LOG("igb: %s", err);
	for (int i = 0; i < RAISES; i++) {
		unsigned int v = i % igb.vectors;

		edu.raise(a.bar, 0);
		igb.raise(b.bar, v);
		got_a += (int)vfio_eventfd_wait(a.efd[0], 1000);
		got_b[v] += (int)vfio_eventfd_wait(b.efd[v], 1000);
	}
	EXPECT_EQ(RAISES, got_a);
	for (unsigned int v = 0; v < igb.vectors; v++) {
		EXPECT_EQ(RAISES / (int)igb.vectors, got_b[v]) TH_LOG("igb vector %u", v);
	}
	vdev_close(&b);
	vdev_close(&a);
}

/*
 * The DMA API path: edu bound to its kernel driver (qemu_edu), in a DMA
 * domain. Where MSIs are translated, dma-iommu maps the doorbell at an
 * IOVA of its own (not the window, which only iommufd uses) and the
 * message carries it; where tables remap them, the message keeps the IMSIC
 * file's address (flat) or an MRIF entry's (MRIF mode). Either way its
 * MSIs land.
 */
TEST(dma_api_domains_map_the_doorbells)
{
	int riscv = !strcmp(msr_arch(), "riscv64");
	unsigned long long addr, start, end;
	char bdf[32], path[256];

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	ASSERT_EQ(0, _vfio_pci_release(bdf));
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/irq", bdf);
	ASSERT_EQ(0, msr_write(path, "50")) TH_LOG("50 MSIs through qemu_edu");
	addr = edu_msi_address(bdf);
	ASSERT_EQ(0, msr_msi_region(bdf, &start, &end));
	TH_LOG("edu writes its MSI to %#llx", addr);
	if (!msr_msis_translated()) {
		EXPECT_NE(0, msr_doorbell_file(bdf, addr));
	} else {
		EXPECT_FALSE(overlaps(addr, addr + 3, start, end));
		if (riscv) {
			char buf[256];

			EXPECT_FALSE(msr_is_imsic_file(addr));
			ASSERT_LT(0, msr_riscv_iommu_file("msi", buf, sizeof(buf)));
			EXPECT_LE(1, msr_key_value(buf, "translated_vectors"));
		} else {
			/* Not the ITS's own frame (virt: 0x08080000, 128 KiB). */
			EXPECT_FALSE(overlaps(addr, addr + 3, 0x08080000ULL, 0x0809ffffULL));
		}
	}
}

TEST_HARNESS_MAIN
