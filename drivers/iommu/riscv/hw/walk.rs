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
//! MSI page tables in flat and MRIF mode ([`msi_write`]), consulted for the
//! guest-physical address the first stage gives (2.3, step 18), and the
//! device-context configuration checks (2.1.4) for an IOMMU with every
//! paging mode, no ATS, no process directories, no hardware A/D updates,
//! no QoS IDs, little-endian, `fctl.GXL` 0 fixed: a context using what the
//! spec reserves, or what such an IOMMU lacks, is misconfigured (cause
//! 259), as in the specification's reference model (iommu_ref_model,
//! iommu_device_context.c). Not modelled: process directories (`PDTV` is
//! accepted with `pdtp.MODE` Bare only), ATS, Svnapot, Svpbmt, hardware
//! A/D updates (A or D clear faults), the IOATC (but [`tags`] tells what
//! would tag its entries).
//!
//! A deviation from the spec, kept from QEMU 10.0's riscv-iommu: only
//! aligned 4-byte writes to a virtual interrupt file's page are taken
//! through the MSI page table; the spec's process (2.3.3) takes every
//! access to the page there, with the permissions of a second-stage PTE
//! with R, W and U set.

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

/// Where a request goes once the device context and the first stage are
/// passed: an address, or the MSI PTE (both words) standing in for the
/// second stage.
enum Target {
    Addr(u64),
    Msi([u64; 2]),
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
    match resolve(mem, ddtp, msi_flat, device_id, iova, access)? {
        Target::Addr(pa) => Ok(pa),
        // MRIF mode: not a write to an address (see `msi_write`).
        Target::Msi(pte) if bits(pte[0], 2, 1) != 3 => Err(CAUSE_MSI_PTE_MISCONFIGURED),
        Target::Msi(pte) => Ok((bits(pte[0], 53, 10) << 12) | (iova & 0xfff)),
    }
}

/// The translation process of 2.3 up to the address or the MSI PTE.
fn resolve(
    mem: &impl Bus,
    ddtp: u64,
    msi_flat: bool,
    device_id: u32,
    iova: u64,
    access: Access,
) -> Result<Target, u32> {
    if bits(ddtp, 3, 0) == 1 {
        return Ok(Target::Addr(iova));
    }
    let dc = context(mem, ddtp, msi_flat, device_id)?;
    // Each doubleword read once: a context being changed is seen as one
    // mix of its old and new doublewords.
    let w = read_context(mem, dc, msi_flat);
    if w[0] & 1 == 0 {
        return Err(CAUSE_DDT_INVALID);
    }
    if misconfigured(&w, msi_flat) {
        return Err(CAUSE_DDT_MISCONFIGURED);
    }
    let (tc, iohgatp, fsc) = (w[0], w[1], w[3]);
    let g_mode = bits(iohgatp, 63, 60);
    // `PDTV` with `pdtp` Bare (the only mode modelled): no first stage for
    // requests without a process id (2.3, step 14), the only ones here.
    let s_mode = if tc >> 5 & 1 == 1 {
        0
    } else {
        bits(fsc, 63, 60)
    };
    let g_root = bits(iohgatp, 43, 0) << 12;

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

    // MSI address translation of the guest-physical address the first
    // stage gave (2.3, step 18): the MSI page table stands in for the
    // second stage for the pages of virtual interrupt files.
    if msi_flat {
        if let Some(pte) = msi_pte(mem, &w, gpa, access) {
            return pte.map(Target::Msi);
        }
    }
    if g_mode == 0 {
        return Ok(Target::Addr(gpa));
    }
    second_stage(mem, g_mode, g_root, gpa, access).map(Target::Addr)
}

/// The identifiers that tag what the IOMMU may cache of `device_id`'s
/// translations (2.8, identifiers used to tag IOATC entries): the GSCID
/// when the second stage is not Bare (it also tags the MSI page table's
/// entries), the PSCID when the first stage is not. Two contexts translate
/// alike only if they also tag alike: a context that puts one table's
/// translations under another table's tag corrupts that address space for
/// every device sharing it. The context's fault when it has none.
pub(crate) fn tags(
    mem: &impl Bus,
    ddtp: u64,
    msi_flat: bool,
    device_id: u32,
) -> Result<(Option<u64>, Option<u64>), u32> {
    if bits(ddtp, 3, 0) == 1 {
        return Ok((None, None));
    }
    let w = read_context(mem, context(mem, ddtp, msi_flat, device_id)?, msi_flat);
    if w[0] & 1 == 0 {
        return Err(CAUSE_DDT_INVALID);
    }
    if misconfigured(&w, msi_flat) {
        return Err(CAUSE_DDT_MISCONFIGURED);
    }
    let gscid = (bits(w[1], 63, 60) != 0).then(|| bits(w[1], 59, 44));
    let first = w[0] >> 5 & 1 == 0 && bits(w[3], 63, 60) != 0;
    Ok((gscid, first.then(|| bits(w[2], 31, 12))))
}

/// The doublewords of the device context at `dc`: 8 (extended) or 4.
fn read_context(mem: &impl Bus, dc: u64, extended: bool) -> [u64; 8] {
    let mut w = [0; 8];
    let n = if extended { 8 } else { 4 };
    for (i, word) in w.iter_mut().enumerate().take(n) {
        *word = mem.read(dc + 8 * i as u64);
    }
    w
}

