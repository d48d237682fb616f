/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by the guest tests: small file I/O, what the rig tells the
 * guest (/etc/msiremap/, the kernel command line) and PCI look-ups in sysfs.
 * Functions return 0 or a negative errno, like the kernel's.
 */
#ifndef MSIREMAP_TEST_H
#define MSIREMAP_TEST_H

#include <dirent.h>
#include <sys/klog.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EDU_VENDOR	0x1234
#define EDU_DEVICE	0x11e8
#define RISCV_IOMMU_VENDOR	0x1b36
#define RISCV_IOMMU_DEVICE	0x0014
#define VIRTIO_VENDOR	0x1af4
#define VIRTIO_BLK	0x1042	/* modern virtio-blk */

/* Read a whole (small) file into buf, NUL-terminated; bytes read or -errno. */
static inline int msr_read(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n, total = 0;

	if (fd < 0)
		return -errno;
	while (total < (ssize_t)len - 1 &&
	       (n = read(fd, buf + total, len - 1 - total)) > 0)
		total += n;
	if (n < 0 && total == 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	buf[total] = '\0';
	return total;
}

/* Write a string in one write(2); 0 or the -errno the kernel returned. */
static inline int msr_write(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	n = n < 0 ? -errno : 0;
	close(fd);
	return n;
}

/* Write a formatted command of up to 255 bytes to `path`; 0 or -errno. */
static inline int __attribute__((format(printf, 2, 3)))
msr_writef(const char *path, const char *fmt, ...)
{
	char cmd[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (n < 0 || n >= (int)sizeof(cmd))
		return -EINVAL;
	return msr_write(path, cmd);
}

/* Strip trailing white space in place. */
static inline char *msr_chomp(char *s)
{
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	return s;
}

/* Value of `key=` on the kernel command line, or NULL. */
static inline const char *msr_cmdline(const char *key, char *out, size_t len)
{
	static char cmdline[4096];
	size_t klen = strlen(key);
	char *tok, *save;

	if (msr_read("/proc/cmdline", cmdline, sizeof(cmdline)) < 0)
		return NULL;
	for (tok = strtok_r(cmdline, " \n", &save); tok;
	     tok = strtok_r(NULL, " \n", &save)) {
		if (!strncmp(tok, key, klen) && tok[klen] == '=') {
			snprintf(out, len, "%s", tok + klen + 1);
			return out;
		}
	}
	return NULL;
}

/* The guest architecture (riscv64 or arm64), as the rig built it. */
static inline const char *msr_arch(void)
{
	static char arch[32];

	if (!arch[0] && msr_read("/etc/msiremap/arch", arch, sizeof(arch)) > 0)
		msr_chomp(arch);
	return arch;
}

/* The QEMU profile this guest runs on (tests/profiles.conf). */
static inline const char *msr_profile(void)
{
	static char profile[64];

	if (!profile[0] && !msr_cmdline("msiremap.profile", profile, sizeof(profile)))
		snprintf(profile, sizeof(profile), "unknown");
	return profile;
}

/*
 * Whether the guest runs on the strict QEMU (scripts/qemu-build.sh), which
 * does what the RISC-V IOMMU and AIA specifications say where QEMU 10.0.2
 * does not (Documentation/rig.md), rather than on Debian's QEMU.
 */
static inline int msr_strict_qemu(void)
{
	char qemu[16];

	return msr_cmdline("msiremap.qemu", qemu, sizeof(qemu)) && !strcmp(qemu, "strict");
}

/* Read a sysfs attribute holding a number (any base strtoul accepts). */
static inline int msr_read_ulong(const char *path, unsigned long *val)
{
	char buf[64];
	int ret = msr_read(path, buf, sizeof(buf));

	if (ret < 0)
		return ret;
	*val = strtoul(buf, NULL, 0);
	return 0;
}

static inline int msr_strcmp_p(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Find the n-th PCI device (0-based, in address order) with the given
 * vendor and device ids; its address (e.g. 0000:00:02.0) goes to bdf. 0,
 * or -ENOENT.
 */
static inline int msr_find_pci(unsigned int vendor, unsigned int device, int n,
			       char *bdf, size_t len)
{
	static char names[64][32];
	char *sorted[64];
	DIR *dir = opendir("/sys/bus/pci/devices");
	struct dirent *de;
	char path[512];
	unsigned long v, d;
	int found = 0;

	if (!dir)
		return -errno;
	while ((de = readdir(dir)) && found < 64) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", de->d_name);
		if (msr_read_ulong(path, &v))
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", de->d_name);
		if (msr_read_ulong(path, &d))
			continue;
		if (v == vendor && d == device) {
			snprintf(names[found], sizeof(names[found]), "%s", de->d_name);
			sorted[found] = names[found];
			found++;
		}
	}
	closedir(dir);
	if (n >= found)
		return -ENOENT;
	qsort(sorted, found, sizeof(sorted[0]), msr_strcmp_p);
	snprintf(bdf, len, "%s", sorted[n]);
	return 0;
}

/* The kernel log, NUL-terminated, in a static buffer. */
static inline const char *msr_kernel_log(void)
{
	static char buf[1 << 20];
	int n = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, sizeof(buf) - 1);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/*
 * The kernel log after the last line containing `marker` (which the test
 * wrote to /dev/kmsg), the whole log if there is none.
 */
static inline const char *msr_kernel_log_since(const char *marker)
{
	const char *log = msr_kernel_log(), *last = NULL;

	for (const char *p = log; (p = strstr(p, marker)); p++)
		last = p;
	return last ? last : log;
}

/* How many times `what` occurs in `text`. */
static inline int msr_count(const char *text, const char *what)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, what)); p++)
		n++;
	return n;
}

