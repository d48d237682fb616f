// SPDX-License-Identifier: GPL-2.0
/*
 * A small VMM, on the KVM API directly: a bare-metal guest with the
 * in-kernel interrupt controller and edu passed through with VFIO cdev +
 * iommufd. Guest RAM is mapped into the device's IOAS at IOVA = GPA, BAR0
 * is a memory slot of the guest, and the device's MSI is routed to the
 * vCPU with KVM_SET_GSI_ROUTING and KVM_IRQFD.
 *
 * The guest (guest_riscv64.h, guest_arm64.h) enables its interrupt
 * controller, makes edu raise its MSI N times, each waited for, then has
 * edu copy a buffer of guest RAM and interrupt on completion, and reports
 * to us: an SBI call KVM forwards (riscv64), an MMIO write (arm64).
 *
 * Two paths, told apart by the host's interrupt count on the device's
 * vector. Bypass: KVM's irqbypass sends edu's MSI straight into the vCPU's
 * interrupt file: on riscv64 our IOMMU's remapping domain points an MSI
 * table entry at the VS-file of the hart the vCPU runs on (patch 0017,
 * kvm.irqbypass=1), on arm64 the host's GICv4 ITS maps it as a vLPI
 * (kvm-arm.vgic_v4_enable=1): no host interrupt. Relay: edu's MSI is a host
 * interrupt, vfio-pci signals the eventfd, KVM's irqfd injects it: one host
 * interrupt per MSI.
 */
#if defined(__riscv) || defined(__aarch64__)
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <linux/kvm.h>

#include "kselftest_harness.h"
#include "vfio_utils.h"

/* Guest-physical layout, chosen by this VMM: nothing mirrors the host's. */
#define GUEST_RAM	0x01000000ULL	/* below edu's 28-bit DMA mask */
#define GUEST_RAM_SIZE	0x00200000ULL
#define GUEST_PARAMS	(GUEST_RAM + 0x100000)
#define GUEST_DMA_SRC	(GUEST_RAM + 0x140000)
#define GUEST_DMA_DST	(GUEST_RAM + 0x180000)
#define GUEST_BAR	0x40000000ULL
#define GSI		1

/* What the guest reports. */
#define GUEST_DONE	0
#define GUEST_FAIL	1	/* an exception: cause, sepc, stval */
#define GUEST_MID	2	/* `mid` MSIs taken, once */
#define GUEST_READY	3	/* its interrupt controller is set up */

/* What the guest reads and writes at GUEST_PARAMS (offsets in riscv64's asm). */
struct guest_params {
	uint64_t bar;		/*  0: GPA of edu's BAR0 */
	uint64_t n;		/*  8: MSIs to raise */
	uint64_t id;		/* 16: the identity expected */
	uint64_t count;		/* 24: interrupts taken with that identity */
	uint64_t wrong;		/* 32: interrupts taken with another one */
	uint64_t last_id;	/* 40 */
	uint64_t lat_sum;	/* 48: raise to handler, time CSR ticks */
	uint64_t lat_max;	/* 56 */
	uint64_t dma_len;	/* 64: 0 for no DMA phase */
	uint64_t dma_src;	/* 72 */
	uint64_t dma_dst;	/* 80 */
	uint64_t dma_ok;	/* 88: 1 copied right, 2 wrong */
	uint64_t t_raise;	/* 96: scratch */
	uint64_t cause;		/* 104: an exception's scause (arm64: ESR) */
	uint64_t sepc;		/* 112: and where (ELR) */
	uint64_t stval;		/* 120: and what (FAR) */
	uint64_t mid;		/* 128: report after this many MSIs, 0 never */
	uint64_t t_first;	/* 136: time CSR at the first raise */
	uint64_t t_last;	/* 144: and after the last interrupt */
	uint64_t freq;		/* 152: counter ticks per second (arm64) */
};

static struct kvm_run *volatile watchdog_run;

/* SIGALRM: make KVM_RUN return (it fails with EINTR, or exits at once). */
static void watchdog(int sig)
{
	if (watchdog_run)
		watchdog_run->immediate_exit = 1;
}

static int set_reg(int vcpu, uint64_t id, uint64_t val)
{
	struct kvm_one_reg r = { .id = id, .addr = (uintptr_t)&val };

	return _ioctl(vcpu, KVM_SET_ONE_REG, &r);
}

/* A VM with one vCPU, RAM holding the guest, and its interrupt controller. */
struct vm {
	int vm, vcpu, irqchip, its;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *ram;
	struct guest_params *params;
	/* Called at the guest's GUEST_MID and GUEST_READY, in the vCPU's thread. */
	int (*mid)(struct vm *vm);
	int (*ready)(struct vm *vm);
	/* What `ready` may use: the rig the VM is part of. */
	void *data;
};

#if defined(__riscv)
#include "guest_riscv64.h"
#else
#include "guest_arm64.h"
#endif

/* The /proc/interrupts line naming `what` (in a static buffer), or NULL. */
static char *host_irq_line(const char *what)
{
	static char buf[1 << 20];
	char *line;

	if (msr_read("/proc/interrupts", buf, sizeof(buf)) < 0)
		return NULL;
	line = strstr(buf, what);
	if (!line)
		return NULL;
	while (line > buf && line[-1] != '\n')
		line--;
	return line;
}

