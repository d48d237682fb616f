/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm_edu's arm64 side: the guest, a bare-metal program at EL1 (MMU off)
 * with a GICv3 and an ITS emulated by KVM, and what the VMM does for it:
 * the vCPU's registers, the vGIC and vITS devices, and the MMIO write the
 * guest reports through (to a page no memory slot covers).
 *
 * The guest sets up its ITS as the kvm selftests' gic_v3_its.c does: the
 * device and collection tables, the command queue, MAPD, MAPC, MAPTI of
 * edu's event to an LPI, then enables LPIs at its redistributor. With
 * QEMU's GICv4 and kvm-arm.vgic_v4_enable=1, KVM's irqbypass maps the LPI
 * as a vLPI in the host's ITS (kvm_vgic_v4_set_forwarding()), and edu's
 * MSI is injected without the host; without it, KVM relays. Forwarding is
 * set up only for an event the guest's ITS already translates, so the
 * VMM routes edu's MSI when the guest reports it is ready, as a VMM does
 * when its guest enables the device's MSI.
 */
#ifndef KVM_EDU_GUEST_ARM64_H
#define KVM_EDU_GUEST_ARM64_H

#define GUEST_GICD	0x08000000ULL
#define GUEST_GITS	0x08080000ULL
#define GUEST_GICR	0x080a0000ULL
#define GUEST_REPORT	0x0a000000ULL	/* no memory slot: writes exit */
#define GUEST_PROP	(GUEST_RAM + 0x1a0000)	/* LPI configuration, 8 KiB */
#define GUEST_PEND	(GUEST_RAM + 0x1b0000)	/* LPI pending bits, 64 KiB aligned */
#define GUEST_DEVTBL	(GUEST_RAM + 0x1c0000)	/* ITS device table, 64 KiB */
#define GUEST_COLTBL	(GUEST_RAM + 0x1d0000)	/* ITS collection table, 64 KiB */
#define GUEST_CMDQ	(GUEST_RAM + 0x1e0000)	/* ITS command queue, 4 KiB */
#define GUEST_ITT	(GUEST_RAM + 0x1e8000)	/* edu's ITT */
#define GUEST_DEVID	16
#define GUEST_LPI	8192

/* The route: edu's event 0 of device 16 at the ITS's doorbell. */
#define ROUTE_ADDR	(GUEST_GITS + 0x10040)	/* GITS_TRANSLATER */
#define ROUTE_DATA	0
#define ROUTE_DEVID	GUEST_DEVID
#define ROUTE_FLAGS	KVM_MSI_VALID_DEVID
#define GUEST_EXPECT_ID	GUEST_LPI
/* A device id the guest's ITS never mapped. */
#define ROUTE_NOWHERE_ADDR	ROUTE_ADDR
#define ROUTE_NOWHERE_DEVID	(GUEST_DEVID + 1)
#define ROUTE_AT_READY	1

#define V4_PARAM	"kvm-arm.vgic_v4_enable=1"

extern const char __start_guest_code[], __stop_guest_code[], guest_entry[];

/*
 * The guest's C runs with the MMU off: every access is to Device memory
 * (aligned, as the compiler emits them), without floating point (CPACR
 * traps it), and reaches nothing outside this section: it is copied to
 * GUEST_RAM alone, so it calls only functions of its own, by relative
 * branches, and takes every address from the parameters or a constant.
 */
#define GUEST_FN	__attribute__((section("guest_code"), target("general-regs-only"), noinline))

typedef volatile struct guest_params gp_t;

static inline __attribute__((always_inline)) uint32_t r32(uint64_t a)
{
	return *(volatile uint32_t *)a;
}

static inline __attribute__((always_inline)) void w32(uint64_t a, uint32_t v)
{
	*(volatile uint32_t *)a = v;
}

static inline __attribute__((always_inline)) uint64_t r64(uint64_t a)
{
	return *(volatile uint64_t *)a;
}

static inline __attribute__((always_inline)) void w64(uint64_t a, uint64_t v)
{
	*(volatile uint64_t *)a = v;
}

static inline __attribute__((always_inline)) uint64_t counter(void)
{
	uint64_t t;

	asm volatile("isb; mrs %0, cntvct_el0" : "=r"(t) :: "memory");
	return t;
}

