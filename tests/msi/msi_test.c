// SPDX-License-Identifier: GPL-2.0
/*
 * MSIs of a device behind a translating IOMMU: a virtio-blk disk with MSI-X
 * does I/O, and its interrupts arrive. riscv64: the MSI writes go to IMSIC
 * addresses the DMA domain does not map; the IOMMU's MSI page table
 * redirects them (second-stage domains, MSI_FLAT). arm64: SMMUv3 + ITS.
 */
#include <sys/ioctl.h>

#include "kselftest_harness.h"
#include "msiremap.h"

/* Sum of the interrupt counts of the device's MSI vectors; -1 if none. */
static long msi_count(const char *bdf)
{
	static char procint[1 << 16];
	int irqs[64], n = msr_pci_msi_irqs(bdf, irqs, 64);
	long total = 0;

	if (n <= 0 || msr_read("/proc/interrupts", procint, sizeof(procint)) < 0)
		return -1;
	for (char *line = procint; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		char *t = line, *end;
		long irq = strtol(t, &end, 10);

		if (end == t || *end != ':')
			continue;
		for (int i = 0; i < n; i++) {
			if (irqs[i] != irq)
				continue;
			for (t = end + 1;;) {
				long v = strtol(t, &end, 10);

				if (end == t)
					break;
				total += v;
				t = end;
			}
		}
	}
	return total;
}

TEST(disk_msis_arrive_through_the_iommu)
{
	char bdf[32], path[256], type[64];
	long before, after, faults_before = 0;
	void *buf;
	int fd;

	ASSERT_EQ(0, msr_find_pci(VIRTIO_VENDOR, VIRTIO_BLK, 0, bdf, sizeof(bdf)));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group/type", bdf);
	ASSERT_LT(0, msr_read(path, type, sizeof(type)));
	msr_chomp(type);
	EXPECT_TRUE(!strcmp(type, "DMA") || !strcmp(type, "DMA-FQ")) TH_LOG("domain %s", type);

	before = msi_count(bdf);
	ASSERT_LE(0, before) TH_LOG("%s has no MSI vectors", bdf);
	if (!strcmp(msr_arch(), "riscv64"))
		faults_before = msr_riscv_iommu_stat("faults");

	fd = open("/dev/vda", O_RDWR | O_DIRECT | O_CLOEXEC);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, posix_memalign(&buf, 4096, 65536));
	for (int i = 0; i < 64; i++) {
		memset(buf, i, 65536);
		ASSERT_EQ(65536, pwrite(fd, buf, 65536, (off_t)i * 65536));
	}
	for (int i = 0; i < 64; i++) {
		memset(buf, 0xee, 65536);
		ASSERT_EQ(65536, pread(fd, buf, 65536, (off_t)i * 65536));
		ASSERT_EQ(i, ((unsigned char *)buf)[65535]);
	}
	free(buf);
	close(fd);

	after = msi_count(bdf);
	/* Each request completes with an interrupt (some may coalesce). */
	EXPECT_LE(before + 32, after) TH_LOG("MSIs before %ld after %ld", before, after);
	if (!strcmp(msr_arch(), "riscv64")) {
		/* No MSI write faulted in the IOMMU. */
		EXPECT_EQ(faults_before, msr_riscv_iommu_stat("faults"));
	}
}

/*
 * riscv64: the disk's MSI-X vectors go through the IOMMU's remapping
 * domain ("IR-" device domain), and its MSI page table holds a valid entry
 * for exactly the interrupt files its vectors target, each counted once
 * per vector. arm64: they go through the ITS ("ITS-" device domain).
 */
TEST(disk_msis_have_remapping_entries)
{
	char bdf[32], path[256], path2[256], name[64];
	int files[8] = { 0 }, cpus = 0, entries = 0;
	int riscv = !strcmp(msr_arch(), "riscv64");
	unsigned long long target = 0;
	struct dirent *de;
	int refs, vcpu;
	DIR *d;

	ASSERT_EQ(0, msr_find_pci(VIRTIO_VENDOR, VIRTIO_BLK, 0, bdf, sizeof(bdf)));
	snprintf(path2, sizeof(path2), "/sys/bus/pci/devices/%s/msi_irqs", bdf);
	d = opendir(path2);
	ASSERT_NE(NULL, d);
	while ((de = readdir(d))) {
		char buf[4096];
		int cpu;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/debug/irq/irqs/%s", de->d_name);
		ASSERT_LT(0, msr_read(path, buf, sizeof(buf)));
		snprintf(name, sizeof(name), "domain:  %s-PCI-MSIX-%s", riscv ? "IR" : "ITS", bdf);
		EXPECT_NE(NULL, strstr(buf, name)) TH_LOG("%s", buf);
		snprintf(path, sizeof(path), "/proc/irq/%s/effective_affinity_list", de->d_name);
		ASSERT_LT(0, msr_read(path, name, sizeof(name)));
		cpu = atoi(name);
		ASSERT_LT(cpu, 8);
		files[cpu]++;
	}
	closedir(d);
	if (!riscv)
		return;
	if (msr_riscv_mrif()) {
		/* Each vector names an MRIF of the disk's noticed to its CPU. */
		ASSERT_NE(NULL, d = opendir(path2));
		while ((de = readdir(d))) {
			unsigned long long addr = 0, mrif, notice = 0;
			unsigned int data;
			int id, irq = atoi(de->d_name);

			if (de->d_name[0] == '.')
				continue;
			ASSERT_EQ(0, msr_irq_msg(irq, &addr, &data));
			EXPECT_LE(2, msr_riscv_mrif_entry(bdf, addr, &mrif, &notice, &id));
			EXPECT_NE(0, mrif) TH_LOG("vector %d: %#llx", irq, addr);
			snprintf(path, sizeof(path), "/proc/irq/%d/effective_affinity_list", irq);
			ASSERT_LT(0, msr_read(path, name, sizeof(name)));
			EXPECT_EQ(msr_imsic_file(atoi(name)), notice) TH_LOG("vector %d", irq);
		}
		closedir(d);
		return;
	}
	for (int cpu = 0; cpu < 8; cpu++) {
		if (!files[cpu])
			continue;
		cpus++;
		entries = msr_riscv_msi_entry(bdf, msr_imsic_file(cpu), &target, &refs, &vcpu);
		EXPECT_EQ(files[cpu], refs) TH_LOG("CPU %d's file", cpu);
		EXPECT_EQ(msr_imsic_file(cpu), target);
	}
	EXPECT_EQ(cpus, entries);
}

TEST_HARNESS_MAIN
