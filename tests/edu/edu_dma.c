// SPDX-License-Identifier: GPL-2.0
/*
 * DMA through the DMA API: qemu_edu copies a pattern from RAM into edu's
 * buffer and back through the translated (DMA) default domain the IOMMU
 * gives the device, and checks every word (debugfs qemu_edu/<BDF>/dma and
 * stats). riscv64: our RISC-V IOMMU driver, second-stage page tables;
 * arm64: SMMUv3.
 */
#include "kselftest_harness.h"
#include "msiremap.h"

struct edu_stats {
	unsigned long transfers, bytes, mismatches, timeouts, last_dma;
};

static int edu_read_stats(const char *dir, struct edu_stats *st)
{
	char path[256], buf[512], *line, *save;

	snprintf(path, sizeof(path), "%s/stats", dir);
	if (msr_read(path, buf, sizeof(buf)) < 0)
		return -errno;
	memset(st, 0, sizeof(*st));
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char key[32];
		unsigned long val;

		if (sscanf(line, "%31s %li", key, (long *)&val) != 2)
			continue;
		if (!strcmp(key, "transfers"))
			st->transfers = val;
		else if (!strcmp(key, "bytes"))
			st->bytes = val;
		else if (!strcmp(key, "mismatches"))
			st->mismatches = val;
		else if (!strcmp(key, "timeouts"))
			st->timeouts = val;
		else if (!strcmp(key, "last_dma"))
			st->last_dma = val;
	}
	return 0;
}

static int edu_dma(const char *dir, const char *request)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/dma", dir);
	return msr_write(path, request);
}

FIXTURE(edu)
{
	char bdf[32];
	char dir[128];
};

FIXTURE_SETUP(edu)
{
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, self->bdf, sizeof(self->bdf)));
	snprintf(self->dir, sizeof(self->dir), "/sys/kernel/debug/qemu_edu/%s", self->bdf);
	ASSERT_EQ(0, access(self->dir, F_OK)) TH_LOG("qemu_edu is not bound to %s", self->bdf);
}

FIXTURE_TEARDOWN(edu)
{
}

FIXTURE_VARIANT(edu)
{
	const char *request;
	unsigned long bytes;
};

FIXTURE_VARIANT_ADD(edu, word) { .request = "4", .bytes = 4 };
FIXTURE_VARIANT_ADD(edu, line) { .request = "64 7", .bytes = 64 };
FIXTURE_VARIANT_ADD(edu, odd_seed) { .request = "1028 4294967295", .bytes = 1028 };
FIXTURE_VARIANT_ADD(edu, full_buffer) { .request = "4096", .bytes = 4096 };

TEST_F(edu, round_trip)
{
	struct edu_stats before, after;
	int ret;

	ASSERT_EQ(0, edu_read_stats(self->dir, &before));
	ret = edu_dma(self->dir, variant->request);
	ASSERT_EQ(0, edu_read_stats(self->dir, &after));
	EXPECT_EQ(0, after.timeouts - before.timeouts);
	EXPECT_NE(0, after.last_dma);

	EXPECT_EQ(0, ret) TH_LOG("round trip '%s': %s", variant->request, strerror(-ret));
	EXPECT_EQ(1, after.transfers - before.transfers);
	EXPECT_EQ(variant->bytes, after.bytes - before.bytes);
	EXPECT_EQ(0, after.mismatches - before.mismatches);
	/* The IOVA lies within edu's default 28-bit DMA mask. */
	EXPECT_EQ(0, after.last_dma >> 28);
}

TEST(bad_requests_change_nothing)
{
	static const char *const bad[] = {
		"0", "4095", "4100", "8192", "-4", "four", "4 x", "4 1 2",
		"99999999999999999999999",
	};
	struct edu_stats before, after;
	char bdf[32], dir[128];

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	snprintf(dir, sizeof(dir), "/sys/kernel/debug/qemu_edu/%s", bdf);
	ASSERT_EQ(0, edu_read_stats(dir, &before));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		EXPECT_EQ(-EINVAL, edu_dma(dir, bad[i])) {
			TH_LOG("request '%s'", bad[i]);
		}
	}
	ASSERT_EQ(0, edu_read_stats(dir, &after));
	EXPECT_EQ(0, memcmp(&before, &after, sizeof(before)));
}

/* The "domain" line of the driver's stats: the domain its DMA goes through. */
static int edu_domain(const char *bdf, char *out, size_t len)
{
	char path[256], buf[512], *p;

	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/stats", bdf);
	if (msr_read(path, buf, sizeof(buf)) < 0)
		return -errno;
	p = strstr(buf, "\ndomain ");
	if (!p || sscanf(p, "\ndomain %63s", out) != 1)
		return -ENOENT;
	return 0;
}

TEST(edu_has_the_expected_domain)
{
	char bdf[32], path[256], type[64], seen[64];

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	ASSERT_EQ(0, edu_domain(bdf, seen, sizeof(seen)));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group/type", bdf);
	/* The driver sees the group's default domain, a DMA-API one. */
	ASSERT_LT(0, msr_read(path, type, sizeof(type)));
	msr_chomp(type);
	EXPECT_TRUE(!strcmp(type, "DMA") || !strcmp(type, "DMA-FQ")) {
		TH_LOG("default domain type %s", type);
	}
	EXPECT_STREQ(type, seen);
}

