// SPDX-License-Identifier: GPL-2.0
/*
 * The strict emulator's checks, each fired by a deliberately wrong
 * context: what the RISC-V IOMMU and AIA specifications require of an
 * IOMMU where QEMU 10.0.2 is lenient. The wrong contexts come from our
 * driver's debug-kernel knob (debugfs riscv_iommu/<iommu>/debug: `context`,
 * `msi_pte`, `gvma`); every test puts back what it changed. edu's MSI is
 * the message (qemu_edu's debugfs `irq`: each raise waited for up to a
 * second, ETIMEDOUT when the handler did not run); a second edu, for two
 * contexts, is driven through VFIO and iommufd (qemu_edu gives debugfs
 * files to one edu only).
 *
 * - A device context with an MSI page table and a Bare second stage is
 *   reserved ("When DC.iohgatp.MODE is Bare, DC.msiptp.MODE must be set to
 *   Off by software"): the IOMMU reports cause 259 and delivers nothing.
 * - MSI PTEs are cached, tagged by GSCID and GPA (the table of identifiers
 *   that tag IOATC entries): an entry changed without IOTINVAL.GVMA is
 *   still used until one names its GSCID and address ...
 * - ... and a second device context with the same GSCID and another MSI
 *   table uses the first one's cached entry for the same address.
 * - An MSI stored into an MRIF sends the notice even when the identity's
 *   enable bit is clear (AIA specification, IOMMU chapter: "required always
 *   to send a notice MSI after storing an MSI to an MRIF").
 *
 * Each check fails on QEMU 10.0.2 as Debian ships it, which enforces none
 * of them (profile riscv64-debian skips them); debug kernels only (the
 * knob).
 */
#include <sys/eventfd.h>

#include "kselftest_harness.h"
#include "vfio_utils.h"

#define IOMMU_DBG	"/sys/kernel/debug/riscv_iommu"
#define EDU_DBG		"/sys/kernel/debug/qemu_edu"
#define CAUSE_DDT_MISCONFIGURED	259
#define CAUSE_MSI_PTE_INVALID	262
/* iohgatp.GSCID, bits 59:44. */
#define GSCID(iohgatp)	(((iohgatp) >> 44) & 0xffff)

/* A device context as debugfs `contexts` prints it. */
struct ctx {
	unsigned int id;
	unsigned long long tc, iohgatp, ta, fsc, msiptp, mask, pattern;
};

struct edu {
	char bdf[32];
	unsigned int id;	/* requester id */
	unsigned long long msi;	/* its MSI address */
	unsigned int data;
};

/* The first IOMMU's debugfs directory; 0 or -ENOENT. */
static int iommu_dir(char *dir, size_t len)
{
	char bdf[32];

	if (msr_find_pci(RISCV_IOMMU_VENDOR, RISCV_IOMMU_DEVICE, 0, bdf, sizeof(bdf)))
		return -ENOENT;
	snprintf(dir, len, IOMMU_DBG "/%s", bdf);
	return access(dir, F_OK) ? -ENOENT : 0;
}

/* Device `id`'s valid context; 0 or -ENOENT. */
static int read_ctx(const char *dir, unsigned int id, struct ctx *c)
{
	static char buf[1 << 16];
	char path[256];

	snprintf(path, sizeof(path), "%s/contexts", dir);
	if (msr_read(path, buf, sizeof(buf)) < 0)
		return -EIO;
	for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n"))
		if (sscanf(l, "device %x tc %llx iohgatp %llx ta %llx fsc %llx msiptp %llx msi_mask %llx msi_pattern %llx",
			   &c->id, &c->tc, &c->iohgatp, &c->ta, &c->fsc, &c->msiptp, &c->mask,
			   &c->pattern) == 8 && c->id == id)
			return 0;
	return -ENOENT;
}

static int debug(const char *dir, const char *cmd)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/debug", dir);
	return msr_write(path, cmd);
}

/* Writes context `c` through the knob; 0 or -errno. */
static int write_ctx(const char *dir, const struct ctx *c)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "context %#x %#llx %#llx %#llx %#llx %#llx %#llx %#llx", c->id,
		 c->tc, c->iohgatp, c->ta, c->fsc, c->msiptp, c->mask, c->pattern);
	return debug(dir, cmd);
}

