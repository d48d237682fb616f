// SPDX-License-Identifier: GPL-2.0
/*
 * A small VMM, on the KVM API directly: a bare-metal riscv64 guest with
 * in-kernel AIA (HWACCEL: its IMSIC is a hardware guest interrupt file) and
 * edu passed through with VFIO cdev + iommufd. Guest RAM is mapped into the
 * device's IOAS at IOVA = GPA, BAR0 is a memory slot of the guest, and the
 * device's MSI is routed to the vCPU's interrupt file with
 * KVM_SET_GSI_ROUTING and KVM_IRQFD.
 *
 * The guest (guest_entry below) enables its interrupt file, makes edu raise
 * its MSI N times, each waited for, then has edu copy a buffer of guest RAM
 * and interrupt on completion, and reports through an SBI call that KVM
 * forwards to us (the experimental extension range).
 *
 * Two paths, told apart by the host's interrupt count on the device's
 * vector. Bypass (irqbypass, kvm.irqbypass=1): KVM calls
 * irq_set_vcpu_affinity() and our IOMMU's remapping domain sends edu's MSI
 * straight to the VS-file of the hart the vCPU runs on: no host interrupt.
 * Relay (kvm.irqbypass=0): edu's MSI lands in a host interrupt file,
 * vfio-pci signals the eventfd, KVM's irqfd writes the identity into the
 * vCPU's guest file: one host interrupt per MSI.
 */
#ifdef __riscv
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
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
#define GUEST_IMSIC	0x0c000000ULL	/* the host's IMSICs are at 0x28000000 */
#define GUEST_ID	5		/* the identity the route names */
#define GSI		1

/* SBI extension the guest reports through (forwarded to user space). */
#define SBI_EXT_MSIREMAP	0x08ffffff
#define SBI_DONE		0
#define SBI_FAIL		1
#define SBI_MID			2	/* `mid` MSIs taken, once */

#define BYPASS_PARAM		"/sys/module/kvm/parameters/irqbypass"

/* What the guest reads and writes at GUEST_PARAMS (offsets in the asm). */
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
	uint64_t cause;		/* 104: an exception's scause, sepc, stval */
	uint64_t sepc;		/* 112 */
	uint64_t stval;		/* 120 */
	uint64_t mid;		/* 128: report after this many MSIs, 0 never */
	uint64_t t_first;	/* 136: time CSR at the first raise */
	uint64_t t_last;	/* 144: and after the last interrupt */
};

/*
 * The guest, position-independent, copied to GUEST_RAM. s0 holds the
 * parameters; the trap handler uses only s8..s11, which the main code
 * leaves alone. IMSIC registers through siselect (0x150) and sireg (0x151):
 * eidelivery 0x70, eithreshold 0x72, eie0 0xc0; stopei (0x15c) claims.
 */
extern const char __start_guest_code[], __stop_guest_code[], guest_entry[];