/*
 * The number after `key` in text made of `key value` lines (our debugfs
 * `stats` files), decimal or 0x-hexadecimal; -1 when absent. Destroys
 * `text`.
 */
static inline long msr_key_value(char *text, const char *key)
{
	for (char *p = strtok(text, "\n"); p; p = strtok(NULL, "\n"))
		if (!strncmp(p, key, strlen(key)) && p[strlen(key)] == ' ')
			return strtol(p + strlen(key) + 1, NULL, 0);
	return -1;
}

/* msr_key_value() of the file at `path`; -1 when absent or unreadable. */
static inline long msr_stat(const char *path, const char *key)
{
	char buf[2048];

	if (msr_read(path, buf, sizeof(buf)) < 0)
		return -1;
	return msr_key_value(buf, key);
}

/* Entries of a directory but . and ..; 0 when it does not exist. */
static inline int msr_dir_entries(const char *path)
{
	struct dirent *de;
	DIR *d = opendir(path);
	int n = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/*
 * The Linux interrupt numbers of PCI device `bdf`'s MSI or MSI-X vectors
 * (sysfs msi_irqs), ascending, at most `max` into `irqs`; their number, or
 * -errno.
 */
static inline int msr_pci_msi_irqs(const char *bdf, int *irqs, int max)
{
	char path[256];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/msi_irqs", bdf);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && n < max)
		if (de->d_name[0] != '.')
			irqs[n++] = atoi(de->d_name);
	closedir(d);
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && irqs[j - 1] > irqs[j]; j--) {
			int t = irqs[j];

			irqs[j] = irqs[j - 1];
			irqs[j - 1] = t;
		}
	return n;
}

/*
 * The IRQ hierarchy of PCI device `bdf`'s MSI (its last vector),
 * /sys/kernel/debug/irq/irqs/<irq>, into `buf`; the irq, or -errno.
 */
static inline int msr_pci_msi_irq_debug(const char *bdf, char *buf, size_t len)
{
	char path[256];
	int irqs[64], n = msr_pci_msi_irqs(bdf, irqs, 64);

	if (n <= 0)
		return n ? n : -ENOENT;
	snprintf(path, sizeof(path), "/sys/kernel/debug/irq/irqs/%d", irqs[n - 1]);
	return msr_read(path, buf, len) < 0 ? -errno : irqs[n - 1];
}

