// SPDX-License-Identifier: GPL-2.0
/*
 * The rig checks its own guest: the kernel is the one we built and configured,
 * each of our modules unloads and reloads cleanly, and the IOMMU the profile
 * promises is there.
 */
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include "kselftest_harness.h"
#include "msiremap.h"

/* Whether /proc/modules lists `name`. */
static int module_loaded(const char *name)
{
	char line[512];
	size_t len = strlen(name);
	FILE *f = fopen("/proc/modules", "r");
	int found = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, len) && line[len] == ' ')
			found = 1;
	fclose(f);
	return found;
}

/* Our modules in load order (/etc/msiremap/modules); how many, at most 16. */
static int our_modules(char names[16][64])
{
	FILE *list = fopen("/etc/msiremap/modules", "r");
	int count = 0;

	if (!list)
		return -errno;
	while (count < 16 && fscanf(list, "%63s%*[^\n]", names[count]) == 1)
		if (names[count][0] != '#')
			count++;
	fclose(list);
	return count;
}

TEST(kernel_is_ours)
{
	char want[256];
	struct utsname u;

	ASSERT_LT(0, msr_read("/etc/msiremap/release", want, sizeof(want)));
	msr_chomp(want);
	ASSERT_EQ(0, uname(&u));
	EXPECT_STREQ(want, u.release);
	EXPECT_NE(NULL, strstr(u.release, "-msiremap"));
	EXPECT_EQ(0, strncmp(u.release, "7.3", 3));
	TH_LOG("kernel %s on %s, profile %s", u.release, u.machine, msr_profile());
}

TEST(config_items_in_effect)
{
	static char config[1 << 20];
	char line[256], *eq;
	size_t n;
	int checked = 0;
	FILE *frag, *cfg;

	cfg = popen("zcat /proc/config.gz", "r");
	ASSERT_NE(NULL, cfg);
	n = fread(config, 1, sizeof(config) - 1, cfg);
	config[n] = '\0';
	ASSERT_EQ(0, pclose(cfg));
	ASSERT_LT(1000, (int)n);

	frag = fopen("/etc/msiremap/config", "r");
	ASSERT_NE(NULL, frag);
	while (fgets(line, sizeof(line), frag)) {
		char want[300];

		msr_chomp(line);
		if (strncmp(line, "CONFIG_", 7) || !(eq = strchr(line, '=')))
			continue;
		if (!strcmp(eq, "=n")) {
			*eq = '\0';
			snprintf(want, sizeof(want), "\n%s=", line);
			EXPECT_EQ(NULL, strstr(config, want))
				TH_LOG("%s is set", line);
		} else {
			snprintf(want, sizeof(want), "\n%s\n", line);
			EXPECT_NE(NULL, strstr(config, want))
				TH_LOG("%s is not in /proc/config.gz", line);
		}
		checked++;
	}
	fclose(frag);
	EXPECT_LT(20, checked);
}

/* Unbinds every device bound to a driver of module `name`; count or -errno. */
static int unbind_module_devices(const char *name)
{
	char path[512], drv[512];
	struct dirent *de, *dd;
	DIR *mods, *devs;
	int n = 0;

	snprintf(path, sizeof(path), "/sys/module/%s/drivers", name);
	mods = opendir(path);
	if (!mods)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(mods))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(drv, sizeof(drv), "%s/%s", path, de->d_name);
		devs = opendir(drv);
		if (!devs)
			continue;
		while ((dd = readdir(devs))) {
			char unbind[1024];

			/* Bound devices are the links, but for the module's. */
			if (dd->d_type != DT_LNK || !strcmp(dd->d_name, "module"))
				continue;
			snprintf(unbind, sizeof(unbind), "%s/unbind", drv);
			if (msr_write(unbind, dd->d_name) == 0)
				n++;
		}
		closedir(devs);
	}
	closedir(mods);
	return n;
}

/*
 * Every module unloads (after its devices are unbound, last loaded first)
 * and loads again, and its devices come back: the IOMMU registers again,
 * edu is probed and its DMA verifies again where it is translated.
 */
