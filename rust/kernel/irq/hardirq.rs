// SPDX-License-Identifier: GPL-2.0

//! Hard interrupt context: what runs in an interrupt handler with
//! interrupts disabled, such as a demultiplexing handler calling the flow
//! handlers of the interrupts it found pending (`generic_handle_irq()`).
//!
//! C header: [`include/linux/hardirq.h`](srctree/include/linux/hardirq.h)

/// Proof that the code holding it runs in a hard interrupt handler, with
/// interrupts disabled: made only by the kernel crate, around the handlers
/// it calls.
pub struct HardIrq(());

impl HardIrq {
    /// # Safety
    ///
    /// The caller runs in a hard interrupt handler, interrupts disabled,
    /// and the value does not outlive the handler.
    pub(crate) unsafe fn new() -> Self {
        Self(())
    }
}