/* The sum over CPUs of the /proc/interrupts line naming `what`, or -1. */
static long host_irqs(const char *what)
{
	char *line = host_irq_line(what), *p;
	long sum = -1;

	if (!line)
		return -1;
	p = strchr(line, ':');
	if (!p)
		return -1;
	p++;
	for (sum = 0;;) {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		sum += v;
		p = end;
	}
	return sum;
}

/* Runs the calling thread, and so the vCPU it runs, on CPU `cpu` only. */
static int pin_to(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ? -errno : 0;
}

/* A CPU kept busy by a real-time spinner (cpu_hold()), and what to restore. */
struct cpu_hold {
	pid_t spinner;
	char rt_runtime[32], fair_runtime[32], fair_path[96];
};

/* What a test holds, released by the fixture's teardown if it fails first. */
static struct cpu_hold cpu_held;

static void cpu_release(struct cpu_hold *h)
{
	if (h->spinner > 0) {
		kill(h->spinner, SIGKILL);
		waitpid(h->spinner, NULL, 0);
		h->spinner = 0;
	}
	if (h->fair_runtime[0])
		msr_write(h->fair_path, msr_chomp(h->fair_runtime));
	if (h->rt_runtime[0])
		msr_write("/proc/sys/kernel/sched_rt_runtime_us", msr_chomp(h->rt_runtime));
}

/* The calling thread real-time at `prio`, or back to SCHED_OTHER at 0. */
static int set_rt(int prio)
{
	struct sched_param p = { .sched_priority = prio };

	return sched_setscheduler(0, prio ? SCHED_FIFO : SCHED_OTHER, &p) ? -errno : 0;
}

#define NO_FD	{ .vm = -1, .vcpu = -1, .irqchip = -1, .its = -1 }

/*
 * Makes a VM on `kvm` (riscv64: AIA in `mode`); 0 or -errno, with what was
 * made in `v` either way (vm_destroy() frees it).
 */