asm(
"	.pushsection guest_code, \"ax\"\n"
"	.balign 4\n"
"	.global guest_entry\n"
"guest_entry:\n"
"	mv	s0, a0\n"
"	lla	t0, guest_trap\n"
"	csrw	stvec, t0\n"
"	li	t0, 0x70\n"
"	csrw	0x150, t0\n"
"	li	t0, 1\n"
"	csrw	0x151, t0\n"
"	li	t0, 0x72\n"
"	csrw	0x150, t0\n"
"	csrw	0x151, zero\n"
"	ld	t1, 16(s0)\n"		/* eie register: 0xc0 + 2 * (id / 64) */
"	srli	t2, t1, 6\n"
"	slli	t2, t2, 1\n"
"	addi	t2, t2, 0xc0\n"
"	csrw	0x150, t2\n"
"	andi	t1, t1, 63\n"
"	li	t2, 1\n"
"	sll	t2, t2, t1\n"
"	csrs	0x151, t2\n"
"	li	t0, 0x200\n"		/* sie.SEIE */
"	csrs	sie, t0\n"
"	ld	s1, 8(s0)\n"
"	li	s2, 0\n"		/* interrupts expected so far */
"	ld	s3, 0(s0)\n"
"	rdtime	t0\n"
"	sd	t0, 136(s0)\n"
"1:	beq	s2, s1, 3f\n"
"	addi	s2, s2, 1\n"
"	rdtime	t0\n"
"	sd	t0, 96(s0)\n"
"	fence	iorw, iorw\n"
"	li	t0, 1\n"
"	sw	t0, 0x60(s3)\n"		/* edu: raise */
"	jal	ra, guest_wait\n"
"	ld	t0, 128(s0)\n"
"	bne	t0, s2, 1b\n"
"	li	a7, 0x08ffffff\n"
"	li	a6, 2\n"		/* SBI_MID */
"	ecall\n"
"	j	1b\n"
"3:	rdtime	t0\n"
"	sd	t0, 144(s0)\n"
"	ld	s4, 64(s0)\n"
"	beqz	s4, 9f\n"
"	ld	t1, 72(s0)\n"		/* guest RAM -> edu's buffer, polled */
"	sw	t1, 0x80(s3)\n"
"	li	t1, 0x40000\n"
"	sw	t1, 0x88(s3)\n"
"	sw	s4, 0x90(s3)\n"
"	fence	iorw, iorw\n"
"	li	t1, 1\n"
"	sw	t1, 0x98(s3)\n"
"4:	lw	t1, 0x98(s3)\n"
"	andi	t1, t1, 1\n"
"	bnez	t1, 4b\n"
"	li	t1, 0x40000\n"		/* edu's buffer -> guest RAM, interrupting */
"	sw	t1, 0x80(s3)\n"
"	ld	t1, 80(s0)\n"
"	sw	t1, 0x88(s3)\n"
"	sw	s4, 0x90(s3)\n"
"	addi	s2, s2, 1\n"
"	rdtime	t0\n"
"	sd	t0, 96(s0)\n"
"	fence	iorw, iorw\n"
"	li	t1, 7\n"		/* start | to RAM | interrupt */
"	sw	t1, 0x98(s3)\n"
"	jal	ra, guest_wait\n"
"	fence	iorw, iorw\n"
"	ld	t1, 72(s0)\n"		/* compare what edu wrote */
"	ld	t2, 80(s0)\n"
"	li	t3, 1\n"
"5:	lbu	t4, 0(t1)\n"
"	lbu	t5, 0(t2)\n"
"	beq	t4, t5, 6f\n"
"	li	t3, 2\n"
"6:	addi	t1, t1, 1\n"
"	addi	t2, t2, 1\n"
"	addi	s4, s4, -1\n"
"	bnez	s4, 5b\n"
"	sd	t3, 88(s0)\n"
"9:	li	a7, 0x08ffffff\n"
"	li	a6, 0\n"		/* SBI_DONE */
"	ecall\n"
"	j	9b\n"
/* Waits, interrupts off between the check and wfi, for count + wrong >= s2. */
"guest_wait:\n"
"	csrci	sstatus, 2\n"
"	ld	t0, 24(s0)\n"
"	ld	t1, 32(s0)\n"
"	add	t0, t0, t1\n"
"	bgeu	t0, s2, 2f\n"
"	wfi\n"
"	csrsi	sstatus, 2\n"
"	j	guest_wait\n"
"2:	ret\n"
"	.balign 4\n"
"guest_trap:\n"
"	csrr	s11, scause\n"
"	bltz	s11, 1f\n"
"	sd	s11, 104(s0)\n"		/* an exception: report it */
"	csrr	s10, sepc\n"
"	sd	s10, 112(s0)\n"
"	csrr	s10, stval\n"
"	sd	s10, 120(s0)\n"
"	li	a7, 0x08ffffff\n"
"	li	a6, 1\n"		/* SBI_FAIL */
"	ecall\n"
"	j	.\n"
"1:	csrrw	s10, 0x15c, zero\n"	/* claim */
"	srli	s10, s10, 16\n"
"	beqz	s10, 3f\n"
"	sd	s10, 40(s0)\n"
"	ld	s9, 16(s0)\n"
"	beq	s10, s9, 2f\n"
"	ld	s9, 32(s0)\n"
"	addi	s9, s9, 1\n"
"	sd	s9, 32(s0)\n"
"	j	3f\n"
"2:	rdtime	s9\n"
"	ld	s8, 96(s0)\n"
"	sub	s9, s9, s8\n"
"	ld	s8, 48(s0)\n"
"	add	s8, s8, s9\n"
"	sd	s8, 48(s0)\n"
"	ld	s8, 56(s0)\n"
"	bgeu	s8, s9, 4f\n"
"	sd	s9, 56(s0)\n"
"4:	ld	s8, 24(s0)\n"
"	addi	s8, s8, 1\n"
"	sd	s8, 24(s0)\n"
"3:	sret\n"
"	.popsection\n");

