// SPDX-License-Identifier: GPL-2.0

//! Changing a live device context without disturbing the device: which
//! doublewords to write, in which order, with an `IODIR.INVAL_DDT` after
//! each step, and what the IOTLB must then lose.
//!
//! What the IOMMU may see (RISC-V IOMMU specification, tag 20260222):
//!
//! - "The IOMMU may read the `DC` fields in any order" (2.1.2, leaf DDT
//!   entry), and it is "legal for an IOMMU to read the entry at any time,
//!   including when only some of the partial updates have taken effect"
//!   (2.9, updating in-memory data structure entries).
//! - Its single-copy atomic accesses are at least 64 bits wide when any
//!   hart is RV64 (2.9): each doubleword is read whole, old or new.
//! - Until `IODIR.INVAL_DDT` completes it "may use the old value or the new
//!   value of the entry" (2.9; 6.3.1, changing device directory table
//!   entry).
//! - A field changed inconsistently with another needs `V` cleared first
//!   (2.9).
//!
//! So while one step's doublewords are written, and until the invalidation
//! after it completes, the IOMMU may use any context that takes each
//! doubleword from the state before the step or from the state after it.
//! A step is safe when every such mix translates exactly as the old context
//! or exactly as the new one: when every doubleword it changes differs only
//! in bits the old context does not use (the mix is the old context as far
//! as the IOMMU is concerned), or all the others already hold the new
//! context's used bits and only one doubleword's used bits change (the mix
//! is the old or the new context).
//!
//! The method is SMMUv3's (`arm_smmu_write_entry()` and
//! `arm_smmu_entry_qword_diff()` in Linux's arm-smmu-v3.c, with their KUnit
//! tests in arm-smmu-v3-test.c): first write every bit the old context does
//! not use, then the one critical doubleword whose used bits change, then
//! clear what the new context does not use. When two or more doublewords'
//! used bits must change together no order is safe, and the update breaks:
//! `V` cleared, the rest written, `V` set with the new `tc`.
//!
//! What a context uses ([`DeviceContext::used`]) follows the configuration
//! checks of 2.1.4 and the field descriptions of 2.1.3: reserved bits are
//! always used (a set one makes the context misconfigured, cause 259), so a
//! safe step never sets one.

use super::{DeviceContext, ATP_MODE, ATP_PPN, IOHGATP_GSCID, MSI_ADDR, TA_PSCID};
use crate::hw::{cmd::Command, field::Field};

/// Doublewords of an extended device context (base ones use the first 4).
pub(crate) const DC_WORDS: usize = 8;

/// `tc.PDTV`: `fsc` holds a process directory, `ta.PSCID` is ignored.
const TC_PDTV: Field = Field::bit(5);

impl DeviceContext {
    /// The doublewords in memory order; the eighth is reserved (0).
    pub(crate) const fn words(&self) -> [u64; DC_WORDS] {
        [
            self.tc,
            self.iohgatp,
            self.ta,
            self.fsc,
            self.msiptp,
            self.msi_addr_mask,
            self.msi_addr_pattern,
            0,
        ]
    }

    /// The bits of each doubleword the IOMMU's behaviour depends on, in the
    /// extended format when `extended` (else the last four are not read).
    ///
    /// A bit is used when its value changes a translation or makes the
    /// context misconfigured. Which bits are used depends only on the
    /// values of used bits (`V`, the modes, `PDTV`), so two contexts that
    /// agree on the bits one of them uses use the same bits and behave the
    /// same.
    pub(crate) const fn used(&self, extended: bool) -> [u64; DC_WORDS] {
        let mut u = [0; DC_WORDS];
        // 2.1.3: when `V` is 0 "all other bits in DC are don't-care".
        u[0] = Self::TC_V;
        if self.tc & Self::TC_V == 0 {
            return u;
        }
        // Every `tc` bit is a control or reserved (checked).
        u[0] = u64::MAX;
        // `iohgatp`: PPN and GSCID only when the second stage is not Bare.
        u[1] = if ATP_MODE.get(self.iohgatp) != 0 {
            u64::MAX
        } else {
            ATP_MODE.all()
        };
        // `fsc` (`iosatp` or `pdtp`): the mode and reserved bits 59:44
        // always, the PPN when not Bare.
        let first_stage = ATP_MODE.get(self.fsc) != 0;
        u[3] = if first_stage {
            u64::MAX
        } else {
            !ATP_PPN.all()
        };
        // `ta`: reserved bits and RCID/MCID (reserved without QoS IDs)
        // always; PSCID only "if DC.tc.PDTV is 0 and the iosatp.MODE field
        // is not Bare" (2.1.3, translation attributes).
        u[2] = if first_stage && !TC_PDTV.is_set(self.tc) {
            u64::MAX
        } else {
            !TA_PSCID.all()
        };
        if !extended {
            return u;
        }
        // `msiptp`: mode and reserved bits always, the PPN when not Off;
        // the address mask and pattern only when not Off (mode Off: "not
        // performed"), their reserved bits 63:52 always.
        let msi = ATP_MODE.get(self.msiptp) != 0;
        u[4] = if msi { u64::MAX } else { !ATP_PPN.all() };
        u[5] = if msi { u64::MAX } else { !MSI_ADDR.all() };
        u[6] = u[5];
        // Reserved doubleword.
        u[7] = u64::MAX;
        u
    }
}

