// SPDX-License-Identifier: GPL-2.0

//! PCI driver glue and the debugfs interface.

use kernel::{
    debugfs,
    device::Core,
    dma::{
        Device as _,
        DmaMask, //
    },
    irq::Flags,
    pci::{self, vectors::ThreadedVector, IrqTypes},
    prelude::*,
    str::CString,
    sync::{atomic::Atomic, Arc},
    uaccess::UserSliceReader, //
};

use crate::{
    edu::{Edu, EduIrq},
    ims::EduIms,
    regs::BAR0_SIZE, //
};

/// QEMU's edu: vendor 0x1234 (not in `pci_ids.h`), device 0x11e8.
const EDU_VENDOR: u16 = 0x1234;
const EDU_DEVICE: u16 = 0x11e8;
/// edu's class code, "unclassified device"; the table matches on it and
/// probe checks the ids, as `pci::Vendor` has no constant for 0x1234.
const EDU_CLASS: u32 = 0x00ff00;

pub(crate) struct EduDriver;

/// Per-device data: the device and its IMS, owned by their debugfs
/// directory `qemu_edu/<BDF>/` so the files can reach them, and its MSI
/// with the handler that counts it (dropped after the files are gone, and
/// after the IMS domain).
#[pin_data]
pub(crate) struct EduData {
    _files: Pin<KBox<debugfs::Scope<EduFiles>>>,
    _irq: ThreadedVector<EduIrq>,
}

/// What the debugfs files reach.
#[pin_data]
pub(crate) struct EduFiles {
    #[pin]
    edu: Edu,
    /// `None` where the device's MSI parent has no PCI/IMS support.
    ims: Option<Pin<KBox<EduIms>>>,
}

kernel::pci_device_table!(
    PCI_TABLE,
    <EduDriver as pci::Driver>::IdInfo,
    [(pci::DeviceId::from_class(EDU_CLASS, 0xffffff), ())]
);

impl pci::Driver for EduDriver {
    type IdInfo = ();
    type Data<'bound> = EduData;
    const ID_TABLE: pci::IdTable<Self::IdInfo> = &PCI_TABLE;
    /// The IMS model can hand the device to iommufd (`iommufd` in debugfs
    /// `ims`), as VFIO does.
    const DRIVER_MANAGED_DMA: bool = true;

    fn probe<'bound>(
        pdev: &'bound pci::Device<Core<'_>>,
        _info: Option<&'bound Self::IdInfo>,
    ) -> impl PinInit<Self::Data<'bound>, Error> + 'bound {
        pin_init::pin_init_scope(move || {
            if pdev.vendor_id().as_raw() != EDU_VENDOR || pdev.device_id() != EDU_DEVICE {
                return Err(ENODEV);
            }
            let bits = crate::module_parameters::dma_bits.value();
            let mask = DmaMask::try_new(bits)
                .ok()
                .filter(|_| (28..=32).contains(&bits))
                .ok_or(EINVAL)
                .inspect_err(|_| dev_err!(pdev, "dma_bits={bits} is outside 28..32\n"))?;
            pdev.enable_device_mem()?;
            pdev.set_master();
            // SAFETY: Nothing else allocates or maps DMA for this device while it probes.
            unsafe { pdev.dma_set_mask_and_coherent(mask)? };
            let bar = pdev.iomap_region_sized::<BAR0_SIZE>(0, c"qemu_edu")?;
            // IMS before the device's MSI: on the GIC ITS both share one
            // event table, sized when the first of them is set up.
            let m = &crate::module_parameters::ims_slots;
            let storage = if crate::module_parameters::ims_queue.value() {
                "queue"
            } else {
                "array"
            };
            let ims = match EduIms::new(pdev, m.value(), storage)
                .and_then(|i| KBox::pin_init(i, GFP_KERNEL))
            {
                Ok(i) => Some(i),
                Err(e) if e == EOPNOTSUPP => {
                    dev_info!(pdev, "no IMS: the MSI parent does not support PCI/IMS\n");
                    None
                }
                Err(e) => {
                    dev_err!(pdev, "IMS with {} slots ({storage}): {:?}\n", m.value(), e);
                    return Err(e);
                }
            };
            let count = Arc::new(Atomic::new(0u64), GFP_KERNEL)?;
            let irq = ThreadedVector::new(
                pdev,
                IrqTypes::default().with(pci::IrqType::Msi),
                Flags::TRIGGER_NONE,
                c"qemu_edu",
                EduIrq::new(count.clone()),
            )?;
            let line = irq.line();
            let edu = Edu::new(pdev, bar, count, line)?;
            let files = try_pin_init!(EduFiles { edu <- edu, ims });
            let name = CString::try_from_fmt(fmt!("{}", pdev.as_ref().name()))?;
            // The scope's directory keeps its parent alive; with a second edu
            // device `qemu_edu` exists already and only the first gets files.
            let root = debugfs::Dir::new(c"qemu_edu");
            let files = KBox::pin_init(
                root.scope(files, &name, |f, dir| {
                    dir.write_only_callback_file(c"dma", f, &|f: &EduFiles, r| {
                        dma_write(&f.edu, r)
                    });
                    dir.write_only_callback_file(c"write_to", f, &|f: &EduFiles, r| {
                        write_to_write(&f.edu, r)
                    });
                    dir.read_callback_file(c"stats", f, &|f: &EduFiles, out| f.edu.show(out));
                    dir.write_only_callback_file(c"irq", f, &|f: &EduFiles, r| {
                        irq_write(&f.edu, r)
                    });
                    dir.write_only_callback_file(c"vcpu", f, &|f: &EduFiles, r| {
                        vcpu_write(&f.edu, r)
                    });
                    if f.ims.is_some() {
                        dir.read_write_callback_file(
                            c"ims",
                            f,
                            &|f: &EduFiles, out| f.ims.as_ref().map_or(Ok(()), |i| i.show(out)),
                            &ims_write,
                        );
                    }
                }),
                GFP_KERNEL,
            )?;
            dev_info!(
                pdev,
                "edu ready: {bits}-bit DMA, debugfs qemu_edu/{}\n",
                name.to_str()?
            );
            Ok(try_pin_init!(EduData {
                _files: files,
                _irq: irq
            }))
        })
    }
}