TEST(modules_unload_and_reload)
{
	char names[16][64], path[256], bdf[32], dir[128];
	int count = our_modules(names), iommus_before = msr_dir_entries("/sys/class/iommu");

	ASSERT_LT(0, count);

	for (int i = count - 1; i >= 0; i--) {
		ASSERT_EQ(1, module_loaded(names[i])) TH_LOG("%s is not loaded", names[i]);
		ASSERT_LE(0, unbind_module_devices(names[i]));
		ASSERT_EQ(0, syscall(SYS_delete_module, names[i], O_NONBLOCK)) {
			TH_LOG("unloading %s: %s", names[i], strerror(errno));
		}
		ASSERT_EQ(0, module_loaded(names[i]));
	}
	/* Our IOMMU driver is gone from sysfs; arm64's SMMUv3 is built in. */
	EXPECT_EQ(strcmp(msr_arch(), "arm64") ? 0 : iommus_before, msr_dir_entries("/sys/class/iommu"));

	for (int i = 0; i < count; i++) {
		int ret = msr_load_module(names[i]);

		ASSERT_EQ(0, ret) TH_LOG("reloading %s: %s", names[i], strerror(-ret));
		ASSERT_EQ(1, module_loaded(names[i]));
	}
	EXPECT_EQ(iommus_before, msr_dir_entries("/sys/class/iommu"));

	/* edu is back, and where it is translated its DMA works again. */
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	snprintf(dir, sizeof(dir), "/sys/kernel/debug/qemu_edu/%s/dma", bdf);
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	if (access(path, F_OK) == 0) {
		EXPECT_EQ(0, msr_write(dir, "64"));
	} else {
		EXPECT_EQ(0, access(dir, F_OK));
	}
}

/*
 * Load/unload cycles (100 in `make check`, msiremap.load_cycles= of them in
 * `make soak`): every
 * module is unloaded, last loaded first, while its devices are bound and
 * edu's MSI is allocated. An unload the kernel refuses (riscv_iommu, whose
 * module the devices behind the IOMMU hold) must be a clean refusal: the
 * module stays loaded and working; it unloads once its devices are unbound.
 * Then everything loads again. At the end edu's DMA and MSI work.
 */
FIXTURE(cycles)
{
};

FIXTURE_SETUP(cycles)
{
}

FIXTURE_TEARDOWN(cycles)
{
}

/* A cycle takes about half a second on the debug kernel. */
TEST_F_TIMEOUT(cycles, modules_load_and_unload, 1100)
{
	char names[16][64], bdf[32], path[256], refused[64] = "", n[16];
	const char *soak = msr_cmdline("msiremap.load_cycles", n, sizeof(n));
	int cycles = soak ? atoi(soak) : 100, count = our_modules(names), refusals = 0;

	ASSERT_LT(0, count);

	for (int c = 0; c < cycles; c++) {
		for (int i = count - 1; i >= 0; i--) {
			if (syscall(SYS_delete_module, names[i], O_NONBLOCK) != 0) {
				ASSERT_TRUE(errno == EBUSY || errno == EAGAIN) {
					TH_LOG("cycle %d: unloading %s: %s", c, names[i], strerror(errno));
				}
				/* Refused: still loaded, and its devices still there. */
				ASSERT_EQ(1, module_loaded(names[i]));
				refusals++;
				snprintf(refused, sizeof(refused), "%s", names[i]);
				ASSERT_LT(0, unbind_module_devices(names[i]));
				ASSERT_EQ(0, syscall(SYS_delete_module, names[i], O_NONBLOCK)) {
					TH_LOG("cycle %d: unloading %s after unbinding: %s", c, names[i], strerror(errno));
				}
			}
			ASSERT_EQ(0, module_loaded(names[i]));
		}
		for (int i = 0; i < count; i++) {
			ASSERT_EQ(0, msr_load_module(names[i])) TH_LOG("cycle %d: loading %s", c, names[i]);
		}
	}
	TH_LOG("%d cycles of %d modules, %d refused unloads (%s)", cycles, count, refusals,
	       refusals ? refused : "none");
	/* Where an IOMMU of ours is there, its devices pin it: every cycle refuses once. */
	if (!strcmp(msr_arch(), "riscv64")) {
		EXPECT_EQ(cycles, refusals);
	}

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/dma", bdf);
	EXPECT_EQ(0, msr_write(path, "64"));
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/irq", bdf);
	EXPECT_EQ(0, msr_write(path, "10"));
}

/*
 * A module parameter out of range (qemu_edu's dma_bits, ims_slots) is
 * refused with a clear message: the module loads, its probe fails with
 * EINVAL and says why, edu stays unbound; loaded again with the rig's
 * parameters, it works.
 */
TEST(bad_module_parameters_are_refused)
{
	static const struct {
		const char *param, *range;
	} bad[] = {
		{ "dma_bits=99", "28..32" },
		{ "dma_bits=12", "28..32" },
		{ "ims_slots=0", "1..8192" },
		{ "ims_slots=9000", "1..8192" },
	};
	char bdf[32], path[256];

	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
	for (unsigned int i = 0; i < ARRAY_SIZE(bad); i++) {
		ASSERT_EQ(0, syscall(SYS_delete_module, "qemu_edu", O_NONBLOCK));
		ASSERT_EQ(0, msr_load_module_with("qemu_edu", bad[i].param));
		snprintf(path, sizeof(path), "/sys/bus/pci/drivers/qemu_edu/%s", bdf);
		EXPECT_NE(0, access(path, F_OK)) TH_LOG("%s: edu bound", bad[i].param);
		snprintf(path, sizeof(path), "%s is outside %s", bad[i].param, bad[i].range);
		EXPECT_NE(NULL, strstr(msr_kernel_log(), path)) TH_LOG("no '%s' in the log", path);
	}
	ASSERT_EQ(0, syscall(SYS_delete_module, "qemu_edu", O_NONBLOCK));
	ASSERT_EQ(0, msr_load_module("qemu_edu"));
	snprintf(path, sizeof(path), "/sys/kernel/debug/qemu_edu/%s/dma", bdf);
	EXPECT_EQ(0, msr_write(path, "64"));
}

