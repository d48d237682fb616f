// SPDX-License-Identifier: GPL-2.0

//! The debugfs directory `riscv_iommu/<device>/` of a bound IOMMU: `stats`
//! (counters; reading it also drains the fault queue into dmesg),
//! `contexts` (every valid device context), `domains` (every paging domain
//! and its mappings) and `msi` (each remapped device's valid MSI
//! page-table entries).

use kernel::{
    debugfs,
    fmt::{Formatter, Result as FmtResult},
    prelude::*,
    str::CStr,
    sync::{atomic::Relaxed, Arc},
};

use crate::{iommu::Iommu, mem::KernelMem, remap::Remapper};

#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
use crate::hw::{cmd::Command, ddt::DeviceContext, field::Field};

/// What the files read.
pub(crate) struct DebugData {
    iommu: Arc<Iommu>,
    remap: Option<Arc<Remapper>>,
}

/// The directory, removed when dropped.
pub(crate) type DebugDir = Pin<KBox<debugfs::Scope<DebugData>>>;

/// Creates `riscv_iommu/<name>/` and its files.
pub(crate) fn create(
    name: &CStr,
    iommu: Arc<Iommu>,
    remap: Option<Arc<Remapper>>,
) -> Result<DebugDir> {
    let data = DebugData { iommu, remap };
    KBox::pin_init(
        debugfs::Dir::new(c"riscv_iommu").scope(data, name, |d, dir| {
            dir.read_callback_file(c"stats", d, &|d: &DebugData, f| show_stats(&d.iommu, f));
            dir.read_callback_file(c"contexts", d, &|d: &DebugData, f| {
                show_contexts(&d.iommu, f)
            });
            dir.read_callback_file(c"domains", d, &|d: &DebugData, f| show_domains(&d.iommu, f));
            dir.read_callback_file(c"msi", d, &|d: &DebugData, f| match &d.remap {
                Some(r) => r.show(f),
                None => writeln!(f, "no remapping"),
            });
            #[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
            dir.write_only_callback_file(c"debug", d, &|d: &DebugData, r| debug_write(d, r));
        }),
        GFP_KERNEL,
    )
}

