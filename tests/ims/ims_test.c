// SPDX-License-Identifier: GPL-2.0
/*
 * PCI/IMS: edu with an interrupt message store (qemu_edu's model of DSA-like
 * IMS, Documentation/ims.md), driven through debugfs qemu_edu/<BDF>/ims.
 * Each test runs on both storages of the IMS irqchip library: an array in
 * device memory and a queue in DMA-coherent system memory (qemu_edu is
 * reloaded with ims_queue= when the storage must change). The device's own
 * MSI keeps working beside its IMS; IMS interrupts land through the MSI
 * parent of the device: our remapping domain and the IMSIC on riscv64 (MSI
 * tables, or sw_msi IOVAs where the IOMMU translates MSIs), the GIC ITS
 * behind SMMUv3 on arm64.
 */
#include <pthread.h>
#include <sched.h>
#include <sys/sysinfo.h>

#include "kselftest_harness.h"
#include "vfio_utils.h"

#define SLOTS		4096	/* qemu_edu's default ims_slots: twice PCI's MSI-X limit */
#define PASID		0x42
#define INVALID_HANDLE	0x19	/* DSA's completion status */

/* One allocated slot as debugfs shows it. */
struct slot {
	int slot, irq, fired;
	unsigned long ctrl;
	unsigned long long address;
	unsigned int data;
};

static char ims_path[256], edu_dir[256], bdf[32];

/* Writes one command to the ims file; 0 or -errno. */
#define ims(...) msr_writef(ims_path, __VA_ARGS__)

/* The ims file, in a static buffer (a line per allocated slot). */
static char *ims_state(void)
{
	static char buf[1 << 20];

	return msr_read(ims_path, buf, sizeof(buf)) < 0 ? NULL : buf;
}

/* Counter `key` of the ims file; -1 when absent. */
static long ims_counter(const char *key)
{
	char *s = ims_state();

	return s ? msr_key_value(s, key) : -1;
}

/* Every allocated slot, into `out` (at most `max`); their number. */
static int ims_slots(struct slot *out, int max)
{
	char *s = ims_state(), *line, *save;
	int n = 0;

	if (!s)
		return -EIO;
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct slot x;

		if (sscanf(line, "slot %d irq %d fired %d ctrl %lx address %llx data %x",
			   &x.slot, &x.irq, &x.fired, &x.ctrl, &x.address, &x.data) == 6 && n < max)
			out[n++] = x;
	}
	return n;
}

/* Slot `slot`; 0, or -ENOENT if it is not allocated. */
static int ims_slot(int slot, struct slot *x)
{
	static struct slot all[SLOTS];
	int n = ims_slots(all, SLOTS);

	for (int i = 0; i < n; i++)
		if (all[i].slot == slot) {
			*x = all[i];
			return 0;
		}
	return -ENOENT;
}

/* Lines of /proc/interrupts naming qemu_edu's IMS handlers. */
static int ims_irq_lines(void)
{
	return msr_irq_lines("qemu_edu-ims");
}

/* The storage qemu_edu's IMS uses now ("array", "queue"), or NULL. */
static const char *ims_storage(void)
{
	char *s = ims_state(), *p;

	if (!s || !(p = strstr(s, "storage ")))
		return NULL;
	return !strncmp(p + 8, "queue", 5) ? "queue" : "array";
}

/* Reloads qemu_edu with its rig parameters and `extra`; 0 or -errno. */
static int reload_edu(const char *extra)
{
	char params[512];
	int ret;

	if ((ret = msr_unload_module("qemu_edu")))
		return ret;
	msr_module_params("qemu_edu", params, sizeof(params));
	strncat(params, extra, sizeof(params) - strlen(params) - 1);
	return msr_load_module_with("qemu_edu", params);
}

FIXTURE(ims)
{
	int unused;
};

FIXTURE_VARIANT(ims)
{
	const char *storage;
};

FIXTURE_VARIANT_ADD(ims, array) { .storage = "array" };
FIXTURE_VARIANT_ADD(ims, queue) { .storage = "queue" };

