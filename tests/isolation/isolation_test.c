// SPDX-License-Identifier: GPL-2.0
/*
 * Interrupt isolation under attack. User space owns igb through VFIO and
 * iommufd, and vfio-pci lets it map igb's MSI-X table: it writes forged
 * messages into an entry and fires that vector (a device forging MSIs, or
 * anyone programming it, sends exactly these writes). The victims:
 * virtio-blk's config vector (kernel driver, idle), the IPIs (IMSIC
 * identity 1 of every hart's file) and the host's interrupt files. In MRIF
 * mode each forged message is dropped with a fault recorded, or lands in
 * igb's own MRIFs, where only identities igb was given raise anything, and
 * only igb's own vectors. With flat entries (riscv64-flat) a write to a
 * file igb's vectors target raises any identity there: the tests check
 * that too, documenting the hole MRIF closes.
 *
 * (A DMA write of edu's to an MSI address would be the same attack, but
 * QEMU 10.0's IOMMU drops MSI writes without a requester id, as edu's DMA
 * engine issues them, before any check: it would prove nothing.)
 */
#include <sys/eventfd.h>
#include <sys/sysinfo.h>

#include "kselftest_harness.h"
#include "vfio_utils.h"

#define IMSIC_IPI_ID	1	/* drivers/irqchip/irq-riscv-imsic-state.h */
#define FORGED		5
#define IGB_MSIX_BAR	3	/* QEMU's igb: the MSI-X table at BAR3 + 0 */
#define OWN		0	/* igb's vector left as the kernel wrote it */
#define FORGING		1	/* the vector whose table entry is forged */

FIXTURE(attack)
{
	char bdf[32], victim_bdf[32];
	int iommufd, devfd, efd[2], mrif;
	__u32 devid, ioas;
	volatile uint32_t *bar, *table;
	size_t bar_size, table_size;
	/* igb's own vector's message. */
	unsigned long long addr;
	unsigned int data;
	/* virtio-blk's config vector, its CPU and its message. */
	int victim, cpu;
	unsigned long long victim_addr;
	unsigned int victim_data;
};

/* Interrupt `irq`'s count, summed over CPUs (/proc/interrupts). */
static long irq_count(int irq)
{
	static char buf[1 << 16];
	char *line, *save, *end;

	if (msr_read("/proc/interrupts", buf, sizeof(buf)) < 0)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		long sum = 0;

		if (strtol(line, &end, 10) != irq || *end != ':')
			continue;
		for (int c = 0; c < get_nprocs(); c++)
			sum += strtol(end + 1, &end, 10);
		return sum;
	}
	return -1;
}

/* Pins interrupt `irq` to `cpu`; a deferred move is done by its next MSI. */
static int pin(int irq, int cpu)
{
	char path[64], val[8];

	snprintf(path, sizeof(path), "/proc/irq/%d/smp_affinity_list", irq);
	snprintf(val, sizeof(val), "%d", cpu);
	return msr_write(path, val);
}

/* Pins every interrupt whose /proc/interrupts line names `name`; how many. */
static int pin_named(const char *name, int cpu)
{
	static char buf[1 << 16];
	char *line, *save;
	int n = 0;

	if (msr_read("/proc/interrupts", buf, sizeof(buf)) < 0)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (strstr(line, name) && !pin(atoi(line), cpu))
			n++;
	return n;
}

static void fire(FIXTURE_DATA(attack) *self, unsigned int vector)
{
	self->bar[IGB_REG_EICS] = 1u << vector;
}

/* Interrupts signalled on igb's eventfds since the last call. */
static long own(FIXTURE_DATA(attack) *self)
{
	long got = 0;

	for (int v = 0; v < 2; v++)
		got += (long)vfio_eventfd_wait(self->efd[v], 50);
	return got;
}

/* Writes `addr`/`data` into MSI-X table entry `vector`. */
static void forge(FIXTURE_DATA(attack) *self, unsigned int vector, unsigned long long addr,
		  uint32_t data)
{
	volatile uint32_t *e = self->table + 4 * vector;

	e[0] = (uint32_t)addr;
	e[1] = (uint32_t)(addr >> 32);
	e[2] = data;
}