/// `debug` (debug kernels only), test knobs: `notice_delay_us N` makes
/// every MRIF notice's handler wait N µs between reading its data and
/// counting itself running (`kernel::irq::imsic::NOTICE_ENTRY_DELAY_US`);
/// `notice_drop_race CPU` frees a notice of its own under its running
/// handler. The others write what the driver never would, so that a test
/// sees the IOMMU act on it as the specification says (the strict
/// emulator's checks, tests/strict); the test puts back what it read from
/// `contexts`:
///
/// - `context ID TC IOHGATP TA FSC MSIPTP MASK PATTERN`: device `ID`'s
///   context becomes these words (`contexts` prints them), written and
///   invalidated (`IODIR.INVAL_DDT`) as the driver writes any context;
/// - `msi_pte ID GPA valid|invalid`: sets or clears `V` of the entry for
///   the MSI address `GPA` in the MSI page table `ID`'s context names,
///   without the `IOTINVAL.GVMA` the specification asks for ("Changing MSI
///   page table entry"), and outside the table's lock (the test changes an
///   entry the driver leaves alone: one its vector holds);
/// - `gvma ID GPA`: that invalidation, `IOTINVAL.GVMA` with `GV=AV=1`, the
///   `GSCID` of `ID`'s context and `GPA`.
///
/// Numbers are decimal, or hexadecimal with `0x`.
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
fn debug_write(d: &DebugData, reader: &mut kernel::uaccess::UserSliceReader) -> Result {
    let iommu = &*d.iommu;
    let mut buf = [0u8; 256];
    let n = reader.len();
    if n >= buf.len() {
        return Err(EINVAL);
    }
    reader.read_slice(&mut buf[..n])?;
    let mut words = core::str::from_utf8(&buf[..n])
        .map_err(|_| EINVAL)?
        .split_whitespace();
    let what = words.next().ok_or(EINVAL)?;
    let mut nums = [0u64; 8];
    let mut count = 0;
    let mut last = None;
    for w in words {
        if count == nums.len() {
            return Err(EINVAL);
        }
        match parse_num(w) {
            Ok(v) => nums[count] = v,
            // Only the last word may be a name.
            Err(_) if last.is_none() => {
                last = Some(w);
                continue;
            }
            Err(e) => return Err(e),
        }
        if last.is_some() {
            return Err(EINVAL);
        }
        count += 1;
    }
    let small = |v: u64| u32::try_from(v).map_err(|_| EINVAL);
    // `notice_batch N`, `notice_batch_delay_us N`, `mrif_free_wait_us N`:
    // the MRIF knobs (`crate::mrif::knobs`).
    if let (&[v], None) = (&nums[..count], last) {
        if let Some(r) = crate::mrif::knobs::set(what, small(v)?) {
            return r;
        }
    }
    match (what, &nums[..count], last) {
        ("notice_delay_us", &[us], None) if us <= 1_000_000 => {
            kernel::irq::imsic::NOTICE_ENTRY_DELAY_US.store(small(us)?, Relaxed);
            Ok(())
        }
        ("notice_drop_race", &[cpu], None) => notice_drop_race(small(cpu)?),
        ("context", &[id, tc, iohgatp, ta, fsc, msiptp, mask, pattern], None) => {
            let dc = DeviceContext {
                tc,
                iohgatp,
                ta,
                fsc,
                msiptp,
                msi_addr_mask: mask,
                msi_addr_pattern: pattern,
            };
            let t = iommu.ddt.lock();
            let id = small(id)?;
            if !iommu.ddt.fits(&t, id) {
                return Err(EINVAL);
            }
            iommu
                .ddt
                .set_context(&t, id, &dc, |cmds| iommu.submit_sync(cmds))
        }
        ("msi_pte", &[id, gpa], Some(v @ ("valid" | "invalid"))) => {
            let remap = d.remap.as_deref().ok_or(ENODEV)?;
            msi_pte_set_valid(iommu, remap, small(id)?, gpa, v == "valid")
        }
        ("gvma", &[id, gpa], None) => {
            let dc = context_of(iommu, &iommu.ddt.lock(), small(id)?)?;
            // CAST: 16 bits.
            let gscid = IOHGATP_GSCID.get(dc.iohgatp) as u16;
            iommu.submit_sync(&[Command::iotinval_gvma(Some(gscid), Some(gpa))])
        }
        _ => Err(EINVAL),
    }
}

/// A decimal number, or a hexadecimal one with `0x`.
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
fn parse_num(w: &str) -> Result<u64> {
    match w.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => w.parse(),
    }
    .map_err(|_| EINVAL)
}

/// `iohgatp.GSCID` (spec 3.1.3.3, the device context's `iohgatp`).
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
const IOHGATP_GSCID: Field = Field::new(59, 44);
/// `msiptp.PPN` (spec 3.1.3.7).
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
const MSIPTP_PPN: Field = Field::new(43, 0);
/// `msiptp.MODE`, Off is 0.
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
const MSIPTP_MODE: Field = Field::new(63, 60);
/// The MSI PTE's `V` bit (spec 3.1.3.7, MSI page-table entries).
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
const MSI_PTE_V: u64 = 1;

/// Device `id`'s valid context; `ENOENT` if it has none.
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
fn context_of(iommu: &Iommu, t: &crate::directory::Tables, id: u32) -> Result<DeviceContext> {
    let mut found = None;
    iommu.ddt.for_each_context(t, &mut |i, dc| {
        if i == id {
            found = Some(dc);
        }
    });
    found.ok_or(ENOENT)
}

