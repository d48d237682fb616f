// SPDX-License-Identifier: GPL-2.0
/*
 * `make bench` (BENCH_ONLY=unmap): the cost of an unmap in a paging domain
 * shared by 1, 2 and 8 devices. Every edu of the guest is handed to
 * vfio-pci and bound (VFIO cdev) to one iommufd context; per measurement,
 * one HWPT is allocated on one IOAS and the first N edus are attached to
 * it, so they share one paging domain. Then `--areas` areas of 1 page, then
 * of 16, are mapped (IOMMU_IOAS_MAP, iommufd picks the IOVA) and unmapped
 * again one by one (IOMMU_IOAS_UNMAP), each ioctl timed on its own, with the
 * RISC-V IOMMU driver's debugfs counters read around the unmaps: the
 * invalidation commands and fences they queued. The device counts take
 * turns in each round, each round starting one later, so a slow spell of
 * the machine weighs on all of them.
 *
 * A benchmark, not a test: it prints figures and judges nothing (it fails
 * only when it cannot measure). One line per round, device count and size
 * (round 0 is a warm-up):
 *
 *   unmap round R devices N pages P areas K map_ns M unmap_ns U commands C
 *   syncs S unmap_syncs Y gscids G
 *
 * M and U are the mean ns per ioctl, C, S and Y the counters' increase over
 * the K unmaps (-1 without our driver's debugfs), G the number of distinct
 * GSCIDs in the attached devices' contexts (debugfs `contexts`; -1 when one
 * of them has no context there).
 *
 * Usage: iommufd_unmap [--rounds R] [--areas K] [--devices N,N,...]
 */
#include <stdint.h>
#include <time.h>

#include "vfio_utils.h"

#define PAGE		4096
#define MAX_DEVS	16
#define MAX_COUNTS	8
#define MAX_PAGES	16

static char bdfs[MAX_DEVS][32];
static int devfds[MAX_DEVS];
static __u32 devids[MAX_DEVS];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* The driver's counters: commands, syncs (fences), unmap_syncs. */
struct counters {
	long commands, syncs, unmap_syncs;
};

static long stat_of(const char *text, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, n) && p[n] == ' ')
			return strtol(p + n + 1, NULL, 0);
	return -1;
}

static struct counters read_counters(void)
{
	char buf[2048];
	struct counters c = { -1, -1, -1 };

	if (msr_riscv_iommu_file("stats", buf, sizeof(buf)) < 0)
		return c;
	c.commands = stat_of(buf, "commands");
	c.syncs = stat_of(buf, "syncs");
	c.unmap_syncs = stat_of(buf, "unmap_syncs");
	return c;
}

static long delta(long after, long before)
{
	return after < 0 || before < 0 ? -1 : after - before;
}

/*
 * Distinct GSCIDs in the contexts of the first `n` devices (debugfs
 * `contexts`, msr_riscv_contexts()); -1 without our driver or without a
 * context for one of them.
 */
static int gscids(int n)
{
	static struct msr_context c[256];
	unsigned int seen[MAX_DEVS];
	int found = 0, m = msr_riscv_contexts(c, 256);

	if (m < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		const struct msr_context *x = msr_context_of(c, m, msr_pci_rid(bdfs[i]));
		int k;

		if (!x)
			return -1;
		for (k = 0; k < found && seen[k] != x->gscid; k++)
			;
		if (k == found)
			seen[found++] = x->gscid;
	}
	return found;
}

static int hwpt_alloc(int iommufd, __u32 dev_id, __u32 pt_id, __u32 *out)
{
	struct iommu_hwpt_alloc a = { .size = sizeof(a), .dev_id = dev_id, .pt_id = pt_id };
	int ret = _ioctl(iommufd, IOMMU_HWPT_ALLOC, &a);

	if (!ret)
		*out = a.out_hwpt_id;
	return ret;
}

static int destroy(int iommufd, __u32 id)
{
	struct iommu_destroy d = { .size = sizeof(d), .id = id };

	return _ioctl(iommufd, IOMMU_DESTROY, &d);
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "iommufd_unmap: %s: %s\n", what, strerror(-err));
	return 1;
}

/*
 * One measurement: `areas` areas of `pages` pages of `buf`, mapped then
 * unmapped one by one in `ioas`, whose domain the first `n` devices share
 * under `ids` GSCIDs.
 */
