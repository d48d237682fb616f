# Devices of the strict riscv64 QEMU (scripts/qemu-build.sh): QEMU is
# configured --without-default-devices, so only these are built, with what
# they select. Exactly what tests/profiles.conf and tests/*/group.conf use:
# the virt machine (its RISC-V IOMMU, riscv-iommu-pci and the platform
# riscv-iommu-sys, comes with it), edu, virtio-blk-pci and igb; and PCI
# bridges, for devices that share a requester ID. A test that adds another
# device adds its line here.
CONFIG_RISCV_VIRT=y
CONFIG_EDU=y
CONFIG_VIRTIO_PCI=y
CONFIG_VIRTIO_BLK=y
CONFIG_IGB_PCI_EXPRESS=y
# igb's build needs e1000x_common.c, which QEMU 10.0's hw/net/meson.build
# compiles only for e1000 and e1000e.
CONFIG_E1000E_PCI_EXPRESS=y
CONFIG_PCI_BRIDGE=y
CONFIG_PCIE_PORT=y
CONFIG_PCIE_PCI_BRIDGE=y