/// Reads a short request written to a debugfs file.
fn read_request<'a>(reader: &mut UserSliceReader, buf: &'a mut [u8; 48]) -> Result<&'a str> {
    let n = reader.len();
    if n >= buf.len() {
        return Err(EINVAL);
    }
    reader.read_slice(&mut buf[..n])?;
    core::str::from_utf8(&buf[..n]).map_err(|_| EINVAL)
}

/// `echo IOVA LEN > write_to`: edu writes LEN bytes to bus address IOVA
/// (hexadecimal with 0x, or decimal), mapped or not.
fn write_to_write(edu: &Edu, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 48];
    let mut words = read_request(reader, &mut buf)?.split_whitespace();
    let iova = parse_u64(words.next().ok_or(EINVAL)?)?;
    let len = words.next().ok_or(EINVAL)?.parse().map_err(|_| EINVAL)?;
    if words.next().is_some() {
        return Err(EINVAL);
    }
    edu.write_to(iova, len)
}

/// `echo LEN [SEED] > dma`: one verified round trip of LEN bytes.
fn dma_write(edu: &Edu, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 48];
    let mut words = read_request(reader, &mut buf)?.split_whitespace();
    let len = words.next().ok_or(EINVAL)?.parse().map_err(|_| EINVAL)?;
    let seed = match words.next() {
        Some(w) => w.parse().map_err(|_| EINVAL)?,
        None => 0x5eed,
    };
    if words.next().is_some() {
        return Err(EINVAL);
    }
    edu.round_trip(len, seed)
}

/// `echo COMMAND > ims`: drives edu's IMS (`Documentation/ims.md`).
fn ims_write(f: &EduFiles, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 48];
    let req = read_request(reader, &mut buf)?;
    f.ims.as_ref().ok_or(ENODEV)?.command(&f.edu, req)
}

/// Parses a number, hexadecimal with 0x or decimal.
fn parse_u64(w: &str) -> Result<u64> {
    match w.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => w.parse(),
    }
    .map_err(|_| EINVAL)
}

/// `echo N > irq`: edu raises its MSI N times, each waited for;
/// `echo masked N > irq`: N times with the interrupt disabled, then
/// enabled (`last_masked_raise` in `stats`).
fn irq_write(edu: &Edu, reader: &mut UserSliceReader) -> Result {
    let mut buf = [0u8; 48];
    let mut words = read_request(reader, &mut buf)?.split_whitespace();
    let mut first = words.next().ok_or(EINVAL)?;
    let masked = first == "masked";
    if masked {
        first = words.next().ok_or(EINVAL)?;
    }
    let n = parse_u64(first)?;
    let most = if masked { 100 } else { 1_000_000 };
    if words.next().is_some() || n == 0 || n > most {
        return Err(EINVAL);
    }
    if masked {
        edu.raise_masked(n)
    } else {
        edu.raise(n)
    }
}

/// `echo TARGET ID > vcpu`: the MSI is sent to the guest interrupt file
/// `TARGET` with identity `ID`, as KVM does for an assigned device whose
/// route names that vCPU; `echo off > vcpu` brings it back to the host.
/// Refused (`EINVAL`) where no RISC-V IOMMU remaps the MSI (arm64's ITS
/// takes another argument).
fn vcpu_write(edu: &Edu, reader: &mut UserSliceReader) -> Result {
    use kernel::irq::remap::VcpuTarget;

    let mut buf = [0u8; 48];
    let mut words = read_request(reader, &mut buf)?.split_whitespace();
    let first = words.next().ok_or(EINVAL)?;
    let target = if first == "off" {
        None
    } else {
        let target = parse_u64(first)?;
        let id = parse_u64(words.next().ok_or(EINVAL)?)?;
        Some(VcpuTarget {
            msi_data: u32::try_from(id).map_err(|_| EINVAL)?,
            target,
        })
    };
    if words.next().is_some() {
        return Err(EINVAL);
    }
    edu.set_vcpu_affinity(target)
}
