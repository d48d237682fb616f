// SPDX-License-Identifier: GPL-2.0

//! The specification's translation process for one inbound request (spec
//! 2.3), written independently of the table code (its own decoding of every
//! word) so that tests can check the tables the driver writes against what
//! an IOMMU would do with them: a test oracle, built for the host tests
//! only.
//!
//! Modelled: directory modes Off, Bare and 1-3 levels, base and extended
//! device contexts, first stage Sv39/48/57, second stage Sv39x4/48x4/57x4,
//! two-stage walks (first-stage table reads translated by the second stage),
//! MSI page tables in flat and MRIF mode ([`msi_write`]). Not modelled:
//! process directories, ATS, Svnapot, Svpbmt, hardware A/D updates (A or D clear faults). The MSI check
//! is made when the first stage is Bare, i.e. on guest-physical addresses
//! (QEMU's riscv-iommu does the same).

/// Memory as the IOMMU reads it: any physical address, a word at a time.
pub(crate) trait Bus {
    /// The 64-bit word at `pa` (8-byte aligned).
    fn read(&self, pa: u64) -> u64;
}

/// Read or write.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Access {
    /// A read.
    Read,
    /// A write of `len` bytes (MSIs are 4-byte writes).
    Write {
        /// Bytes written.
        len: u32,
    },
}

/// What happens to a request: the system physical address it reaches, or
/// the fault cause the IOMMU reports.
pub(crate) type Outcome = Result<u64, u32>;

const CAUSE_ALL_DISALLOWED: u32 = 256;
const CAUSE_DDT_INVALID: u32 = 258;
const CAUSE_DDT_MISCONFIGURED: u32 = 259;
const CAUSE_TTYP_DISALLOWED: u32 = 260;
const CAUSE_MSI_PTE_INVALID: u32 = 262;
const CAUSE_MSI_PTE_MISCONFIGURED: u32 = 263;

const fn bits(x: u64, hi: u32, lo: u32) -> u64 {
    (x >> lo) & ((1u64 << (hi - lo + 1)) - 1)
}

fn page_fault(access: Access) -> u32 {
    match access {
        Access::Read => 13,
        Access::Write { .. } => 15,
    }
}

fn guest_page_fault(access: Access) -> u32 {
    match access {
        Access::Read => 21,
        Access::Write { .. } => 23,
    }
}

/// Translates `iova` from `device_id` given the `ddtp` register, and whether
/// the IOMMU has MSI page tables (`capabilities.MSI_FLAT`, which also selects
/// extended device contexts).
pub(crate) fn translate(
    mem: &impl Bus,
    ddtp: u64,
    msi_flat: bool,
    device_id: u32,
    iova: u64,
    access: Access,
) -> Outcome {
    if bits(ddtp, 3, 0) == 1 {
        return Ok(iova);
    }
    let dc = context(mem, ddtp, msi_flat, device_id)?;
    let tc = mem.read(dc);
    let iohgatp = mem.read(dc + 8);
    let fsc = mem.read(dc + 24);
    if tc & 1 == 0 {
        return Err(CAUSE_DDT_INVALID);
    }
    let g_mode = bits(iohgatp, 63, 60);
    let s_mode = bits(fsc, 63, 60);
    let valid_mode = |m: u64| matches!(m, 0 | 8 | 9 | 10);
    if !valid_mode(g_mode)
        || !valid_mode(s_mode)
        || (g_mode != 0 && bits(iohgatp, 1, 0) != 0)
        || tc & (1 << 5) != 0
    {
        return Err(CAUSE_DDT_MISCONFIGURED);
    }
    let g_root = bits(iohgatp, 43, 0) << 12;

    // MSI address translation.
    if msi_flat && s_mode == 0 {
        if let Some(pte) = msi_pte(mem, dc, iova, access) {
            let pte = pte?;
            if bits(pte[0], 2, 1) != 3 {
                // MRIF mode: not a write to an address (see `msi_write`).
                return Err(CAUSE_MSI_PTE_MISCONFIGURED);
            }
            return Ok((bits(pte[0], 53, 10) << 12) | (iova & 0xfff));
        }
    }

    // First stage: the IOVA is a (guest) virtual address; its table reads
    // are guest-physical when a second stage is active.
    let gpa = if s_mode == 0 {
        iova
    } else {
        let levels = (s_mode - 8 + 3) as u32;
        let va_bits = 12 + 9 * levels;
        let top = iova >> (va_bits - 1);
        if top != 0 && top != (u64::MAX >> (va_bits - 1)) {
            return Err(page_fault(access));
        }
        let mut table = bits(fsc, 43, 0) << 12;
        let mut level = levels;
        loop {
            level -= 1;
            let gpa_of_pte = table + bits(iova, 12 + 9 * level + 8, 12 + 9 * level) * 8;
            let pa_of_pte = if g_mode == 0 {
                gpa_of_pte
            } else {
                // Implicit read of the table through the second stage;
                // a fault there is a guest-page fault of this access.
                second_stage(mem, g_mode, g_root, gpa_of_pte, Access::Read)
                    .map_err(|_| guest_page_fault(access))?
            };
            match step(mem.read(pa_of_pte), level, iova, access).map_err(|_| page_fault(access))? {
                Step::Next(next) => table = next,
                Step::Leaf(gpa) => break gpa,
            }
        }
    };

    if g_mode == 0 {
        return Ok(gpa);
    }
    second_stage(mem, g_mode, g_root, gpa, access)
}