/* Enables ("1") or disables ("0") trace event iommu:`event`; 0 or -errno. */
static inline int msr_iommu_event(const char *event, const char *on)
{
	char path[256];

	snprintf(path, sizeof(path), "/sys/kernel/tracing/events/iommu/%s/enable", event);
	return msr_write(path, on);
}

/* The module's parameters given on the kernel command line (name.param=v). */
static inline void msr_module_params(const char *name, char *out, size_t len)
{
	char cmdline[4096], *tok, *save;
	size_t nlen = strlen(name), used = 0;

	out[0] = '\0';
	if (msr_read("/proc/cmdline", cmdline, sizeof(cmdline)) < 0)
		return;
	for (tok = strtok_r(cmdline, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save))
		if (!strncmp(tok, name, nlen) && tok[nlen] == '.')
			used += snprintf(out + used, len - used, "%s%s", used ? " " : "",
					 tok + nlen + 1);
}

/* Loads module `name` with `params`; 0 or -errno. */
static inline int msr_load_module_with(const char *name, const char *params)
{
	char path[256];
	int fd, ret;

	snprintf(path, sizeof(path), "/lib/modules/msiremap/%s.ko", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = syscall(SYS_finit_module, fd, params, 0) ? -errno : 0;
	close(fd);
	return ret;
}

/* Loads module `name` with its command-line parameters; 0 or -errno. */
static inline int msr_load_module(const char *name)
{
	char params[512];

	msr_module_params(name, params, sizeof(params));
	return msr_load_module_with(name, params);
}

/* Lines of /proc/interrupts whose handler is `name`; -errno on error. */
static inline int msr_irq_lines(const char *name)
{
	static char buf[1 << 21];
	char want[80];
	int n = 0;

	if (msr_read("/proc/interrupts", buf, sizeof(buf)) < 0)
		return -EIO;
	snprintf(want, sizeof(want), " %s\n", name);
	for (char *p = buf; (p = strstr(p, want)); p++)
		n++;
	return n;
}

/* Unloads module `name` (its devices are unbound first); 0 or -errno. */
static inline int msr_unload_module(const char *name)
{
	return syscall(SYS_delete_module, name, O_NONBLOCK) ? -errno : 0;
}

/*
 * Whether a device's MSIs go through its IOMMU domain like any DMA on this
 * profile (sw_msi: the doorbells are mapped at IOVAs, in the reserved
 * SW_MSI window for iommufd): on arm64 (SMMUv3 + ITS), and on riscv64
 * where the IOMMU has no MSI page tables (intremap=off) or translates on
 * the first stage. Elsewhere on riscv64 the device's MSI page table
 * handles the IMSIC's addresses.
 */
static inline int msr_msis_translated(void)
{
	const char *p = msr_profile();

	/* The debug-kernel twins of the profiles (name-debug) too. */
	return strcmp(msr_arch(), "riscv64") || !strncmp(p, "riscv64-nointremap", 18) ||
	       !strncmp(p, "riscv64-s-stage", 15);
}

/*
 * The reserved MSI region of PCI device `bdf`'s IOMMU group (the "msi"
 * line of reserved_regions: the SW_MSI window, or the hardware MSI region
 * of an IOMMU that remaps MSIs itself); 0 or -errno (-ENOENT if none).
 */
static inline int msr_msi_region(const char *bdf, unsigned long long *start, unsigned long long *end)
{
	char path[256], buf[4096], *line, *save;
	int ret;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group/reserved_regions", bdf);
	ret = msr_read(path, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	ret = -ENOENT;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char type[32];

		if (sscanf(line, "%llx %llx %31s", start, end, type) == 3 && !strcmp(type, "msi")) {
			ret = 0;
			break;
		}
	}
	return ret;
}

/*
 * Reads file `name` of our RISC-V IOMMU's debugfs directory (the first
 * IOMMU); bytes read or -errno.
 */
static inline int msr_riscv_iommu_file(const char *name, char *buf, size_t len)
{
	char path[512];
	struct dirent *de;
	DIR *d = opendir("/sys/kernel/debug/riscv_iommu");
	int ret = -ENOENT;

	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			snprintf(path, sizeof(path), "/sys/kernel/debug/riscv_iommu/%s/%s", de->d_name, name);
			ret = msr_read(path, buf, len);
			break;
		}
	closedir(d);
	return ret;
}

