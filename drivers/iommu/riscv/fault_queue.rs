// SPDX-License-Identifier: GPL-2.0

//! The fault queue and the page-request queue (spec 3.2, 3.3): records the
//! IOMMU produces and the driver consumes, drained from the interrupt's
//! thread (and when debugfs `stats` is read).

use kernel::{
    device::{self, Bound},
    dma::Coherent,
    io::io_read,
    io::Io,
    new_spinlock,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        SpinLock, //
    },
    time::{Instant, Monotonic},
};

use crate::{
    hw::{
        fault::{FaultRecord, PageRequest},
        queue::Ring,
        ratelimit::RateLimit,
    },
    regs::{self, wait_reg, Regs, RegsIo},
};

/// Fault lines logged every `FAULT_LOG_INTERVAL_MS`, the kernel's default
/// rate limit (`DEFAULT_RATELIMIT_BURST` in `DEFAULT_RATELIMIT_INTERVAL`);
/// the rest are counted, and the count logged when the next interval opens.
const FAULT_LOG_BURST: u32 = 10;
const FAULT_LOG_INTERVAL_MS: u64 = 5000;
/// Fault-queue entries (1024 records, 32 KiB).
const FQ_LOG2: u32 = 10;
/// Page-request queue: 256 records of 16 bytes.
const PQ_LOG2: u32 = 8;
/// Words of a fault record.
const RECORD_WORDS: usize = FaultRecord::SIZE as usize / 8;
/// Words of a page request.
const REQUEST_WORDS: usize = PageRequest::SIZE as usize / 8;
/// Page requests logged (none is expected: no context enables PRI).
const PAGE_REQUESTS_LOGGED: u64 = 8;

/// The fault-queue consumer: its head, and the rate limits of its log.
struct FaultLog {
    head: u32,
    /// Origin of the rate limits' clock.
    epoch: Instant<Monotonic>,
    /// One line per fault record, rate-limited.
    records: RateLimit,
    /// Queue overflows and memory faults: one line an interval.
    errors: RateLimit,
}

impl FaultLog {
    fn new() -> Self {
        Self {
            head: 0,
            epoch: Instant::now(),
            records: RateLimit::new(FAULT_LOG_INTERVAL_MS, FAULT_LOG_BURST),
            errors: RateLimit::new(FAULT_LOG_INTERVAL_MS, 1),
        }
    }

    /// Milliseconds since `epoch`.
    fn now_ms(&self) -> u64 {
        // CAST: the monotonic clock does not go back: never negative.
        self.epoch.elapsed().as_millis() as u64
    }
}

/// The fault queue.
///
/// # Invariants
///
/// `buf` holds [`RECORD_WORDS`] words per entry of `ring`.
#[pin_data]
pub(crate) struct FaultQueue {
    ring: Ring,
    buf: Coherent<[u64]>,
    /// The consumer's state; serialises it.
    #[pin]
    log: SpinLock<FaultLog>,
    /// Records read.
    pub(crate) faults: Atomic<u64>,
}

impl FaultQueue {
    /// Allocates the queue; the IOMMU does not know it before
    /// [`FaultQueue::start`].
    pub(crate) fn new(dev: &device::Device<Bound>) -> Result<impl PinInit<Self, Error>> {
        // PANIC: the ring size is a constant within 1..=31.
        let ring = Ring::new(FQ_LOG2).expect("FQ_LOG2 is valid");
        let buf: Coherent<[u64]> =
            Coherent::zeroed_slice(dev, RECORD_WORDS * ring.entries() as usize, GFP_KERNEL)?;
        Ok(try_pin_init!(Self {
            ring,
            // INVARIANT: `RECORD_WORDS` words per entry.
            buf,
            log <- new_spinlock!(FaultLog::new(), "FaultQueue::log"),
            faults: Atomic::new(0),
        }))
    }

    /// Points the IOMMU at the queue and enables it (interrupt masked).
    pub(crate) fn start(&self, bar: &RegsIo<'_>, dev: &device::Device) -> Result {
        let fqb = regs::FQB::zeroed()
            .try_with_ppn(regs::ppn(self.buf.dma_address()))?
            .try_with_log2sz_1(u64::from(self.ring.log2() - 1))?;
        bar.try_write_reg(fqb)?;
        bar.try_write_reg(regs::FQH::zeroed())?;
        bar.try_write_reg(regs::FQCSR::zeroed().with_fqen(true))?;
        wait_reg(|| bar.try_read(regs::FQCSR).map(|r| r.fqon() && !r.busy()))
            .inspect_err(|_| dev_err!(dev, "fault queue does not start\n"))
    }