#define RISCV_CORE_REG(name)	(KVM_REG_RISCV | KVM_REG_SIZE_U64 | KVM_REG_RISCV_CORE | \
				 KVM_REG_RISCV_CORE_REG(name))
#define RISCV_SBI_EXT_REG(ext)	(KVM_REG_RISCV | KVM_REG_SIZE_U64 | KVM_REG_RISCV_SBI_EXT | \
				 KVM_REG_RISCV_SBI_SINGLE | (ext))

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

static int aia_attr(int dev, uint32_t group, uint64_t attr, void *val)
{
	struct kvm_device_attr a = { .group = group, .attr = attr, .addr = (uintptr_t)val };

	return _ioctl(dev, KVM_SET_DEVICE_ATTR, &a);
}

/* The sum over CPUs of the /proc/interrupts line naming `what`, or -1. */
static long host_irqs(const char *what)
{
	static char buf[1 << 20];
	long sum = -1;
	char *line, *p;

	if (msr_read("/proc/interrupts", buf, sizeof(buf)) < 0)
		return -1;
	line = strstr(buf, what);
	if (!line)
		return -1;
	while (line > buf && line[-1] != '\n')
		line--;
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

/* The VS-file (guest interrupt file 1) of CPU `cpu`'s hart: aia-guests=1. */
static unsigned long long vsfile(int cpu)
{
	return msr_imsic_file(cpu) + 0x1000;
}

/* A VM with one vCPU, RAM holding the guest, and in-kernel AIA. */
struct vm {
	int vm, vcpu, aia;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *ram;
	struct guest_params *params;
	/* Called at the guest's SBI_MID, in the vCPU's thread. */
	int (*mid)(struct vm *vm);
};

/*
 * Makes a VM on `kvm` with AIA in `mode`, its IMSIC at GUEST_IMSIC; 0 or
 * -errno, with what was made in `v` either way (vm_destroy() frees it).
 */
static int vm_create(struct vm *v, int kvm, uint32_t mode)
{
	struct kvm_userspace_memory_region ram = {
		.slot = 0,
		.guest_phys_addr = GUEST_RAM,
		.memory_size = GUEST_RAM_SIZE,
	};
	struct kvm_create_device aia = { .type = KVM_DEV_TYPE_RISCV_AIA };
	uint32_t ids = 63, srcs = 0, hart_bits = 0;
	uint64_t imsic = GUEST_IMSIC;
	int ret;

	*v = (struct vm){ .vm = -1, .vcpu = -1, .aia = -1 };
	v->ram = mmap(NULL, GUEST_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (v->ram == MAP_FAILED) {
		v->ram = NULL;
		return -ENOMEM;
	}
	memcpy(v->ram, __start_guest_code, __stop_guest_code - __start_guest_code);
	v->params = (struct guest_params *)(v->ram + (GUEST_PARAMS - GUEST_RAM));
	v->params->id = GUEST_ID;
	v->vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (v->vm < 0)
		return -errno;
	ram.userspace_addr = (uintptr_t)v->ram;
	ret = _ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &ram);
	if (ret)
		return ret;
	v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0)
		return -errno;
	v->run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		return -ENOMEM;
	}
	ret = set_reg(v->vcpu, RISCV_SBI_EXT_REG(KVM_RISCV_SBI_EXT_EXPERIMENTAL), 1) ?:
	      set_reg(v->vcpu, RISCV_CORE_REG(regs.pc), GUEST_RAM + (guest_entry - __start_guest_code)) ?:
	      set_reg(v->vcpu, RISCV_CORE_REG(regs.a0), GUEST_PARAMS);
	if (ret)
		return ret;
	/* In-kernel AIA, no APLIC. */
	ret = _ioctl(v->vm, KVM_CREATE_DEVICE, &aia);
	if (ret)
		return ret;
	v->aia = aia.fd;
	return aia_attr(v->aia, KVM_DEV_RISCV_AIA_GRP_CONFIG, KVM_DEV_RISCV_AIA_CONFIG_MODE, &mode) ?:
	       aia_attr(v->aia, KVM_DEV_RISCV_AIA_GRP_CONFIG, KVM_DEV_RISCV_AIA_CONFIG_IDS, &ids) ?:
	       aia_attr(v->aia, KVM_DEV_RISCV_AIA_GRP_CONFIG, KVM_DEV_RISCV_AIA_CONFIG_SRCS, &srcs) ?:
	       aia_attr(v->aia, KVM_DEV_RISCV_AIA_GRP_CONFIG, KVM_DEV_RISCV_AIA_CONFIG_HART_BITS, &hart_bits) ?:
	       aia_attr(v->aia, KVM_DEV_RISCV_AIA_GRP_ADDR, KVM_DEV_RISCV_AIA_ADDR_IMSIC(0), &imsic) ?:
	       aia_attr(v->aia, KVM_DEV_RISCV_AIA_GRP_CTRL, KVM_DEV_RISCV_AIA_CTRL_INIT, NULL);
}