/* A valid device context, as debugfs `contexts` lists it. */
struct msr_context {
	unsigned int rid, gscid, pscid;
	unsigned long long iohgatp, fsc, msiptp, msi_table;
};

/*
 * The valid device contexts of our RISC-V IOMMU (debugfs contexts), up to
 * `max`; their number, or -errno.
 */
static inline int msr_riscv_contexts(struct msr_context *c, int max)
{
	static char buf[1 << 16];
	int n = 0, ret = msr_riscv_iommu_file("contexts", buf, sizeof(buf));

	if (ret < 0)
		return ret;
	for (char *p = buf; *p && n < max; p = strchr(p, '\n') + 1) {
		if (sscanf(p, "device %x tc %*x iohgatp %llx ta %*x fsc %llx msiptp %llx msi_mask %*x "
			      "msi_pattern %*x gscid %u pscid %u msi_table %llx",
			   &c[n].rid, &c[n].iohgatp, &c[n].fsc, &c[n].msiptp, &c[n].gscid, &c[n].pscid,
			   &c[n].msi_table) == 7)
			n++;
		if (!strchr(p, '\n'))
			break;
	}
	return n;
}

/* The context of requester id `rid` among `n` contexts, NULL if none. */
static inline const struct msr_context *msr_context_of(const struct msr_context *c, int n,
							unsigned int rid)
{
	for (int i = 0; i < n; i++)
		if (c[i].rid == rid)
			return &c[i];
	return NULL;
}

/* The requester id of PCI device `bdf` (bus, device, function). */
static inline unsigned int msr_pci_rid(const char *bdf)
{
	unsigned int bus = 0, dev = 0, fn = 0;

	sscanf(bdf, "%*x:%x:%x.%x", &bus, &dev, &fn);
	return bus << 8 | dev << 3 | fn;
}

/*
 * Checks every device context our RISC-V IOMMU driver wrote against two
 * rules of the RISC-V IOMMU specification: no MSI page table beside a
 * Bare second stage ("When DC.iohgatp.MODE is Bare, DC.msiptp.MODE must be
 * set to Off by software", device-context configuration checks), and
 * contexts with one GSCID have one second-stage table and one MSI table
 * (the IOATC tags MSI PTEs by GSCID and address). Returns the number of
 * valid contexts, or -1 with the first violation in `why`.
 */
static inline int msr_riscv_contexts_check(char *why, size_t len)
{
	static struct msr_context c[256];
	int n = msr_riscv_contexts(c, 256);

	snprintf(why, len, "no contexts (%d)", n);
	if (n <= 0)
		return -1;
	for (int i = 0; i < n; i++) {
		if (c[i].msiptp >> 60 && !(c[i].iohgatp >> 60)) {
			snprintf(why, len, "device %#x: msiptp %#llx beside a Bare iohgatp", c[i].rid,
				 c[i].msiptp);
			return -1;
		}
		for (int j = 0; j < i; j++) {
			if (!(c[i].iohgatp >> 60) || c[j].gscid != c[i].gscid || !(c[j].iohgatp >> 60))
				continue;
			if (c[j].msi_table != c[i].msi_table || c[j].iohgatp != c[i].iohgatp) {
				snprintf(why, len,
					 "GSCID %u: device %#x iohgatp %#llx msi_table %#llx, "
					 "device %#x iohgatp %#llx msi_table %#llx",
					 c[i].gscid, c[j].rid, c[j].iohgatp, c[j].msi_table, c[i].rid,
					 c[i].iohgatp, c[i].msi_table);
				return -1;
			}
		}
	}
	return n;
}

/*
 * Counter `key` of our RISC-V IOMMU's debugfs stats (reading the file drains
 * the fault queue); -1 when absent.
 */
static inline long msr_riscv_iommu_stat(const char *key)
{
	char buf[1024];

	if (msr_riscv_iommu_file("stats", buf, sizeof(buf)) < 0)
		return -1;
	return msr_key_value(buf, key);
}

