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
//! flat MSI page tables. Not modelled: process directories, ATS, MRIF,
//! Svnapot, Svpbmt, hardware A/D updates (A or D clear faults). The MSI check
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
    let mode = bits(ddtp, 3, 0);
    let levels = match mode {
        0 => return Err(CAUSE_ALL_DISALLOWED),
        1 => return Ok(iova),
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

    // Device directory walk.
    let mut a = bits(ddtp, 53, 10) << 12;
    for i in (1..levels).rev() {
        let ddte = mem.read(a + ddi[i] * 8);
        if ddte & 1 == 0 {
            return Err(CAUSE_DDT_INVALID);
        }
        a = bits(ddte, 53, 10) << 12;
    }
    let dc = a + ddi[0] * if msi_flat { 64 } else { 32 };
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
        let msiptp = mem.read(dc + 32);
        let mask = mem.read(dc + 40) & ((1 << 52) - 1);
        let pattern = mem.read(dc + 48) & ((1 << 52) - 1);
        let eligible = matches!(access, Access::Write { len: 4 }) && iova & 3 == 0;
        if bits(msiptp, 63, 60) == 1 && eligible && (iova >> 12) & !mask == pattern & !mask {
            let mut index = 0;
            let mut j = 0;
            for i in 0..52 {
                if mask >> i & 1 == 1 {
                    index |= ((iova >> (12 + i)) & 1) << j;
                    j += 1;
                }
            }
            let pte = mem.read((bits(msiptp, 43, 0) << 12) + index * 16);
            if pte & 1 == 0 {
                return Err(CAUSE_MSI_PTE_INVALID);
            }
            if pte >> 63 != 0 || bits(pte, 2, 1) != 3 {
                return Err(CAUSE_MSI_PTE_MISCONFIGURED);
            }
            return Ok((bits(pte, 53, 10) << 12) | (iova & 0xfff));
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