static int measure(int iommufd, __u32 ioas, uint8_t *buf, int round, int n, int ids, int pages,
		   int areas, __u64 *iovas)
{
	uint64_t map_ns = 0, unmap_ns = 0, t;
	struct counters b, a;
	int ret;

	for (int k = 0; k < areas; k++) {
		t = now_ns();
		ret = _ioas_map(iommufd, ioas, buf, (__u64)pages * PAGE, &iovas[k]);
		map_ns += now_ns() - t;
		if (ret)
			return fail("IOMMU_IOAS_MAP", ret);
	}
	b = read_counters();
	for (int k = 0; k < areas; k++) {
		t = now_ns();
		ret = _ioas_unmap(iommufd, ioas, iovas[k], (__u64)pages * PAGE);
		unmap_ns += now_ns() - t;
		if (ret)
			return fail("IOMMU_IOAS_UNMAP", ret);
	}
	a = read_counters();
	printf("unmap round %d devices %d pages %d areas %d map_ns %llu unmap_ns %llu commands %ld syncs %ld unmap_syncs %ld gscids %d\n",
	       round, n, pages, areas, (unsigned long long)(map_ns / areas),
	       (unsigned long long)(unmap_ns / areas), delta(a.commands, b.commands),
	       delta(a.syncs, b.syncs), delta(a.unmap_syncs, b.unmap_syncs), ids);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	int rounds = 3, areas = 1000, counts[MAX_COUNTS] = { 1, 2, 8 }, ncounts = 3, ndevs = 0, maxn = 0;
	int iommufd, ret, status = 1;
	__u64 *iovas;
	uint8_t *buf;
	__u32 ioas;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds") && i + 1 < argc) {
			rounds = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--areas") && i + 1 < argc) {
			areas = atoi(argv[++i]);
		} else if (!strcmp(argv[i], "--devices") && i + 1 < argc) {
			char *s = argv[++i], *end;

			for (ncounts = 0; *s && ncounts < MAX_COUNTS; s = *end ? end + 1 : end) {
				counts[ncounts] = strtol(s, &end, 10);
				if (end == s || counts[ncounts] < 1 || counts[ncounts] > MAX_DEVS)
					return fail("--devices wants numbers 1..16 separated by commas", -EINVAL);
				ncounts++;
			}
		} else {
			fprintf(stderr, "usage: %s [--rounds R] [--areas K] [--devices N,N,...]\n", argv[0]);
			return 2;
		}
	}
	if (rounds < 1 || areas < 1 || !ncounts)
		return fail("--rounds and --areas want positive numbers", -EINVAL);
	for (int i = 0; i < ncounts; i++)
		maxn = counts[i] > maxn ? counts[i] : maxn;
	while (ndevs < MAX_DEVS && !msr_find_pci(EDU_VENDOR, EDU_DEVICE, ndevs, bdfs[ndevs], sizeof(bdfs[0])))
		ndevs++;
	if (ndevs < maxn) {
		fprintf(stderr, "iommufd_unmap: %d edu devices, %d wanted (QEMU: -device edu, once each)\n",
			ndevs, maxn);
		return 1;
	}
	iovas = calloc(areas, sizeof(*iovas));
	buf = mmap(NULL, MAX_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		   -1, 0);
	if (!iovas || buf == MAP_FAILED)
		return fail("memory", -ENOMEM);
	memset(buf, 0x5a, MAX_PAGES * PAGE);

	iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (iommufd < 0)
		return fail("/dev/iommu", -errno);
	for (int i = 0; i < maxn; i++) {
		devfds[i] = -1;
		if ((ret = _vfio_pci_take(bdfs[i])))
			return fail("vfio-pci bind", ret);
		devfds[i] = _vfio_cdev_open(bdfs[i]);
		if (devfds[i] < 0)
			return fail("VFIO cdev", devfds[i]);
		if ((ret = _vfio_bind_iommufd(devfds[i], iommufd, &devids[i])))
			return fail("VFIO_DEVICE_BIND_IOMMUFD", ret);
	}
	if ((ret = _ioas_alloc(iommufd, &ioas)))
		return fail("IOMMU_IOAS_ALLOC", ret);

	/* Round 0 warms up (page tables, pinning paths) and is not counted. */
	for (int round = 0; round <= rounds; round++) {
		for (int j = 0; j < ncounts; j++) {
			int n = counts[(j + round) % ncounts], ids;
			__u32 hwpt;

			/* One paging domain, allocated for the first device. */
			if ((ret = hwpt_alloc(iommufd, devids[0], ioas, &hwpt)))
				return fail("IOMMU_HWPT_ALLOC", ret);
			for (int i = 0; i < n; i++)
				if ((ret = _vfio_attach(devfds[i], hwpt)))
					return fail("VFIO_DEVICE_ATTACH_IOMMUFD_PT", ret);
			ids = gscids(n);
			if (measure(iommufd, ioas, buf, round, n, ids, 1, areas, iovas) ||
			    measure(iommufd, ioas, buf, round, n, ids, MAX_PAGES, areas, iovas))
				goto out;
			for (int i = 0; i < n; i++)
				if ((ret = _vfio_detach(devfds[i])))
					return fail("VFIO_DEVICE_DETACH_IOMMUFD_PT", ret);
			if ((ret = destroy(iommufd, hwpt)))
				return fail("IOMMU_DESTROY", ret);
		}
	}
	status = 0;
out:
	for (int i = 0; i < maxn; i++)
		close(devfds[i]);
	close(iommufd);
	for (int i = 0; i < maxn; i++)
		_vfio_pci_release(bdfs[i]);
	return status;
}