static void vm_destroy(struct vm *v)
{
	int fds[] = { v->aia, v->vcpu, v->vm };

	if (v->run)
		munmap(v->run, v->run_size);
	for (unsigned int i = 0; i < ARRAY_SIZE(fds); i++)
		if (fds[i] >= 0)
			close(fds[i]);
	if (v->ram)
		munmap(v->ram, GUEST_RAM_SIZE);
	*v = (struct vm){ .vm = -1, .vcpu = -1, .aia = -1 };
}

/*
 * Runs the guest until it reports, at most `secs` seconds: 0 when it is
 * done, -EIO when it took an exception, -ETIMEDOUT, -ENXIO when KVM could
 * not enter it (no guest interrupt file free on this hart), or another
 * -errno.
 */
static int vm_run(struct __test_metadata *_metadata, struct vm *v, int secs)
{
	struct kvm_run *run = v->run;
	int ret;

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
		if (run->exit_reason == KVM_EXIT_RISCV_SBI &&
		    run->riscv_sbi.extension_id == SBI_EXT_MSIREMAP) {
			if (run->riscv_sbi.function_id == SBI_MID && v->mid) {
				ret = v->mid(v);
				if (ret)
					break;
				continue;
			}
			ret = run->riscv_sbi.function_id == SBI_DONE ? 0 : -EIO;
			if (ret)
				TH_LOG("guest exception: scause %#lx sepc %#lx stval %#lx",
				       (long)v->params->cause, (long)v->params->sepc,
				       (long)v->params->stval);
			break;
		}
		if (run->exit_reason == KVM_EXIT_RISCV_SBI) {
			run->riscv_sbi.ret[0] = -2;	/* SBI_ERR_NOT_SUPPORTED */
			continue;
		}
		if (run->exit_reason == KVM_EXIT_FAIL_ENTRY &&
		    run->fail_entry.hardware_entry_failure_reason == KVM_EXIT_FAIL_ENTRY_NO_VSFILE) {
			ret = -ENXIO;
			break;
		}
		TH_LOG("unexpected exit %u (MMIO at %#llx)", run->exit_reason,
		       (unsigned long long)run->mmio.phys_addr);
		ret = -EFAULT;
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
};

/*
 * Pins the caller to CPU 0, makes the VM and hands it edu: guest RAM in
 * edu's IOAS at IOVA = GPA, BAR0 a memory slot of the guest, edu's MSI an
 * eventfd of vfio-pci's. 0 or -errno, saying which step failed; what was
 * made is in `r` either way (rig_close() frees it).
 */