FIXTURE_SETUP(attack)
{
	volatile uint32_t *e;
	unsigned long cpu;
	char path[64];
	int irqs[8], n;

	ASSERT_EQ(0, msr_find_pci(IGB_VENDOR, IGB_DEVICE, 0, self->bdf, sizeof(self->bdf)));
	ASSERT_EQ(0, msr_find_pci(VIRTIO_VENDOR, VIRTIO_BLK, 0, self->victim_bdf, sizeof(self->victim_bdf)));
	self->mrif = msr_riscv_mrif();
	ASSERT_EQ(0, _vfio_pci_take(self->bdf));
	ASSERT_EQ(0, _vfio_open_bound(self->bdf, &self->iommufd, &self->devfd, &self->devid));
	test_ioas_alloc(self->iommufd, &self->ioas);
	test_vfio_attach(self->devfd, self->ioas);
	self->bar = vfio_map_bar(self->devfd, VFIO_PCI_BAR0_REGION_INDEX, &self->bar_size);
	ASSERT_NE(NULL, self->bar);
	self->table = vfio_map_bar(self->devfd, IGB_MSIX_BAR, &self->table_size);
	ASSERT_NE(NULL, self->table) TH_LOG("vfio-pci maps the MSI-X table");
	ASSERT_EQ(0, vfio_enable_bus_master(self->devfd));
	for (int v = 0; v < 2; v++) {
		self->efd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		ASSERT_LE(0, self->efd[v]);
	}
	ASSERT_EQ(0, _vfio_set_irqs(self->devfd, VFIO_PCI_MSIX_IRQ_INDEX, self->efd, 2));
	vfio_igb_msix_setup(self->bar, 2);

	/*
	 * igb's vectors on the victim's CPU, so that with flat entries igb's
	 * table holds the victim's file. Moves are deferred to each vector's
	 * next MSI (the victim, idle, would never move).
	 */
	n = msr_pci_msi_irqs(self->victim_bdf, irqs, 8);
	ASSERT_LT(0, n);
	/* The config vector: idle, and not managed. */
	self->victim = irqs[0];
	snprintf(path, sizeof(path), "/proc/irq/%d/effective_affinity_list", self->victim);
	ASSERT_EQ(0, msr_read_ulong(path, &cpu));
	self->cpu = (int)cpu;
	ASSERT_EQ(2, pin_named(self->bdf, self->cpu));
	fire(self, OWN);
	fire(self, FORGING);
	/* Two, or more: a move may replay a pending MSI. */
	ASSERT_LE(2, own(self));
	e = self->table + 4 * OWN;
	self->addr = (unsigned long long)e[1] << 32 | e[0];
	self->data = e[2];
	ASSERT_EQ(0, msr_irq_msg(self->victim, &self->victim_addr, &self->victim_data));
	TH_LOG("igb %#llx/%u, victim irq %d %#llx/%u, %s", self->addr, self->data, self->victim,
	       self->victim_addr, self->victim_data, self->mrif ? "MRIF" : "flat");
}

FIXTURE_TEARDOWN(attack)
{
	_vfio_set_irqs(self->devfd, VFIO_PCI_MSIX_IRQ_INDEX, NULL, 0);
	if (self->table)
		munmap((void *)self->table, self->table_size);
	for (int v = 0; v < 2; v++)
		close(self->efd[v]);
	vfio_release(self->bdf, self->bar, self->bar_size, self->devfd, self->iommufd);
}

/*
 * Forges `FORGED` writes of `data` to `addr`; returns the faults the IOMMU
 * recorded meanwhile, and sets `*victim` and `*mine` to the interrupts the
 * victim and igb took.
 */
static long attack(FIXTURE_DATA(attack) *self, struct __test_metadata *_metadata,
		   unsigned long long addr, uint32_t data, long *victim, long *mine)
{
	long faults = msr_riscv_iommu_stat("faults"), v = irq_count(self->victim);

	own(self);
	forge(self, FORGING, addr, data);
	for (int i = 0; i < FORGED; i++) {
		fire(self, FORGING);
		usleep(20000);
	}
	*mine = own(self);
	*victim = irq_count(self->victim) - v;
	faults = msr_riscv_iommu_stat("faults") - faults;
	TH_LOG("%d writes of %u to %#llx: %ld faults, victim %ld, own %ld", FORGED, data, addr, faults,
	       *victim, *mine);
	return faults;
}