/* Reports `code` to the VMM: an MMIO write it sees as KVM_EXIT_MMIO. */
static inline __attribute__((always_inline)) void report(uint32_t code)
{
	asm volatile("dsb sy" ::: "memory");
	w32(GUEST_REPORT, code);
}

/* Sends one ITS command (four doublewords) and waits for the ITS to take it. */
GUEST_FN static void its_cmd(uint64_t d0, uint64_t d1, uint64_t d2)
{
	uint64_t cwriter = r64(GUEST_GITS + 0x88), next = (cwriter + 32) % 4096;
	uint64_t cmd = GUEST_CMDQ + cwriter;

	w64(cmd, d0);
	w64(cmd + 8, d1);
	w64(cmd + 16, d2);
	w64(cmd + 24, 0);
	asm volatile("dsb sy" ::: "memory");
	w64(GUEST_GITS + 0x88, next);
	while (r64(GUEST_GITS + 0x90) != next)
		;
}

/* Waits, interrupts masked between the check and wfi, for `n` interrupts. */
GUEST_FN static void guest_wait(gp_t *p, uint64_t n)
{
	for (;;) {
		asm volatile("msr daifset, #2" ::: "memory");
		if (p->count + p->wrong >= n)
			break;
		asm volatile("wfi; msr daifclr, #2; isb" ::: "memory");
	}
	asm volatile("msr daifclr, #2; isb" ::: "memory");
}

GUEST_FN void guest_irq(gp_t *p)
{
	uint64_t intid, t;

	asm volatile("mrs %0, s3_0_c12_c12_0" : "=r"(intid));	/* ICC_IAR1_EL1 */
	if (intid >= 1020 && intid < 1024)
		return;
	asm volatile("msr s3_0_c12_c12_1, %0; isb" :: "r"(intid));	/* ICC_EOIR1_EL1 */
	p->last_id = intid;
	if (intid != p->id) {
		p->wrong++;
		return;
	}
	t = counter() - p->t_raise;
	p->lat_sum += t;
	if (t > p->lat_max)
		p->lat_max = t;
	p->count++;
}

GUEST_FN void guest_exception(gp_t *p, uint64_t esr, uint64_t elr, uint64_t far)
{
	p->cause = esr;
	p->sepc = elr;
	p->stval = far;
	for (;;)
		report(GUEST_FAIL);
}

