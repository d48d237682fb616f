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
            dir.write_only_callback_file(c"debug", d, &|_: &DebugData, r| debug_write(r));
        }),
        GFP_KERNEL,
    )
}

/// `debug` (debug kernels only), test knobs: `notice_delay_us N` makes
/// every MRIF notice's handler wait N µs between reading its data and
/// counting itself running (`kernel::irq::imsic::NOTICE_ENTRY_DELAY_US`);
/// `notice_drop_race CPU` frees a notice of its own under its running
/// handler.
#[cfg(CONFIG_FAULT_INJECTION_DEBUG_FS)]
fn debug_write(reader: &mut kernel::uaccess::UserSliceReader) -> Result {
    let mut buf = [0u8; 48];
    let n = reader.len();
    if n >= buf.len() {
        return Err(EINVAL);
    }
    reader.read_slice(&mut buf[..n])?;
    let mut words = core::str::from_utf8(&buf[..n])
        .map_err(|_| EINVAL)?
        .split_whitespace();
    let (what, arg) = (words.next().ok_or(EINVAL)?, words.next().ok_or(EINVAL)?);
    let arg: u32 = arg.parse().map_err(|_| EINVAL)?;
    if words.next().is_some() {
        return Err(EINVAL);
    }
    match what {
        "notice_delay_us" if arg <= 1_000_000 => {
            kernel::irq::imsic::NOTICE_ENTRY_DELAY_US.store(arg, Relaxed);
            Ok(())
        }
        "notice_drop_race" => notice_drop_race(arg),
        _ => Err(EINVAL),
    }
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
    let held = || kernel::irq::imsic::NOTICE_HELD.load(Relaxed);
    let before = held();
    notice.raise();
    // Up to a second for CPU 1 to enable the new identity (the IMSIC
    // syncs it from a timer there) and take the notice.
    for _ in 0..100 {
        if held() != before {
            break;
        }
        fsleep(Delta::from_millis(10));
    }
    if held() == before {
        return Err(ETIMEDOUT);
    }
    let t = kernel::time::Instant::<kernel::time::Monotonic>::now();
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

/// Writes every valid device context, one line each.
fn show_contexts(iommu: &Iommu, f: &mut Formatter<'_>) -> FmtResult {
    let t = iommu.ddt.lock();
    let mut res = Ok(());
    iommu.ddt.for_each_context(&t, &mut |id, dc| {
        if res.is_ok() {
            res = writeln!(
                f,
                "device {:#06x} tc {:#x} iohgatp {:#x} ta {:#x} fsc {:#x} msiptp {:#x} msi_mask {:#x} msi_pattern {:#x}",
                id, dc.tc, dc.iohgatp, dc.ta, dc.fsc, dc.msiptp, dc.msi_addr_mask, dc.msi_addr_pattern
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
            d.id,
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