static int knob(const char *dir, const char *what, unsigned int id, unsigned long long gpa,
		const char *arg)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "%s %#x %#llx%s%s", what, id, gpa, arg ? " " : "", arg ? arg : "");
	return debug(dir, cmd);
}

/* edu number `n`, its requester id and MSI; 0 or -errno. */
static int find_edu(int n, struct edu *e)
{
	unsigned int bus, dev, fn;
	int aoff, doff, ret;

	ret = msr_find_pci(EDU_VENDOR, EDU_DEVICE, n, e->bdf, sizeof(e->bdf));
	if (ret)
		return ret;
	if (sscanf(e->bdf, "%*x:%x:%x.%x", &bus, &dev, &fn) != 3)
		return -EINVAL;
	e->id = bus << 8 | dev << 3 | fn;
	return msr_pci_msi(e->bdf, &e->msi, &e->data, &aoff, &doff);
}

/* Raises edu's MSI `n` times, each waited for: 0 or -ETIMEDOUT. */
static int edu_raise(const struct edu *e, int n)
{
	char path[256], buf[16];

	snprintf(path, sizeof(path), EDU_DBG "/%s/irq", e->bdf);
	snprintf(buf, sizeof(buf), "%d", n);
	return msr_write(path, buf);
}

static long edu_stat(const struct edu *e, const char *key)
{
	char path[256];

	snprintf(path, sizeof(path), EDU_DBG "/%s/stats", e->bdf);
	return msr_stat(path, key);
}

static long iommu_file_stat(const char *dir, const char *file, const char *key)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return msr_stat(path, key);
}

/*
 * Fault records of device `id` with `cause` logged since `marker` (reading
 * `stats` first drains the fault queue into the log).
 */
static int faults_since(const char *dir, const char *marker, unsigned int id, int cause)
{
	char what[64];

	iommu_file_stat(dir, "stats", "faults");
	snprintf(what, sizeof(what), "fault: device %#06x cause %d ", id, cause);
	return msr_count(msr_kernel_log_since(marker), what);
}

static int mrif_mode(const char *dir)
{
	char path[256], buf[2048];

	snprintf(path, sizeof(path), "%s/stats", dir);
	return msr_read(path, buf, sizeof(buf)) > 0 && strstr(buf, " mode mrif\n");
}

FIXTURE(strict) {
	char dir[256];
	struct edu a;
	struct ctx ca;
	/* A second edu, B, taken by vfio-pci (qemu_edu's debugfs has one edu). */
	struct edu b;
	struct ctx cb;
	int taken, iommufd, devfd, efd;
	volatile uint32_t *bar;
	size_t bar_size;
};

FIXTURE_SETUP(strict)
{
	char path[300];

	self->iommufd = self->devfd = self->efd = -1;
	if (strcmp(msr_arch(), "riscv64"))
		SKIP(return, "RISC-V IOMMU only");
	if (!strcmp(msr_profile(), "riscv64-debian"))
		SKIP(return, "profile %s: Debian's QEMU 10.0.2 enforces none of these", msr_profile());
	ASSERT_EQ(0, iommu_dir(self->dir, sizeof(self->dir)));
	snprintf(path, sizeof(path), "%s/debug", self->dir);
	if (access(path, F_OK))
		SKIP(return, "no debugfs knob %s (debug kernels only)", path);
	/* A: the edu with qemu_edu's debugfs files (only one has them). */
	for (int n = 0; !find_edu(n, &self->a); n++) {
		snprintf(path, sizeof(path), EDU_DBG "/%s/irq", self->a.bdf);
		if (!access(path, F_OK))
			break;
		self->a.bdf[0] = '\0';
	}
	ASSERT_NE(0, self->a.bdf[0]) TH_LOG("no edu with %s/<bdf>/irq", EDU_DBG);
	ASSERT_EQ(0, read_ctx(self->dir, self->a.id, &self->ca)) TH_LOG("edu %s", self->a.bdf);
	if (!self->ca.msiptp)
		SKIP(return, "edu %s has no MSI page table on %s", self->a.bdf, msr_profile());
	/* Its MSI works to begin with, and its entry is cached. */
	ASSERT_EQ(0, edu_raise(&self->a, 1));
}