GUEST_FN void guest_main(gp_t *p)
{
	uint64_t i, ctlr;

	asm volatile("mrs %0, cntfrq_el0" : "=r"(p->freq));
	/* Distributor: affinity routing, group 1; redistributor awake. */
	w32(GUEST_GICD, (1 << 4) | (1 << 1));
	while (r32(GUEST_GICD) & (1u << 31))
		;
	w32(GUEST_GICR + 0x14, r32(GUEST_GICR + 0x14) & ~2u);
	while (r32(GUEST_GICR + 0x14) & 4)
		;
	/* The LPI enabled at priority 0xa0; 14 interrupt id bits. */
	*(volatile uint8_t *)(GUEST_PROP + (p->id - GUEST_LPI)) = 0xa0 | 1;
	w64(GUEST_GICR + 0x70, GUEST_PROP | (1 << 10) | (7 << 7) | 13);	/* PROPBASER */
	w64(GUEST_GICR + 0x78, GUEST_PEND | (1 << 10) | (7 << 7));	/* PENDBASER */
	w32(GUEST_GICR, r32(GUEST_GICR) | 1);				/* EnableLPIs */
	/* CPU interface: system registers, all priorities, group 1 on. */
	asm volatile("mrs %0, s3_0_c12_c12_5; orr %0, %0, #1; msr s3_0_c12_c12_5, %0; isb"
		     : "=&r"(ctlr));					/* ICC_SRE_EL1 */
	asm volatile("msr s3_0_c4_c6_0, %0" :: "r"(0xffULL));		/* ICC_PMR_EL1 */
	asm volatile("msr s3_0_c12_c12_7, %0; isb" :: "r"(1ULL));	/* ICC_IGRPEN1_EL1 */
	/* ITS: the device and collection tables (64 KiB pages), the queue. */
	for (i = 0; i < 8; i++) {
		uint64_t reg = GUEST_GITS + 0x100 + 8 * i, type = (r64(reg) >> 56) & 7;
		uint64_t table = type == 1 ? GUEST_DEVTBL : type == 4 ? GUEST_COLTBL : 0;

		if (table)
			w64(reg, (1ULL << 63) | (7ULL << 59) | table | (1 << 10) | (2 << 8));
	}
	w64(GUEST_GITS + 0x80, (1ULL << 63) | (7ULL << 59) | GUEST_CMDQ | (1 << 10));
	w64(GUEST_GITS + 0x88, 0);
	w32(GUEST_GITS, r32(GUEST_GITS) | 1);
	/* edu's event 0 -> the LPI, in collection 0 on vCPU 0. */
	its_cmd(0x08 | ((uint64_t)GUEST_DEVID << 32), 0, (1ULL << 63) | GUEST_ITT);	/* MAPD */
	its_cmd(0x09, 0, (1ULL << 63) | (0ULL << 16) | 0);			/* MAPC */
	its_cmd(0x0a | ((uint64_t)GUEST_DEVID << 32), ((uint64_t)p->id << 32) | 0, 0); /* MAPTI */
	its_cmd(0x0d, 0, 0);							/* INVALL */
	its_cmd(0x05, 0, 0);							/* SYNC */
	report(GUEST_READY);
	asm volatile("msr daifclr, #2; isb" ::: "memory");

	p->t_first = counter();
	for (i = 1; i <= p->n; i++) {
		p->t_raise = counter();
		asm volatile("dsb sy" ::: "memory");
		w32(p->bar + 0x60, 1);				/* edu: raise */
		guest_wait(p, i);
		if (i == p->mid)
			report(GUEST_MID);
	}
	p->t_last = counter();
	if (p->dma_len) {
		uint64_t n = p->n + 1, ok = 1;

		w32(p->bar + 0x80, p->dma_src);			/* guest RAM -> edu */
		w32(p->bar + 0x88, 0x40000);
		w32(p->bar + 0x90, p->dma_len);
		asm volatile("dsb sy" ::: "memory");
		w32(p->bar + 0x98, 1);
		while (r32(p->bar + 0x98) & 1)
			;
		w32(p->bar + 0x80, 0x40000);			/* edu -> guest RAM, interrupting */
		w32(p->bar + 0x88, p->dma_dst);
		w32(p->bar + 0x90, p->dma_len);
		p->t_raise = counter();
		asm volatile("dsb sy" ::: "memory");
		w32(p->bar + 0x98, 7);
		guest_wait(p, n);
		asm volatile("dsb sy" ::: "memory");
		for (i = 0; i < p->dma_len; i++)
			if (*(volatile uint8_t *)(p->dma_src + i) != *(volatile uint8_t *)(p->dma_dst + i))
				ok = 2;
		p->dma_ok = ok;
	}
	for (;;)
		report(GUEST_DONE);
}

/*
 * The entry and the vectors (current EL with SP_EL1: synchronous at
 * 0x200, IRQ at 0x280). The parameters stay in TPIDR_EL1 for the handlers;
 * the stack grows down from them.
 */
asm(
"	.pushsection guest_code, \"ax\"\n"
"	.balign 2048\n"
"guest_vectors:\n"
"	.org guest_vectors + 0x200\n"
"	mrs	x0, tpidr_el1\n"
"	mrs	x1, esr_el1\n"
"	mrs	x2, elr_el1\n"
"	mrs	x3, far_el1\n"
"	bl	guest_exception\n"
"	.org guest_vectors + 0x280\n"
"	b	guest_irq_entry\n"
"	.org guest_vectors + 0x800\n"
"	.global guest_entry\n"
"guest_entry:\n"
"	msr	tpidr_el1, x0\n"
"	mov	sp, x0\n"
"	adr	x1, guest_vectors\n"
"	msr	vbar_el1, x1\n"
"	isb\n"
"	bl	guest_main\n"
"1:	b	1b\n"
"guest_irq_entry:\n"
"	stp	x0, x1, [sp, #-176]!\n"
"	stp	x2, x3, [sp, #16]\n"
"	stp	x4, x5, [sp, #32]\n"
"	stp	x6, x7, [sp, #48]\n"
"	stp	x8, x9, [sp, #64]\n"
"	stp	x10, x11, [sp, #80]\n"
"	stp	x12, x13, [sp, #96]\n"
"	stp	x14, x15, [sp, #112]\n"
"	stp	x16, x17, [sp, #128]\n"
"	stp	x18, x29, [sp, #144]\n"
"	str	x30, [sp, #160]\n"
"	mrs	x0, tpidr_el1\n"
"	bl	guest_irq\n"
"	ldp	x2, x3, [sp, #16]\n"
"	ldp	x4, x5, [sp, #32]\n"
"	ldp	x6, x7, [sp, #48]\n"
"	ldp	x8, x9, [sp, #64]\n"
"	ldp	x10, x11, [sp, #80]\n"
"	ldp	x12, x13, [sp, #96]\n"
"	ldp	x14, x15, [sp, #112]\n"
"	ldp	x16, x17, [sp, #128]\n"
"	ldp	x18, x29, [sp, #144]\n"
"	ldr	x30, [sp, #160]\n"
"	ldp	x0, x1, [sp], #176\n"
"	eret\n"
"	.popsection\n");