/// Where one level of a walk leads.
enum Step {
    /// The next-level table.
    Next(u64),
    /// The translated address.
    Leaf(u64),
}

/// Interprets the entry met at `level` while translating `addr` (either
/// stage); `Err` is a page fault of that stage.
fn step(pte: u64, level: u32, addr: u64, access: Access) -> Result<Step, ()> {
    let (v, r, w, x) = (pte & 1, pte >> 1 & 1, pte >> 2 & 1, pte >> 3 & 1);
    if v == 0 || (r == 0 && w == 1) || pte >> 54 != 0 {
        return Err(());
    }
    if r == 0 && x == 0 {
        return if level == 0 {
            Err(())
        } else {
            Ok(Step::Next(bits(pte, 53, 10) << 12))
        };
    }
    leaf_ok(pte, level, access)?;
    let off = (1u64 << (12 + 9 * level)) - 1;
    Ok(Step::Leaf((bits(pte, 53, 10) << 12 & !off) | (addr & off)))
}

/// Checks a leaf: user-accessible, permitted, accessed (and dirty for
/// writes), and aligned for a superpage.
fn leaf_ok(pte: u64, level: u32, access: Access) -> Result<(), ()> {
    let (r, w, u, a, dirty) = (
        pte >> 1 & 1,
        pte >> 2 & 1,
        pte >> 4 & 1,
        pte >> 6 & 1,
        pte >> 7 & 1,
    );
    let permitted = match access {
        Access::Read => r == 1,
        Access::Write { .. } => w == 1 && dirty == 1,
    };
    let aligned = level == 0 || bits(pte, 10 + 9 * level - 1, 10) == 0;
    if u == 1 && a == 1 && permitted && aligned {
        Ok(())
    } else {
        Err(())
    }
}

/// The second-stage walk of `gpa` (Sv39x4/48x4/57x4, `mode` 8/9/10).
fn second_stage(mem: &impl Bus, mode: u64, root: u64, gpa: u64, access: Access) -> Outcome {
    let levels = (mode - 8 + 3) as u32;
    let gpa_bits = 12 + 9 * levels + 2;
    if gpa >> gpa_bits != 0 {
        return Err(guest_page_fault(access));
    }
    let mut table = root;
    let mut level = levels;
    loop {
        level -= 1;
        let width = if level == levels - 1 { 11 } else { 9 };
        let index = bits(gpa, 12 + 9 * level + width - 1, 12 + 9 * level);
        match step(mem.read(table + index * 8), level, gpa, access)
            .map_err(|_| guest_page_fault(access))?
        {
            Step::Next(next) => table = next,
            Step::Leaf(pa) => return Ok(pa),
        }
    }
}

/// The MSI PTE (both words) `iova` selects in the device context at `dc`,
/// `None` when the access is no MSI of the context's window (or the
/// context has no MSI page table): spec 2.3.3, steps 1 to 7.
fn msi_pte(mem: &impl Bus, dc: u64, iova: u64, access: Access) -> Option<Result<[u64; 2], u32>> {
    let msiptp = mem.read(dc + 32);
    let mask = mem.read(dc + 40) & ((1 << 52) - 1);
    let pattern = mem.read(dc + 48) & ((1 << 52) - 1);
    let eligible = matches!(access, Access::Write { len: 4 }) && iova & 3 == 0;
    if bits(msiptp, 63, 60) != 1 || !eligible || (iova >> 12) & !mask != pattern & !mask {
        return None;
    }
    let mut index = 0;
    let mut j = 0;
    for i in 0..52 {
        if mask >> i & 1 == 1 {
            index |= ((iova >> (12 + i)) & 1) << j;
            j += 1;
        }
    }
    let a = (bits(msiptp, 43, 0) << 12) + index * 16;
    let pte = [mem.read(a), mem.read(a + 8)];
    if pte[0] & 1 == 0 {
        return Some(Err(CAUSE_MSI_PTE_INVALID));
    }
    if pte[0] >> 63 != 0 || !matches!(bits(pte[0], 2, 1), 1 | 3) {
        return Some(Err(CAUSE_MSI_PTE_MISCONFIGURED));
    }
    Some(Ok(pte))
}

