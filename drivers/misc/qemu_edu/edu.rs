// SPDX-License-Identifier: GPL-2.0

//! One edu device: its registers, DMA engine and counters.

use kernel::{
    device::{
        self,
        Bound, //
    },
    dma::{
        Coherent,
        DmaAddress, //
    },
    fmt,
    io::{
        io_read,
        io_write,
        poll::read_poll_timeout,
        Io, //
    },
    iommu::domain::DomainType,
    irq::{line::Line, IrqReturn, ThreadedHandler, ThreadedIrqReturn},
    new_mutex,
    pci::{self, capability::msi},
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{
            Atomic,
            Relaxed, //
        },
        Arc,
        Mutex, //
    },
    time::{delay::fsleep, Delta, Instant, Monotonic},
};

use crate::regs::{
    self,
    BAR0_SIZE,
    EDU_BUF,
    EDU_BUF_SIZE,
    EDU_MAGIC, //
};

/// Words in one half of the round-trip buffer.
const HALF_WORDS: usize = EDU_BUF_SIZE / 4;
/// How long one DMA transfer may take (edu completes on a ~100 ms timer).
const DMA_TIMEOUT: Delta = Delta::from_millis(2000);

/// Counters of the round trips run on one device.
struct DmaStats {
    transfers: Atomic<u64>,
    bytes: Atomic<u64>,
    mismatches: Atomic<u64>,
    timeouts: Atomic<u64>,
    last_dma: Atomic<u64>,
}

impl DmaStats {
    fn new() -> Self {
        Self {
            transfers: Atomic::new(0),
            bytes: Atomic::new(0),
            mismatches: Atomic::new(0),
            timeouts: Atomic::new(0),
            last_dma: Atomic::new(0),
        }
    }
}

/// Counts edu's MSIs, in the hard interrupt handler (edu sends one per
/// raise and needs no acknowledgement for MSIs).
#[pin_data]
pub(crate) struct EduIrq {
    count: Arc<Atomic<u64>>,
}

impl EduIrq {
    pub(crate) fn new(count: Arc<Atomic<u64>>) -> impl PinInit<Self, Error> {
        try_pin_init!(Self { count })
    }
}

impl ThreadedHandler for EduIrq {
    fn handle(&self) -> ThreadedIrqReturn {
        self.count.fetch_add(1, Relaxed);
        ThreadedIrqReturn::Handled
    }

    fn handle_threaded(&self) -> IrqReturn {
        IrqReturn::Handled
    }
}

/// One edu device, shared by the driver and its debugfs files.
///
/// # Invariants
///
/// `buf` holds `2 * HALF_WORDS` words: the source half of a round trip, then
/// the destination half.
#[pin_data]
pub(crate) struct Edu {
    pdev: ARef<pci::Device>,
    bar: pci::DevresBar<BAR0_SIZE>,
    /// The device has one DMA engine: the lock serialises round trips, and
    /// with them every use of the buffer the engine reads and writes.
    #[pin]
    buf: Mutex<Coherent<[u32]>>,
    stats: DmaStats,
    version: (u32, u32),
    /// The IOMMU domain the DMA API maps through, as found at probe.
    domain: Option<DomainType>,
    /// MSIs handled, and the interrupt of the MSI.
    irqs: Arc<Atomic<u64>>,
    line: Line,
    /// Raises that timed out, and how long the last batch of raises took.
    lost: Atomic<u64>,
    raise_ns: Atomic<u64>,
    raised: Atomic<u64>,
    /// The last batch of raises with the interrupt disabled: raises, and
    /// the handler's runs after enabling.
    masked_raised: Atomic<u64>,
    masked_replayed: Atomic<u64>,
    /// Serialises batches of raises.
    #[pin]
    raising: Mutex<()>,
}