static int vm_create(struct vm *v, int kvm, uint32_t mode)
{
	struct kvm_userspace_memory_region ram = {
		.slot = 0,
		.guest_phys_addr = GUEST_RAM,
		.memory_size = GUEST_RAM_SIZE,
	};
	int ret;

	*v = (struct vm)NO_FD;
	v->ram = mmap(NULL, GUEST_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (v->ram == MAP_FAILED) {
		v->ram = NULL;
		return -ENOMEM;
	}
	memcpy(v->ram, __start_guest_code, __stop_guest_code - __start_guest_code);
	v->params = (struct guest_params *)(v->ram + (GUEST_PARAMS - GUEST_RAM));
	v->params->id = GUEST_EXPECT_ID;
	v->vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (v->vm < 0)
		return -errno;
	ram.userspace_addr = (uintptr_t)v->ram;
	ret = _ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &ram);
	if (ret)
		return ret;
	ret = arch_vm_init(v, kvm, mode);
	if (ret)
		return ret;
	v->run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void vm_destroy(struct vm *v)
{
	int fds[] = { v->its, v->irqchip, v->vcpu, v->vm };

	if (v->run)
		munmap(v->run, v->run_size);
	for (unsigned int i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (v->ram)
		munmap(v->ram, GUEST_RAM_SIZE);
	*v = (struct vm)NO_FD;
}

/*
 * Runs the guest until it reports, at most `secs` seconds: 0 when it is
 * done, -EIO when it took an exception, -ETIMEDOUT, -ENXIO when KVM could
 * not enter it (riscv64: no guest interrupt file free on this hart), or
 * another -errno.
 */
static int vm_run(struct __test_metadata *_metadata, struct vm *v, int secs)
{
	struct kvm_run *run = v->run;
	int ret, code;

	watchdog_run = run;
	alarm(secs);
	for (;;) {
		if (ioctl(v->vcpu, KVM_RUN, 0)) {
			ret = -errno;
			if (ret == -EINTR && run->immediate_exit)
				ret = -ETIMEDOUT;
			else
				TH_LOG("KVM_RUN: %s", strerror(-ret));
			break;
		}
		ret = arch_exit(run, &code);
		if (ret == 0)
			continue;
		if (ret < 0) {
			if (ret != -ENXIO)
				TH_LOG("unexpected exit %u (MMIO at %#llx)", run->exit_reason,
				       (unsigned long long)run->mmio.phys_addr);
			break;
		}
		if (code == GUEST_MID || code == GUEST_READY) {
			int (*hook)(struct vm *) = code == GUEST_MID ? v->mid : v->ready;

			ret = hook ? hook(v) : 0;
			if (ret)
				break;
			continue;
		}
		ret = code == GUEST_DONE ? 0 : -EIO;
		if (ret)
			TH_LOG("guest exception: cause %#lx at %#lx, address %#lx",
			       (long)v->params->cause, (long)v->params->sepc, (long)v->params->stval);
		break;
	}
	alarm(0);
	run->immediate_exit = 0;
	watchdog_run = NULL;
	return ret;
}

/* edu passed through to a VM: what every test and the benchmark start from. */
struct rig {
	char bdf[32], vfio_irq[64];
	int iommufd, devfd, kvm, efd;
	__u32 devid, ioas;
	volatile uint32_t *bar;
	size_t bar_size;
	struct vm v;
	/* The route rig_route() installs. */
	uint64_t route_addr;
	uint32_t route_devid;
};

/*
 * Pins the caller to CPU 0, makes the VM and hands it edu: guest RAM in
 * edu's IOAS at IOVA = GPA, BAR0 a memory slot of the guest, edu's MSI an
 * eventfd of vfio-pci's. 0 or -errno, saying which step failed; what was
 * made is in `r` either way (rig_close() frees it).
 */
static int rig_open_mode(struct rig *r, uint32_t mode)
{
	struct kvm_userspace_memory_region bar = { .slot = 1, .guest_phys_addr = GUEST_BAR };
	const char *step;
	int ret;

	*r = (struct rig){ .iommufd = -1, .devfd = -1, .kvm = -1, .efd = -1, .v = NO_FD };
	signal(SIGALRM, watchdog);
	ret = pin_to(0);
	step = "pinning to CPU 0";
	if (!ret) {
		/* Posting by default; on arm64 the boot decides (EOPNOTSUPP). */
		ret = arch_bypass(1);
		ret = ret == -EOPNOTSUPP ? 0 : ret;
		step = "posting MSIs (KVM without irqbypass?)";
	}
	if (!ret) {
		ret = msr_find_pci(EDU_VENDOR, EDU_DEVICE, 0, r->bdf, sizeof(r->bdf));
		step = "finding edu";
	}
	if (!ret) {
		snprintf(r->vfio_irq, sizeof(r->vfio_irq), "vfio-msi[0](%s)", r->bdf);
		r->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		ret = r->kvm < 0 ? -errno : 0;
		step = "/dev/kvm";
	}
	if (!ret) {
		ret = vm_create(&r->v, r->kvm, mode);
		step = "a VM with its interrupt controller (riscv64: guest interrupt files?)";
	}
	if (!ret) {
		r->v.params->bar = GUEST_BAR;
		r->v.data = r;
		ret = _vfio_pci_take(r->bdf) ?:
		      _vfio_open_bound(r->bdf, &r->iommufd, &r->devfd, &r->devid) ?:
		      _ioas_alloc(r->iommufd, &r->ioas) ?:
		      _vfio_attach(r->devfd, r->ioas);
		step = "edu to VFIO cdev + iommufd";
	}
	if (!ret) {
		r->bar = vfio_map_bar(r->devfd, VFIO_PCI_BAR0_REGION_INDEX, &r->bar_size);
		ret = r->bar ? vfio_enable_bus_master(r->devfd) : -ENXIO;
		step = "edu's BAR0";
	}
	if (!ret) {
		ret = _ioas_map_fixed(r->iommufd, r->ioas, r->v.ram, GUEST_RAM_SIZE, GUEST_RAM);
		step = "guest RAM into the IOAS";
	}
	if (!ret) {
		bar.memory_size = r->bar_size;
		bar.userspace_addr = (uintptr_t)r->bar;
		ret = _ioctl(r->v.vm, KVM_SET_USER_MEMORY_REGION, &bar);
		step = "BAR0 into the guest";
	}
	if (!ret) {
		r->efd = eventfd(0, EFD_CLOEXEC);
		ret = r->efd < 0 ? -errno : _vfio_set_msi(r->devfd, r->efd);
		step = "edu's MSI to an eventfd";
	}
	if (ret)
		ksft_print_msg("%s: %s\n", step, strerror(-ret));
	return ret;
}

static int rig_open(struct rig *r)
{
	return rig_open_mode(r, VM_MODE);
}

static void rig_close(struct rig *r)
{
	vm_destroy(&r->v);
	if (r->devfd >= 0)
		_vfio_set_msi(r->devfd, -1);
	if (r->efd >= 0)
		close(r->efd);
	if (r->kvm >= 0)
		close(r->kvm);
	if (r->bdf[0])
		vfio_release(r->bdf, r->bar, r->bar_size, r->devfd, r->iommufd);
	arch_bypass(1);
}

/* Routes edu's MSI (its eventfd) to `addr` with the guest's data, from `devid`. */
static int route_msi(int vm, int efd, uint64_t addr, uint32_t devid)
{
	struct {
		struct kvm_irq_routing r;
		struct kvm_irq_routing_entry e[1];
	} routing = {
		.r = { .nr = 1 },
		.e[0] = {
			.gsi = GSI,
			.type = KVM_IRQ_ROUTING_MSI,
			.flags = ROUTE_FLAGS,
			.u.msi = {
				.address_lo = (uint32_t)addr,
				.address_hi = addr >> 32,
				.data = ROUTE_DATA,
				.devid = devid,
			},
		},
	};
	struct kvm_irqfd irqfd = { .fd = efd, .gsi = GSI };
	int ret = _ioctl(vm, KVM_SET_GSI_ROUTING, &routing);

	return ret ? ret : _ioctl(vm, KVM_IRQFD, &irqfd);
}

static int route_when_ready(struct vm *v)
{
	struct rig *r = v->data;

	return route_msi(v->vm, r->efd, r->route_addr, r->route_devid);
}

/*
 * Routes edu's MSI to `addr` from `devid`: at once on riscv64 (KVM posts
 * it once the vCPU has a VS-file), when the guest reports its ITS ready on
 * arm64 (KVM forwards only an event the guest's ITS translates).
 */
static int rig_route(struct rig *r, uint64_t addr, uint32_t devid)
{
	r->route_addr = addr;
	r->route_devid = devid;
	if (ROUTE_AT_READY) {
		r->v.ready = route_when_ready;
		return 0;
	}
	return route_msi(r->v.vm, r->efd, addr, devid);
}

FIXTURE(kvm_edu)
{
	struct rig r;
};

FIXTURE_SETUP(kvm_edu)
{
	ASSERT_EQ(0, rig_open(&self->r));
}

FIXTURE_TEARDOWN(kvm_edu)
{
	/* A failed hotplug test leaves every CPU online. */
	if (!access("/sys/devices/system/cpu/cpu1/online", W_OK))
		msr_write("/sys/devices/system/cpu/cpu1/online", "1");
	set_rt(0);
	cpu_release(&cpu_held);
	rig_close(&self->r);
}

static void log_latency(struct __test_metadata *_metadata, const char *path, struct vm *v,
			long host)
{
	double t = arch_ticks_per_us(v);

	TH_LOG("%s: %lu MSIs, %ld host interrupts, raise to guest handler %.1f us average, %.1f max",
	       path, (unsigned long)v->params->count, host,
	       v->params->lat_sum / t / (v->params->count ?: 1), v->params->lat_max / t);
}

#define RAISES	50

/*
 * Has the guest take `n` MSIs from edu through the route installed, each
 * with the routed identity: the host interrupts on edu's vector
 * meanwhile, or -1 when the guest did not take them all.
 */
static long guest_takes(struct __test_metadata *_metadata, struct rig *r, uint64_t n)
{
	long before = host_irqs(r->vfio_irq);
	int ret;

	EXPECT_LE(0, before) TH_LOG("no %s in /proc/interrupts", r->vfio_irq);
	r->v.params->n = n;
	ret = vm_run(_metadata, &r->v, 60);
	EXPECT_EQ(0, ret);
	EXPECT_EQ(n, r->v.params->count);
	EXPECT_EQ(0, r->v.params->wrong)
		TH_LOG("last identity %lu", (unsigned long)r->v.params->last_id);
	if (before < 0 || ret || r->v.params->count != n || r->v.params->wrong)
		return -1;
	return host_irqs(r->vfio_irq) - before;
}

#ifdef __riscv
/* The VS-file (guest interrupt file 1) of CPU `cpu`'s hart: aia-guests=1. */
static unsigned long long vsfile(int cpu)
{
	return msr_imsic_file(cpu) + 0x1000;
}

/*
 * Where edu's MSI goes now: its message (from config space) and, when the
 * MSI table entry of that doorbell points at an interrupt file, that file
 * and whether it is a vCPU entry (else 0 and 0: an MRIF entry, MRIF mode);
 * 0 or -errno.
 */
static int edu_msi_target(const char *bdf, unsigned long long *addr, unsigned int *data,
			  unsigned long long *target, int *vcpu)
{
	int ao, dof, refs;
	int ret = msr_pci_msi(bdf, addr, data, &ao, &dof);

	*target = 0;
	*vcpu = 0;
	if (!ret)
		msr_riscv_msi_entry(bdf, *addr, target, &refs, vcpu);
	return ret;
}

/* edu's MSI goes to a vCPU entry pointing at `file`, with the guest's identity. */
#define EXPECT_POSTED_TO(file) do {							\
	unsigned long long addr_, target_;						\
	unsigned int data_;								\
	int vcpu_;									\
											\
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr_, &data_, &target_, &vcpu_));	\
	EXPECT_EQ(ROUTE_DATA, data_);							\
	EXPECT_EQ(file, target_);							\
	EXPECT_EQ(1, vcpu_);								\
} while (0)

