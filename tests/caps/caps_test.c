// SPDX-License-Identifier: GPL-2.0
/*
 * QEMU capability combinations of the RISC-V IOMMU the driver must refuse
 * or handle, one profile each:
 *
 *   riscv64-caps-notrans  s-stage=off,g-stage=off: nothing to translate
 *                         with; refused ("no page-table mode").
 *   riscv64-caps-v2       version=0x20, a specification this driver does
 *                         not know; refused.
 *   riscv64-caps-nooff    off=off, no "off" directory mode; handled.
 *   riscv64-caps-noats    ats=off; handled, no page-request queue.
 *   riscv64-caps-dt       QEMU's platform IOMMU (iommu-sys=on), handled,
 *                         next to riscv,iommu nodes with a bad `reg`
 *                         (tests/dt/iommu-bad-reg.dtsi), each refused.
 *
 * A refused IOMMU registers nothing and is left as reset left it, in its
 * "off" directory mode: the devices behind it are probed once the kernel
 * stops waiting for it (the deferred-probe timeout), and their DMA stays
 * blocked: the driver fails closed rather than let devices DMA anywhere.
 * A handled one translates edu's DMA as usual.
 */
#include "kselftest_harness.h"
#include "msiremap.h"

/* The message the driver logs when it refuses, or NULL if it must not. */
static const char *refusal(const char *profile)
{
	if (!strcmp(profile, "riscv64-caps-notrans"))
		return "no page-table mode this driver knows";
	if (!strcmp(profile, "riscv64-caps-v2"))
		return "unsupported specification version 0x20";
	return NULL;
}

/*
 * The device-tree nodes of tests/dt/iommu-bad-reg.dtsi and what the driver
 * must say of each; none may bind, and what their `reg` names (the UART,
 * the test device that powers the machine off) must be left alone.
 */
static const struct {
	const char *node, *says;
} bad_reg[] = {
	{ "3020000.iommu", "register region 0x3020000+0x100 is smaller than the 0x1000-byte register file" },
	{ "10000000.iommu", "register region 0x10000000+0x1000 is held by another driver" },
	{ "soc:iommu-noreg", "no register region (reg)" },
	{ "100000.iommu", "unsupported specification version 0x0" },
};

/* The edu device's debugfs directory, waiting up to 25 s for its driver. */
static int edu_dir(char *dir, size_t len)
{
	char bdf[32];

	if (msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)))
		return -ENODEV;
	snprintf(dir, len, "/sys/kernel/debug/qemu_edu/%s", bdf);
	for (int i = 0; i < 250; i++) {
		if (access(dir, F_OK) == 0)
			return 0;
		usleep(100000);
	}
	return -ETIMEDOUT;
}

/*
 * Refused combinations leave no IOMMU registered, say why in the kernel
 * log, and keep edu's DMA blocked; handled ones translate edu's DMA (a DMA
 * domain) and report what the IOMMU offers.
 */
TEST(the_driver_refuses_or_handles_this_combination)
{
	const char *p = msr_profile(), *why = refusal(p);
	char dir[256], path[320], stats[2048];

	TH_LOG("profile %s", p);
	ASSERT_EQ(0, strncmp(p, "riscv64-caps-", 13));
	ASSERT_EQ(0, edu_dir(dir, sizeof(dir))) TH_LOG("qemu_edu never bound to edu");
	snprintf(path, sizeof(path), "%s/dma", dir);
	/* A refused IOMMU blocks the DMA: nothing lands, the check fails. */
	EXPECT_EQ(why ? -EIO : 0, msr_write(path, "4096")) TH_LOG("edu DMA round trip");
	snprintf(path, sizeof(path), "%s/stats", dir);
	ASSERT_LT(0, msr_read(path, stats, sizeof(stats)));
	if (why) {
		EXPECT_NE(NULL, strstr(msr_kernel_log(), why)) TH_LOG("no refusal logged: %s", why);
		EXPECT_EQ(0, msr_dir_entries("/sys/class/iommu"));
		EXPECT_EQ(NULL, strstr(stats, "domain DMA\n")) TH_LOG("%s", stats);
	} else {
		EXPECT_EQ(1, msr_dir_entries("/sys/class/iommu"));
		EXPECT_NE(NULL, strstr(stats, "domain DMA\n")) TH_LOG("%s", stats);
		ASSERT_LT(0, msr_riscv_iommu_file("stats", stats, sizeof(stats)));
		/* The page-request queue exists exactly where ATS does. */
		EXPECT_NE(NULL, strstr(stats, strcmp(p, "riscv64-caps-noats") ? "page_request_queue on\n"
									  : "page_request_queue none\n"))
			TH_LOG("%s", stats);
	}
	if (strcmp(p, "riscv64-caps-dt"))
		return;
	/* One platform IOMMU bound, QEMU's; every bad node refused, saying why. */
	EXPECT_EQ(0, access("/sys/bus/platform/drivers/riscv_iommu_platform/3010000.iommu", F_OK));
	for (unsigned int i = 0; i < ARRAY_SIZE(bad_reg); i++) {
		char line[256];

		snprintf(path, sizeof(path), "/sys/bus/platform/devices/%s", bad_reg[i].node);
		EXPECT_EQ(0, access(path, F_OK)) TH_LOG("no platform device %s", bad_reg[i].node);
		snprintf(path, sizeof(path), "/sys/bus/platform/drivers/riscv_iommu_platform/%s", bad_reg[i].node);
		EXPECT_NE(0, access(path, F_OK)) TH_LOG("%s bound", bad_reg[i].node);
		snprintf(line, sizeof(line), "riscv_iommu_platform %s: %s\n", bad_reg[i].node, bad_reg[i].says);
		EXPECT_NE(NULL, strstr(msr_kernel_log(), line)) TH_LOG("not logged: %s", line);
	}
}

TEST_HARNESS_MAIN