static int rig_open(struct rig *r)
{
	struct kvm_userspace_memory_region bar = { .slot = 1, .guest_phys_addr = GUEST_BAR };
	const char *step;
	int ret;

	*r = (struct rig){ .iommufd = -1, .devfd = -1, .kvm = -1, .efd = -1 };
	r->v = (struct vm){ .vm = -1, .vcpu = -1, .aia = -1 };
	signal(SIGALRM, watchdog);
	ret = pin_to(0);
	step = "pinning to CPU 0";
	if (!ret) {
		ret = msr_write(BYPASS_PARAM, "Y");
		step = BYPASS_PARAM " (KVM without irqbypass?)";
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
		ret = vm_create(&r->v, r->kvm, KVM_DEV_RISCV_AIA_MODE_HWACCEL);
		step = "a VM with HWACCEL AIA (guest interrupt files: aia-guests=?)";
	}
	if (!ret) {
		r->v.params->bar = GUEST_BAR;
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
	msr_write(BYPASS_PARAM, "Y");
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
	rig_close(&self->r);
}

/* Routes edu's MSI (its eventfd) to the interrupt file at `addr` with `data`. */
static int route_msi(int vm, int efd, uint64_t addr, uint32_t data)
{
	struct {
		struct kvm_irq_routing r;
		struct kvm_irq_routing_entry e[1];
	} routing = {
		.r = { .nr = 1 },
		.e[0] = {
			.gsi = GSI,
			.type = KVM_IRQ_ROUTING_MSI,
			.u.msi = { .address_lo = (uint32_t)addr, .address_hi = addr >> 32, .data = data },
		},
	};
	struct kvm_irqfd irqfd = { .fd = efd, .gsi = GSI };
	int ret = _ioctl(vm, KVM_SET_GSI_ROUTING, &routing);

	return ret ? ret : _ioctl(vm, KVM_IRQFD, &irqfd);
}

/* Ticks of the time CSR per microsecond (the device tree's timebase). */
static double ticks_per_us(void)
{
	unsigned char be[4];
	int fd = open("/proc/device-tree/cpus/timebase-frequency", O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, be, sizeof(be));

	if (fd >= 0)
		close(fd);
	if (n != 4)
		return 10.0;
	return ((be[0] << 24) | (be[1] << 16) | (be[2] << 8) | be[3]) / 1e6;
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

static void log_latency(struct __test_metadata *_metadata, const char *path, struct vm *v,
			long host)
{
	double t = ticks_per_us();

	TH_LOG("%s: %lu MSIs, %ld host interrupts, raise to guest handler %.1f us average, %.1f max",
	       path, (unsigned long)v->params->count, host,
	       v->params->lat_sum / t / (v->params->count ?: 1), v->params->lat_max / t);
}

#define RAISES	50

/*
 * Bypass: every MSI reaches the guest with the identity its route names,
 * and none is a host interrupt. edu's message names an entry of its MSI
 * table that points at the VS-file of the hart the vCPU runs on (CPU 0).
 */
TEST_F_TIMEOUT(kvm_edu, bypass_posts_every_msi_with_no_host_interrupt, 120)
{
	unsigned long long addr, target;
	unsigned int data;
	long before;
	int vcpu;

	ASSERT_EQ(0, route_msi(self->r.v.vm, self->r.efd, GUEST_IMSIC, GUEST_ID));
	before = host_irqs(self->r.vfio_irq);
	ASSERT_LE(0, before) TH_LOG("no %s in /proc/interrupts", self->r.vfio_irq);
	self->r.v.params->n = RAISES;
	ASSERT_EQ(0, vm_run(_metadata, &self->r.v, 60))
		TH_LOG("guest took %lu of %d", (unsigned long)self->r.v.params->count, RAISES);
	EXPECT_EQ(RAISES, self->r.v.params->count);
	EXPECT_EQ(0, self->r.v.params->wrong) TH_LOG("last identity %lu", (unsigned long)self->r.v.params->last_id);
	EXPECT_EQ(0, host_irqs(self->r.vfio_irq) - before);
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu));
	EXPECT_EQ(GUEST_ID, data);
	EXPECT_EQ(vsfile(0), target);
	EXPECT_EQ(1, vcpu);
	log_latency(_metadata, "bypass", &self->r.v, host_irqs(self->r.vfio_irq) - before);
}