/*
 * A write to an IOVA nothing maps is stopped by the IOMMU and reported
 * (device, cause, IOVA), and mapped DMA works again afterwards.
 */
TEST(unmapped_write_faults_and_is_reported)
{
	char bdf[32], dir[128], path[256], want[160];
	long before = 0, after = 0;

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	snprintf(dir, sizeof(dir), "/sys/kernel/debug/qemu_edu/%s", bdf);
	if (!strcmp(msr_arch(), "riscv64"))
		before = msr_riscv_iommu_stat("faults");
	ASSERT_LE(0, before);

	/* The DMA API hands out IOVAs from the top down: 0x1000 is unmapped. */
	snprintf(path, sizeof(path), "%s/write_to", dir);
	ASSERT_EQ(0, msr_write(path, "0x1000 64"));

	if (!strcmp(msr_arch(), "riscv64")) {
		after = msr_riscv_iommu_stat("faults");
		EXPECT_LT(before, after);
	} else {
		usleep(100000); /* the SMMU's event queue is serviced by a thread */
	}
	EXPECT_TRUE(msr_fault_logged(bdf, 0x1000, want, sizeof(want))) {
		TH_LOG("no fault line %s in the kernel log", want);
	}

	/* Mapped DMA still works. */
	EXPECT_EQ(0, edu_dma(dir, "256"));
}

/* Malformed write_to requests are refused and nothing is written. */
TEST(write_to_rejects_malformed_requests)
{
	char bdf[32], path[256];

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/write_to", bdf);
	EXPECT_EQ(-EINVAL, msr_write(path, "0x1000"));
	EXPECT_EQ(-EINVAL, msr_write(path, "0x100000000 64"));
	EXPECT_EQ(-EINVAL, msr_write(path, "0x1000 6"));
	EXPECT_EQ(-EINVAL, msr_write(path, "zz 64"));
}

/*
 * The IOMMU core's tracepoints see our driver's domains like any other:
 * rebinding qemu_edu unmaps and maps its DMA buffer again.
 */
TEST(map_and_unmap_are_traced)
{
	static char trace[1 << 16];
	char bdf[32];

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	ASSERT_EQ(0, msr_write("/sys/kernel/tracing/trace", "")); /* clear */
	ASSERT_EQ(0, msr_iommu_event("map", "1"));
	ASSERT_EQ(0, msr_iommu_event("unmap", "1"));
	ASSERT_EQ(0, msr_write("/sys/bus/pci/drivers/qemu_edu/unbind", bdf));
	ASSERT_EQ(0, msr_write("/sys/bus/pci/drivers/qemu_edu/bind", bdf));
	msr_iommu_event("map", "0");
	msr_iommu_event("unmap", "0");
	ASSERT_LT(0, msr_read("/sys/kernel/tracing/trace", trace, sizeof(trace)));
	EXPECT_NE(NULL, strstr(trace, " map: IOMMU: iova=")) TH_LOG("trace:\n%s", trace);
	EXPECT_NE(NULL, strstr(trace, " unmap: IOMMU: iova="));
}

/*
 * qemu_edu's vcpu file sends edu's MSI to a vCPU's guest interrupt file as
 * KVM would: irq_set_vcpu_affinity() with a struct imsic_vcpu_info, which
 * only the RISC-V IOMMU's remapping domain takes. The attack is arm64's:
 * there edu's MSI ends at the GIC ITS, whose callback reads the argument
 * as its own struct its_cmd_info. Target 0x100000000 with identity 7 reads
 * as command MAP_VLPI (0) with map pointer 7, which a GICv4 ITS
 * (arm64-kvm) follows: made unchecked, the call oopses in
 * its_irq_set_vcpu_affinity() on address 7. The abstraction refuses it
 * (EINVAL) before it is made. Without MSI tables (intremap=off, or no
 * second stage: g-stage=off) the remapping domain refuses it (EOPNOTSUPP);
 * where MSIs are remapped, "off"
 * for a host interrupt changes nothing (the remap group sends it to guest
 * files). Either way the MSI still lands.
 */
TEST(vcpu_affinity_needs_a_remapping_domain)
{
	int arm64 = !strcmp(msr_arch(), "arm64");
	int tables = strncmp(msr_profile(), "riscv64-nointremap", 18) && strcmp(msr_profile(), "riscv64-s-stage");
	char bdf[32], path[160], req[64];

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/vcpu", bdf);
	/* A guest-file address on riscv64; on arm64, MAP_VLPI to the ITS. */
	snprintf(req, sizeof(req), "%#llx 7", arm64 ? 0x100000000ULL : msr_imsic_file(0) + 0x1000);
	if (arm64) {
		EXPECT_EQ(-EINVAL, msr_write(path, req));
		EXPECT_EQ(-EINVAL, msr_write(path, "off"));
	} else if (!tables) {
		EXPECT_EQ(-EOPNOTSUPP, msr_write(path, req));
		EXPECT_EQ(-EOPNOTSUPP, msr_write(path, "off"));
	} else {
		EXPECT_EQ(0, msr_write(path, "off"));
	}
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/irq", bdf);
	EXPECT_EQ(0, msr_write(path, "3"));
}

TEST_HARNESS_MAIN