/* edu's MSI goes to the host: its entry is no vCPU's. */
#define EXPECT_HOST_DELIVERY() do {							\
	unsigned long long addr_, target_;						\
	unsigned int data_;								\
	int vcpu_;									\
											\
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr_, &data_, &target_, &vcpu_));	\
	EXPECT_EQ(0, vcpu_);								\
} while (0)
#else
/* On arm64 the vLPI mapping is the host ITS's, not visible from here. */
#define EXPECT_POSTED_TO(file)	do { } while (0)
#define EXPECT_HOST_DELIVERY()	do { } while (0)
#endif

/*
 * Bypass: every MSI reaches the guest with the identity its route names,
 * and none is a host interrupt. On riscv64 edu's message names an entry of
 * its MSI table that points at the VS-file of the hart the vCPU runs on.
 */
TEST_F_TIMEOUT(kvm_edu, bypass_posts_every_msi_with_no_host_interrupt, 120)
{
	long host;

	if (arch_bypass(1))
		SKIP(return, "MSIs are not posted on this boot (%s)", "kvm-arm.vgic_v4_enable");
	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	host = guest_takes(_metadata, &self->r, RAISES);
	EXPECT_EQ(0, host);
#ifdef __riscv
	EXPECT_POSTED_TO(vsfile(0));
#endif
	log_latency(_metadata, "bypass", &self->r.v, host);
}

/*
 * Relay (riscv64: kvm.irqbypass=0; arm64: a boot without vgic_v4_enable):
 * the same MSIs arrive through the host, one host interrupt each.
 */
TEST_F_TIMEOUT(kvm_edu, relay_delivers_every_msi_through_the_host, 120)
{
	long host;

	if (arch_bypass(0))
		SKIP(return, "MSIs are posted on this boot: arm64-kvm-relay runs this");
	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	host = guest_takes(_metadata, &self->r, RAISES);
	EXPECT_EQ(RAISES, host);
	EXPECT_HOST_DELIVERY();
	log_latency(_metadata, "relay", &self->r.v, host);
}

