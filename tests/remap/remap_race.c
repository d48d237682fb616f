// SPDX-License-Identifier: GPL-2.0
/*
 * Freeing an interrupt of the remapping domain while its affinity is being
 * changed. The domain's chip reaches the driver's per-interrupt data (the
 * chip data) from every affinity change; `/proc/irq/N/smp_affinity` writes
 * call the chip in process context for interrupts whose top chip moves
 * them there, such as edu's IMS vectors (only PCI/MSI(-X) moves are
 * deferred to the next interrupt). A free that lets the data go while a
 * change still uses it is a use-after-free, which KASAN reports.
 *
 * The window is widened on the debug kernels: an affinity change made by a
 * task named "irq-remap-slow" holds the interrupt's data for 2 ms before
 * using it (rust/kernel/irq/remap.rs, widen_for_tests()). A thread of that
 * name rewrites one IMS vector's affinity in a loop while the main thread
 * frees the vector; 100 rounds, then the kernel log must hold no report.
 * Elsewhere the test is skipped: nothing widens the window there.
 */
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/sysinfo.h>
#include <time.h>

#include "kselftest_harness.h"
#include "msiremap.h"

#define ROUNDS		100
#define SLOW_TASK	"irq-remap-slow"	/* widen_for_tests()'s task name */
#define WIDENED_NS	2000000			/* what widen_for_tests() waits */

static char ims_path[256];

static long long now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The first allocated IMS slot and its interrupt, into `slot` and `irq`; 0 or -ENOENT. */
static int ims_first(int *slot, int *irq)
{
	static char buf[1 << 16];
	char *line, *save;

	if (msr_read(ims_path, buf, sizeof(buf)) < 0)
		return -EIO;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		if (sscanf(line, "slot %d irq %d", slot, irq) == 2)
			return 0;
	return -ENOENT;
}

struct writer {
	int irq;
	volatile int stop;
	volatile int writes;	/* affinity changes that went through */
	long long longest_ns;	/* the longest of them */
	volatile long long last_ns;	/* when the last of them ended */
	volatile int err;	/* errno of the last change that failed */
};

/*
 * Moves the interrupt between CPU 0 and CPU 1 until told to stop or until
 * the interrupt is gone, as a task named SLOW_TASK.
 */
static void *rewrite_affinity(void *arg)
{
	struct writer *w = arg;
	char path[64];
	int fd;

	prctl(PR_SET_NAME, SLOW_TASK);
	snprintf(path, sizeof(path), "/proc/irq/%d/smp_affinity", w->irq);
	fd = open(path, O_WRONLY);
	if (fd < 0) {
		w->err = errno;
		return NULL;
	}
	for (int i = 0; !w->stop; i++) {
		long long t = now_ns();

		if (write(fd, i & 1 ? "2\n" : "1\n", 2) != 2) {
			w->err = errno;	/* the interrupt is being freed */
			continue;
		}
		w->last_ns = now_ns();
		if (w->last_ns - t > w->longest_ns)
			w->longest_ns = w->last_ns - t;
		w->writes++;
	}
	close(fd);
	return NULL;
}

FIXTURE(race)
{
	char bdf[32];
};

FIXTURE_SETUP(race)
{
	if (get_nprocs() < 2)
		SKIP(return, "one CPU: no affinity to change");
	ASSERT_EQ(0, msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, self->bdf, sizeof(self->bdf)));
	snprintf(ims_path, sizeof(ims_path), "/sys/kernel/debug/qemu_edu/%s/ims", self->bdf);
	if (access(ims_path, W_OK))
		SKIP(return, "qemu_edu has no IMS here");
	msr_write(ims_path, "free all");
}

FIXTURE_TEARDOWN(race)
{
	msr_write(ims_path, "free all");
}

/*
 * An IMS vector of edu is freed while a thread changes its affinity through
 * /proc, ROUNDS times; no KASAN (or other) report may follow. The thread's
 * changes must have been slowed by the widened window, or the test proves
 * nothing and is skipped.
 */
TEST_F_TIMEOUT(race, free_while_smp_affinity_is_written, 600)
{
	static const char marker[] = "remap_race: free_while_smp_affinity_is_written";
	int overlapped = 0, slot;
	const char *log;

	ASSERT_EQ(0, msr_write("/dev/kmsg", marker));
	for (int round = 0; round < ROUNDS; round++) {
		struct writer w = { 0 };
		pthread_t t;

		char cmd[32];
		long long freeing;

		ASSERT_EQ(0, msr_write(ims_path, "alloc 1"));
		ASSERT_EQ(0, ims_first(&slot, &w.irq));
		ASSERT_LT(0, w.irq);
		ASSERT_EQ(0, pthread_create(&t, NULL, rewrite_affinity, &w));
		/* Free once the thread is in its loop, somewhere in a change. */
		for (int ms = 0; !w.writes && ms < 5000; ms++)
			usleep(1000);
		if (!w.writes) {
			w.stop = 1;
			pthread_join(t, NULL);
			ASSERT_LT(0, w.writes) TH_LOG("irq %d: no affinity change went through: %s",
						      w.irq, strerror(w.err));
		}
		if (round == 0 && access("/proc/self/make-it-fail", F_OK)) {
			/*
			 * No CONFIG_FAULT_INJECTION: no widened window. Told by
			 * the kernel's configuration, not by how long a change
			 * took, which a loaded machine stretches anyway.
			 */
			w.stop = 1;
			pthread_join(t, NULL);
			SKIP(return, "no widened window (debug kernels only)");
		}
		if (round == 0) {
			ASSERT_LE(WIDENED_NS, w.longest_ns)
			TH_LOG("a debug kernel, yet no change was held in the window");
		}
		usleep(round % 20 * 100);
		snprintf(cmd, sizeof(cmd), "free %d", slot);
		freeing = now_ns();
		ASSERT_EQ(0, msr_write(ims_path, cmd));
		/* A change ended after the free began: it ran beside the free. */
		overlapped += w.last_ns > freeing;
		w.stop = 1;
		pthread_join(t, NULL);
	}
	TH_LOG("%d of %d frees ran beside an affinity change", overlapped, ROUNDS);
	EXPECT_LT(ROUNDS / 2, overlapped);

	log = msr_kernel_log_since(marker);
	EXPECT_EQ(NULL, strstr(log, "KASAN")) TH_LOG("%s", log);
	EXPECT_EQ(NULL, strstr(log, "BUG:")) TH_LOG("%s", log);
	EXPECT_EQ(NULL, strstr(log, "WARNING:")) TH_LOG("%s", log);
}

TEST_HARNESS_MAIN