impl Edu {
    /// Checks the device's identity and liveness register, then allocates the
    /// round-trip buffer.
    ///
    /// # Errors
    ///
    /// `ENODEV` when the identification or liveness check fails, `ENOMEM`
    /// when the buffer cannot be allocated within the device's DMA mask.
    pub(crate) fn new<'a>(
        pdev: &'a pci::Device<Bound>,
        bar: pci::Bar<'a, BAR0_SIZE>,
        irqs: Arc<Atomic<u64>>,
        line: Line,
    ) -> Result<impl PinInit<Self, Error> + 'a> {
        let ident = bar.read(regs::IDENT);
        if ident.magic().get() != u32::from(EDU_MAGIC) {
            dev_err!(pdev, "not an edu device (ident {:#x})\n", ident.into_raw());
            return Err(ENODEV);
        }
        for probe in [0x5a5a_a5a5u32, 0x1234_5678] {
            bar.write_reg(regs::LIVENESS::zeroed().with_value(probe));
            let back: u32 = bar.read(regs::LIVENESS).value().get();
            if back != !probe {
                dev_err!(
                    pdev,
                    "liveness check failed: wrote {probe:#x}, read {back:#x}\n"
                );
                return Err(ENODEV);
            }
        }
        let version = (ident.major().get(), ident.minor().get());
        let dev: &device::Device<Bound> = pdev.as_ref();
        let buf: Coherent<[u32]> =
            Coherent::zeroed_slice(pdev.as_ref(), 2 * HALF_WORDS, GFP_KERNEL)?;
        // INVARIANT: `buf` was allocated with `2 * HALF_WORDS` words.
        Ok(try_pin_init!(Self {
            pdev: pdev.into(),
            bar: bar.into_devres()?,
            buf <- new_mutex!(buf, "Edu::buf"),
            stats: DmaStats::new(),
            version,
            domain: dev.iommu_domain_type(),
            irqs,
            line,
            lost: Atomic::new(0),
            raise_ns: Atomic::new(0),
            raised: Atomic::new(0),
            masked_raised: Atomic::new(0),
            masked_replayed: Atomic::new(0),
            raising <- new_mutex!((), "Edu::raising"),
        }))
    }

    /// Has edu raise its MSI (`INTR_RAISE`).
    fn ring(&self) -> Result {
        self.bar
            .try_access()
            .ok_or(ENXIO)?
            .write_reg(regs::INTR_RAISE::zeroed().with_value(1u32));
        Ok(())
    }

    /// Waits up to a second for the handler count to move on from `before`.
    ///
    /// # Errors
    ///
    /// `ETIMEDOUT` when it did not (counted in `lost`).
    fn wait_handled(&self, before: u64) -> Result {
        let seen = read_poll_timeout(
            || Ok(self.irqs.load(Relaxed)),
            |c| *c != before,
            Delta::from_micros(1),
            Delta::from_millis(1000),
        );
        if seen.is_err() {
            self.lost.fetch_add(1, Relaxed);
            return Err(ETIMEDOUT);
        }
        Ok(())
    }

    /// Raises edu's MSI `n` times, each time waiting up to a second for
    /// the handler to count it; records the time the batch took.
    ///
    /// # Errors
    ///
    /// `ETIMEDOUT` when an MSI was not handled in time (counted in `lost`),
    /// `ENXIO` once the device is unbound.
    pub(crate) fn raise(&self, n: u64) -> Result {
        let _batch = self.raising.lock();
        let start = Instant::<Monotonic>::now();
        for _ in 0..n {
            let before = self.irqs.load(Relaxed);
            self.ring()?;
            self.wait_handled(before)?;
        }
        // CAST: a batch takes far less than 2^63 ns.
        self.raise_ns
            .store(start.elapsed().as_nanos() as u64, Relaxed);
        self.raised.store(n, Relaxed);
        Ok(())
    }

    /// Raises edu's MSI `n` times with its interrupt disabled, a millisecond
    /// apart so that each message arrives on its own; then enables it and
    /// waits up to a second for the handler. Records how often the handler
    /// ran after enabling: the messages sent while disabled are one edge,
    /// run once.
    ///
    /// The first message finds the interrupt disabled and has the chip mask
    /// it (the core disables lazily); the others arrive masked. Enabling
    /// unmasks it and replays it.
    ///
    /// # Errors
    ///
    /// `EIO` when the handler ran while the interrupt was disabled,
    /// `ETIMEDOUT` when it did not run after enabling (counted in `lost`),
    /// `ENXIO` once the device is unbound.
    pub(crate) fn raise_masked(&self, n: u64) -> Result {
        let _batch = self.raising.lock();
        let before = self.irqs.load(Relaxed);
        {
            let _disabled = self.line.disable()?;
            for _ in 0..n {
                self.ring()?;
                fsleep(Delta::from_millis(1));
            }
            fsleep(Delta::from_millis(10));
            if self.irqs.load(Relaxed) != before {
                return Err(EIO);
            }
        }
        self.wait_handled(before)?;
        // Anything run twice would have run by now.
        fsleep(Delta::from_millis(10));
        self.masked_raised.store(n, Relaxed);
        self.masked_replayed
            .store(self.irqs.load(Relaxed) - before, Relaxed);
        Ok(())
    }

    /// Sends one MSI with `address` and `data` instead of edu's own message
    /// (the IMS model's device write): they go into edu's MSI capability,
    /// at `cap`, for one raise, then edu's own come back. Serialised with
    /// edu's own raises, so its own MSI is never sent with them.
    ///
    /// # Errors
    ///
    /// `ERANGE` for a message the capability cannot hold (a 64-bit address
    /// without 64-bit support, data above 16 bits), `ENXIO` once unbound.
    pub(crate) fn send_message(
        &self,
        pdev: &pci::Device<Bound>,
        cap: usize,
        address: u64,
        data: u32,
    ) -> Result {
        let _batch = self.raising.lock();
        let cfg = pdev.config_space();
        let is64 = cfg.try_read16(cap + msi::FLAGS)? & msi::FLAGS_64BIT != 0;
        let data_off = cap + if is64 { msi::DATA_64 } else { msi::DATA_32 };
        let data = u16::try_from(data).map_err(|_| ERANGE)?;
        if !is64 && address >> 32 != 0 {
            return Err(ERANGE);
        }
        let own = (
            cfg.try_read32(cap + msi::ADDRESS_LO)?,
            if is64 {
                cfg.try_read32(cap + msi::ADDRESS_HI)?
            } else {
                0
            },
            cfg.try_read16(data_off)?,
        );
        let write = |lo: u32, hi: u32, d: u16| -> Result {
            cfg.try_write32(lo, cap + msi::ADDRESS_LO)?;
            if is64 {
                cfg.try_write32(hi, cap + msi::ADDRESS_HI)?;
            }
            cfg.try_write16(d, data_off)
        };
        // CAST: the address is written as its two 32-bit halves.
        write(address as u32, (address >> 32) as u32, data)?;
        let sent = self.ring();
        write(own.0, own.1, own.2)?;
        sent
    }

    /// Sends the MSI to a vCPU's guest interrupt file, or back to the host.
    pub(crate) fn set_vcpu_affinity(
        &self,
        target: Option<kernel::irq::remap::VcpuTarget>,
    ) -> Result {
        kernel::irq::remap::set_vcpu_affinity(&self.line, target)
    }

    /// Copies `len` bytes from RAM to edu's buffer and back to another place
    /// in RAM, through the DMA API's mapping, and checks every word.
    ///
    /// # Errors
    ///
    /// `EINVAL` for a length that is zero, above 4096 or not a multiple of 4,
    /// `ENXIO` once the device is unbound, `ETIMEDOUT` when a transfer does
    /// not complete, `EIO` when the data read back differs.
    pub(crate) fn round_trip(&self, len: usize, seed: u32) -> Result {
        check_len(len)?;
        let words = len / 4;
        let guard = self.buf.lock();
        let buf: &Coherent<[u32]> = &guard;
        for i in 0..HALF_WORDS {
            io_write!(buf, [try: i], pattern(seed, i));
            io_write!(buf, [try: HALF_WORDS + i], !pattern(seed, i));
        }
        let base: DmaAddress = buf.dma_address();
        self.stats.last_dma.store(base, Relaxed);
        // The DMA mask (`dma_bits` <= 32) keeps the buffer below 4 GiB.
        let src = u32::try_from(base).map_err(|_| ERANGE)?;
        let dst = u32::try_from(base + EDU_BUF_SIZE as u64).map_err(|_| ERANGE)?;
        // CAST: `len` is at most `EDU_BUF_SIZE`.
        let count = len as u32;

        self.transfer(src, EDU_BUF, count, false)?;
        self.transfer(EDU_BUF, dst, count, true)?;

        let mut bad = 0usize;
        let mut first_bad = None;
        for i in 0..HALF_WORDS {
            let want = if i < words {
                pattern(seed, i)
            } else {
                !pattern(seed, i)
            };
            let got: u32 = io_read!(buf, [try: HALF_WORDS + i]);
            if got != want {
                bad += 1;
                first_bad.get_or_insert((i, want, got));
            }
        }
        if let Some((i, want, got)) = first_bad {
            self.stats.mismatches.fetch_add(1, Relaxed);
            dev_err!(
                self.pdev,
                "DMA round trip of {len} bytes at {base:#x}: {bad} words differ, first at word {i}: {want:#x} != {got:#x}\n"
            );
            return Err(EIO);
        }
        self.stats.transfers.fetch_add(1, Relaxed);
        self.stats.bytes.fetch_add(len as u64, Relaxed);
        dev_dbg!(
            self.pdev,
            "DMA round trip of {len} bytes at {base:#x} verified\n"
        );
        Ok(())
    }

    /// Has edu write `len` bytes of its buffer to the bus address `iova`,
    /// whatever is mapped there: a probe of what the IOMMU lets through. Only
    /// allowed behind a translating domain, where a stray address faults in
    /// the IOMMU instead of landing in memory.
    ///
    /// # Errors
    ///
    /// `EPERM` without a translating domain, `EINVAL` for a bad length or an
    /// address beyond 32 bits, else as [`Self::round_trip`].
    pub(crate) fn write_to(&self, iova: u64, len: usize) -> Result {
        if !self.domain.is_some_and(|d| d.is_paging()) {
            return Err(EPERM);
        }
        check_len(len)?;
        let dst = u32::try_from(iova).map_err(|_| EINVAL)?;
        let _guard = self.buf.lock();
        // CAST: `len` is at most `EDU_BUF_SIZE`.
        self.transfer(EDU_BUF, dst, len as u32, true)
    }

    /// Has edu's DMA engine write `data` (4 bytes) to the bus address
    /// `address`: the IMS model's device write where the platform lets a
    /// device's DMA ring a doorbell (`Documentation/ims.md`). Serialised
    /// with round trips (the engine and its buffer are shared).
    ///
    /// # Errors
    ///
    /// `EINVAL` for an address beyond 32 bits, else as [`Self::round_trip`].
    pub(crate) fn dma_message(&self, address: u64, data: u32) -> Result {
        let dst = u32::try_from(address).map_err(|_| EINVAL)?;
        let guard = self.buf.lock();
        let buf: &Coherent<[u32]> = &guard;
        io_write!(buf, [try: 0], data);
        let src = u32::try_from(buf.dma_address()).map_err(|_| ERANGE)?;
        self.transfer(src, EDU_BUF, 4, false)?;
        self.transfer(EDU_BUF, dst, 4, true)
    }

    /// Runs one DMA transfer and waits for it.
    ///
    /// The BAR is reached through its revocable guard, an RCU read-side
    /// section: the guard is held only for register accesses, never across
    /// the sleeps between polls.
    fn transfer(&self, src: u32, dst: u32, len: u32, to_ram: bool) -> Result {
        {
            let bar = self.bar.try_access().ok_or(ENXIO)?;
            bar.write_reg(regs::DMA_SRC::zeroed().with_addr(src));
            bar.write_reg(regs::DMA_DST::zeroed().with_addr(dst));
            bar.write_reg(regs::DMA_COUNT::zeroed().with_count(len));
            bar.write_reg(regs::DMA_CMD::zeroed().with_start(true).with_to_ram(to_ram));
        }
        read_poll_timeout(
            || {
                let bar = self.bar.try_access().ok_or(ENXIO)?;
                Ok(bar.read(regs::DMA_CMD))
            },
            |cmd| !cmd.start(),
            Delta::from_millis(5),
            DMA_TIMEOUT,
        )
        .inspect_err(|e| {
            if *e == ETIMEDOUT {
                self.stats.timeouts.fetch_add(1, Relaxed);
            }
            dev_err!(self.pdev, "DMA {src:#x} -> {dst:#x} ({len} bytes): {e:?}\n");
        })?;
        Ok(())
    }

    /// Writes the device's identity and counters, one `key value` a line.
    pub(crate) fn show(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(f, "version {}.{}", self.version.0, self.version.1)?;
        match self.domain {
            Some(domain) => f.write_fmt(fmt!("domain {domain}\n"))?,
            None => writeln!(f, "domain none")?,
        }
        writeln!(f, "transfers {}", s.transfers.load(Relaxed))?;
        writeln!(f, "bytes {}", s.bytes.load(Relaxed))?;
        writeln!(f, "mismatches {}", s.mismatches.load(Relaxed))?;
        writeln!(f, "timeouts {}", s.timeouts.load(Relaxed))?;
        writeln!(f, "last_dma {:#x}", s.last_dma.load(Relaxed))?;
        writeln!(f, "irq {}", self.line.irq())?;
        writeln!(f, "interrupts {}", self.irqs.load(Relaxed))?;
        writeln!(f, "lost {}", self.lost.load(Relaxed))?;
        writeln!(
            f,
            "last_raise {} {}",
            self.raised.load(Relaxed),
            self.raise_ns.load(Relaxed)
        )?;
        writeln!(
            f,
            "last_masked_raise {} {}",
            self.masked_raised.load(Relaxed),
            self.masked_replayed.load(Relaxed)
        )
    }
}

/// A DMA length edu takes: 4 to 4096 bytes, whole words.
fn check_len(len: usize) -> Result {
    if len == 0 || len > EDU_BUF_SIZE || len % 4 != 0 {
        return Err(EINVAL);
    }
    Ok(())
}

/// The word at index `i` of a round trip seeded with `seed`.
fn pattern(seed: u32, i: usize) -> u32 {
    // CAST: `i` is below `HALF_WORDS`, which fits in a `u32`.
    seed.rotate_left(i as u32 % 32) ^ (i as u32).wrapping_mul(0x9e37_79b9)
}