    /// Reports every fault the IOMMU queued since the last call, one
    /// rate-limited line each, and counts them.
    pub(crate) fn drain(&self, regs: &Regs, dev: &device::Device) {
        let mut st = self.log.lock();
        let Some(guard) = regs.access() else { return };
        let bar = guard.io();
        let Ok(tail) = bar.try_read(regs::FQT).map(|t| t.index().get()) else {
            return;
        };
        let now = st.now_ms();
        while st.head != tail {
            // CAST: `head` is below the ring size.
            let slot = RECORD_WORDS * st.head as usize;
            let Ok(w) = read_record::<RECORD_WORDS>(&self.buf, slot) else {
                return;
            };
            let f = FaultRecord::decode(w);
            self.faults.fetch_add(1, Relaxed);
            let (log, missed) = st.records.allow(now);
            if missed > 0 {
                dev_warn!(dev, "{} fault records not logged (rate limit)\n", missed);
            }
            if log {
                log_fault(dev, &f);
            }
            st.head = self.ring.next(st.head);
        }
        let _ = bar.try_write_reg(regs::FQH::zeroed().with_index(st.head));
        if let Ok(csr) = bar.try_read(regs::FQCSR) {
            if csr.fqof() || csr.fqmf() {
                if st.errors.allow(now).0 {
                    let what = if csr.fqof() {
                        "overflowed"
                    } else {
                        "memory fault"
                    };
                    dev_warn!(dev, "fault queue {} (fqcsr {:#x})\n", what, csr.into_raw());
                }
                // The status bits are write-1-to-clear.
                let _ = bar.try_write_reg(csr);
            }
        }
    }
}

/// The `N` words of the record at word `slot` of a queue's memory.
fn read_record<const N: usize>(buf: &Coherent<[u64]>, slot: usize) -> Result<[u64; N]> {
    let mut w = [0u64; N];
    for (i, word) in w.iter_mut().enumerate() {
        *word = io_read!(buf, [try: slot + i]);
    }
    Ok(w)
}

/// Logs one fault record in one line.
fn log_fault(dev: &device::Device, f: &FaultRecord) {
    dev_err!(
        dev,
        "fault: device {:#06x} cause {} ({}) {} iova {:#x} gpa {:#x} pasid {}\n",
        f.did,
        f.cause,
        f.cause_name(),
        f.ttyp_name(),
        f.iotval,
        f.iotval2,
        if f.pv { i64::from(f.pid) } else { -1 }
    );
}

/// The page-request queue, where the IOMMU has one (ATS): no device
/// context enables PRI, so a record there means a device asked for a page
/// anyway; it is reported and counted.
///
/// # Invariants
///
/// `buf` holds [`REQUEST_WORDS`] words per entry of `ring`.
#[pin_data]
pub(crate) struct PageRequestQueue {
    ring: Ring,
    buf: Coherent<[u64]>,
    /// The consumer's head; serialises it.
    #[pin]
    head: SpinLock<u32>,
    /// Requests read.
    pub(crate) requests: Atomic<u64>,
}

impl PageRequestQueue {
    /// Allocates the queue; the IOMMU does not know it before
    /// [`PageRequestQueue::start`].
    pub(crate) fn new(dev: &device::Device<Bound>) -> Result<impl PinInit<Self, Error>> {
        // PANIC: the ring size is a constant within 1..=31.
        let ring = Ring::new(PQ_LOG2).expect("PQ_LOG2 is valid");
        let buf: Coherent<[u64]> =
            Coherent::zeroed_slice(dev, REQUEST_WORDS * ring.entries() as usize, GFP_KERNEL)?;
        Ok(try_pin_init!(Self {
            ring,
            // INVARIANT: `REQUEST_WORDS` words per entry.
            buf,
            head <- new_spinlock!(0, "PageRequestQueue::head"),
            requests: Atomic::new(0),
        }))
    }

    /// Points the IOMMU at the queue and enables it (interrupt masked).
    pub(crate) fn start(&self, bar: &RegsIo<'_>, dev: &device::Device) -> Result {
        let pqb = regs::PQB::zeroed()
            .try_with_ppn(regs::ppn(self.buf.dma_address()))?
            .try_with_log2sz_1(u64::from(self.ring.log2() - 1))?;
        bar.try_write_reg(pqb)?;
        bar.try_write_reg(regs::PQH::zeroed())?;
        bar.try_write_reg(regs::PQCSR::zeroed().with_pqen(true))?;
        wait_reg(|| bar.try_read(regs::PQCSR).map(|r| r.pqon() && !r.busy()))
            .inspect_err(|_| dev_err!(dev, "page-request queue does not start\n"))
    }

    /// Reports and counts page requests, and makes room for more.
    pub(crate) fn drain(&self, regs: &Regs, dev: &device::Device) {
        let mut head = self.head.lock();
        let Some(guard) = regs.access() else { return };
        let bar = guard.io();
        let Ok(tail) = bar.try_read(regs::PQT).map(|t| t.index().get()) else {
            return;
        };
        while *head != tail {
            // CAST: `head` is below the ring size.
            let slot = REQUEST_WORDS * *head as usize;
            let Ok(w) = read_record::<REQUEST_WORDS>(&self.buf, slot) else {
                return;
            };
            if self.requests.fetch_add(1, Relaxed) < PAGE_REQUESTS_LOGGED {
                let r = PageRequest::decode(w);
                dev_err!(
                    dev,
                    "page request: device {:#06x} pasid {} address {:#x} (PRI is not enabled)\n",
                    r.did,
                    r.pid,
                    r.addr
                );
            }
            *head = self.ring.next(*head);
        }
        let _ = bar.try_write_reg(regs::PQH::zeroed().with_index(*head));
        if let Ok(csr) = bar.try_read(regs::PQCSR) {
            if csr.pqof() || csr.pqmf() {
                dev_warn!(
                    dev,
                    "page-request queue error (pqcsr {:#x})\n",
                    csr.into_raw()
                );
                // The status bits are write-1-to-clear.
                let _ = bar.try_write_reg(csr);
            }
        }
    }
}