FIXTURE_SETUP(ims)
{
	const char *now;

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	snprintf(edu_dir, sizeof(edu_dir), "/sys/kernel/debug/qemu_edu/%s", bdf);
	snprintf(ims_path, sizeof(ims_path), "%s/ims", edu_dir);
	now = ims_storage();
	ASSERT_NE(NULL, now) TH_LOG("no %s: qemu_edu has no IMS", ims_path);
	if (strcmp(now, variant->storage)) {
		ASSERT_EQ(0, reload_edu(strcmp(variant->storage, "queue") ? " ims_queue=0" : " ims_queue=1"));
		ASSERT_STREQ(variant->storage, ims_storage());
	}
	ASSERT_EQ(0, ims("free all"));
	ASSERT_EQ(0, ims("pasid %d", PASID));
}

FIXTURE_TEARDOWN(ims)
{
	ims("free all");
}

/*
 * 4096 IMS vectors on one device, twice what MSI-X can have, while the
 * device keeps its own MSI. A sample of 64 slots spread over the range is
 * submitted: each of their handlers runs exactly once, no other does.
 * Messages go where the platform's MSI path says: an IMSIC file where MSI
 * tables remap them, an IOVA (sw_msi) where the IOMMU translates them.
 */
TEST_F_TIMEOUT(ims, vectors_beyond_pci_limits_fire_once_each, 300)
{
	static struct slot all[SLOTS];
	int riscv = !strcmp(msr_arch(), "riscv64"), n, sent = 0;
	char path[320];
	long alloc_ns;

	ASSERT_EQ(0, ims("alloc %d", SLOTS));
	alloc_ns = msr_key_value(ims_state(), "last_alloc");
	TH_LOG("%d vectors allocated (%s storage)", SLOTS, variant->storage);
	EXPECT_LT(0, alloc_ns);
	EXPECT_EQ(SLOTS, ims_irq_lines());
	EXPECT_EQ(-ENOSPC, ims("alloc 1"));

	/* The device's own MSI, beside its IMS. */
	snprintf(path, sizeof(path), "%s/irq", edu_dir);
	EXPECT_EQ(0, msr_write(path, "20"));

	for (int i = 0; i < 64; i++) {
		int slot = i * (SLOTS - 1) / 63;

		EXPECT_EQ(0, ims("submit %d %d", slot, PASID)) TH_LOG("slot %d", slot);
		sent++;
	}
	usleep(100000);
	n = ims_slots(all, SLOTS);
	ASSERT_EQ(SLOTS, n);
	msr_riscv_msi_hold(1);
	for (int i = 0, want; i < n; i++) {
		int s = all[i].slot;

		want = 0;
		for (int j = 0; j < 64; j++)
			want |= s == j * (SLOTS - 1) / 63;
		EXPECT_EQ(want, all[i].fired) TH_LOG("slot %d irq %d", s, all[i].irq);
		/* Enabled, PASID enabled, the device's PASID, unmasked. */
		EXPECT_EQ((unsigned long)PASID << 12 | 0xa, all[i].ctrl) TH_LOG("slot %d", s);
		if (riscv && !msr_msis_translated()) {
			EXPECT_NE(0, msr_doorbell_file(bdf, all[i].address)) TH_LOG("slot %d: %#llx", s, all[i].address);
		} else if (riscv) {
			EXPECT_FALSE(msr_is_imsic_file(all[i].address)) TH_LOG("slot %d: %#llx", s, all[i].address);
		} else {
			/* An IOVA (sw_msi), not the ITS's frame (virt: 0x08080000, 128 KiB). */
			EXPECT_FALSE(all[i].address >= 0x08080000ULL && all[i].address < 0x080a0000ULL)
				TH_LOG("slot %d: %#llx", s, all[i].address);
		}
	}
	msr_riscv_msi_hold(0);
	EXPECT_EQ(sent, ims_counter("sent"));
	EXPECT_EQ(0, ims_counter("invalid_handle"));
	EXPECT_EQ(0, ims("free all"));
	EXPECT_EQ(0, ims_irq_lines());
}

