// SPDX-License-Identifier: GPL-2.0

//! Context ids: the GSCID (second stage) or PSCID (first stage) that tags
//! a paging domain's translations in the IOMMU's caches.

use kernel::{id_pool::IdPool, new_spinlock, prelude::*, sync::SpinLock};

/// Context ids handed out: 65536, the GSCID's 16 bits.
const CONTEXT_IDS: usize = 1 << 16;

/// The allocator of context ids; id 0 stays reserved for contexts that
/// have none.
#[pin_data]
pub(crate) struct ContextIds {
    #[pin]
    pool: SpinLock<IdPool>,
}

impl ContextIds {
    /// An allocator with every id but 0 free.
    pub(crate) fn new() -> Result<impl PinInit<Self, Error>> {
        let mut pool = IdPool::with_capacity(CONTEXT_IDS, GFP_KERNEL)?;
        let reserved = pool.find_unused_id(0).ok_or(ENOSPC)?.acquire();
        debug_assert_eq!(reserved, 0);
        Ok(try_pin_init!(Self {
            pool <- new_spinlock!(pool, "ContextIds::pool"),
        }))
    }

    /// Allocates an id, below [`CONTEXT_IDS`].
    pub(crate) fn alloc(&self) -> Result<u32> {
        let mut pool = self.pool.lock();
        let id = pool.find_unused_id(1).ok_or(ENOSPC)?;
        let n = id.as_u32();
        if n as usize >= CONTEXT_IDS {
            return Err(ENOSPC);
        }
        id.acquire();
        Ok(n)
    }

    /// Frees an id [`ContextIds::alloc`] returned.
    pub(crate) fn free(&self, id: u32) {
        // CAST: ids are below `CONTEXT_IDS`.
        self.pool.lock().release_id(id as usize);
    }
}