/* The number of the /proc/interrupts line naming `what`, or -1. */
static int host_irq_number(const char *what)
{
	char *line = host_irq_line(what);

	return line ? atoi(line) : -1;
}

#define RELAY_RAISES	2000

/*
 * Relay with the host taking edu's interrupt on the other CPU (1): each
 * MSI is written into the vCPU's interrupt file from CPU 1 while the vCPU,
 * on CPU 0, goes to sleep in its WFI or has just done so, and must wake
 * it every time. A lost wakeup leaves the MSI pending in the file and the
 * guest asleep: the watchdog ends the run, and the guest, run again, takes
 * the MSI at once.
 */
TEST_F_TIMEOUT(kvm_edu, relay_from_another_cpu_wakes_the_vcpu_for_every_msi, 300)
{
	long before, host;
	char path[64];
	int irq, ret;

	if (arch_bypass(0))
		SKIP(return, "MSIs are posted on this boot: arm64-kvm-relay runs this");
	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	irq = host_irq_number(self->r.vfio_irq);
	ASSERT_LT(0, irq);
	snprintf(path, sizeof(path), "/proc/irq/%d/smp_affinity_list", irq);
	ASSERT_EQ(0, msr_write(path, "1"));
	before = host_irqs(self->r.vfio_irq);
	self->r.v.params->n = RELAY_RAISES;
	ret = vm_run(_metadata, &self->r.v, 20);
	host = host_irqs(self->r.vfio_irq) - before;
	EXPECT_EQ(0, ret);
	EXPECT_EQ(RELAY_RAISES, self->r.v.params->count);
	EXPECT_EQ(RELAY_RAISES, host);
	if (ret) {
		unsigned long taken = self->r.v.params->count;

		TH_LOG("asleep after %lu of %d MSIs, %ld host interrupts%s", taken, RELAY_RAISES,
		       host, arch_pending(&self->r.v) ? ", the next one pending in its file" : "");
		ret = vm_run(_metadata, &self->r.v, 20);
		TH_LOG("run again: %d, %lu more MSIs", ret,
		       (unsigned long)self->r.v.params->count - taken);
	}
}

/* At the guest's midpoint, the vCPU's thread moves to CPU 1. */
static int move_to_cpu1(struct vm *v)
{
	return pin_to(1);
}

/* The child that takes CPU 1 offline under the running vCPU. */
static pid_t offliner;

#define CPU1_ONLINE	"/sys/devices/system/cpu/cpu1/online"

/* At the guest's midpoint, CPU 1 goes offline under the vCPU's thread. */
static int offline_cpu1(struct vm *v)
{
	offliner = fork();
	if (offliner < 0)
		return -errno;
	if (offliner == 0) {
		/* From CPU 0, once the vCPU runs again. */
		_exit(pin_to(0) || usleep(2000) || msr_write(CPU1_ONLINE, "0"));
	}
	return 0;
}

/*
 * CPU hotplug: the vCPU runs on CPU 1, posted to its VS-file, when CPU 1
 * goes offline mid-stream. The scheduler moves the vCPU's thread to CPU 0
 * (its affinity broken; arm64: the vPE moves). Every MSI reaches the
 * guest, none with another identity, and edu's MSI never stays on the
 * VS-file of the hart that went away.
 */
TEST_F_TIMEOUT(kvm_edu, bypass_follows_the_vcpu_off_a_cpu_going_offline, 120)
{
	int status = -1;

	if (arch_bypass(1))
		SKIP(return, "MSIs are not posted on this boot");
	if (access(CPU1_ONLINE, W_OK))
		SKIP(return, "CPU 1 cannot go offline here");
	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	ASSERT_EQ(0, pin_to(1));
	self->r.v.params->mid = RAISES / 2;
	self->r.v.mid = offline_cpu1;
	EXPECT_LE(0, guest_takes(_metadata, &self->r, RAISES));
	ASSERT_LT(0, offliner);
	waitpid(offliner, &status, 0);
	EXPECT_EQ(0, status) TH_LOG("taking CPU 1 offline failed");
#ifdef __riscv
	{
		unsigned long long addr, target;
		unsigned int data;
		int vcpu;

		/*
		 * Never left on the VS-file of the hart that went away (KVM
		 * frees it): posted to CPU 0's, or, when KVM gave the vCPU no
		 * file there (its AIA on CPU 1 went down with it), delivered
		 * by the host and relayed.
		 */
		ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu));
		TH_LOG("after the move: edu's MSI %s (%#llx)",
		       vcpu ? "posted" : "delivered by the host", target);
		EXPECT_NE(vsfile(1), target);
		if (vcpu)
			EXPECT_EQ(vsfile(0), target);
	}
#endif
	EXPECT_EQ(0, msr_write(CPU1_ONLINE, "1"));
}

/*
 * The vCPU moves to the other CPU mid-stream: riscv64's KVM gives it that
 * hart's VS-file and the entry follows; arm64's moves the vPE. Nothing is
 * lost, nothing is relayed.
 */
TEST_F_TIMEOUT(kvm_edu, bypass_follows_the_vcpu_to_another_cpu, 120)
{
	if (arch_bypass(1))
		SKIP(return, "MSIs are not posted on this boot");
	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	self->r.v.params->mid = RAISES / 2;
	self->r.v.mid = move_to_cpu1;
	EXPECT_EQ(0, guest_takes(_metadata, &self->r, RAISES));
#ifdef __riscv
	EXPECT_POSTED_TO(vsfile(1));
#endif
}

