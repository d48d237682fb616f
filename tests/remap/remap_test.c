// SPDX-License-Identifier: GPL-2.0
/*
 * The MSI remapping IRQ domain of our RISC-V IOMMU, seen through edu's MSI
 * (qemu_edu raises it and counts it in its handler): the interrupt goes
 * through the domain the IOMMU created at probe, the device's MSI page table
 * holds a valid entry exactly for the interrupt file it targets, the entry
 * follows affinity changes, a write to a file the device was not given is
 * blocked and reported, and vCPU affinity points the entry at a guest
 * interrupt file and back.
 */
#include <sched.h>

#include "kselftest_harness.h"
#include "msiremap.h"

FIXTURE(remap)
{
	char bdf[32], dir[128];
	int irq;
	unsigned long long addr;	/* the MSI address edu writes */
	unsigned int data;
	int addr_off, data_off;
};

/* qemu_edu's stats value for `key`, -1 when absent. */
static long edu_stat(const char *dir, const char *key)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/stats", dir);
	return msr_stat(path, key);
}

/* Raises edu's MSI `n` times, each waited for; 0 or -errno. */
static int edu_raise(const char *dir, int n)
{
	char path[256], req[16];

	snprintf(path, sizeof(path), "%s/irq", dir);
	snprintf(req, sizeof(req), "%d", n);
	return msr_write(path, req);
}

/* The CPU the interrupt is delivered to, -1 if unknown. */
static int effective_cpu(int irq)
{
	char path[128], buf[32];

	snprintf(path, sizeof(path), "/proc/irq/%d/effective_affinity_list", irq);
	if (msr_read(path, buf, sizeof(buf)) < 0)
		return -1;
	return atoi(buf);
}

/* This interrupt's count on `cpu` in /proc/interrupts, -1 if not found. */
static long irq_count_on(int irq, int cpu)
{
	static char buf[1 << 16];
	char *line, *save, *end;

	if (msr_read("/proc/interrupts", buf, sizeof(buf)) < 0)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		long v = -1;

		if (strtol(line, &end, 10) != irq || *end != ':')
			continue;
		for (int c = 0; c <= cpu; c++)
			v = strtol(end + 1, &end, 10);
		return v;
	}
	return -1;
}

FIXTURE_SETUP(remap)
{
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, self->bdf, sizeof(self->bdf)));
	snprintf(self->dir, sizeof(self->dir), "/sys/kernel/debug/qemu_edu/%s", self->bdf);
	self->irq = edu_stat(self->dir, "irq");
	ASSERT_LT(0, self->irq);
	ASSERT_EQ(0, msr_pci_msi(self->bdf, &self->addr, &self->data, &self->addr_off, &self->data_off));
}

FIXTURE_TEARDOWN(remap)
{
}

/*
 * Checks that edu's message (`addr`, `data`) names an MRIF of its own whose
 * notice goes to `cpu`'s file, with an identity the driver uses (1 to 63),
 * and that the device has an MRIF entry for each of the two CPUs.
 */
static void expect_mrif_message(struct __test_metadata *_metadata, const char *bdf,
				unsigned long long addr, unsigned int data, int cpu)
{
	unsigned long long mrif, notice = 0;
	int id = -1;

	EXPECT_EQ(2, msr_riscv_mrif_entry(bdf, addr, &mrif, &notice, &id));
	EXPECT_NE(0, mrif) TH_LOG("no MRIF entry at %#llx", addr);
	EXPECT_EQ(msr_imsic_file(cpu), notice);
	EXPECT_LE(1, data);
	EXPECT_GE(63, data);
}

/*
 * edu's MSI goes through the IOMMU's remapping domain and arrives. With
 * flat entries the domain sits between its PCI/MSI domain and the IMSIC,
 * and its table has one valid entry, for the file the message targets,
 * held by its one vector. In MRIF mode the interrupt ends at the domain
 * (the IMSIC level is trimmed off): the message names an MRIF of edu's
 * whose notice goes to the CPU the interrupt is affine to.
 */