/*
 * The MSI capability of PCI device `bdf`, from its config space: the
 * message address and data, and the config offsets of the address (low
 * word) and data fields. 0 or -errno (-ENOENT without the capability).
 */
static inline int msr_pci_msi(const char *bdf, unsigned long long *addr, unsigned int *data,
			      int *addr_off, int *data_off)
{
	unsigned char cfg[256];
	char path[256];
	int fd, n, pos;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, cfg, sizeof(cfg), 0);
	close(fd);
	if (n < 64)
		return -EIO;
	for (pos = cfg[0x34] & ~3; pos && pos < n - 16; pos = cfg[pos + 1] & ~3) {
		unsigned int ctrl = cfg[pos + 2] | cfg[pos + 3] << 8;
		int is64 = ctrl & 0x80;

		if (cfg[pos] != 0x05)
			continue;
		*addr_off = pos + 4;
		*data_off = pos + (is64 ? 12 : 8);
		*addr = (unsigned long long)(cfg[pos + 4] | cfg[pos + 5] << 8 | cfg[pos + 6] << 16 |
					     (unsigned int)cfg[pos + 7] << 24);
		if (is64)
			*addr |= (unsigned long long)(cfg[pos + 8] | cfg[pos + 9] << 8 | cfg[pos + 10] << 16 |
						      (unsigned int)cfg[pos + 11] << 24) << 32;
		*data = cfg[*data_off] | cfg[*data_off + 1] << 8;
		return 0;
	}
	return -ENOENT;
}

/* Writes a 32-bit word of PCI device `bdf`'s config space; 0 or -errno. */
static inline int msr_pci_config_write32(const char *bdf, int off, unsigned int val)
{
	unsigned char b[4] = { val, val >> 8, val >> 16, val >> 24 };
	char path[256];
	int fd, n;

	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pwrite(fd, b, 4, off);
	close(fd);
	return n == 4 ? 0 : -EIO;
}

/* The hart id of Linux CPU `cpu` (/proc/cpuinfo), -1 if not found. */
static inline int msr_cpu_hart(int cpu)
{
	static char buf[1 << 14];
	char want[32], *p;

	if (msr_read("/proc/cpuinfo", buf, sizeof(buf)) < 0)
		return -1;
	snprintf(want, sizeof(want), "processor\t: %d\n", cpu);
	p = strstr(buf, want);
	p = p ? strstr(p, "hart\t\t: ") : NULL;
	return p ? atoi(p + 8) : -1;
}

/*
 * The supervisor interrupt file of Linux CPU `cpu` on QEMU virt's IMSIC
 * (0x28000000, one page per file, 2^guest-index-bits files per hart; the
 * boot hart, CPU 0, need not be hart 0).
 */
static inline unsigned long long msr_imsic_file(int cpu)
{
	unsigned char bits[8] = { 0 };
	char path[256];
	struct dirent *de;
	int guest_bits = 0;
	DIR *d = opendir("/proc/device-tree/soc");

	while (d && (de = readdir(d)))
		if (!strncmp(de->d_name, "interrupt-controller@28", 23)) {
			snprintf(path, sizeof(path), "/proc/device-tree/soc/%s/riscv,guest-index-bits", de->d_name);
			if (msr_read(path, (char *)bits, sizeof(bits)) >= 4)
				guest_bits = bits[3];
		}
	if (d)
		closedir(d);
	return 0x28000000ULL + ((unsigned long long)msr_cpu_hart(cpu) << (12 + guest_bits));
}

/* Whether `addr` lies in some CPU's IMSIC supervisor file (riscv64). */
static inline int msr_is_imsic_file(unsigned long long addr)
{
	for (int cpu = 0; cpu < sysconf(_SC_NPROCESSORS_CONF); cpu++)
		if ((addr & ~0xfffULL) == msr_imsic_file(cpu))
			return 1;
	return 0;
}