/*
 * A submission whose PASID is not its slot's, or whose handle is not an
 * allocated slot, completes with DSA's invalid-handle status and no
 * interrupt; the right PASID fires.
 */
TEST_F(ims, pasid_mismatch_is_rejected)
{
	struct slot x;
	long invalid = ims_counter("invalid_handle");

	ASSERT_EQ(0, ims("alloc 1"));
	EXPECT_EQ(-EINVAL, ims("submit 0 %d", PASID + 1));
	EXPECT_EQ(-EINVAL, ims("submit 1 %d", PASID));	/* not allocated */
	EXPECT_EQ(invalid + 2, ims_counter("invalid_handle"));
	EXPECT_EQ(INVALID_HANDLE, ims_counter("last_status"));
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(0, x.fired);

	EXPECT_EQ(0, ims("submit 0 %d", PASID));
	usleep(20000);
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(1, x.fired);
	EXPECT_EQ(0, ims_counter("last_status"));
	EXPECT_EQ(-EINVAL, ims("pasid %d", 1 << 20));	/* beyond 20 bits */
}

/*
 * The PASID belongs to the device and is known at allocation: each slot
 * carries the device's PASID of when it was allocated, programmed by the
 * irqchip at startup; changing the device's PASID leaves allocated slots
 * alone.
 */
TEST_F(ims, pasid_is_the_devices_at_allocation)
{
	struct slot a, b;

	ASSERT_EQ(0, ims("pasid 7"));
	ASSERT_EQ(0, ims("alloc 1"));
	ASSERT_EQ(0, ims("pasid 9"));
	ASSERT_EQ(0, ims("alloc 1"));
	ASSERT_EQ(0, ims_slot(0, &a));
	ASSERT_EQ(0, ims_slot(1, &b));
	EXPECT_EQ(7, a.ctrl >> 12);
	EXPECT_EQ(9, b.ctrl >> 12);
	EXPECT_EQ(0, ims("submit 0 7"));
	EXPECT_EQ(0, ims("submit 1 9"));
	EXPECT_EQ(-EINVAL, ims("submit 0 9"));
	usleep(20000);
	ASSERT_EQ(0, ims_slot(0, &a));
	ASSERT_EQ(0, ims_slot(1, &b));
	EXPECT_EQ(1, a.fired);
	EXPECT_EQ(1, b.fired);
	/* A freed slot is gone from the device's allocated slots. */
	ASSERT_EQ(0, ims("free 0"));
	EXPECT_EQ(-ENOENT, ims_slot(0, &a));
}

/*
 * Masking: a masked slot's submission pends (no interrupt), unmasking sends
 * it once; masking twice or unmasking an unmasked slot is refused.
 */
TEST_F(ims, mask_and_unmask)
{
	struct slot x;
	long pended = ims_counter("pended");

	ASSERT_EQ(0, ims("alloc 1"));
	ASSERT_EQ(0, ims("mask 0"));
	EXPECT_EQ(-EALREADY, ims("mask 0"));
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(1, x.ctrl & 1);
	EXPECT_EQ(0, ims("submit 0 %d", PASID));
	EXPECT_EQ(pended + 1, ims_counter("pended"));
	usleep(20000);
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(0, x.fired);
	EXPECT_EQ(4, x.ctrl & 4);	/* pending */
	ASSERT_EQ(0, ims("unmask 0"));
	usleep(20000);
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(1, x.fired);
	EXPECT_EQ(0, x.ctrl & 5);
	EXPECT_EQ(-EALREADY, ims("unmask 0"));
	EXPECT_EQ(0, ims("submit 0 %d", PASID));
	usleep(20000);
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(2, x.fired);
}

/*
 * Changing an allocated slot's PASID is only allowed while it is masked;
 * afterwards the old PASID is refused and the new one fires.
 */
TEST_F(ims, pasid_change_while_masked)
{
	struct slot x;

	ASSERT_EQ(0, ims("alloc 1"));
	EXPECT_EQ(-EBUSY, ims("change_pasid 0 99"));
	ASSERT_EQ(0, ims("mask 0"));
	ASSERT_EQ(0, ims("change_pasid 0 99"));
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(99, x.ctrl >> 12);
	ASSERT_EQ(0, ims("unmask 0"));
	EXPECT_EQ(-EINVAL, ims("submit 0 %d", PASID));
	EXPECT_EQ(0, ims("submit 0 99"));
	usleep(20000);
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(1, x.fired);
}