TEST_F(remap, msi_goes_through_the_remapping_domain)
{
	char path[128], buf[4096];
	unsigned long long target = 0;
	int refs, vcpu = 0;
	long before = edu_stat(self->dir, "interrupts");

	snprintf(path, sizeof(path), "/sys/kernel/debug/irq/irqs/%d", self->irq);
	ASSERT_LT(0, msr_read(path, buf, sizeof(buf)));
	EXPECT_NE(NULL, strstr(buf, "domain:  IR-PCI-MSI-")) TH_LOG("%s", buf);
	EXPECT_NE(NULL, strstr(buf, "domain:  riscv-iommu-ir-")) TH_LOG("%s", buf);
	EXPECT_NE(NULL, strstr(buf, "chip:    IOMMU-IR")) TH_LOG("%s", buf);
	EXPECT_EQ(!msr_riscv_mrif(), !!strstr(buf, "chip:    IMSIC")) TH_LOG("%s", buf);

	ASSERT_EQ(0, edu_raise(self->dir, 50));
	EXPECT_EQ(before + 50, edu_stat(self->dir, "interrupts"));
	if (msr_riscv_mrif()) {
		expect_mrif_message(_metadata, self->bdf, self->addr, self->data,
				    effective_cpu(self->irq));
		return;
	}
	EXPECT_EQ(msr_imsic_file(effective_cpu(self->irq)), self->addr);

	EXPECT_EQ(1, msr_riscv_msi_entry(self->bdf, self->addr, &target, &refs, &vcpu));
	EXPECT_EQ(1, refs);
	EXPECT_EQ(self->addr, target);
	EXPECT_EQ(0, vcpu);
}

/*
 * A device (or whoever programs it) sending its MSI to an interrupt file it
 * was not given: edu's message address is rewritten in its config space to
 * the other hart's file (and, with guest files, to a guest file). The
 * IOMMU finds no valid entry: the write is dropped, a fault (cause 262, MSI
 * PTE invalid) is reported and no interrupt is taken. Restored, it works.
 */
TEST_F(remap, msi_to_a_file_not_given_is_blocked)
{
	int cpu = effective_cpu(self->irq);
	unsigned long long victims[2] = { msr_imsic_file(!cpu), 0 };
	int nvictims = 1;

	if (msr_imsic_file(1) - msr_imsic_file(0) > 0x1000)
		victims[nvictims++] = msr_imsic_file(cpu) + 0x1000;	/* a guest file */
	for (int v = 0; v < nvictims; v++) {
		long faults = msr_riscv_iommu_stat("faults"), count = edu_stat(self->dir, "interrupts");
		char want[96];

		ASSERT_EQ(0, msr_pci_config_write32(self->bdf, self->addr_off, (unsigned int)victims[v]));
		EXPECT_EQ(-ETIMEDOUT, edu_raise(self->dir, 1));
		ASSERT_EQ(0, msr_pci_config_write32(self->bdf, self->addr_off, (unsigned int)self->addr));

		EXPECT_EQ(count, edu_stat(self->dir, "interrupts"));
		EXPECT_LT(faults, msr_riscv_iommu_stat("faults"));
		snprintf(want, sizeof(want), "cause 262 (");
		EXPECT_NE(NULL, strstr(msr_kernel_log(), want)) TH_LOG("no MSI PTE fault logged");
		EXPECT_EQ(0, edu_raise(self->dir, 3));
		EXPECT_EQ(count + 3, edu_stat(self->dir, "interrupts"));
	}
}

/*
 * Moving the interrupt to the other hart moves it in the IMSIC and in the
 * table: the message targets the new hart's file, whose entry is valid, and
 * the count rises there. The previous file stays valid until the next move
 * (MSIs sent before the move may still be in flight), never longer. In
 * MRIF mode the message moves to the MRIF noticed to the new hart, in the
 * same set (same identity, no table change).
 */
