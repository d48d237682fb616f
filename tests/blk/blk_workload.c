// SPDX-License-Identifier: GPL-2.0
/*
 * A real workload through the IOMMU: a virtio-blk disk (iommu_platform=on,
 * so it uses the DMA API) written and read back with O_DIRECT, every byte
 * checked, in I/O sizes from 4 KiB to 1 MiB: many mappings, unmaps under
 * load. riscv64: our driver, the disk interrupting through INTx (its MSIs
 * would fault in the DMA domain until MSI remapping lands); arm64: SMMUv3,
 * MSI-X through the ITS.
 */
#include <sys/ioctl.h>
#include <linux/fs.h>

#include "kselftest_harness.h"
#include "msiremap.h"

/* The expected content of the 8 bytes at `off` for `seed`. */
static uint64_t pattern(uint64_t seed, uint64_t off)
{
	uint64_t x = seed ^ (off * 0x9e3779b97f4a7c15ULL);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	return x ^ (x >> 29);
}

static void fill(uint64_t *buf, size_t len, uint64_t seed, uint64_t off)
{
	for (size_t i = 0; i < len / 8; i++)
		buf[i] = pattern(seed, off + 8 * i);
}

/* First offset in `buf` that differs from the pattern, or -1. */
static long check(const uint64_t *buf, size_t len, uint64_t seed, uint64_t off)
{
	for (size_t i = 0; i < len / 8; i++)
		if (buf[i] != pattern(seed, off + 8 * i))
			return (long)(8 * i);
	return -1;
}

FIXTURE(disk)
{
	int fd;
	uint64_t size;
	void *buf;
	char bdf[32];
};

FIXTURE_SETUP(disk)
{
	ASSERT_EQ(0, msr_find_pci(VIRTIO_VENDOR, VIRTIO_BLK, 0, self->bdf, sizeof(self->bdf)));
	self->fd = open("/dev/vda", O_RDWR | O_DIRECT | O_CLOEXEC);
	ASSERT_LE(0, self->fd) TH_LOG("/dev/vda: %s", strerror(errno));
	ASSERT_EQ(0, ioctl(self->fd, BLKGETSIZE64, &self->size));
	ASSERT_LE(16ULL << 20, self->size);
	ASSERT_EQ(0, posix_memalign(&self->buf, 4096, 1 << 20));
}

FIXTURE_TEARDOWN(disk)
{
	free(self->buf);
	close(self->fd);
}

FIXTURE_VARIANT(disk)
{
	size_t io_min, io_max;	/* I/O sizes, powers of two */
	uint64_t seed;
};

FIXTURE_VARIANT_ADD(disk, pages) { .io_min = 4096, .io_max = 4096, .seed = 1 };
FIXTURE_VARIANT_ADD(disk, mixed) { .io_min = 4096, .io_max = 1 << 20, .seed = 2 };
FIXTURE_VARIANT_ADD(disk, large) { .io_min = 1 << 20, .io_max = 1 << 20, .seed = 3 };

TEST_F(disk, write_then_read_back_every_byte)
{
	uint64_t total = 16ULL << 20, off, rng = variant->seed;
	long unmaps_before = msr_riscv_iommu_stat("unmap_syncs");
	int ios = 0;

	/* Write the region in I/Os of varying size. */
	for (off = 0; off < total;) {
		size_t len = variant->io_min;

		rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		while (len < variant->io_max && (rng >> (33 + len / 4096 % 7)) & 1)
			len *= 2;
		if (off + len > total)
			len = total - off;
		fill(self->buf, len, variant->seed, off);
		ASSERT_EQ((ssize_t)len, pwrite(self->fd, self->buf, len, off)) TH_LOG("write at %llu", (unsigned long long)off);
		off += len;
		ios++;
	}
	ASSERT_EQ(0, fsync(self->fd));

	/* Read it back in other sizes, every byte checked. */
	for (off = 0; off < total;) {
		size_t len = off % (1 << 20) ? 64 << 10 : 1 << 20;
		long bad;

		if (off + len > total)
			len = total - off;
		memset(self->buf, 0, len);
		ASSERT_EQ((ssize_t)len, pread(self->fd, self->buf, len, off));
		bad = check(self->buf, len, variant->seed, off);
		ASSERT_EQ(-1, bad) TH_LOG("byte %llu differs", (unsigned long long)(off + bad));
		off += len;
		ios++;
	}
	TH_LOG("%d I/Os", ios);

	if (!strcmp(msr_arch(), "riscv64")) {
		/* Each I/O's DMA buffer was mapped and unmapped through our driver. */
		EXPECT_LE(ios, msr_riscv_iommu_stat("unmap_syncs") - unmaps_before);
	}
}

TEST(disk_dma_goes_through_the_iommu)
{
	char bdf[32], path[256], type[64];

	ASSERT_EQ(0, msr_find_pci(VIRTIO_VENDOR, VIRTIO_BLK, 0, bdf, sizeof(bdf)));
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group/type", bdf);
	ASSERT_LT(0, msr_read(path, type, sizeof(type)));
	msr_chomp(type);
	EXPECT_TRUE(!strcmp(type, "DMA") || !strcmp(type, "DMA-FQ")) TH_LOG("domain %s", type);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/msi_irqs", bdf);
	if (!strcmp(msr_arch(), "arm64"))
		EXPECT_EQ(0, access(path, F_OK)) TH_LOG("arm64: the disk should use MSI-X");
}

TEST_HARNESS_MAIN