/* edu copies guest RAM through the IOAS (IOVA = GPA) and interrupts when done. */
TEST_F_TIMEOUT(kvm_edu, dma_lands_in_guest_ram_then_interrupts, 120)
{
	uint8_t *src = self->r.v.ram + (GUEST_DMA_SRC - GUEST_RAM);
	uint8_t *dst = self->r.v.ram + (GUEST_DMA_DST - GUEST_RAM);

	for (int i = 0; i < 4096; i++) {
		src[i] = (uint8_t)(i * 13 + 1);
		dst[i] = 0x5a;
	}
	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	self->r.v.params->dma_len = 4096;
	self->r.v.params->dma_src = GUEST_DMA_SRC;
	self->r.v.params->dma_dst = GUEST_DMA_DST;
	ASSERT_EQ(0, vm_run(_metadata, &self->r.v, 60));
	EXPECT_EQ(1, self->r.v.params->count);
	EXPECT_EQ(1, self->r.v.params->dma_ok);
	EXPECT_EQ(0, memcmp(src, dst, 4096));
}

/*
 * When the VM goes (its irqfd with it), edu's MSI is the host's again:
 * vfio-pci's eventfd fires for a raise from user space.
 */
TEST_F_TIMEOUT(kvm_edu, vm_exit_restores_host_delivery, 120)
{
	int efd;

	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	self->r.v.params->n = 2;
	ASSERT_EQ(0, vm_run(_metadata, &self->r.v, 60));
	EXPECT_EQ(2, self->r.v.params->count);
#ifdef __riscv
	EXPECT_POSTED_TO(vsfile(0));
#endif
	vm_destroy(&self->r.v);
	EXPECT_HOST_DELIVERY();
	efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, efd);
	ASSERT_EQ(0, _vfio_set_msi(self->r.devfd, efd));
	self->r.bar[EDU_REG_INTR_RAISE] = 1;
	EXPECT_EQ(1, vfio_eventfd_wait(efd, 2000));
	close(efd);
}

#ifdef __riscv
/*
 * Has another VM's vCPU take the only VS-file of the CPU the caller runs
 * on (CPU 0) and keep it; 0 or -errno.
 */
static int hold_vsfile(struct __test_metadata *_metadata, struct rig *r, struct vm *hog)
{
	return vm_create(hog, r->kvm, KVM_DEV_RISCV_AIA_MODE_HWACCEL) ?: vm_run(_metadata, hog, 30);
}

/*
 * No VS-file free on the vCPU's hart (another VM's vCPU holds CPU 0's
 * only one): KVM refuses to enter the guest in HWACCEL mode and edu's MSI
 * is never pointed at the other VM's file. On CPU 1 the vCPU gets a file
 * and its MSIs are posted there.
 */
TEST_F_TIMEOUT(kvm_edu, no_free_vsfile_is_refused_never_misdelivered, 120)
{
	unsigned long long addr, target;
	unsigned int data;
	struct vm hog;
	int vcpu;

	ASSERT_EQ(0, hold_vsfile(_metadata, &self->r, &hog));
	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	self->r.v.params->n = RAISES;
	EXPECT_EQ(-ENXIO, vm_run(_metadata, &self->r.v, 30));
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu));
	EXPECT_EQ(0, vcpu);
	EXPECT_NE(vsfile(0), target);
	EXPECT_EQ(0, self->r.v.params->count);

	ASSERT_EQ(0, pin_to(1));
	EXPECT_EQ(0, guest_takes(_metadata, &self->r, RAISES));
	EXPECT_EQ(0, hog.params->count);
	EXPECT_POSTED_TO(vsfile(1));
	vm_destroy(&hog);
}

/* Whether `bdf`'s MSI table has a vCPU entry (-errno without its table). */
static int has_vcpu_entry(const char *bdf)
{
	char *p, *end, *v;

	if (msr_riscv_msi_section(bdf, &p, &end))
		return -ENOENT;
	v = p ? strstr(p, " vcpu\n") : NULL;
	return v && (!end || v < end);
}

/*
 * VFIO lets go of edu while the VM still runs (its BAR unmapped, its file
 * closed): vfio-pci frees the interrupt, irqbypass drops the producer and
 * KVM sends the MSI back to the host; edu's table keeps no vCPU entry.
 */
TEST_F_TIMEOUT(kvm_edu, vfio_close_while_posted_leaves_no_vcpu_entry, 120)
{
	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	self->r.v.params->n = 2;
	ASSERT_EQ(0, vm_run(_metadata, &self->r.v, 60));
	EXPECT_POSTED_TO(vsfile(0));
	EXPECT_EQ(1, has_vcpu_entry(self->r.bdf));
	munmap((void *)self->r.bar, self->r.bar_size);
	self->r.bar = NULL;
	close(self->r.devfd);
	self->r.devfd = -1;
	close(self->r.iommufd);
	self->r.iommufd = -1;
	EXPECT_EQ(0, has_vcpu_entry(self->r.bdf));
}

/*
 * The same in AUTO mode: without a free VS-file KVM gives the vCPU its
 * IMSIC SW-file, and edu's MSIs are relayed by the host, one host
 * interrupt each, never posted to the other VM's file.
 */