TEST_F(remap, smp_affinity_moves_the_interrupt_and_its_entry)
{
	char path[128], mask[16];
	int from = effective_cpu(self->irq);
	unsigned long long target, addr;
	unsigned int data;
	int refs, vcpu, n;

	ASSERT_LE(0, from);
	for (int round = 0; round < 3; round++) {
		int to = round % 2 ? from : !from;
		long on_to;

		snprintf(path, sizeof(path), "/proc/irq/%d/smp_affinity_list", self->irq);
		snprintf(mask, sizeof(mask), "%d", to);
		ASSERT_EQ(0, msr_write(path, mask));
		/* The move is deferred to the next interrupt, which it follows. */
		ASSERT_EQ(0, edu_raise(self->dir, 2));
		on_to = irq_count_on(self->irq, to);
		ASSERT_EQ(0, edu_raise(self->dir, 10));
		EXPECT_EQ(to, effective_cpu(self->irq));
		EXPECT_EQ(on_to + 10, irq_count_on(self->irq, to));

		ASSERT_EQ(0, msr_pci_msi(self->bdf, &addr, &data, &self->addr_off, &self->data_off));
		if (msr_riscv_mrif()) {
			expect_mrif_message(_metadata, self->bdf, addr, data, to);
			EXPECT_EQ(self->data, data);
			continue;
		}
		EXPECT_EQ(msr_imsic_file(to), addr);
		n = msr_riscv_msi_entry(self->bdf, addr, &target, &refs, &vcpu);
		EXPECT_EQ(1, refs);
		EXPECT_EQ(addr, target);
		/* The new file, and the previous one until the next move. */
		EXPECT_EQ(2, n);
		n = msr_riscv_msi_entry(self->bdf, msr_imsic_file(!to), &target, &refs, &vcpu);
		EXPECT_EQ(1, refs);
	}
}

/*
 * vCPU affinity (irq_set_vcpu_affinity with a struct imsic_vcpu_info, as
 * KVM calls it): the domain points an entry of edu's table, at no host
 * file's address, at a guest interrupt file and writes edu's message
 * itself, that entry's address with the guest's identity. edu's MSI no
 * longer reaches the host (no handler runs) and nothing faults; a second
 * call (the vCPU moved) moves the entry, not the message; "off" restores
 * the host's message and the entry goes. Only guest interrupt files are
 * accepted as targets: a supervisor file or memory is refused, and
 * without guest files (no aia-guests) nothing is.
 */
