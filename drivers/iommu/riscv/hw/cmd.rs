// SPDX-License-Identifier: GPL-2.0

//! Command-queue commands (spec 3.1): 16 bytes each.

use super::field::Field;

/// One command: two little-endian double words.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Command(pub(crate) [u64; 2]);

const OP_IOTINVAL: u64 = 1;
const OP_IOFENCE: u64 = 2;
const OP_IODIR: u64 = 3;

const FUNC_VMA: u64 = 0;
const FUNC_GVMA: u64 = 1;
const FUNC_C: u64 = 0;
const FUNC_INVAL_DDT: u64 = 0;

// The first double word's fields.
/// The opcode.
const OPCODE: Field = Field::new(6, 0);
/// The function within the opcode.
const FUNC3: Field = Field::new(9, 7);
/// IOTINVAL and IOFENCE: the address field is valid.
const AV: u64 = Field::bit(10).all();
/// IOTINVAL: the address space.
const PSCID: Field = Field::new(31, 12);
/// IOTINVAL: the PSCID field is valid.
const PSCV: u64 = Field::bit(32).all();
/// IOTINVAL: the GSCID field is valid.
const GV: u64 = Field::bit(33).all();
/// IOTINVAL: the second-stage context.
const GSCID: Field = Field::new(59, 44);
/// IOFENCE.C: previous reads must complete.
const PR: u64 = Field::bit(12).all();
/// IOFENCE.C: previous writes must complete.
const PW: u64 = Field::bit(13).all();
/// IOFENCE.C: the data written on completion.
const DATA: Field = Field::new(63, 32);
/// IODIR: the device-id field is valid.
const DV: u64 = Field::bit(33).all();
/// IODIR: the device id.
const DID: Field = Field::new(63, 40);
// The second double word's.
/// IOTINVAL: the page, `ADDR[63:12]`.
const ADDR_PAGE: Field = Field::new(63, 10);
/// IOFENCE.C: where the data goes, `ADDR[63:2]`.
const ADDR_WORD: Field = Field::new(63, 0);

const fn op(opcode: u64, func3: u64) -> u64 {
    OPCODE.put(opcode) | FUNC3.put(func3)
}

impl Command {
    /// `IOTINVAL.VMA`: first-stage translations, of one address space
    /// (`pscid`) or all, at one page (`addr`) or all, for the second-stage
    /// context `gscid` when given (else for contexts without one).
    pub(crate) const fn iotinval_vma(
        gscid: Option<u16>,
        pscid: Option<u32>,
        addr: Option<u64>,
    ) -> Self {
        let mut w0 = op(OP_IOTINVAL, FUNC_VMA);
        if let Some(g) = gscid {
            w0 |= GV | GSCID.put(g as u64);
        }
        if let Some(p) = pscid {
            w0 |= PSCV | PSCID.put(p as u64);
        }
        Self::with_addr(w0, addr)
    }

    /// `IOTINVAL.GVMA`: second-stage translations of `gscid` (or all), at one
    /// guest page (`addr`) or all.
    pub(crate) const fn iotinval_gvma(gscid: Option<u16>, addr: Option<u64>) -> Self {
        let mut w0 = op(OP_IOTINVAL, FUNC_GVMA);
        if let Some(g) = gscid {
            w0 |= GV | GSCID.put(g as u64);
        }
        Self::with_addr(w0, addr)
    }

    const fn with_addr(w0: u64, addr: Option<u64>) -> Self {
        match addr {
            // ADDR[63:12] sits in bits 63:10 of the second double word.
            Some(a) => Self([w0 | AV, ADDR_PAGE.put(a >> 12)]),
            None => Self([w0, 0]),
        }
    }

    /// `IOFENCE.C` ordering every earlier command and their reads and writes.
    /// With `write`, the IOMMU then stores `data` (32 bits) at `addr`, which
    /// is how the driver sees the fence complete.
    pub(crate) const fn iofence(write: Option<(u64, u32)>) -> Self {
        let w0 = op(OP_IOFENCE, FUNC_C) | PR | PW;
        match write {
            Some((addr, data)) => Self([w0 | AV | DATA.put(data as u64), ADDR_WORD.put(addr >> 2)]),
            None => Self([w0, 0]),
        }
    }

    /// `IODIR.INVAL_DDT` for one device (or all when `None`).
    pub(crate) const fn iodir_inval_ddt(device_id: Option<u32>) -> Self {
        let w0 = op(OP_IODIR, FUNC_INVAL_DDT);
        match device_id {
            Some(d) => Self([w0 | DV | DID.put(d as u64), 0]),
            None => Self([w0, 0]),
        }
    }

    /// The opcode (bits 6:0).
    pub(crate) const fn opcode(&self) -> u64 {
        OPCODE.get(self.0[0])
    }

    /// A short name.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "decodes commands for the host tests")
    )]
    pub(crate) const fn name(&self) -> &'static str {
        match (self.opcode(), FUNC3.get(self.0[0])) {
            (OP_IOTINVAL, FUNC_VMA) => "IOTINVAL.VMA",
            (OP_IOTINVAL, FUNC_GVMA) => "IOTINVAL.GVMA",
            (OP_IOFENCE, FUNC_C) => "IOFENCE.C",
            (OP_IODIR, FUNC_INVAL_DDT) => "IODIR.INVAL_DDT",
            (OP_IODIR, 1) => "IODIR.INVAL_PDT",
            _ => "unknown",
        }
    }
}