/* The per-CPU counts of interrupt `irq` from /proc/interrupts, into `c`. */
static int irq_counts(int irq, long *c, int cpus)
{
	static char buf[1 << 21];
	char want[16], *p;

	if (msr_read("/proc/interrupts", buf, sizeof(buf)) < 0)
		return -EIO;
	snprintf(want, sizeof(want), "\n%4d:", irq);
	p = strstr(buf, want);
	if (!p)
		return -ENOENT;
	p += strlen(want);
	for (int i = 0; i < cpus; i++)
		c[i] = strtol(p, &p, 10);
	return 0;
}

/*
 * Affinity: moving an IMS interrupt to each CPU in turn rewrites its slot
 * (on riscv64 the IMSIC file is per hart, so the address changes; the ITS
 * doorbell stays) and the submission is handled on that CPU. Each move is
 * requested once the previous one has settled (see msr_irq_move_settled()).
 */
TEST_F(ims, affinity_change)
{
	int riscv = !strcmp(msr_arch(), "riscv64"), cpus = get_nprocs(), tries = cpus < 4 ? cpus : 4;
	long before[64], after[64];
	unsigned long effective;
	char path[64], cpu[8];
	struct slot x;

	ASSERT_EQ(0, ims("alloc 1"));
	ASSERT_EQ(0, ims_slot(0, &x));
	ASSERT_GE(64, cpus);
	for (int i = 0; i < tries; i++) {
		int target = (i * 5) % cpus;

		ASSERT_EQ(1, msr_irq_move_settled(x.irq)) TH_LOG("before moving to CPU %d", target);
		snprintf(path, sizeof(path), "/proc/irq/%d/smp_affinity_list", x.irq);
		snprintf(cpu, sizeof(cpu), "%d", target);
		ASSERT_EQ(0, msr_write(path, cpu));
		snprintf(path, sizeof(path), "/proc/irq/%d/effective_affinity_list", x.irq);
		ASSERT_EQ(0, msr_read_ulong(path, &effective));
		EXPECT_EQ(target, effective);
		ASSERT_EQ(0, ims_slot(0, &x));
		if (riscv && !msr_msis_translated()) {
			EXPECT_EQ(msr_imsic_file(target), msr_doorbell_file(bdf, x.address)) TH_LOG("CPU %d", target);
		}
		ASSERT_EQ(0, irq_counts(x.irq, before, cpus));
		EXPECT_EQ(0, ims("submit 0 %d", PASID));
		/*
		 * Up to five seconds: 17 vCPUs share two host cores under TCG,
		 * and the target's may not run for a while (20 ms was once too
		 * few); the IMSIC enables the new vector only when the target
		 * CPU itself syncs, from a timer.
		 */
		int t = 0, elsewhere = -1;

		for (; t < 500; t++) {
			ASSERT_EQ(0, irq_counts(x.irq, after, cpus));
			if (after[target] > before[target])
				break;
			usleep(10000);
		}
		for (int c = 0; c < cpus; c++)
			if (c != target && after[c] != before[c])
				elsewhere = c;
		EXPECT_EQ(before[target] + 1, after[target])
			TH_LOG("CPU %d after %d ms; counted on CPU %d", target, t * 10, elsewhere);
		EXPECT_EQ(-1, elsewhere) TH_LOG("moved to CPU %d", target);
	}
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(tries, x.fired);
}