TEST_F_TIMEOUT(kvm_edu, no_free_vsfile_in_auto_mode_is_relayed, 120)
{
	struct vm hog;

	rig_close(&self->r);
	ASSERT_EQ(0, rig_open_mode(&self->r, KVM_DEV_RISCV_AIA_MODE_AUTO));
	ASSERT_EQ(0, hold_vsfile(_metadata, &self->r, &hog));
	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	EXPECT_EQ(RAISES, guest_takes(_metadata, &self->r, RAISES));
	EXPECT_EQ(0, hog.params->count);
	EXPECT_HOST_DELIVERY();
	vm_destroy(&hog);
}

/*
 * Keeps CPU `cpu` from running anything but real-time tasks of a higher
 * priority than 1, workqueue items queued there among them, until
 * cpu_release(); 0 or -errno. RT throttling and the fair server, which
 * would let them run after 950 ms, are off meanwhile.
 */
static int cpu_hold(struct cpu_hold *h, int cpu)
{
	struct sched_param rt = { .sched_priority = 1 };

	h->rt_runtime[0] = h->fair_runtime[0] = 0;
	snprintf(h->fair_path, sizeof(h->fair_path), "/sys/kernel/debug/sched/fair_server/cpu%d/runtime",
		 cpu);
	if (msr_read("/proc/sys/kernel/sched_rt_runtime_us", h->rt_runtime, sizeof(h->rt_runtime)) < 0 ||
	    msr_write("/proc/sys/kernel/sched_rt_runtime_us", "-1"))
		return -EPERM;
	if (msr_read(h->fair_path, h->fair_runtime, sizeof(h->fair_runtime)) >= 0)
		msr_write(h->fair_path, "0");
	h->spinner = fork();
	if (h->spinner < 0)
		return -errno;
	if (!h->spinner) {
		/* None of the test's files: closing one must release it. */
		syscall(SYS_close_range, 3, ~0U, 0);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) || pin_to(cpu) ||
		    sched_setscheduler(0, SCHED_FIFO, &rt))
			_exit(1);
		for (;;)
			;
	}
	/* The spinner runs once it is real-time on `cpu`: wait for both. */
	for (int i = 0; i < 1000; i++) {
		cpu_set_t set;

		if (sched_getscheduler(h->spinner) == SCHED_FIFO &&
		    !sched_getaffinity(h->spinner, sizeof(set), &set) && CPU_COUNT(&set) == 1)
			return 0;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

/*
 * An irqfd being deassigned leaves kvm->irqfds.items at once
 * (irqfd_deactivate()) but keeps its producer until irqfd_shutdown() runs
 * from a workqueue. A vCPU that moves meanwhile must take the posted MSI
 * with it: the VS-file it leaves is freed and goes to the next vCPU that
 * runs on that hart, here another VM's. The shutdown is held back by
 * keeping the CPU it was queued on busy (its eventfd closed there), while
 * the vCPU moves from CPU 0 to CPU 1 and another VM takes CPU 0's only
 * VS-file; then edu raises its MSI from the host.
 */
TEST_F_TIMEOUT(kvm_edu, a_deassigned_irqfd_follows_the_vcpu_until_its_producer_goes, 120)
{
	unsigned long long addr, target;
	struct cpu_hold *hold = &cpu_held;
	unsigned int data;
	struct vm hog;
	int vcpu;

	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	self->r.v.params->n = 2;
	ASSERT_EQ(0, vm_run(_metadata, &self->r.v, 60));
	EXPECT_POSTED_TO(vsfile(0));
	/* All of the other VM but its first run, which takes the VS-file. */
	ASSERT_EQ(0, vm_create(&hog, self->r.kvm, KVM_DEV_RISCV_AIA_MODE_HWACCEL));

	ASSERT_EQ(0, cpu_hold(hold, 1));
	ASSERT_EQ(0, set_rt(2));
	ASSERT_EQ(0, pin_to(1));
	/* The eventfd's last file goes: irqfd_deactivate(), shutdown queued on CPU 1. */
	close(self->r.efd);
	self->r.efd = -1;
	/* The vCPU moves to CPU 1 (the guest reports done again at once). */
	EXPECT_EQ(0, vm_run(_metadata, &self->r.v, 10));
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu));
	/* The producer is still there (else the shutdown ran: nothing to judge). */
	ASSERT_EQ(1, vcpu);
	EXPECT_EQ(vsfile(1), target);

	/* Another VM takes CPU 0's VS-file, the one the vCPU left. */
	ASSERT_EQ(0, pin_to(0));
	EXPECT_EQ(0, vm_run(_metadata, &hog, 10));
	self->r.bar[EDU_REG_INTR_RAISE] = 1;
	usleep(10000);
	TH_LOG("edu's MSI pending: in this VM's file %d, in the other VM's %d",
	       arch_pending(&self->r.v), arch_pending(&hog));
	EXPECT_EQ(0, arch_pending(&hog));
	EXPECT_EQ(1, arch_pending(&self->r.v));

	set_rt(0);
	cpu_release(hold);
	/* The shutdown runs: edu's MSI goes back to the host. */
	for (int i = 0; i < 200 && !edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu) &&
			vcpu; i++)
		usleep(10000);
	EXPECT_HOST_DELIVERY();
	vm_destroy(&hog);
}

/* At the guest's midpoint, the vCPU's thread moves to CPU 0. */
static int move_to_cpu0(struct vm *v)
{
	return pin_to(0);
}