TEST_F(remap, vcpu_affinity_sends_the_msi_to_a_guest_file)
{
	/* CPU 0 need not be hart 0: the files' distance, either way round. */
	unsigned long long f0 = msr_imsic_file(0), f1 = msr_imsic_file(1);
	int guests = (f1 > f0 ? f1 - f0 : f0 - f1) > 0x1000;
	int cpu = effective_cpu(self->irq);
	unsigned long long guest = msr_imsic_file(cpu) + 0x1000;
	unsigned long long other = msr_imsic_file(!cpu) + 0x1000;
	unsigned long long addr = 0, target = 0;
	unsigned int data = 0;
	int refs, vcpu = 0, ao, dof;
	char path[128], req[64];
	long count, faults;

	snprintf(path, sizeof(path), "%s/vcpu", self->dir);
	/* Never a host file, never memory. */
	snprintf(req, sizeof(req), "%#llx 7", msr_imsic_file(1));
	EXPECT_EQ(-EINVAL, msr_write(path, req));
	EXPECT_EQ(-EINVAL, msr_write(path, "0x80000000 7"));
	if (!guests) {
		/* Without guest files the page after a hart's file is another hart's. */
		snprintf(req, sizeof(req), "%#llx 7", guest);
		EXPECT_EQ(-EINVAL, msr_write(path, req));
		ASSERT_EQ(0, edu_raise(self->dir, 1));
		return;
	}
	/* Identity 0 is none. */
	snprintf(req, sizeof(req), "%#llx 0", guest);
	EXPECT_EQ(-EINVAL, msr_write(path, req));

	count = edu_stat(self->dir, "interrupts");
	faults = msr_riscv_iommu_stat("faults");
	snprintf(req, sizeof(req), "%#llx 7", guest);
	ASSERT_EQ(0, msr_write(path, req));
	ASSERT_EQ(0, msr_pci_msi(self->bdf, &addr, &data, &ao, &dof));
	EXPECT_EQ(7, data);
	EXPECT_NE(self->addr, addr);
	EXPECT_NE(msr_imsic_file(0), addr);
	EXPECT_NE(msr_imsic_file(1), addr);
	EXPECT_LE(1, msr_riscv_msi_entry(self->bdf, addr, &target, &refs, &vcpu));
	EXPECT_EQ(guest, target);
	EXPECT_EQ(1, vcpu);
	EXPECT_EQ(-ETIMEDOUT, edu_raise(self->dir, 1));
	EXPECT_EQ(count, edu_stat(self->dir, "interrupts"));
	EXPECT_EQ(faults, msr_riscv_iommu_stat("faults"));

	/* The vCPU moves to the other hart: the entry follows, the message stays. */
	snprintf(req, sizeof(req), "%#llx 7", other);
	ASSERT_EQ(0, msr_write(path, req));
	ASSERT_EQ(0, msr_pci_msi(self->bdf, &target, &data, &ao, &dof));
	EXPECT_EQ(addr, target);
	EXPECT_EQ(7, data);
	EXPECT_LE(1, msr_riscv_msi_entry(self->bdf, addr, &target, &refs, &vcpu));
	EXPECT_EQ(other, target);
	EXPECT_EQ(-ETIMEDOUT, edu_raise(self->dir, 1));
	EXPECT_EQ(faults, msr_riscv_iommu_stat("faults"));

	/* Back to the host: the host's message, and the entry is gone. */
	ASSERT_EQ(0, msr_write(path, "off"));
	ASSERT_EQ(0, msr_pci_msi(self->bdf, &target, &data, &ao, &dof));
	EXPECT_EQ(self->addr, target);
	EXPECT_EQ(self->data, data);
	msr_riscv_msi_entry(self->bdf, addr, &target, &refs, &vcpu);
	EXPECT_EQ(-1, refs) TH_LOG("entry %#llx still valid", addr);
	ASSERT_EQ(0, edu_raise(self->dir, 5));
	EXPECT_EQ(count + 5, edu_stat(self->dir, "interrupts"));
	EXPECT_EQ(faults, msr_riscv_iommu_stat("faults"));
}

/*
 * A counter of the IOMMU's debugfs msi file: mrif_delivered (vectors run by
 * notices), mrif_replays (unmasks that found a vector pending).
 */
static long mrif_stat(const char *key)
{
	char buf[8192];

	if (msr_riscv_iommu_file("msi", buf, sizeof(buf)) < 0)
		return -1;
	return msr_key_value(buf, key);
}

/*
 * A retriggered interrupt (the IRQ core's replay of one that arrived while
 * it was disabled, injected here through the IRQ debugfs `trigger`) runs
 * its handler once. In MRIF mode the domain's retrigger sets the vector's
 * pending bit in its MRIF and raises the CPU's notice, whose handler runs
 * it: one more vector delivered by a notice, not a software resend.
 */