/// `msi_pte ID GPA valid|invalid`: sets or clears `V` of the MSI PTE of
/// `gpa` in the table device `id`'s context names, and invalidates
/// nothing. `EINVAL` if that is not one of the driver's tables (a
/// `context` write may have named anything) or `gpa` is not in its window.
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
fn msi_pte_set_valid(iommu: &Iommu, remap: &Remapper, id: u32, gpa: u64, valid: bool) -> Result {
    use crate::hw::{mem::PhysMem, msi, PAGE_SHIFT};

    let dc = context_of(iommu, &iommu.ddt.lock(), id)?;
    if MSIPTP_MODE.get(dc.msiptp) == 0 {
        return Err(EINVAL);
    }
    let table = remap
        .table_at(MSIPTP_PPN.get(dc.msiptp) << PAGE_SHIFT)
        .ok_or(EINVAL)?;
    // CAST: an entry index, below 2^12.
    let pte = table.pa() + table.entry(gpa)? as u64 * msi::MSI_PTE_SIZE;
    let mem = KernelMem::new(false);
    // SAFETY: `pte` is the first of the two words of entry `entry(gpa)` of
    // `table`, whose pages (from `pages::alloc`) live as long as it does.
    let w = unsafe { mem.words(pte, 2) };
    let w0 = w.read(0);
    w.write(
        0,
        if valid {
            w0 | MSI_PTE_V
        } else {
            w0 & !MSI_PTE_V
        },
    );
    Ok(())
}

/// A notice of a test's own, counting its arrivals.
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
struct TestNotice(kernel::sync::atomic::Atomic<u64>);

#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
impl kernel::irq::imsic::NoticeHandler for TestNotice {
    fn notice(&self, _ctx: &kernel::irq::hardirq::HardIrq) {
        self.0.fetch_add(1, Relaxed);
    }
}

/// `notice_drop_race CPU`: makes a notice on `CPU`, raises it, and frees
/// it once its handler is held (`notice_delay_us`, which must be set):
/// the free must wait for the handler. `ETIMEDOUT` if it never ran.
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
fn notice_drop_race(cpu: u32) -> Result {
    use kernel::{
        cpu::CpuId,
        irq::imsic::Notice,
        time::{delay::fsleep, Delta},
    };

    let cpu = CpuId::from_u32(cpu).ok_or(EINVAL)?;
    let notice = Notice::new(
        cpu,
        Arc::new(TestNotice(kernel::sync::atomic::Atomic::new(0)), GFP_KERNEL)?,
    )?;
    // This notice's handler, not another device's notice (they wait too,
    // on any CPU).
    kernel::irq::imsic::NOTICE_WATCHED.store(notice.irq(), Relaxed);
    let before = kernel::irq::imsic::NOTICE_HELD.load(Relaxed);
    let held = || kernel::irq::imsic::NOTICE_HELD.load(Relaxed) != before;
    notice.raise();
    // Up to a second for CPU 1 to enable the new identity (the IMSIC
    // syncs it from a timer there) and take the notice.
    for _ in 0..100 {
        if held() {
            break;
        }
        fsleep(Delta::from_millis(10));
    }
    if !held() {
        return Err(ETIMEDOUT);
    }
    let t = kernel::time::Instant::<kernel::time::Monotonic>::now();
    kernel::irq::imsic::NOTICE_WATCHED.store(0, Relaxed);
    drop(notice);
    pr_info!(
        "notice_drop_race: freed {} us after the handler was held\n",
        t.elapsed().as_micros_ceil()
    );
    Ok(())
}

