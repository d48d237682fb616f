// SPDX-License-Identifier: GPL-2.0
/*
 * Our RISC-V IOMMU driver as people see it: its debugfs directory shows
 * edu's device context pointing at the domain that maps edu's DMA buffer.
 */
#include "kselftest_harness.h"
#include "msiremap.h"

/* edu's stats value for `key` (qemu_edu debugfs). */
static unsigned long edu_stat(const char *bdf, const char *key)
{
	char path[256], buf[512], *p;

	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/stats", bdf);
	if (msr_read(path, buf, sizeof(buf)) < 0)
		return 0;
	for (p = strtok(buf, "\n"); p; p = strtok(NULL, "\n"))
		if (!strncmp(p, key, strlen(key)) && p[strlen(key)] == ' ')
			return strtoul(p + strlen(key) + 1, NULL, 0);
	return 0;
}

TEST(context_points_at_the_domain_that_maps_the_dma_buffer)
{
	static char contexts[1 << 16], domains[1 << 20];
	char bdf[32], path[256], line[160], *p;
	unsigned int bus, dev, fn, mode;
	unsigned long long tc, iohgatp, ta, fsc, root_ppn;
	unsigned long dma;
	int found = 0;

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/dma", bdf);
	ASSERT_EQ(0, msr_write(path, "4096"));
	dma = edu_stat(bdf, "last_dma");
	ASSERT_NE(0, dma);

	ASSERT_LT(0, msr_riscv_iommu_file("contexts", contexts, sizeof(contexts)));
	ASSERT_EQ(3, sscanf(bdf, "%*x:%x:%x.%x", &bus, &dev, &fn));
	snprintf(line, sizeof(line), "device %#06x ", bus << 8 | dev << 3 | fn);
	p = strstr(contexts, line);
	ASSERT_NE(NULL, p) TH_LOG("no context for %s in:\n%s", line, contexts);
	ASSERT_EQ(4, sscanf(p, "device %*x tc %llx iohgatp %llx ta %llx fsc %llx", &tc, &iohgatp, &ta, &fsc));
	EXPECT_EQ(1, tc & 1);
	/* Exactly one stage translates: second (iohgatp) or first (fsc). */
	if (iohgatp >> 60) {
		EXPECT_EQ(0, fsc);
		mode = iohgatp >> 60;
		EXPECT_NE(0, (iohgatp >> 44) & 0xffff) TH_LOG("no GSCID");
		root_ppn = iohgatp & ((1ULL << 44) - 1);
	} else {
		mode = fsc >> 60;
		EXPECT_NE(0, (ta >> 12) & 0xfffff) TH_LOG("no PSCID");
		root_ppn = fsc & ((1ULL << 44) - 1);
	}
	EXPECT_TRUE(mode >= 8 && mode <= 10) TH_LOG("mode %u", mode);

	ASSERT_LT(0, msr_riscv_iommu_file("domains", domains, sizeof(domains)));
	snprintf(line, sizeof(line), " root %#llx\n", root_ppn << 12);
	p = strstr(domains, line);
	ASSERT_NE(NULL, p) TH_LOG("no domain with%s in:\n%s", line, domains);
	/* Its mappings (up to the next domain) include edu's buffer, writable. */
	snprintf(line, sizeof(line), "  iova %#lx pa ", dma);
	for (char *l = strchr(p, '\n') + 1; *l && strncmp(l, "domain ", 7); l = strchr(l, '\n') + 1) {
		if (!strncmp(l, line, strlen(line)) && strstr(l, " rw\n") == strchr(l, '\n') - 3)
			found = 1;
		if (!strchr(l, '\n'))
			break;
	}
	EXPECT_TRUE(found) TH_LOG("no '%s... rw' in the domain", line);
}

TEST(stats_count_commands_and_syncs)
{
	char buf[1024];
	unsigned long commands = 0, syncs = 0;

	ASSERT_LT(0, msr_riscv_iommu_file("stats", buf, sizeof(buf)));
	ASSERT_NE(NULL, strstr(buf, "commands "));
	sscanf(strstr(buf, "commands "), "commands %lu", &commands);
	sscanf(strstr(buf, "syncs "), "syncs %lu", &syncs);
	/* Attaching edu's domain at least invalidated its context. */
	EXPECT_LT(0, commands);
	EXPECT_LT(0, syncs);
	EXPECT_LE(syncs, commands + syncs);
	EXPECT_NE(NULL, strstr(buf, "directory_levels 3"));
}

/*
 * A fault raises the fault-queue interrupt, whose handler drains the queue
 * into the kernel log: the line appears without anything reading debugfs.
 */
TEST(fault_interrupt_reports_faults)
{
	char bdf[32], path[256], want[200], stats[1024];
	unsigned long irqs = 0;

	/* MSI-X on the PCI IOMMU, a wired line on the platform one. */
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/write_to", bdf);
	ASSERT_EQ(0, msr_write(path, "0x2000 16"));
	/* No command runs and nothing reads debugfs: only the interrupt drains. */
	for (int i = 0; i < 50 && !msr_fault_logged(bdf, 0x2000, want, sizeof(want)); i++)
		usleep(20000);
	EXPECT_TRUE(msr_fault_logged(bdf, 0x2000, want, sizeof(want))) {
		TH_LOG("no fault line %s within a second", want);
	}
	ASSERT_LT(0, msr_riscv_iommu_file("stats", stats, sizeof(stats)));
	ASSERT_NE(NULL, strstr(stats, "interrupts "));
	sscanf(strstr(stats, "interrupts "), "interrupts %lu", &irqs);
	EXPECT_LT(0, irqs);
}

/*
 * Where the MSI page table handles the IMSIC's addresses (second-stage
 * domains on an IOMMU with MSI page tables), edu's group reserves them as an
 * MSI region and the table is reported; first-stage domains reserve nothing,
 * and an IOMMU without MSI page tables has no table.
 */
TEST(msi_region_is_reserved_where_the_msi_table_handles_it)
{
	const char *p = msr_profile();
	int table = strcmp(p, "riscv64-nointremap") && strcmp(p, "riscv64-s-stage");
	char bdf[32], path[256], regions[1024], stats[1024];

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group/reserved_regions", bdf);
	ASSERT_LE(0, msr_read(path, regions, sizeof(regions)));
	ASSERT_LT(0, msr_riscv_iommu_file("stats", stats, sizeof(stats)));
	if (table) {
		/* QEMU virt's IMSIC: the supervisor files of 2 harts. */
		EXPECT_NE(NULL, strstr(regions, "0x0000000028000000 0x0000000028001fff msi\n")) {
			TH_LOG("reserved regions:\n%s", regions);
		}
		EXPECT_NE(NULL, strstr(stats, "entries 2 mask 0x1 pattern 0x28000\n"));
	} else {
		EXPECT_EQ(NULL, strstr(regions, " msi\n"));
		/* Without MSI page tables there is no table at all. */
		if (!strcmp(p, "riscv64-nointremap")) {
			EXPECT_NE(NULL, strstr(stats, "msi_table none\n"));
		}
	}
}

TEST_HARNESS_MAIN