TEST_F(remap, a_retriggered_interrupt_runs_once)
{
	long count = edu_stat(self->dir, "interrupts"), delivered = mrif_stat("mrif_delivered");
	char path[128];

	snprintf(path, sizeof(path), "/sys/kernel/debug/irq/irqs/%d", self->irq);
	ASSERT_EQ(0, msr_write(path, "trigger"));
	for (int t = 0; t < 100 && edu_stat(self->dir, "interrupts") == count; t++)
		usleep(10000);
	usleep(20000);
	EXPECT_EQ(count + 1, edu_stat(self->dir, "interrupts"));
	if (msr_riscv_mrif()) {
		EXPECT_EQ(delivered + 1, mrif_stat("mrif_delivered"));
	}
	ASSERT_EQ(0, edu_raise(self->dir, 1));
	EXPECT_EQ(count + 2, edu_stat(self->dir, "interrupts"));
}

/*
 * Messages a device sends while its interrupt is disabled are held, not
 * lost, and run the handler once when it is enabled again: five raises a
 * millisecond apart, one run (an edge). The core disables lazily, so the
 * first message has the chip mask the vector; in MRIF mode that clears its
 * enable bit, the next four only set its pending bit, with no notice, and
 * unmasking finds it pending and raises the notice (one more replay). The
 * test runs on the vector's CPU, so the unmask's replay and the core's
 * retrigger are both made before either is handled.
 */
TEST_F(remap, messages_while_disabled_run_once_when_enabled)
{
	long count = edu_stat(self->dir, "interrupts"), replays = mrif_stat("mrif_replays");
	int cpu = effective_cpu(self->irq);
	cpu_set_t on, old;
	char path[128];

	ASSERT_LE(0, cpu);
	ASSERT_EQ(0, sched_getaffinity(0, sizeof(old), &old));
	CPU_ZERO(&on);
	CPU_SET(cpu, &on);
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(on), &on));
	snprintf(path, sizeof(path), "%s/irq", self->dir);
	EXPECT_EQ(0, msr_write(path, "masked 5"));
	ASSERT_EQ(0, sched_setaffinity(0, sizeof(old), &old));
	EXPECT_EQ(count + 1, edu_stat(self->dir, "interrupts"));
	EXPECT_EQ(5, edu_stat(self->dir, "last_masked_raise"));
	if (msr_riscv_mrif()) {
		EXPECT_EQ(replays + 1, mrif_stat("mrif_replays"));
	}
	ASSERT_EQ(0, edu_raise(self->dir, 1));
	EXPECT_EQ(count + 2, edu_stat(self->dir, "interrupts"));
}

/* Malformed requests to qemu_edu's irq and vcpu files change nothing. */
TEST_F(remap, bad_requests_are_refused)
{
	const char *bad[] = { "", "0", "-1", "1000001", "x", "1 2", "masked", "masked 0",
			      "masked 101", "masked 1 2" };
	const char *badv[] = { "", "0x28001000", "zz 7", "0x28001000 zz", "0x28001000 0x100000000",
			       "0x28001000 7 3", "on" };
	char path[128];
	long count = edu_stat(self->dir, "interrupts");

	snprintf(path, sizeof(path), "%s/irq", self->dir);
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, msr_write(path, bad[i])) TH_LOG("irq '%s'", bad[i]);
	}
	snprintf(path, sizeof(path), "%s/vcpu", self->dir);
	for (unsigned int i = 0; i < sizeof(badv) / sizeof(badv[0]); i++) {
		EXPECT_EQ(-EINVAL, msr_write(path, badv[i])) TH_LOG("vcpu '%s'", badv[i]);
	}
	EXPECT_EQ(count, edu_stat(self->dir, "interrupts"));
	EXPECT_EQ(0, edu_raise(self->dir, 1));
}

/*
 * The domain and the table belong to the device, not to its IOMMU domain:
 * moving edu between its DMA domain and the identity domain (through the
 * group's sysfs type, with the driver unbound) keeps the same IRQ domain,
 * and its MSI arrives in both, through its table beside an identity second
 * stage in the identity domain.
 */