#define ARM64_CORE_REG(x)	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
				 KVM_REG_ARM_CORE_REG(x))

static int dev_attr(int dev, uint32_t group, uint64_t attr, void *val)
{
	struct kvm_device_attr a = { .group = group, .attr = attr, .addr = (uintptr_t)val };

	return _ioctl(dev, KVM_SET_DEVICE_ATTR, &a);
}

/* vCPU 0 at guest_entry with the parameters in x0; a vGICv3 and a vITS. */
static int arch_vm_init(struct vm *v, int kvm, uint32_t mode)
{
	struct kvm_create_device gic = { .type = KVM_DEV_TYPE_ARM_VGIC_V3 };
	struct kvm_create_device its = { .type = KVM_DEV_TYPE_ARM_VGIC_ITS };
	uint64_t dist = GUEST_GICD, redist = GUEST_GICR, gits = GUEST_GITS;
	struct kvm_vcpu_init init;
	uint32_t nr_irqs = 64;
	int ret;

	ret = _ioctl(v->vm, KVM_ARM_PREFERRED_TARGET, &init);
	if (ret)
		return ret;
	v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0)
		return -errno;
	ret = _ioctl(v->vcpu, KVM_ARM_VCPU_INIT, &init) ?:
	      set_reg(v->vcpu, ARM64_CORE_REG(regs.pc), GUEST_RAM + (guest_entry - __start_guest_code)) ?:
	      set_reg(v->vcpu, ARM64_CORE_REG(regs.regs[0]), GUEST_PARAMS) ?:
	      _ioctl(v->vm, KVM_CREATE_DEVICE, &gic);
	if (ret)
		return ret;
	v->irqchip = gic.fd;
	ret = dev_attr(v->irqchip, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs) ?:
	      dev_attr(v->irqchip, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_DIST, &dist) ?:
	      dev_attr(v->irqchip, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist) ?:
	      dev_attr(v->irqchip, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL) ?:
	      _ioctl(v->vm, KVM_CREATE_DEVICE, &its);
	if (ret)
		return ret;
	v->its = its.fd;
	return dev_attr(v->its, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_ITS_ADDR_TYPE, &gits) ?:
	       dev_attr(v->its, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL);
}

/* An exit: 1 with the guest's report in `*code`, 0 to go on, or -errno. */
static int arch_exit(struct kvm_run *run, int *code)
{
	if (run->exit_reason == KVM_EXIT_MMIO && run->mmio.phys_addr == GUEST_REPORT &&
	    run->mmio.is_write && run->mmio.len == 4) {
		memcpy(code, run->mmio.data, 4);
		return 1;
	}
	return -EFAULT;
}

/* Counter ticks per microsecond, as the guest read CNTFRQ_EL0. */
static double arch_ticks_per_us(struct vm *v)
{
	return v->params->freq ? v->params->freq / 1e6 : 62.5;
}

/* Whether the LPI is pending: the vGIC's pending table is the guest's, not read here. */
static int arch_pending(struct vm *v)
{
	return 0;
}

/*
 * Whether MSIs are posted is decided at boot (kvm-arm.vgic_v4_enable):
 * 0 when the kernel already does what `on` asks, else -EOPNOTSUPP.
 */
static int arch_bypass(int on)
{
	char cmdline[4096];

	if (msr_read("/proc/cmdline", cmdline, sizeof(cmdline)) < 0)
		return -EIO;
	return !!strstr(cmdline, V4_PARAM) == !!on ? 0 : -EOPNOTSUPP;
}

#define VM_MODE	0

#endif