/* Runs the calling thread on `cpu` only; 0 or -errno. */
static int pin_to(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

/* Waits up to two seconds until slot `slot` has fired `n` times; 0 or -errno. */
static int wait_fired(int slot, int n, struct slot *x)
{
	for (int t = 0; t < 200; t++) {
		int ret = ims_slot(slot, x);

		if (ret)
			return ret;
		if (x->fired >= n)
			return 0;
		usleep(10000);
	}
	return -ETIMEDOUT;
}

/* Moves interrupt `irq` to `cpu` once any earlier move has settled; 0 or -errno. */
static int move_irq(int irq, int cpu)
{
	char path[64], target[8];
	unsigned long effective;
	int ret;

	if (msr_irq_move_settled(irq) != 1)
		return -EBUSY;
	snprintf(path, sizeof(path), "/proc/irq/%d/smp_affinity_list", irq);
	snprintf(target, sizeof(target), "%d", cpu);
	if ((ret = msr_write(path, target)))
		return ret;
	snprintf(path, sizeof(path), "/proc/irq/%d/effective_affinity_list", irq);
	if ((ret = msr_read_ulong(path, &effective)))
		return ret;
	return effective == cpu ? 0 : -EAGAIN;
}

/*
 * A PASID may only change while the interrupt is masked by its driver
 * (disabled), not while the edge flow handler masks it for a moment: when
 * an interrupt arrives on one CPU while its handler runs on another,
 * handle_edge_irq() masks it and marks it pending, and the handling CPU
 * unmasks it and runs the handler again. The interrupt is live all along.
 * The handler is held on CPU 0 (hold_handlers) while the interrupt moves
 * to CPU 1, this test's, and a second submission arrives there.
 * change_pasid must be refused (EBUSY) in that window, and the slot keep
 * its PASID. On riscv64 the window is reached (the remapping domain's and
 * the IMSIC's interrupts are edge, not single-target, so the second CPU
 * masks); on arm64 the ITS's fasteoi flow resends instead of masking, and
 * the window does not arise.
 */
TEST_F(ims, pasid_change_refused_while_the_edge_flow_masks)
{
	int riscv = !strcmp(msr_arch(), "riscv64"), flow_masked, ret;
	unsigned long held;
	struct slot x;

	if (get_nprocs() < 2)
		SKIP(return, "needs two CPUs");
	ASSERT_EQ(0, ims("alloc 1"));
	ASSERT_EQ(0, ims_slot(0, &x));
	ASSERT_EQ(0, pin_to(1));
	ASSERT_EQ(0, move_irq(x.irq, 0));
	ASSERT_EQ(0, ims("hold_handlers 1"));
	ASSERT_EQ(0, ims("submit 0 %d", PASID));
	ret = wait_fired(0, 1, &x);
	if (!ret)
		ret = move_irq(x.irq, 1);
	if (!ret)
		ret = ims("submit 0 %d", PASID);
	if (ret) {
		ims("hold_handlers 0");
		ASSERT_EQ(0, ret) TH_LOG("setting up the second edge");
	}
	usleep(20000);	/* taken by this CPU, with the first in progress on CPU 0 */
	ASSERT_EQ(0, ims_slot(0, &x));
	held = x.ctrl;
	flow_masked = held & 1;
	ret = ims("change_pasid 0 99");
	ASSERT_EQ(0, ims("hold_handlers 0"));
	/* CPU 0 leaves the handler, unmasks and runs it again for the second. */
	EXPECT_EQ(0, wait_fired(0, 2, &x));
	TH_LOG("ctrl %#lx while held (%s), %#lx after", held,
	       flow_masked ? "masked by the flow" : "not masked", x.ctrl);
	EXPECT_EQ(-EBUSY, ret) TH_LOG("change_pasid on a live interrupt");
	EXPECT_EQ(PASID, x.ctrl >> 12);
	EXPECT_EQ(0, x.ctrl & 5);	/* unmasked, nothing pending */
	EXPECT_EQ(2, x.fired);
	if (riscv) {
		EXPECT_TRUE(flow_masked) TH_LOG("the window was not reached: the second edge did not mask");
	}
	EXPECT_EQ(0, ims("submit 0 %d", PASID));
	EXPECT_EQ(0, wait_fired(0, 3, &x));
}

struct submission {
	int slot, pasid, ret;
};

static void *submit_thread(void *arg)
{
	struct submission *s = arg;

	s->ret = ims("submit %d %d", s->slot, s->pasid);
	return NULL;
}

/*
 * The device model checks a submission's PASID against the slot and sends
 * the slot's message: both must be of one reading of the slot. The
 * submission is made to wait after its reading (submit_delay) while the
 * driver frees the interrupt and allocates the slot again for another
 * PASID: the new interrupt must not fire for the old PASID's completion,
 * which either reached the old interrupt or was refused.
 */
TEST_F(ims, submission_sends_the_slot_it_checked)
{
	struct submission s = { .slot = 0, .pasid = PASID };
	long submitted = ims_counter("submitted"), sent, invalid;
	struct slot x;
	pthread_t t;

	ASSERT_EQ(0, ims("alloc 1"));
	sent = ims_counter("sent");
	invalid = ims_counter("invalid_handle");
	ASSERT_EQ(0, ims("submit_delay 300"));
	ASSERT_EQ(0, pthread_create(&t, NULL, submit_thread, &s));
	for (int i = 0; i < 200 && ims_counter("submitted") == submitted; i++)
		usleep(1000);
	usleep(50000);	/* past its reading of the slot, asleep */
	EXPECT_EQ(0, ims("free 0"));
	EXPECT_EQ(0, ims("pasid 7"));
	EXPECT_EQ(0, ims("alloc 1"));
	pthread_join(t, NULL);
	usleep(50000);
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(7, x.ctrl >> 12);
	EXPECT_EQ(0, x.fired) TH_LOG("PASID %#x's completion raised the interrupt allocated for PASID 7", PASID);
	/* Sent to the interrupt it was checked against, or refused. */
	if (s.ret) {
		EXPECT_EQ(-EINVAL, s.ret);
		EXPECT_EQ(invalid + 1, ims_counter("invalid_handle"));
	} else {
		EXPECT_EQ(sent + 1, ims_counter("sent"));
	}
	EXPECT_EQ(0, ims("submit 0 7"));
	EXPECT_EQ(0, wait_fired(0, 1, &x));
}

/* Freeing everything and allocating again reuses the slots and works. */
TEST_F(ims, free_all_and_allocate_again)
{
	struct slot x;

	for (int round = 0; round < 3; round++) {
		ASSERT_EQ(0, ims("alloc 300"));
		EXPECT_EQ(300, ims_irq_lines());
		ASSERT_EQ(0, ims_slot(299, &x)) TH_LOG("round %d", round);
		EXPECT_EQ(0, x.fired);
		EXPECT_EQ(0, ims("submit 299 %d", PASID));
		EXPECT_EQ(0, ims("free all"));
		EXPECT_EQ(0, ims_irq_lines());
		EXPECT_EQ(300, msr_key_value(ims_state(), "last_free"));
	}
}

/*
 * Unloading qemu_edu with IMS vectors allocated is allowed and cleans up:
 * its handlers and interrupts are gone, and after loading it again IMS
 * works (kmemleak, checked after the group, sees nothing left behind).
 */
TEST_F(ims, unload_with_vectors_allocated_cleans_up)
{
	struct slot x;

	ASSERT_EQ(0, ims("alloc 64"));
	EXPECT_EQ(64, ims_irq_lines());
	ASSERT_EQ(0, reload_edu(strcmp(variant->storage, "queue") ? " ims_queue=0" : " ims_queue=1"));
	EXPECT_EQ(0, ims_irq_lines());
	ASSERT_EQ(0, ims("pasid %d", PASID));
	ASSERT_EQ(0, ims("alloc 1"));
	EXPECT_EQ(0, ims("submit 0 %d", PASID));
	usleep(20000);
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(1, x.fired);
}

/*
 * The device model's other way to send: edu's DMA engine writes the slot's
 * data to the slot's address (ims_dma=1). It lands exactly where the IOMMU
 * translates MSIs like any DMA (riscv64 without MSI tables); QEMU drops it
 * on the RISC-V IOMMU's MSI-table path (no transaction attributes) and the
 * GIC ITS cannot tell whose it is (no requester ID), so there it raises
 * nothing (Documentation/sw-msi.md, "Measured").
 */
TEST_F(ims, dma_engine_sends_where_msis_are_translated)
{
	int lands = !strcmp(msr_arch(), "riscv64") && msr_msis_translated();
	const char *storage = strcmp(variant->storage, "queue") ? " ims_queue=0" : " ims_queue=1";
	char extra[64];
	struct slot x;

	snprintf(extra, sizeof(extra), "%s ims_dma=1", storage);
	ASSERT_EQ(0, reload_edu(extra));
	ASSERT_NE(NULL, strstr(ims_state(), "send dma\n"));
	ASSERT_EQ(0, ims("pasid %d", PASID));
	ASSERT_EQ(0, ims("alloc 2"));
	EXPECT_EQ(0, ims("submit 1 %d", PASID));
	EXPECT_EQ(0, ims("submit 1 %d", PASID));
	usleep(50000);
	ASSERT_EQ(0, ims_slot(1, &x));
	EXPECT_EQ(lands ? 2 : 0, x.fired) TH_LOG("%#llx <- %#x by DMA", x.address, x.data);
	ASSERT_EQ(0, ims_slot(0, &x));
	EXPECT_EQ(0, x.fired);
	ASSERT_EQ(0, ims("free all"));
	ASSERT_EQ(0, reload_edu(storage));
	ASSERT_NE(NULL, strstr(ims_state(), "send msi\n"));
}

/*
 * Behind an iommufd-owned domain: qemu_edu hands edu to an iommufd context
 * this process opened (as VFIO would), attached to an IOAS. IMS vectors
 * allocated then get their doorbells from iommufd's sw_msi: where MSIs are
 * translated, every message carries an IOVA in the reserved window the
 * IOAS keeps free; with MSI tables, an IMSIC file. Submissions land.
 * Handing the device over is refused while vectors are allocated, and
 * giving it back restores the DMA API.
 */
TEST_F(ims, behind_an_iommufd_domain)
{
	int riscv = !strcmp(msr_arch(), "riscv64"), fd, n;
	unsigned long long start, end;
	static struct slot all[64];
	char path[320];
	__u32 ioas;

	ASSERT_EQ(0, msr_msi_region(bdf, &start, &end));
	fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, _ioas_alloc(fd, &ioas));
	ASSERT_EQ(0, ims("alloc 1"));
	EXPECT_EQ(-EBUSY, ims("iommufd %d %u", fd, ioas));
	ASSERT_EQ(0, ims("free all"));
	ASSERT_EQ(0, ims("iommufd %d %u", fd, ioas)) TH_LOG("binding edu to iommufd");
	EXPECT_EQ(-EBUSY, ims("iommufd %d %u", fd, ioas));

	ASSERT_EQ(0, ims("alloc 64"));
	n = ims_slots(all, 64);
	ASSERT_EQ(64, n);
	msr_riscv_msi_hold(1);
	for (int i = 0; i < n; i++) {
		if (riscv && !msr_msis_translated()) {
			EXPECT_NE(0, msr_doorbell_file(bdf, all[i].address)) TH_LOG("slot %d: %#llx", i, all[i].address);
		} else {
			EXPECT_TRUE(all[i].address >= start && all[i].address <= end)
				TH_LOG("slot %d: %#llx outside %#llx-%#llx", i, all[i].address, start, end);
		}
	}
	msr_riscv_msi_hold(0);
	for (int i = 0; i < 64; i += 9)
		EXPECT_EQ(0, ims("submit %d %d", i, PASID));
	usleep(50000);
	n = ims_slots(all, 64);
	for (int i = 0; i < n; i++) {
		EXPECT_EQ(all[i].slot % 9 == 0, all[i].fired) TH_LOG("slot %d", all[i].slot);
	}

	EXPECT_EQ(-EBUSY, ims("iommufd off"));
	ASSERT_EQ(0, ims("free all"));
	ASSERT_EQ(0, ims("iommufd off"));
	EXPECT_EQ(-ENOENT, ims("iommufd off"));
	close(fd);
	snprintf(path, sizeof(path), "%s/dma", edu_dir);
	EXPECT_EQ(0, msr_write(path, "64")) TH_LOG("the DMA API after iommufd");
}

TEST_HARNESS_MAIN