FIXTURE_TEARDOWN(strict)
{
	if (self->taken) {
		if (self->cb.msiptp)
			write_ctx(self->dir, &self->cb);
		if (self->devfd >= 0)
			_vfio_set_msi(self->devfd, -1);
		if (self->efd >= 0)
			close(self->efd);
		vfio_release(self->b.bdf, self->bar, self->bar_size, self->devfd, self->iommufd);
	}
	/* Whatever failed: edu's own context and entry back, invalidated. */
	if (self->ca.msiptp) {
		write_ctx(self->dir, &self->ca);
		knob(self->dir, "msi_pte", self->a.id, self->a.msi, "valid");
		knob(self->dir, "gvma", self->a.id, self->a.msi, NULL);
	}
}

/*
 * msiptp set with iohgatp Bare: the IOMMU spec reserves it (cause 259,
 * "DDT entry misconfigured", as the reference models report); the MSI is
 * not delivered.
 */
TEST_F(strict, msi_table_with_a_bare_second_stage_faults_259)
{
	const char *mark = "strict: msi_table_with_a_bare_second_stage";
	struct ctx bad = self->ca;

	bad.iohgatp = 0;
	ASSERT_EQ(0, msr_write("/dev/kmsg", mark));
	ASSERT_EQ(0, write_ctx(self->dir, &bad));
	EXPECT_EQ(-ETIMEDOUT, edu_raise(&self->a, 1)) TH_LOG("the MSI was delivered");
	EXPECT_LE(1, faults_since(self->dir, mark, self->a.id, CAUSE_DDT_MISCONFIGURED))
		TH_LOG("no cause-%d fault of device %#06x", CAUSE_DDT_MISCONFIGURED, self->a.id);
	ASSERT_EQ(0, write_ctx(self->dir, &self->ca));
	EXPECT_EQ(0, edu_raise(&self->a, 1));
}

/*
 * An MSI PTE made invalid without IOTINVAL.GVMA: the cached entry keeps
 * delivering; an invalidation of another address does not drop it; the
 * one of its own GSCID and address does, and the next MSI faults (cause
 * 262). An invalid entry is never cached: made valid again, it delivers
 * with no invalidation.
 */
TEST_F(strict, msi_pte_change_needs_iotinval_gvma)
{
	const char *mark = "strict: msi_pte_change_needs_iotinval_gvma";
	struct edu *a = &self->a;

	ASSERT_EQ(0, msr_write("/dev/kmsg", mark));
	ASSERT_EQ(0, knob(self->dir, "msi_pte", a->id, a->msi, "invalid"));
	EXPECT_EQ(0, edu_raise(a, 3)) TH_LOG("the IOMMU read the entry again without IOTINVAL.GVMA");
	ASSERT_EQ(0, knob(self->dir, "gvma", a->id, a->msi + 0x1000, NULL));
	EXPECT_EQ(0, edu_raise(a, 1)) TH_LOG("IOTINVAL.GVMA of another address dropped the entry");
	ASSERT_EQ(0, knob(self->dir, "gvma", a->id, a->msi, NULL));
	EXPECT_EQ(-ETIMEDOUT, edu_raise(a, 1)) TH_LOG("delivered through an invalid entry");
	EXPECT_LE(1, faults_since(self->dir, mark, a->id, CAUSE_MSI_PTE_INVALID))
		TH_LOG("no cause-%d fault of device %#06x", CAUSE_MSI_PTE_INVALID, a->id);
	ASSERT_EQ(0, knob(self->dir, "msi_pte", a->id, a->msi, "valid"));
	EXPECT_EQ(0, edu_raise(a, 1)) TH_LOG("an invalid entry was cached");
}

/* B raises its MSI; whether its eventfd fired within a second. */
static int b_raise(FIXTURE_DATA(strict) *self)
{
	self->bar[EDU_REG_INTR_RAISE] = 1;
	return vfio_eventfd_wait(self->efd, 1000) != 0;
}

/*
 * Two devices, one GSCID, two MSI tables (MRIF mode: each device's first
 * MRIF entry is at the same address). A is qemu_edu's edu; B is the second
 * edu, driven from user space through VFIO and iommufd (its MSI signals an
 * eventfd). With A's GSCID in B's context, B's MSI follows A's cached entry
 * into A's MRIF and A's notice: B's eventfd stays quiet, and A's MRIF shows
 * it (A's handler ran, or an identity no vector of A owns was pending
 * there).
 */