TEST_F(remap, the_domain_stays_when_the_iommu_domain_changes)
{
	const char *types[] = { "identity", "DMA" };
	char path[256], buf[4096];

	for (int i = 0; i < 2; i++) {
		ASSERT_EQ(0, msr_write("/sys/bus/pci/drivers/qemu_edu/unbind", self->bdf));
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group/type", self->bdf);
		ASSERT_EQ(0, msr_write(path, types[i]));
		ASSERT_EQ(0, msr_write("/sys/bus/pci/drivers/qemu_edu/bind", self->bdf));
		self->irq = edu_stat(self->dir, "irq");
		snprintf(path, sizeof(path), "/sys/kernel/debug/irq/irqs/%d", self->irq);
		ASSERT_LT(0, msr_read(path, buf, sizeof(buf)));
		EXPECT_NE(NULL, strstr(buf, "domain:  riscv-iommu-ir-")) TH_LOG("%s: %s", types[i], buf);
		EXPECT_EQ(0, edu_raise(self->dir, 20)) TH_LOG("in the %s domain", types[i]);
		EXPECT_EQ(20, edu_stat(self->dir, "interrupts"));
		/*
		 * Identity is a second stage too: the MSI table never sits
		 * beside a Bare iohgatp, and edu's GSCID covers its table alone.
		 */
		EXPECT_LT(0, msr_riscv_contexts_check(buf, sizeof(buf))) TH_LOG("%s: %s", types[i], buf);
	}
}

/*
 * Every table change is traced (iommu:msi_remap): moving the vector to the
 * other hart makes the new file's entry valid, naming the device, the
 * doorbell, its target and the vectors using it. In MRIF mode moves change
 * no entry; rebinding edu frees its set of MRIFs and makes a new one, whose
 * entries are traced with the MRIF as their target.
 */
TEST_F(remap, table_updates_are_traced)
{
	static char trace[1 << 16];
	int to = !effective_cpu(self->irq);
	char path[128], mask[16], want[160];

	ASSERT_EQ(0, msr_write("/sys/kernel/tracing/trace", ""));
	ASSERT_EQ(0, msr_iommu_event("msi_remap", "1"));
	if (msr_riscv_mrif()) {
		unsigned long long addr, mrif, notice;
		unsigned int data;
		int id;

		ASSERT_EQ(0, msr_write("/sys/bus/pci/drivers/qemu_edu/unbind", self->bdf));
		ASSERT_EQ(0, msr_write("/sys/bus/pci/drivers/qemu_edu/bind", self->bdf));
		msr_iommu_event("msi_remap", "0");
		ASSERT_EQ(0, msr_pci_msi(self->bdf, &addr, &data, &self->addr_off, &self->data_off));
		ASSERT_EQ(2, msr_riscv_mrif_entry(self->bdf, addr, &mrif, &notice, &id));
		ASSERT_LT(0, msr_read("/sys/kernel/tracing/trace", trace, sizeof(trace)));
		snprintf(want, sizeof(want),
			 " msi_remap: IOMMU:%s msi addr=0x%016llx target=0x%016llx refs=0\n",
			 self->bdf, addr, mrif);
		EXPECT_NE(NULL, strstr(trace, want)) TH_LOG("no %s in:\n%s", want, trace);
		return;
	}
	snprintf(path, sizeof(path), "/proc/irq/%d/smp_affinity_list", self->irq);
	snprintf(mask, sizeof(mask), "%d", to);
	ASSERT_EQ(0, msr_write(path, mask));
	ASSERT_EQ(0, edu_raise(self->dir, 3));
	msr_iommu_event("msi_remap", "0");
	ASSERT_LT(0, msr_read("/sys/kernel/tracing/trace", trace, sizeof(trace)));
	snprintf(want, sizeof(want), " msi_remap: IOMMU:%s msi addr=0x%016llx target=0x%016llx refs=1\n",
		 self->bdf, msr_imsic_file(to), msr_imsic_file(to));
	EXPECT_NE(NULL, strstr(trace, want)) TH_LOG("no %s in:\n%s", want, trace);
}

TEST_HARNESS_MAIN