/// One step of an update: the context's doublewords once the step is
/// written, and which of them it writes (bit `i`: doubleword `i`). The
/// caller writes them, in any order, then submits `IODIR.INVAL_DDT` for
/// the device and waits for it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Step {
    pub(crate) words: [u64; DC_WORDS],
    pub(crate) writes: u8,
}

/// How to change a live context from `old` to `new`: at most three steps,
/// and the invalidations to submit after the last one.
///
/// # Invariants
///
/// `steps[..len]` each write at least one doubleword; the last one leaves
/// the context equal to `new`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Plan {
    steps: [Step; 3],
    len: usize,
    breaking: bool,
    inval: [Option<Command>; 2],
}

impl Plan {
    /// How to go from `old` to `new` (extended contexts when `extended`);
    /// no step when they are equal. Never allocates.
    pub(crate) fn new(old: &DeviceContext, new: &DeviceContext, extended: bool) -> Self {
        let n = if extended { DC_WORDS } else { 4 };
        let (cur, target) = (old.words(), new.words());
        let (cur_used, target_used) = (old.used(extended), new.used(extended));
        // Bits the old context ignores take their new values at once; the
        // doublewords whose bits used by the new context then still differ
        // are the critical ones (`arm_smmu_entry_qword_diff()`).
        let mut unused_update = cur;
        let mut critical = 0u8;
        for i in 0..n {
            unused_update[i] = (cur[i] & cur_used[i]) | (target[i] & !cur_used[i]);
            if (unused_update[i] ^ target[i]) & target_used[i] != 0 {
                critical |= 1 << i;
            }
        }
        let mut plan = Self {
            steps: [Step {
                words: cur,
                writes: 0,
            }; 3],
            len: 0,
            breaking: critical.count_ones() > 1,
            inval: [None; 2],
        };
        let mut state = cur;
        if plan.breaking {
            // `V` off first: the IOMMU then sees an invalid context (and
            // faults, cause 258) until `tc` is written last.
            let mut off = cur;
            off[0] &= !DeviceContext::TC_V;
            plan.push(&mut state, &off, n);
            let mut rest = target;
            rest[0] = off[0];
            plan.push(&mut state, &rest, n);
        } else {
            // Hitless. The critical doubleword keeps its old value in the
            // first step, which then changes only bits the old context
            // ignores.
            for i in 0..n {
                if critical & (1 << i) != 0 {
                    unused_update[i] = cur[i];
                }
            }
            plan.push(&mut state, &unused_update, n);
            let mut next = state;
            for i in 0..n {
                if critical & (1 << i) != 0 {
                    next[i] = target[i];
                }
            }
            plan.push(&mut state, &next, n);
        }
        plan.push(&mut state, &target, n);
        if plan.len > 0 {
            plan.inval = invalidations(old);
        }
        plan
    }

    /// Appends the step from `state` to `to` if it writes anything.
    fn push(&mut self, state: &mut [u64; DC_WORDS], to: &[u64; DC_WORDS], n: usize) {
        let mut writes = 0u8;
        for i in 0..n {
            if state[i] != to[i] {
                writes |= 1 << i;
            }
        }
        if writes == 0 {
            return;
        }
        self.steps[self.len] = Step { words: *to, writes };
        self.len += 1;
        *state = *to;
    }

    /// The steps, in order.
    pub(crate) fn steps(&self) -> &[Step] {
        &self.steps[..self.len]
    }

    /// Whether the context is made invalid on the way: the device's DMA
    /// and MSIs fault meanwhile.
    pub(crate) fn breaking(&self) -> bool {
        self.breaking
    }

    /// The IOTLB invalidations to submit once the last step's
    /// `IODIR.INVAL_DDT` completed.
    pub(crate) fn invalidations(&self) -> impl Iterator<Item = Command> + '_ {
        self.inval.iter().flatten().copied()
    }
}

/// What a change of the valid context `old` requires besides
/// `IODIR.INVAL_DDT`, tested on the old values (6.3, guidelines for
/// invalidations; 6.3.1, changing a device directory table entry):
/// translations tagged by its GSCID (first-stage ones under it, and the
/// second stage's and MSI page table's: 2.8's table of the identifiers
/// that tag IOATC entries), else by its PSCID. An invalid context had none
/// cached (6.3.8, caching invalid entries).
fn invalidations(old: &DeviceContext) -> [Option<Command>; 2] {
    if old.tc & DeviceContext::TC_V == 0 {
        return [None; 2];
    }
    if ATP_MODE.get(old.iohgatp) != 0 {
        // CAST: the GSCID field is 16 bits.
        let gscid = IOHGATP_GSCID.get(old.iohgatp) as u16;
        [
            Some(Command::iotinval_vma(Some(gscid), None, None)),
            Some(Command::iotinval_gvma(Some(gscid), None)),
        ]
    } else if TC_PDTV.is_set(old.tc) {
        [Some(Command::iotinval_vma(None, None, None)), None]
    } else if ATP_MODE.get(old.fsc) != 0 {
        // CAST: the PSCID field is 20 bits.
        let pscid = TA_PSCID.get(old.ta) as u32;
        [Some(Command::iotinval_vma(None, Some(pscid), None)), None]
    } else {
        [None; 2]
    }
}