TEST_F(strict, shared_gscid_uses_the_other_tables_cached_entry)
{
	struct edu *b = &self->b;
	struct ctx bad;
	long a_irqs, strays;
	__u32 devid, ioas;
	int aoff, doff;

	if (!mrif_mode(self->dir))
		SKIP(return, "flat entries of one file are the same in every table");
	for (int n = 0; !find_edu(n, b) && !strcmp(b->bdf, self->a.bdf); n++)
		;
	ASSERT_NE(0, strcmp(b->bdf, self->a.bdf)) TH_LOG("a second edu");
	ASSERT_EQ(0, _vfio_pci_take(b->bdf));
	self->taken = 1;
	ASSERT_EQ(0, _vfio_open_bound(b->bdf, &self->iommufd, &self->devfd, &devid));
	ASSERT_EQ(0, _ioas_alloc(self->iommufd, &ioas));
	ASSERT_EQ(0, _vfio_attach(self->devfd, ioas));
	self->bar = vfio_map_bar(self->devfd, 0, &self->bar_size);
	ASSERT_NE(NULL, self->bar);
	ASSERT_EQ(0, vfio_enable_bus_master(self->devfd));
	self->efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, self->efd);
	ASSERT_EQ(0, _vfio_set_msi(self->devfd, self->efd));
	ASSERT_EQ(0, msr_pci_msi(b->bdf, &b->msi, &b->data, &aoff, &doff));
	ASSERT_EQ(0, read_ctx(self->dir, b->id, &self->cb));
	if (b->msi != self->a.msi)
		SKIP(return, "edu MSIs at %#llx and %#llx", self->a.msi, b->msi);
	TH_LOG("edu %s (GSCID %llu) and %s (GSCID %llu), MSIs at %#llx", self->a.bdf,
	       GSCID(self->ca.iohgatp), b->bdf, GSCID(self->cb.iohgatp), b->msi);
	ASSERT_NE(self->ca.msiptp, self->cb.msiptp);
	ASSERT_NE(GSCID(self->ca.iohgatp), GSCID(self->cb.iohgatp));
	ASSERT_TRUE(b_raise(self));
	/* A's entry for the address in the cache under A's GSCID. */
	ASSERT_EQ(0, edu_raise(&self->a, 1));
	a_irqs = edu_stat(&self->a, "interrupts");
	strays = iommu_file_stat(self->dir, "msi", "mrif_strays");
	bad = self->cb;
	bad.iohgatp = self->ca.iohgatp;
	ASSERT_EQ(0, write_ctx(self->dir, &bad));
	EXPECT_FALSE(b_raise(self)) TH_LOG("B's MSI went through B's own table");
	/* Whatever A's notice ran has run. */
	usleep(100000);
	EXPECT_LE(1, edu_stat(&self->a, "interrupts") - a_irqs +
			     iommu_file_stat(self->dir, "msi", "mrif_strays") - strays)
		TH_LOG("nothing arrived in A's MRIF");
	ASSERT_EQ(0, write_ctx(self->dir, &self->cb));
	EXPECT_TRUE(b_raise(self)) TH_LOG("B's own context back");
}

/*
 * MSIs to an MRIF whose enable bit is clear (edu's interrupt disabled, so
 * masked in its MRIFs after the first): each still sends the notice.
 */
TEST_F(strict, mrif_notice_sent_with_the_enable_bit_clear)
{
	char path[256];
	long before, after;
	const int n = 20;

	if (!mrif_mode(self->dir))
		SKIP(return, "no MRIFs on %s", msr_profile());
	before = iommu_file_stat(self->dir, "msi", "mrif_notices");
	ASSERT_LE(0, before);
	snprintf(path, sizeof(path), EDU_DBG "/%s/irq", self->a.bdf);
	ASSERT_EQ(0, msr_write(path, "masked 20"));
	after = iommu_file_stat(self->dir, "msi", "mrif_notices");
	TH_LOG("%d MSIs, %d of them masked: %ld notices", n, n - 1, after - before);
	/* One a message, but notices that come close together are one. */
	EXPECT_LE(n / 2, after - before);
}

TEST_HARNESS_MAIN