/// Drains the fault queue, then writes the counters, one `key value` a
/// line.
fn show_stats(iommu: &Iommu, f: &mut Formatter<'_>) -> FmtResult {
    iommu.drain_queues();
    let (extended, levels) = {
        let t = iommu.ddt.lock();
        (t.extended(), t.mode().levels())
    };
    let (commands, syncs) = iommu.command_counts();
    let (faults, page_requests) = iommu.fault_counts();
    writeln!(f, "caps {:#x}", iommu.caps)?;
    writeln!(f, "directory_levels {}", levels)?;
    writeln!(f, "contexts {}", if extended { "extended" } else { "base" })?;
    f.write_fmt(fmt!("paging_mode {:?}\n", iommu.paging_mode))?;
    match &iommu.msi {
        Some(t) => {
            let (g, _) = t.table_geometry();
            writeln!(
                f,
                "msi_tables per-device entries {} mask {:#x} pattern {:#x} mode {}",
                g.entries(),
                g.mask(),
                g.pattern(),
                if t.mrif.is_some() { "mrif" } else { "flat" }
            )?
        }
        None => writeln!(f, "msi_tables none")?,
    }
    writeln!(f, "commands {}", commands)?;
    writeln!(f, "syncs {}", syncs)?;
    writeln!(f, "unmap_syncs {}", iommu.stats.unmap_syncs.load(Relaxed))?;
    writeln!(f, "interrupts {}", iommu.stats.interrupts.load(Relaxed))?;
    let (updates, breaking) = iommu.ddt.update_counts();
    writeln!(f, "context_updates {}", updates)?;
    writeln!(f, "breaking_updates {}", breaking)?;
    writeln!(
        f,
        "page_request_queue {}",
        if page_requests.is_some() {
            "on"
        } else {
            "none"
        }
    )?;
    writeln!(f, "page_requests {}", page_requests.unwrap_or(0))?;
    writeln!(f, "faults {}", faults)
}

/// Writes every valid device context, one line each: its words, then the
/// context ids and the MSI table they name (`iohgatp.GSCID`, `ta.PSCID`,
/// the table at `msiptp.PPN` when `msiptp.MODE` is not Off, else 0), so a
/// reader can check that no GSCID covers two MSI tables and no table sits
/// beside a `Bare` second stage.
fn show_contexts(iommu: &Iommu, f: &mut Formatter<'_>) -> FmtResult {
    let t = iommu.ddt.lock();
    let mut res = Ok(());
    iommu.ddt.for_each_context(&t, &mut |id, dc| {
        if res.is_ok() {
            let gscid = (dc.iohgatp >> 44) & 0xffff;
            let pscid = (dc.ta >> 12) & 0xf_ffff;
            let msi_table = match dc.msiptp >> 60 {
                0 => 0,
                _ => (dc.msiptp & ((1 << 44) - 1)) << 12,
            };
            res = writeln!(
                f,
                "device {:#06x} tc {:#x} iohgatp {:#x} ta {:#x} fsc {:#x} msiptp {:#x} msi_mask {:#x} msi_pattern {:#x} gscid {} pscid {} msi_table {:#x}",
                id, dc.tc, dc.iohgatp, dc.ta, dc.fsc, dc.msiptp, dc.msi_addr_mask, dc.msi_addr_pattern,
                gscid, pscid, msi_table
            );
        }
    });
    res
}

/// Writes every paging domain and its mappings.
fn show_domains(iommu: &Iommu, f: &mut Formatter<'_>) -> FmtResult {
    let domains = iommu.domains.lock();
    let mem = KernelMem::new(false);
    for d in domains.iter() {
        let pt = &d.pt;
        f.write_fmt(fmt!(
            "domain {} {:?} root {:#x}\n",
            d.serial,
            pt.mode(),
            pt.root()
        ))?;
        // Map and unmap may change words under us: each read is a single
        // load.
        let mut res = Ok(());
        pt.for_each_leaf(&mem, &mut |iova, pa, size, prot| {
            if res.is_ok() {
                res = writeln!(
                    f,
                    "  iova {:#x} pa {:#x} size {:#x} {}{}",
                    iova,
                    pa,
                    size,
                    if prot.read { "r" } else { "-" },
                    if prot.write { "w" } else { "-" }
                );
            }
        });
        res?;
    }
    Ok(())
}