/*
 * Relay (kvm.irqbypass=0): the same MSIs arrive through the host, one host
 * interrupt each, and edu's message stays the host's.
 */
TEST_F_TIMEOUT(kvm_edu, relay_delivers_every_msi_through_the_host, 120)
{
	unsigned long long addr, target;
	unsigned int data;
	long before;
	int vcpu;

	ASSERT_EQ(0, msr_write(BYPASS_PARAM, "N"));
	ASSERT_EQ(0, route_msi(self->r.v.vm, self->r.efd, GUEST_IMSIC, GUEST_ID));
	before = host_irqs(self->r.vfio_irq);
	self->r.v.params->n = RAISES;
	ASSERT_EQ(0, vm_run(_metadata, &self->r.v, 60))
		TH_LOG("guest took %lu of %d", (unsigned long)self->r.v.params->count, RAISES);
	EXPECT_EQ(RAISES, self->r.v.params->count);
	EXPECT_EQ(0, self->r.v.params->wrong);
	EXPECT_EQ(RAISES, host_irqs(self->r.vfio_irq) - before);
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu));
	EXPECT_EQ(0, vcpu);
	log_latency(_metadata, "relay", &self->r.v, host_irqs(self->r.vfio_irq) - before);
}

/* At the guest's midpoint, the vCPU's thread moves to CPU 1. */
static int move_to_cpu1(struct vm *v)
{
	return pin_to(1);
}

/*
 * The vCPU moves to the other hart mid-stream: KVM gives it that hart's
 * VS-file, the entry follows, and nothing is lost or relayed.
 */
TEST_F_TIMEOUT(kvm_edu, bypass_follows_the_vcpu_to_another_hart, 120)
{
	unsigned long long addr, target;
	unsigned int data;
	long before;
	int vcpu;

	ASSERT_EQ(0, route_msi(self->r.v.vm, self->r.efd, GUEST_IMSIC, GUEST_ID));
	before = host_irqs(self->r.vfio_irq);
	self->r.v.params->n = RAISES;
	self->r.v.params->mid = RAISES / 2;
	self->r.v.mid = move_to_cpu1;
	ASSERT_EQ(0, vm_run(_metadata, &self->r.v, 60))
		TH_LOG("guest took %lu of %d", (unsigned long)self->r.v.params->count, RAISES);
	EXPECT_EQ(RAISES, self->r.v.params->count);
	EXPECT_EQ(0, self->r.v.params->wrong);
	EXPECT_EQ(0, host_irqs(self->r.vfio_irq) - before);
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu));
	EXPECT_EQ(vsfile(1), target);
	EXPECT_EQ(1, vcpu);
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
	ASSERT_EQ(0, route_msi(self->r.v.vm, self->r.efd, GUEST_IMSIC, GUEST_ID));
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
	unsigned long long addr, target;
	unsigned int data;
	int vcpu, efd;

	ASSERT_EQ(0, route_msi(self->r.v.vm, self->r.efd, GUEST_IMSIC, GUEST_ID));
	self->r.v.params->n = 2;
	ASSERT_EQ(0, vm_run(_metadata, &self->r.v, 60));
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu));
	ASSERT_EQ(1, vcpu);
	vm_destroy(&self->r.v);
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu));
	EXPECT_EQ(0, vcpu);
	efd = eventfd(0, EFD_CLOEXEC);
	ASSERT_LE(0, efd);
	ASSERT_EQ(0, _vfio_set_msi(self->r.devfd, efd));
	self->r.bar[EDU_REG_INTR_RAISE] = 1;
	EXPECT_EQ(1, vfio_eventfd_wait(efd, 2000));
	close(efd);
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
	long before;
	int vcpu;

	ASSERT_EQ(0, vm_create(&hog, self->r.kvm, KVM_DEV_RISCV_AIA_MODE_HWACCEL));
	ASSERT_EQ(0, vm_run(_metadata, &hog, 30));
	ASSERT_EQ(0, route_msi(self->r.v.vm, self->r.efd, GUEST_IMSIC, GUEST_ID));
	self->r.v.params->n = RAISES;
	EXPECT_EQ(-ENXIO, vm_run(_metadata, &self->r.v, 30));
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu));
	EXPECT_EQ(0, vcpu);
	EXPECT_NE(vsfile(0), target);
	EXPECT_EQ(0, self->r.v.params->count);

	ASSERT_EQ(0, pin_to(1));
	before = host_irqs(self->r.vfio_irq);
	ASSERT_EQ(0, vm_run(_metadata, &self->r.v, 60));
	EXPECT_EQ(RAISES, self->r.v.params->count);
	EXPECT_EQ(0, hog.params->count);
	EXPECT_EQ(0, host_irqs(self->r.vfio_irq) - before);
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu));
	EXPECT_EQ(vsfile(1), target);
	vm_destroy(&hog);
}