/* igb's own message still works: FORGED writes, FORGED interrupts of its own. */
TEST_F(attack, own_message_raises_own_vector)
{
	long victim, mine;

	EXPECT_EQ(0, attack(self, _metadata, self->addr, self->data, &victim, &mine));
	EXPECT_EQ(FORGED, mine);
	EXPECT_EQ(0, victim);
}

/*
 * virtio-blk's message (as its interrupt's debugfs shows it), sent by igb.
 * MRIF: the address names an entry of igb's own table, so at most igb's
 * own vectors fire; the victim never. Flat: both target the victim's
 * CPU's file, whose entry igb's table has: the victim takes the forged
 * interrupts.
 */
TEST_F(attack, another_devices_message)
{
	long victim, mine;

	attack(self, _metadata, self->victim_addr, self->victim_data, &victim, &mine);
	if (self->mrif) {
		EXPECT_EQ(0, victim);
	} else {
		/* Several may coalesce in the file before its hart runs. */
		EXPECT_LE(1, victim) TH_LOG("flat entries: the victim takes them");
	}
}

/*
 * The IPI identity of the victim's CPU's file (an IPI-mux write, which Linux counts
 * nowhere): MRIF blocks the write (the file's entry is invalid, cause 262);
 * flat entries let it reach the file (no fault).
 */
TEST_F(attack, ipi_identity)
{
	long victim, mine, faults;

	faults = attack(self, _metadata, msr_imsic_file(self->cpu), IMSIC_IPI_ID, &victim, &mine);
	if (self->mrif) {
		EXPECT_EQ(FORGED, faults);
	} else {
		EXPECT_EQ(0, faults) TH_LOG("flat entries: the write reaches the IPI identity");
	}
	EXPECT_EQ(0, victim);
}

/* Another hart's file, with igb's own identity: blocked in MRIF mode. */
TEST_F(attack, another_harts_file)
{
	long victim, mine, faults;

	faults = attack(self, _metadata, msr_imsic_file(!self->cpu), self->data, &victim, &mine);
	if (self->mrif) {
		EXPECT_EQ(FORGED, faults);
		EXPECT_EQ(0, mine);
	}
	/* Flat: the file's entry stays valid after a move until the next one. */
	EXPECT_EQ(0, victim);
}

/*
 * An identity igb was never given, at its own doorbell. MRIF: a pending
 * bit nothing enables, in igb's own MRIF: no interrupt, no fault. Flat:
 * the file takes it (no fault), raising whatever owns that identity there.
 */
TEST_F(attack, identity_never_given)
{
	long victim, mine, faults;
	uint32_t id = self->data == 50 ? 51 : 50;

	faults = attack(self, _metadata, self->addr, id, &victim, &mine);
	EXPECT_EQ(0, faults);
	if (self->mrif) {
		EXPECT_EQ(0, mine);
		EXPECT_EQ(0, victim);
	}
}

/*
 * An identity above 2047, at igb's own doorbell: MRIF mode refuses it (the
 * AIA specification has the IOMMU drop it silently, as the strict QEMU
 * does; QEMU 10.0.2 faults it as misconfigured, cause 263); an interrupt
 * file ignores it.
 */
TEST_F(attack, identity_above_2047)
{
	long victim, mine, faults;

	faults = attack(self, _metadata, self->addr, 4000, &victim, &mine);
	if (self->mrif && !msr_strict_qemu()) {
		EXPECT_EQ(FORGED, faults);
	} else {
		EXPECT_EQ(0, faults);
	}
	EXPECT_EQ(0, mine);
	EXPECT_EQ(0, victim);
}

/* An address outside the IMSIC, not mapped: a DMA fault, in both modes. */
TEST_F(attack, address_outside_the_imsic)
{
	long victim, mine, faults;

	faults = attack(self, _metadata, 0x30000000, self->data, &victim, &mine);
	EXPECT_EQ(FORGED, faults);
	EXPECT_EQ(0, mine);
	EXPECT_EQ(0, victim);
}

TEST_HARNESS_MAIN
