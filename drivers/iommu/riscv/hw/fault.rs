// SPDX-License-Identifier: GPL-2.0

//! Fault-queue records (spec 3.2): 32 bytes each; page-request records
//! (spec 3.3): 16 bytes each.

use super::field::Field;

// A fault record's first double word.
/// The fault's cause.
const CAUSE: Field = Field::new(11, 0);
/// The process id.
const PID: Field = Field::new(31, 12);
/// `PID` is valid.
const PV: Field = Field::bit(32);
/// A privileged access.
const PRIV: Field = Field::bit(33);
/// The transaction type.
const TTYP: Field = Field::new(39, 34);
/// The device id (also in a page request's first double word, with `PID`).
const DID: Field = Field::new(63, 40);
/// A page request's page address, `ADDR[63:12]` in place.
const PRQ_ADDR: Field = Field::new(63, 12);

/// A decoded fault record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct FaultRecord {
    /// Fault cause (spec table 11).
    pub(crate) cause: u32,
    /// Process id, when `pv`.
    pub(crate) pid: u32,
    /// Whether `pid` is valid.
    pub(crate) pv: bool,
    /// Privileged access.
    pub(crate) privileged: bool,
    /// Transaction type (spec table 12).
    pub(crate) ttyp: u32,
    /// Device id.
    pub(crate) did: u32,
    /// Faulting address (IOVA) or other cause-specific value.
    pub(crate) iotval: u64,
    /// Second value: the guest physical address for guest-page faults.
    pub(crate) iotval2: u64,
}

impl FaultRecord {
    /// Size of a record in the fault queue.
    pub(crate) const SIZE: u32 = 32;

    /// Decodes the record's four double words.
    pub(crate) const fn decode(w: [u64; 4]) -> Self {
        Self {
            // CAST: each field is at most 24 bits wide.
            cause: CAUSE.get(w[0]) as u32,
            pid: PID.get(w[0]) as u32,
            pv: PV.is_set(w[0]),
            privileged: PRIV.is_set(w[0]),
            ttyp: TTYP.get(w[0]) as u32,
            did: DID.get(w[0]) as u32,
            iotval: w[2],
            iotval2: w[3],
        }
    }

    /// The cause's name in the specification.
    pub(crate) const fn cause_name(&self) -> &'static str {
        cause_name(self.cause)
    }

    /// The transaction type's name.
    pub(crate) const fn ttyp_name(&self) -> &'static str {
        match self.ttyp {
            0 => "none",
            1 => "untranslated read-for-execute",
            2 => "untranslated read",
            3 => "untranslated write/AMO",
            5 => "translated read-for-execute",
            6 => "translated read",
            7 => "translated write/AMO",
            8 => "PCIe ATS translation request",
            9 => "PCIe message request",
            _ => "reserved",
        }
    }
}

/// Name of a fault cause (spec table 11).
pub(crate) const fn cause_name(cause: u32) -> &'static str {
    match cause {
        1 => "instruction access fault",
        4 => "read address misaligned",
        5 => "read access fault",
        6 => "write/AMO address misaligned",
        7 => "write/AMO access fault",
        12 => "instruction page fault",
        13 => "read page fault",
        15 => "write/AMO page fault",
        20 => "instruction guest-page fault",
        21 => "read guest-page fault",
        23 => "write/AMO guest-page fault",
        256 => "all inbound transactions disallowed",
        257 => "DDT entry load access fault",
        258 => "DDT entry not valid",
        259 => "DDT entry misconfigured",
        260 => "transaction type disallowed",
        261 => "MSI PTE load access fault",
        262 => "MSI PTE not valid",
        263 => "MSI PTE misconfigured",
        264 => "MRIF access fault",
        265 => "PDT entry load access fault",
        266 => "PDT entry not valid",
        267 => "PDT entry misconfigured",
        268 => "DDT data corruption",
        269 => "PDT data corruption",
        270 => "MSI PT data corruption",
        271 => "MSI MRIF data corruption",
        272 => "internal datapath error",
        273 => "IOMMU MSI write access fault",
        274 => "first/second-stage PT data corruption",
        _ => "unknown cause",
    }
}

/// A decoded page request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct PageRequest {
    /// Device id.
    pub(crate) did: u32,
    /// Process id.
    pub(crate) pid: u32,
    /// The page's address.
    pub(crate) addr: u64,
}

impl PageRequest {
    /// Size of a record in the page-request queue.
    pub(crate) const SIZE: u32 = 16;

    /// Decodes the record's two double words.
    pub(crate) const fn decode(w: [u64; 2]) -> Self {
        Self {
            // CAST: the fields are 24 and 20 bits wide.
            did: DID.get(w[0]) as u32,
            pid: PID.get(w[0]) as u32,
            addr: PRQ_ADDR.get(w[1]) << 12,
        }
    }
}