/// Whether the valid device context `w` is misconfigured (cause 259): the
/// checks of 2.1.4, for the IOMMU this walker models (see the top of the
/// file). In the order of the list, with the reference model's field
/// layout.
fn misconfigured(w: &[u64; 8], extended: bool) -> bool {
    let [tc, iohgatp, ta, fsc, msiptp, mask, pattern, reserved] = *w;
    let tc_bit = |b: u32| tc >> b & 1 == 1;
    let (en_ats, en_pri, t2gpa, pdtv, prpr, gade, sade, dpe, sbe, sxl) = (
        tc_bit(1),
        tc_bit(2),
        tc_bit(3),
        tc_bit(5),
        tc_bit(6),
        tc_bit(7),
        tc_bit(8),
        tc_bit(9),
        tc_bit(10),
        tc_bit(11),
    );
    let g_mode = bits(iohgatp, 63, 60);
    let s_mode = bits(fsc, 63, 60);
    let msi_mode = bits(msiptp, 63, 60);
    // 1. Reserved bits: tc 23:12 and 63:32 (31:24 are for custom use),
    // ta 11:0 and 39:32, fsc 59:44 (`iosatp` and `pdtp` alike), and in the
    // extended format msiptp 59:44, the mask's and pattern's 63:52 and,
    // with MGPAW 59 (Sv57x4), their bits 51:47, and the eighth doubleword.
    // RCID and MCID (ta 63:40) are reserved without QoS IDs.
    let mgpaw_reserved = |x: u64| bits(x, 63, 47) != 0;
    if bits(tc, 23, 12) != 0
        || bits(tc, 63, 32) != 0
        || bits(ta, 11, 0) != 0
        || bits(ta, 39, 32) != 0
        || bits(ta, 63, 40) != 0
        || bits(fsc, 59, 44) != 0
        || (extended
            && (bits(msiptp, 59, 44) != 0
                || mgpaw_reserved(mask)
                || mgpaw_reserved(pattern)
                || reserved != 0))
    {
        return true;
    }
    // 2.-7. No ATS, hence no PRI, PRPR or T2GPA.
    if en_ats || en_pri || prpr || t2gpa {
        return true;
    }
    // 8. No process-directory mode is supported (`pdtp` Bare only).
    if pdtv && s_mode != 0 {
        return true;
    }
    // 9.-11. `iosatp.MODE`: Bare, Sv39, Sv48, Sv57 (`SXL` 0).
    if !pdtv && !matches!(s_mode, 0 | 8 | 9 | 10) {
        return true;
    }
    // 12. `DPE` only with a process directory.
    if !pdtv && dpe {
        return true;
    }
    // 13.-15. `iohgatp.MODE`: Bare, Sv39x4, Sv48x4, Sv57x4 (`fctl.GXL` 0).
    if !matches!(g_mode, 0 | 8 | 9 | 10) {
        return true;
    }
    // 16. `msiptp.MODE`: Off or Flat.
    if extended && !matches!(msi_mode, 0 | 1) {
        return true;
    }
    // 17. A second-stage root is 16 KiB aligned.
    if g_mode != 0 && bits(iohgatp, 1, 0) != 0 {
        return true;
    }
    // 18.-21. No hardware A/D updates; little-endian only; `SXL` fixed 0
    // (`fctl.GXL` 0, not writable).
    if gade || sade || sbe || sxl {
        return true;
    }
    // "When DC.iohgatp.MODE is Bare, DC.msiptp.MODE must be set to Off by
    // software. All other settings are reserved." (2.1.4, tag 20260222;
    // v1.0 allowed them).
    extended && g_mode == 0 && msi_mode != 0
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

/// The MSI PTE (both words) the guest-physical address `gpa` selects in
/// the device context `w`, `None` when the access is no MSI of the
/// context's window (or the context has no MSI page table): 2.3.3, steps 1
/// to 10 (2.1.3.6 for the window).
fn msi_pte(
    mem: &impl Bus,
    w: &[u64; 8],
    gpa: u64,
    access: Access,
) -> Option<Result<[u64; 2], u32>> {
    let msiptp = w[4];
    let mask = w[5] & ((1 << 52) - 1);
    let pattern = w[6] & ((1 << 52) - 1);
    let eligible = matches!(access, Access::Write { len: 4 }) && gpa & 3 == 0;
    if bits(msiptp, 63, 60) != 1 || !eligible || (gpa >> 12) & !mask != pattern & !mask {
        return None;
    }
    let mut index = 0;
    let mut j = 0;
    for i in 0..52 {
        if mask >> i & 1 == 1 {
            index |= ((gpa >> (12 + i)) & 1) << j;
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
    let pte = match resolve(mem, ddtp, true, device_id, iova, Access::Write { len: 4 })? {
        Target::Addr(pa) => return Ok(MsiWrite::To(pa)),
        Target::Msi(pte) => pte,
    };
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
        // Reserved bits 9:1 and 63:54 (2.1.1; 2.3.1, step 6).
        if bits(ddte, 9, 1) != 0 || bits(ddte, 63, 54) != 0 {
            return Err(CAUSE_DDT_MISCONFIGURED);
        }
        a = bits(ddte, 53, 10) << 12;
    }
    Ok(a + ddi[0] * if msi_flat { 64 } else { 32 })
}