/*
 * AUTO mode, the vCPU posted on CPU 1, then moved mid-stream to CPU 0,
 * whose only VS-file another VM holds: KVM releases the vCPU's VS-file
 * for its SW-file, and the MSIs that follow are relayed. The first half
 * is posted (no host interrupt), the second half relayed (one each),
 * nothing is lost, and edu's table keeps no vCPU entry.
 */
TEST_F_TIMEOUT(kvm_edu, a_move_to_a_hart_without_a_free_vsfile_is_relayed, 120)
{
	struct vm hog;

	rig_close(&self->r);
	ASSERT_EQ(0, rig_open_mode(&self->r, KVM_DEV_RISCV_AIA_MODE_AUTO));
	ASSERT_EQ(0, hold_vsfile(_metadata, &self->r, &hog));
	ASSERT_EQ(0, pin_to(1));
	ASSERT_EQ(0, rig_route(&self->r, ROUTE_ADDR, ROUTE_DEVID));
	self->r.v.params->mid = RAISES / 2;
	self->r.v.mid = move_to_cpu0;
	EXPECT_EQ(RAISES - RAISES / 2, guest_takes(_metadata, &self->r, RAISES));
	EXPECT_EQ(0, hog.params->count);
	EXPECT_EQ(0, has_vcpu_entry(self->r.bdf));
	vm_destroy(&hog);
}
#endif

/*
 * A route that names no vCPU's interrupt (riscv64: an address that is no
 * vCPU's file; arm64: a device id the guest's ITS never mapped): nothing
 * can be posted, the host takes the MSI and KVM finds no target; the guest
 * gets nothing, and nothing else is written.
 */
TEST_F_TIMEOUT(kvm_edu, route_to_no_vcpu_delivers_nothing, 120)
{
	long before;

	ASSERT_EQ(0, rig_route(&self->r, ROUTE_NOWHERE_ADDR, ROUTE_NOWHERE_DEVID));
	before = host_irqs(self->r.vfio_irq);
	self->r.v.params->n = 1;
	EXPECT_EQ(-ETIMEDOUT, vm_run(_metadata, &self->r.v, 5));
	EXPECT_EQ(0, self->r.v.params->count);
	EXPECT_EQ(0, self->r.v.params->wrong);
	EXPECT_EQ(1, host_irqs(self->r.vfio_irq) - before);
	EXPECT_HOST_DELIVERY();
}

/* A second user of the device: VFIO binds it once. */
TEST_F(kvm_edu, a_second_bind_of_the_device_is_refused)
{
	int iommufd = -1, devfd = -1;

	EXPECT_NE(0, _vfio_open_bound(self->r.bdf, &iommufd, &devfd, NULL));
	if (devfd >= 0)
		close(devfd);
	if (iommufd >= 0)
		close(iommufd);
}

/*
 * `kvm_edu --bench N` (make bench): N MSIs through each path this boot
 * offers (riscv64: posted and relayed, alternating, three rounds each, each
 * in a new VM; arm64: the one its vgic_v4_enable decides); prints every
 * run and the best of each path. A benchmark: it judges nothing.
 */
static int bench(int n)
{
	static struct __test_metadata md = { .name = "bench" };
	double lat[2] = { 0 }, rate[2] = { 0 }, hpm[2] = { 0 };
	const char *path[2] = { "bypass", "relay" };
	int ran[2] = { 0 };

	for (int round = 0; round < 3; round++) {
		for (int relay = 0; relay < 2; relay++) {
			struct guest_params *g;
			struct rig r;
			long before;
			double l, q, t;
			int ret;

			if (arch_bypass(!relay))
				continue;
			ret = rig_open(&r) ?: arch_bypass(!relay) ?: rig_route(&r, ROUTE_ADDR, ROUTE_DEVID);
			if (ret) {
				ksft_print_msg("%s: set-up: %s\n", path[relay], strerror(-ret));
				rig_close(&r);
				return 1;
			}
			before = host_irqs(r.vfio_irq);
			g = r.v.params;
			g->n = n;
			ret = vm_run(&md, &r.v, 600);
			if (ret || g->count != (uint64_t)n || g->wrong) {
				ksft_print_msg("%s: %d, %lu of %d MSIs, %lu wrong\n", path[relay], ret,
					       (unsigned long)g->count, n, (unsigned long)g->wrong);
				rig_close(&r);
				return 1;
			}
			t = arch_ticks_per_us(&r.v);
			l = g->lat_sum / t / n * 1000;
			q = n / ((g->t_last - g->t_first) / t / 1e6);
			hpm[relay] = (double)(host_irqs(r.vfio_irq) - before) / n;
			printf("kvm-run %s round %d: %.0f ns raise to guest handler, %.0f guest MSIs/s, %.2f host interrupts per MSI\n",
			       path[relay], round, l, q, hpm[relay]);
			if (!lat[relay] || l < lat[relay])
				lat[relay] = l;
			if (q > rate[relay])
				rate[relay] = q;
			ran[relay] = 1;
			rig_close(&r);
		}
	}
	for (int relay = 0; relay < 2; relay++)
		if (ran[relay])
			printf("kvm-best %s %.0f %.0f %.2f\n", path[relay], lat[relay], rate[relay],
			       hpm[relay]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--bench"))
		return bench(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1000);
	return test_harness_run(argc, argv);
}

#else /* neither riscv64 nor arm64 */

#include "kselftest.h"

int main(void)
{
	ksft_print_header();
	ksft_exit_skip("a riscv64 or arm64 guest\n");
}

#endif
