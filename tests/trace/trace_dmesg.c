// SPDX-License-Identifier: GPL-2.0
/*
 * Trace events in dmesg: booted with trace_event=iommu:* and tp_printk
 * (what `make run TRACE=iommu` adds to the command line), every iommu
 * event is printed to the kernel log as it happens, no tracefs reader
 * needed. The IOMMU core's events (attach, map, unmap) on both
 * architectures; our RISC-V IOMMU driver's own (IOTLB invalidation, MSI
 * remapping entries) on riscv64, each line naming the device it is about.
 * (Fault records are logged by the driver itself, not as events.)
 */
#include "kselftest_harness.h"
#include "msiremap.h"

FIXTURE(trace)
{
	char bdf[32], dir[128];
	int riscv;
};

FIXTURE_SETUP(trace)
{
	char val[8];

	/* The switch took effect: the events are on and go to printk. */
	ASSERT_LT(0, msr_read("/proc/sys/kernel/tracepoint_printk", val, sizeof(val)));
	ASSERT_EQ(1, atoi(val)) TH_LOG("tp_printk is off");
	ASSERT_LT(0, msr_read("/sys/kernel/tracing/events/iommu/map/enable", val, sizeof(val)));
	ASSERT_EQ(1, atoi(val)) TH_LOG("iommu:map is not enabled");
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, self->bdf, sizeof(self->bdf)));
	snprintf(self->dir, sizeof(self->dir), "/sys/kernel/debug/qemu_edu/%s", self->bdf);
	ASSERT_EQ(0, access(self->dir, F_OK)) TH_LOG("qemu_edu is not bound to %s", self->bdf);
	self->riscv = !strcmp(msr_arch(), "riscv64");
}

FIXTURE_TEARDOWN(trace)
{
}

/* Writes `marker` to the kernel log; what follows it is this test's. */
static void mark(const char *marker)
{
	msr_write("/dev/kmsg", marker);
}

/* Lines of `log` holding `event` and, on the same line, `with`. */
static int lines_with(const char *log, const char *event, const char *with)
{
	int n = 0;

	for (const char *p = log; (p = strstr(p, event)); p++) {
		const char *eol = strchr(p, '\n');
		const char *w = strstr(p, with);

		n += w && (!eol || w < eol);
	}
	return n;
}

/* edu was attached to its default domain at boot, and the log says so. */
TEST_F(trace, attach_at_boot)
{
	const char *log = msr_kernel_log();

	EXPECT_LE(1, lines_with(log, "attach_device_to_domain: IOMMU:", self->bdf)) TH_LOG("%s", log);
}

/*
 * qemu_edu unbound and bound again: its DMA buffer (coherent, mapped
 * through the DMA API) is unmapped, invalidated in the IOTLB on riscv64,
 * and mapped again; on riscv64 its MSI's entry in the device's MSI page
 * table is dropped (refs=0) and made again (refs=1), or in MRIF mode its
 * set's entries are (target 0, then the MRIFs). Each line names the
 * device it is about, and edu's DMA works afterwards.
 */
TEST_F(trace, rebind)
{
	char path[256];
	const char *log;

	mark("trace_dmesg: rebind");
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", self->bdf);
	ASSERT_EQ(0, msr_write(path, self->bdf));
	ASSERT_EQ(0, msr_write("/sys/bus/pci/drivers_probe", self->bdf));
	ASSERT_EQ(0, access(self->dir, F_OK)) TH_LOG("qemu_edu did not bind again");
	snprintf(path, sizeof(path), "%s/dma", self->dir);
	EXPECT_EQ(0, msr_write(path, "4096"));
	log = msr_kernel_log_since("trace_dmesg: rebind");
	EXPECT_LE(1, msr_count(log, "] unmap: IOMMU: iova=0x")) TH_LOG("%s", log);
	EXPECT_LE(1, msr_count(log, "] map: IOMMU: iova=0x")) TH_LOG("%s", log);
	EXPECT_LE(1, msr_count(log, " size=4096")) TH_LOG("%s", log);
	if (!self->riscv)
		return;
	EXPECT_LE(1, msr_count(log, "iotlb_inv: IOMMU:")) TH_LOG("%s", log);
	if (msr_riscv_mrif()) {
		/* The old set's entries go (target 0), the new set's come. */
		int gone = lines_with(log, "msi_remap: IOMMU:", "target=0x0000000000000000");

		EXPECT_LE(1, gone) TH_LOG("%s", log);
		EXPECT_LE(gone + 1, lines_with(log, "msi_remap: IOMMU:", self->bdf)) TH_LOG("%s", log);
		return;
	}
	EXPECT_LE(1, lines_with(log, "msi_remap: IOMMU:", " refs=0")) TH_LOG("%s", log);
	EXPECT_LE(1, lines_with(log, "msi_remap: IOMMU:", " refs=1")) TH_LOG("%s", log);
	EXPECT_LE(2, lines_with(log, "msi_remap: IOMMU:", self->bdf)) TH_LOG("%s", log);
}

TEST_HARNESS_MAIN