/*
 * A route to an address that is no vCPU's interrupt file: nothing can be
 * posted, the host takes the MSI and KVM finds no target; the guest gets
 * nothing, and nothing else is written.
 */
TEST_F_TIMEOUT(kvm_edu, route_to_no_vcpu_file_delivers_nothing, 120)
{
	unsigned long long addr, target;
	unsigned int data;
	long before;
	int vcpu;

	ASSERT_EQ(0, route_msi(self->r.v.vm, self->r.efd, GUEST_IMSIC + 0x100000, GUEST_ID));
	before = host_irqs(self->r.vfio_irq);
	self->r.v.params->n = 1;
	EXPECT_EQ(-ETIMEDOUT, vm_run(_metadata, &self->r.v, 5));
	EXPECT_EQ(0, self->r.v.params->count);
	EXPECT_EQ(0, self->r.v.params->wrong);
	EXPECT_EQ(1, host_irqs(self->r.vfio_irq) - before);
	ASSERT_EQ(0, edu_msi_target(self->r.bdf, &addr, &data, &target, &vcpu));
	EXPECT_EQ(0, vcpu);
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
 * `kvm_edu --bench N` (make bench): N MSIs posted and N relayed, three
 * rounds of each, alternating, each in a new VM; prints every run and the
 * best of each path. A benchmark: it judges nothing.
 */
static int bench(int n)
{
	static struct __test_metadata md = { .name = "bench" };
	double lat[2] = { 0 }, rate[2] = { 0 }, hpm[2] = { 0 }, t = ticks_per_us();
	const char *path[2] = { "bypass", "relay" };

	for (int round = 0; round < 3; round++) {
		for (int relay = 0; relay < 2; relay++) {
			struct guest_params *g;
			struct rig r;
			long before;
			double l, q;
			int ret;

			ret = rig_open(&r) ?: msr_write(BYPASS_PARAM, relay ? "N" : "Y") ?:
			      route_msi(r.v.vm, r.efd, GUEST_IMSIC, GUEST_ID);
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
			l = g->lat_sum / t / n * 1000;
			q = n / ((g->t_last - g->t_first) / t / 1e6);
			hpm[relay] = (double)(host_irqs(r.vfio_irq) - before) / n;
			printf("kvm-run %s round %d: %.0f ns raise to guest handler, %.0f guest MSIs/s, %.2f host interrupts per MSI\n",
			       path[relay], round, l, q, hpm[relay]);
			if (!lat[relay] || l < lat[relay])
				lat[relay] = l;
			if (q > rate[relay])
				rate[relay] = q;
			rig_close(&r);
		}
	}
	for (int relay = 0; relay < 2; relay++)
		printf("kvm-best %s %.0f %.0f %.2f\n", path[relay], lat[relay], rate[relay], hpm[relay]);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--bench"))
		return bench(atoi(argv[2]) > 0 ? atoi(argv[2]) : 1000);
	return test_harness_run(argc, argv);
}

#else /* !__riscv */

#include "kselftest.h"

/* The arm64 VMM (GICv4) is not written yet; no arm64 profile runs this group. */
int main(void)
{
	ksft_print_header();
	ksft_exit_skip("a riscv64 guest\n");
}

#endif
