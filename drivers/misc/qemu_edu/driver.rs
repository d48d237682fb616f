// SPDX-License-Identifier: GPL-2.0

//! PCI driver glue and the debugfs interface.

use kernel::{
    debugfs,
    device::Core,
    dma::{
        Device as _,
        DmaMask, //
    },
    pci,
    prelude::*,
    str::CString,
    uaccess::UserSliceReader, //
};

use crate::{
    edu::Edu,
    regs::BAR0_SIZE, //
};

/// QEMU's edu: vendor 0x1234 (not in `pci_ids.h`), device 0x11e8.
const EDU_VENDOR: u16 = 0x1234;
const EDU_DEVICE: u16 = 0x11e8;
/// edu's class code, "unclassified device"; the table matches on it and
/// probe checks the ids, as `pci::Vendor` has no constant for 0x1234.
const EDU_CLASS: u32 = 0x00ff00;

pub(crate) struct EduDriver;

/// Per-device data: the device, owned by its debugfs directory
/// `qemu_edu/<BDF>/` so the files can reach it.
#[pin_data]
pub(crate) struct EduData {
    _edu: Pin<KBox<debugfs::Scope<Edu>>>,
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
            let edu = Edu::new(pdev, bar)?;
            let name = CString::try_from_fmt(fmt!("{}", pdev.as_ref().name()))?;
            // The scope's directory keeps its parent alive; with a second edu
            // device `qemu_edu` exists already and only the first gets files.
            let root = debugfs::Dir::new(c"qemu_edu");
            let edu = KBox::pin_init(
                root.scope(edu, &name, |edu, dir| {
                    dir.write_only_callback_file(c"dma", edu, &dma_write);
                    dir.write_only_callback_file(c"write_to", edu, &write_to_write);
                    dir.read_callback_file(c"stats", edu, &Edu::show);
                }),
                GFP_KERNEL,
            )?;
            dev_info!(pdev, "edu ready: {bits}-bit DMA, debugfs qemu_edu/{}\n", name.to_str()?);
            Ok(try_pin_init!(EduData { _edu: edu }))
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
    let iova = words.next().ok_or(EINVAL)?;
    let iova = match iova.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => iova.parse(),
    }
    .map_err(|_| EINVAL)?;
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