/* Whether the device tree has a node compatible with `compat`, under `path`. */
static int dt_has_compatible(const char *path, const char *compat)
{
	char p[1024], buf[256];
	struct dirent *de;
	DIR *d = opendir(path);
	int found = 0, n;

	if (!d)
		return 0;
	snprintf(p, sizeof(p), "%s/compatible", path);
	n = msr_read(p, buf, sizeof(buf));
	for (int off = 0; n > 0 && off < n; off += strlen(buf + off) + 1)
		found |= !strcmp(buf + off, compat);
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.' || de->d_type != DT_DIR)
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		found = dt_has_compatible(p, compat);
	}
	closedir(d);
	return found;
}

/* RISC-V IOMMU capabilities register (spec 5.3), read through the PCI BAR. */
#define RISCV_IOMMU_CAP_VERSION(c)	((c) & 0xff)
#define RISCV_IOMMU_CAP_MSI_FLAT	(1ULL << 22)
#define RISCV_IOMMU_CAP_MSI_MRIF	(1ULL << 23)

static int riscv_iommu_pci_caps(const char *bdf, uint64_t *caps)
{
	char path[256], cfg[8];
	volatile uint64_t *regs;
	int fd;

	/* Memory decoding may be off while no driver owns the device. */
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDWR);
	if (fd < 0 || pread(fd, cfg, 2, 4) != 2)
		return -errno;
	cfg[0] |= 0x2;
	if (pwrite(fd, cfg, 2, 4) != 2)
		return -errno;
	close(fd);

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0)
		return -errno;
	regs = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (regs == MAP_FAILED)
		return -errno;
	*caps = regs[0];
	munmap((void *)regs, 4096);
	return 0;
}

TEST(iommu_is_present)
{
	const char *arch = msr_arch(), *profile = msr_profile();
	char bdf[32];

	if (!strcmp(arch, "arm64")) {
		/* SMMUv3 registered with the core, and the edu device in a group. */
		char path[256];

		EXPECT_LT(0, msr_dir_entries("/sys/class/iommu"));
		EXPECT_LT(0, msr_dir_entries("/sys/kernel/iommu_groups"));
		ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, bdf, sizeof(bdf)));
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", bdf);
		EXPECT_EQ(0, access(path, F_OK)) TH_LOG("edu %s has no IOMMU group", bdf);
		return;
	}

	ASSERT_STREQ("riscv64", arch);
	if (!strcmp(profile, "riscv64-sys")) {
		EXPECT_TRUE(dt_has_compatible("/sys/firmware/devicetree/base", "riscv,iommu"));
		/* Our driver registered the platform IOMMU. */
		EXPECT_EQ(1, msr_dir_entries("/sys/class/iommu"));
		EXPECT_EQ(-ENOENT, msr_find_pci(RISCV_IOMMU_VENDOR, RISCV_IOMMU_DEVICE, 0,
						bdf, sizeof(bdf)));
	} else {
		uint64_t caps = 0;

		char path[256];

		ASSERT_EQ(0, msr_find_pci(RISCV_IOMMU_VENDOR, RISCV_IOMMU_DEVICE, 0,
					  bdf, sizeof(bdf)));
		/* Our driver registered it. */
		snprintf(path, sizeof(path), "/sys/class/iommu/riscv-iommu-%s", bdf);
		EXPECT_EQ(0, access(path, F_OK));
		ASSERT_EQ(0, riscv_iommu_pci_caps(bdf, &caps));
		TH_LOG("riscv-iommu-pci %s: capabilities %#llx", bdf, (unsigned long long)caps);
		EXPECT_EQ(0x10ULL, RISCV_IOMMU_CAP_VERSION(caps));
		if (!strcmp(profile, "riscv64-nointremap")) {
			EXPECT_FALSE(caps & (RISCV_IOMMU_CAP_MSI_FLAT | RISCV_IOMMU_CAP_MSI_MRIF));
		} else {
			EXPECT_TRUE(caps & RISCV_IOMMU_CAP_MSI_FLAT);
		}
	}
}

TEST_HARNESS_MAIN