/// What an MSI write does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum MsiWrite {
    /// A write of the data to this address: an interrupt file (flat entry),
    /// or memory (no MSI: translated as DMA).
    To(u64),
    /// MRIF mode: set `bit` in the doubleword at `pending`; if it is set in
    /// the doubleword at `enable`, write `nid` to the file at `notice`.
    Mrif {
        pending: u64,
        enable: u64,
        bit: u64,
        notice: u64,
        nid: u32,
    },
    /// MRIF mode, an identity above 2047: discarded (spec 2.3.3; QEMU 10.0
    /// reports fault 263 instead).
    Discarded,
}

/// Where a 4-byte write of `data` to `iova` from `device_id` goes, MRIF
/// mode included, with the MRIF layout of the AIA specification: identity
/// `i`'s pending bit in the doubleword at `16·(i/64)`, its enable bit in the
/// next one.
pub(crate) fn msi_write(
    mem: &impl Bus,
    ddtp: u64,
    device_id: u32,
    iova: u64,
    data: u32,
) -> Result<MsiWrite, u32> {
    let access = Access::Write { len: 4 };
    // The MSI check of `translate` (first stage Bare), on the context it
    // finds: an address outside the window is an ordinary write.
    let dc = match context(mem, ddtp, true, device_id) {
        Ok(dc) if mem.read(dc) & 1 != 0 && bits(mem.read(dc + 24), 63, 60) == 0 => dc,
        _ => return translate(mem, ddtp, true, device_id, iova, access).map(MsiWrite::To),
    };
    let Some(pte) = msi_pte(mem, dc, iova, access) else {
        return translate(mem, ddtp, true, device_id, iova, access).map(MsiWrite::To);
    };
    let pte = pte?;
    if bits(pte[0], 2, 1) == 3 {
        return Ok(MsiWrite::To((bits(pte[0], 53, 10) << 12) | (iova & 0xfff)));
    }
    if data > 2047 {
        return Ok(MsiWrite::Discarded);
    }
    let mrif = bits(pte[0], 53, 7) << 9;
    let pending = mrif + 16 * u64::from(data / 64);
    Ok(MsiWrite::Mrif {
        pending,
        enable: pending + 8,
        bit: 1 << (data % 64),
        notice: bits(pte[1], 53, 10) << 12,
        nid: (bits(pte[1], 9, 0) | bits(pte[1], 60, 60) << 10) as u32,
    })
}

/// The address of `device_id`'s device context (extended if `msi_flat`),
/// found by walking the directory `ddtp` names, which must not be Bare.
fn context(mem: &impl Bus, ddtp: u64, msi_flat: bool, device_id: u32) -> Result<u64, u32> {
    let levels = match bits(ddtp, 3, 0) {
        2 => 1,
        3 => 2,
        4 => 3,
        _ => return Err(CAUSE_ALL_DISALLOWED),
    };
    let d = device_id as u64;
    let ddi = if msi_flat {
        [bits(d, 5, 0), bits(d, 14, 6), bits(d, 23, 15)]
    } else {
        [bits(d, 6, 0), bits(d, 15, 7), bits(d, 23, 16)]
    };
    if (levels == 1 && (ddi[1] != 0 || ddi[2] != 0)) || (levels == 2 && ddi[2] != 0) {
        return Err(CAUSE_TTYP_DISALLOWED);
    }
    let mut a = bits(ddtp, 53, 10) << 12;
    for i in (1..levels).rev() {
        let ddte = mem.read(a + ddi[i] * 8);
        if ddte & 1 == 0 {
            return Err(CAUSE_DDT_INVALID);
        }
        a = bits(ddte, 53, 10) << 12;
    }
    Ok(a + ddi[0] * if msi_flat { 64 } else { 32 })
}
