// SPDX-License-Identifier: GPL-2.0

//! The command queue (spec 3.1): the driver produces commands, the IOMMU
//! consumes them; an `IOFENCE.C` after a batch writes a sequence number to
//! memory once every command before it has taken effect.

use kernel::{
    device::{self, Bound},
    dma::{Coherent, DmaAddress},
    io::{io_read, io_write, poll::read_poll_timeout_atomic, Io},
    new_raw_spinlock_irq,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        lock::raw_spinlock::RawSpinLockIrq, //
    },
};

use crate::{
    hw::{cmd::Command, queue::Ring},
    regs::{self, wait_reg, Regs, RegsIo, POLL_STEP, POLL_TRIES},
};

/// Command-queue entries (4096 commands, 64 KiB).
const CQ_LOG2: u32 = 12;

/// Producer state of the command queue.
struct CmdState {
    tail: u32,
    /// The IOMMU's head as last known: every fence that completed consumed
    /// all commands before it, so `CQH` is read only when the ring looks full.
    head: u32,
    seq: u32,
}

/// The command queue.
///
/// # Invariants
///
/// `buf` holds two words per entry of `ring`.
#[pin_data]
pub(crate) struct CommandQueue {
    ring: Ring,
    buf: Coherent<[u64]>,
    /// Where `IOFENCE.C` writes its sequence number on completion.
    fence: Coherent<[u32]>,
    /// Serialises producers; taken in atomic context (DMA unmaps) and in
    /// hard interrupts (MSI moves), so with interrupts off.
    #[pin]
    state: RawSpinLockIrq<CmdState>,
    /// Commands queued, fences excluded.
    pub(crate) commands: Atomic<u64>,
    /// Fences waited for.
    pub(crate) syncs: Atomic<u64>,
}

impl CommandQueue {
    /// Allocates the queue and its fence word; the IOMMU does not know
    /// them before [`CommandQueue::start`].
    pub(crate) fn new(dev: &device::Device<Bound>) -> Result<impl PinInit<Self, Error>> {
        // PANIC: the ring size is a constant within 1..=31.
        let ring = Ring::new(CQ_LOG2).expect("CQ_LOG2 is valid");
        let buf: Coherent<[u64]> =
            Coherent::zeroed_slice(dev, 2 * ring.entries() as usize, GFP_KERNEL)?;
        let fence: Coherent<[u32]> = Coherent::zeroed_slice(dev, 1, GFP_KERNEL)?;
        Ok(try_pin_init!(Self {
            ring,
            // INVARIANT: `buf` has two words per entry.
            buf,
            fence,
            state <- new_raw_spinlock_irq!(CmdState { tail: 0, head: 0, seq: 0 }, "CommandQueue::state"),
            commands: Atomic::new(0),
            syncs: Atomic::new(0),
        }))
    }

    /// Points the IOMMU at the queue and enables it.
    pub(crate) fn start(&self, bar: &RegsIo<'_>, dev: &device::Device) -> Result {
        let cqb = regs::CQB::zeroed()
            .try_with_ppn(regs::ppn(self.buf.dma_address()))?
            .try_with_log2sz_1(u64::from(self.ring.log2() - 1))?;
        bar.try_write_reg(cqb)?;
        bar.try_write_reg(regs::CQT::zeroed())?;
        bar.try_write_reg(regs::CQCSR::zeroed().with_cqen(true))?;
        wait_reg(|| bar.try_read(regs::CQCSR).map(|r| r.cqon() && !r.busy()))
            .inspect_err(|_| dev_err!(dev, "command queue does not start\n"))
    }

    /// Queues `cmds` followed by an `IOFENCE.C` and waits for the fence, so
    /// every command has taken effect when this returns. Never sleeps.
    pub(crate) fn submit_sync(
        &self,
        regs: &Regs,
        dev: &device::Device,
        cmds: &[Command],
    ) -> Result {
        let mut st = self.state.lock();
        st.seq = st.seq.wrapping_add(1);
        let seq = st.seq;
        let fence_addr: DmaAddress = self.fence.dma_address();
        let fence = Command::iofence(Some((fence_addr, seq)));
        let guard = regs.access().ok_or(ENXIO)?;
        let bar = guard.io();
        for cmd in Iterator::chain(cmds.iter().copied(), [fence]) {
            if self.ring.free(st.head, st.tail) == 0 {
                bar.try_write_reg(regs::CQT::zeroed().with_index(st.tail))?;
                let tail = st.tail;
                st.head = read_poll_timeout_atomic(
                    || bar.try_read(regs::CQH).map(|h| h.index().get()),
                    |h| self.ring.free(*h, tail) > 0,
                    POLL_STEP,
                    POLL_TRIES,
                )?;
            }
            // CAST: `tail` is below the ring size, which fits in `usize`.
            let slot = 2 * st.tail as usize;
            io_write!(&self.buf, [try: slot], cmd.0[0]);
            io_write!(&self.buf, [try: slot + 1], cmd.0[1]);
            st.tail = self.ring.next(st.tail);
        }
        // `writel` orders the command stores before the doorbell.
        bar.try_write_reg(regs::CQT::zeroed().with_index(st.tail))?;
        self.commands.fetch_add(cmds.len() as u64, Relaxed);
        self.syncs.fetch_add(1, Relaxed);
        let done = read_poll_timeout_atomic(
            || Ok(io_read!(&self.fence, [try: 0])),
            |v: &u32| *v == seq,
            POLL_STEP,
            POLL_TRIES,
        );
        if let Err(e) = done {
            let csr = bar.try_read(regs::CQCSR)?;
            dev_err!(
                dev,
                "command queue stuck (cqcsr {:#x}: ill {} timeout {} memfault {})\n",
                csr.into_raw(),
                csr.cmd_ill(),
                csr.cmd_to(),
                csr.cqmf()
            );
            return Err(e);
        }
        // The fence completed: the IOMMU consumed everything queued.
        st.head = st.tail;
        Ok(())
    }
}