/*
 * Our RISC-V IOMMU's MSI page-table entry of device `bdf` for doorbell
 * `addr` (debugfs `msi`): the target and reference count, and whether it is
 * a vCPU redirection. Returns the number of valid entries of the device,
 * -ENOENT when the device has no table; *refs is -1 when `addr` has no
 * valid entry.
 */
/*
 * The lines of PCI device `bdf`'s table in the IOMMU's debugfs `msi` file,
 * from *p (the newline before the first) to *end (NULL: the file's end);
 * 0, or -ENOENT when the device has no table. A static buffer.
 */
static int msr_msi_held, msr_msi_cached;

/*
 * While held, msr_riscv_msi_section() parses the `msi` file as last read
 * instead of reading it again: for loops over many vectors of a table
 * that does not change meanwhile.
 */
static inline void msr_riscv_msi_hold(int hold)
{
	msr_msi_held = hold ? 1 : 0;
	msr_msi_cached = 0;
}

static inline int msr_riscv_msi_section(const char *bdf, char **p, char **end)
{
	static char buf[1 << 16];
	char want[64];

	if (!(msr_msi_held && msr_msi_cached)) {
		if (msr_riscv_iommu_file("msi", buf, sizeof(buf)) < 0)
			return -ENOENT;
		msr_msi_cached = 1;
	}
	snprintf(want, sizeof(want), "device %s ", bdf);
	*p = strstr(buf, want);
	if (!*p)
		return -ENOENT;
	*end = strstr(*p + 1, "device ");
	*p = strchr(*p, '\n');
	return 0;
}

static inline int msr_riscv_msi_entry(const char *bdf, unsigned long long addr,
				      unsigned long long *target, int *refs, int *vcpu)
{
	char *p, *end;
	int n = 0;

	*refs = -1;
	if (msr_riscv_msi_section(bdf, &p, &end))
		return -ENOENT;
	for (; p && *p && (!end || p < end); p = strchr(p + 1, '\n')) {
		unsigned long long a, t;
		int r, len = 0;

		if (sscanf(p, "\n  %llx -> %llx refs %d%n", &a, &t, &r, &len) != 3)
			continue;
		n++;
		if (a == addr) {
			*target = t;
			*refs = r;
			*vcpu = !strncmp(p + len, " vcpu", 5);
		}
	}
	return n;
}

/*
 * The MSI message of interrupt `irq`, as its MSI domain last wrote it
 * (/sys/kernel/debug/irq/irqs/<irq>). 0, or -errno.
 */
static inline int msr_irq_msg(int irq, unsigned long long *addr, unsigned int *data)
{
	char path[64], buf[8192], *lo, *hi, *d;

	snprintf(path, sizeof(path), "/sys/kernel/debug/irq/irqs/%d", irq);
	if (msr_read(path, buf, sizeof(buf)) < 0)
		return -errno;
	lo = strstr(buf, "address_lo: ");
	hi = strstr(buf, "address_hi: ");
	d = strstr(buf, "msg_data:   ");
	if (!lo || !hi || !d)
		return -ENOENT;
	*addr = strtoull(hi + 12, NULL, 16) << 32 | strtoull(lo + 12, NULL, 16);
	*data = strtoul(d + 12, NULL, 16);
	return 0;
}

/*
 * Whether the RISC-V IOMMU's MSI page tables are in MRIF mode (its debugfs
 * stats): devices' vectors then end at the remapping domain, in MRIFs of
 * their own, and the domain claims isolated MSIs.
 */
static inline int msr_riscv_mrif(void)
{
	/* Fixed while the module is loaded with the same parameters. */
	static int mrif = -1;
	char stats[2048];

	if (mrif >= 0)
		return mrif;
	if (msr_riscv_iommu_file("stats", stats, sizeof(stats)) < 0)
		return 0;
	mrif = strstr(stats, " mode mrif\n") != NULL;
	return mrif;
}

/*
 * The MRIF entries of PCI device `bdf`'s MSI table (debugfs msi): for the
 * doorbell `addr`, the MRIF it names and its notice's file and identity
 * (*mrif stays 0 when `addr` names none). Returns the number of MRIF
 * entries of the device, -ENOENT when it has no table.
 */
