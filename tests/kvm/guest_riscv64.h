/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvm_edu's riscv64 side: the guest, a bare-metal program in VS-mode with
 * its IMSIC a hardware guest interrupt file (in-kernel AIA, HWACCEL), and
 * what the VMM does for it: the vCPU's registers, the AIA device, and the
 * SBI calls the guest reports through (the experimental extension range,
 * which KVM forwards to user space).
 *
 * Bypass is KVM's irqbypass (patch 0017) through the IOMMU's remapping
 * domain; kvm.irqbypass=0 makes the irqfds that follow relayed.
 */
#ifndef KVM_EDU_GUEST_RISCV64_H
#define KVM_EDU_GUEST_RISCV64_H

#define GUEST_IMSIC	0x0c000000ULL	/* the host's IMSICs are at 0x28000000 */

/* The route: vCPU 0's interrupt file, identity 5; the guest expects 5. */
#define ROUTE_ADDR	GUEST_IMSIC
#define ROUTE_DATA	5
#define ROUTE_DEVID	0
#define ROUTE_FLAGS	0
#define GUEST_EXPECT_ID	5
/* An address that is no vCPU's interrupt file. */
#define ROUTE_NOWHERE_ADDR	(GUEST_IMSIC + 0x100000)
#define ROUTE_NOWHERE_DEVID	0
/* KVM posts MSIs routed before the vCPU first runs once it has a VS-file. */
#define ROUTE_AT_READY	0

#define SBI_EXT_MSIREMAP	0x08ffffff
#define BYPASS_PARAM		"/sys/module/kvm/parameters/irqbypass"

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
"	li	a6, 2\n"		/* GUEST_MID */
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
"	li	a6, 0\n"		/* GUEST_DONE */
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
"	li	a6, 1\n"		/* GUEST_FAIL */
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


static int aia_attr(int dev, uint32_t group, uint64_t attr, void *val)
{
	struct kvm_device_attr a = { .group = group, .attr = attr, .addr = (uintptr_t)val };

	return _ioctl(dev, KVM_SET_DEVICE_ATTR, &a);
}

/*
 * vCPU 0 starting at guest_entry with the parameters in a0, and in-kernel
 * AIA in `mode`, no APLIC, vCPU 0's IMSIC at GUEST_IMSIC.
 */
static int arch_vm_init(struct vm *v, int kvm, uint32_t mode)
{
	struct kvm_create_device aia = { .type = KVM_DEV_TYPE_RISCV_AIA };
	uint32_t ids = 63, srcs = 0, hart_bits = 0;
	uint64_t imsic = GUEST_IMSIC;
	int ret;

	v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0);
	if (v->vcpu < 0)
		return -errno;
	ret = set_reg(v->vcpu, RISCV_SBI_EXT_REG(KVM_RISCV_SBI_EXT_EXPERIMENTAL), 1) ?:
	      set_reg(v->vcpu, RISCV_CORE_REG(regs.pc), GUEST_RAM + (guest_entry - __start_guest_code)) ?:
	      set_reg(v->vcpu, RISCV_CORE_REG(regs.a0), GUEST_PARAMS) ?:
	      _ioctl(v->vm, KVM_CREATE_DEVICE, &aia);
	if (ret)
		return ret;
	v->irqchip = aia.fd;
	return aia_attr(v->irqchip, KVM_DEV_RISCV_AIA_GRP_CONFIG, KVM_DEV_RISCV_AIA_CONFIG_MODE, &mode) ?:
	       aia_attr(v->irqchip, KVM_DEV_RISCV_AIA_GRP_CONFIG, KVM_DEV_RISCV_AIA_CONFIG_IDS, &ids) ?:
	       aia_attr(v->irqchip, KVM_DEV_RISCV_AIA_GRP_CONFIG, KVM_DEV_RISCV_AIA_CONFIG_SRCS, &srcs) ?:
	       aia_attr(v->irqchip, KVM_DEV_RISCV_AIA_GRP_CONFIG, KVM_DEV_RISCV_AIA_CONFIG_HART_BITS,
			&hart_bits) ?:
	       aia_attr(v->irqchip, KVM_DEV_RISCV_AIA_GRP_ADDR, KVM_DEV_RISCV_AIA_ADDR_IMSIC(0), &imsic) ?:
	       aia_attr(v->irqchip, KVM_DEV_RISCV_AIA_GRP_CTRL, KVM_DEV_RISCV_AIA_CTRL_INIT, NULL);
}

/*
 * An exit: 1 with the guest's report in `*code`, 0 when the guest goes on,
 * -ENXIO when KVM could not enter it (no VS-file free on this hart), or
 * another -errno.
 */
static int arch_exit(struct kvm_run *run, int *code)
{
	if (run->exit_reason == KVM_EXIT_RISCV_SBI) {
		if (run->riscv_sbi.extension_id != SBI_EXT_MSIREMAP) {
			run->riscv_sbi.ret[0] = -2;	/* SBI_ERR_NOT_SUPPORTED */
			return 0;
		}
		*code = run->riscv_sbi.function_id;
		return 1;
	}
	if (run->exit_reason == KVM_EXIT_FAIL_ENTRY &&
	    run->fail_entry.hardware_entry_failure_reason == KVM_EXIT_FAIL_ENTRY_NO_VSFILE)
		return -ENXIO;
	return -EFAULT;
}

/* Ticks of the time CSR per microsecond (the device tree's timebase). */
static double arch_ticks_per_us(struct vm *v)
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
 * Whether the identity the guest expects is pending in vCPU 0's interrupt
 * file (EIP0 of its VS-file, or of its SW-file), as KVM reads it.
 */
static int arch_pending(struct vm *v)
{
	uint64_t eip = 0;
	struct kvm_device_attr a = {
		.group = KVM_DEV_RISCV_AIA_GRP_IMSIC,
		.attr = KVM_DEV_RISCV_AIA_IMSIC_MKATTR(0, 0x80),	/* eip0 */
		.addr = (uintptr_t)&eip,
	};

	return !_ioctl(v->irqchip, KVM_GET_DEVICE_ATTR, &a) && (eip >> GUEST_EXPECT_ID & 1);
}

/* Posting on (1) or off (0) for the irqfds made from now on; 0 or -errno. */
static int arch_bypass(int on)
{
	return msr_write(BYPASS_PARAM, on ? "Y" : "N");
}

/* The AIA mode a VM gets. */
#define VM_MODE	KVM_DEV_RISCV_AIA_MODE_HWACCEL

#endif