static inline int msr_riscv_mrif_entry(const char *bdf, unsigned long long addr,
				       unsigned long long *mrif, unsigned long long *notice, int *id)
{
	char *p, *end;
	int n = 0;

	*mrif = 0;
	if (msr_riscv_msi_section(bdf, &p, &end))
		return -ENOENT;
	for (; p && *p && (!end || p < end); p = strchr(p + 1, '\n')) {
		unsigned long long a, m, f;
		int i;

		if (sscanf(p, "\n  %llx -> mrif %llx notice %llx id %d", &a, &m, &f, &i) != 4)
			continue;
		n++;
		if (a == addr) {
			*mrif = m;
			*notice = f;
			*id = i;
		}
	}
	return n;
}

/*
 * The host interrupt file a remapped doorbell of PCI device `bdf` reaches:
 * the doorbell's own page with flat entries, the notice file of the MRIF
 * entry it names in MRIF mode; 0 if neither.
 */
static inline unsigned long long msr_doorbell_file(const char *bdf, unsigned long long addr)
{
	unsigned long long mrif, notice = 0;
	int id;

	if (!msr_riscv_mrif())
		return msr_is_imsic_file(addr) ? addr & ~0xfffULL : 0;
	if (msr_riscv_mrif_entry(bdf, addr, &mrif, &notice, &id) <= 0 || !mrif)
		return 0;
	return msr_is_imsic_file(notice) ? notice : 0;
}

/*
 * Whether the kernel log has a translation-fault line for a write to `iova`
 * by PCI device `bdf`: from our RISC-V IOMMU (either stage's write fault) or
 * from arm64's SMMUv3. `what` receives the expectation, for messages.
 */
static inline int msr_fault_logged(const char *bdf, unsigned long long iova, char *what, size_t len)
{
	unsigned int bus = 0, dev = 0, fn = 0;
	char who[96], where[48];
	const char *log = msr_kernel_log(), *line;

	sscanf(bdf, "%*x:%x:%x.%x", &bus, &dev, &fn);
	if (!strcmp(msr_arch(), "riscv64")) {
		snprintf(who, sizeof(who), "fault: device %#06x cause ", bus << 8 | dev << 3 | fn);
		snprintf(where, sizeof(where), "write/AMO iova %#llx ", iova);
	} else {
		snprintf(who, sizeof(who), "F_TRANSLATION client: %s ", bdf);
		snprintf(where, sizeof(where), "iova: %#llx ", iova);
	}
	snprintf(what, len, "'%s...%s'", who, where);
	for (line = log; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		const char *end = strchr(line, '\n'), *w = strstr(line, who);

		if (w && (!end || w < end)) {
			const char *x = strstr(w, where);

			if (x && (!end || x < end))
				return 1;
		}
	}
	return 0;
}

/*
 * Waits up to two seconds until interrupt `irq` has no affinity change in
 * flight: neither the core's deferred one (IRQD_SETAFFINITY_PENDING, done at
 * the interrupt's next occurrence where the device cannot mask it) nor the
 * IMSIC's (its old vector is released only when the old CPU syncs, from a
 * timer). While the IMSIC's is in flight, a new affinity write gets -EBUSY
 * from imsic_irq_set_affinity(), which irq_try_set_affinity() turns into a
 * pending move done at the next interrupt, on the old CPU; the write itself
 * succeeds. 1 when settled, 0 when not, -errno.
 */
static inline int msr_irq_move_settled(int irq)
{
	static char buf[16384];
	char path[64];

	snprintf(path, sizeof(path), "/sys/kernel/debug/irq/irqs/%d", irq);
	for (int t = 0; t < 200; t++) {
		const char *p;

		if (msr_read(path, buf, sizeof(buf)) < 0)
			return -errno;
		p = strstr(buf, "is_move_pending :");
		if (!strstr(buf, "IRQD_SETAFFINITY_PENDING") &&
		    (!p || !atoi(p + strlen("is_move_pending :"))))
			return 1;
		usleep(10000);
	}
	return 0;
}

#endif /* MSIREMAP_TEST_H */
