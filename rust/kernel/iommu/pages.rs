// SPDX-License-Identifier: GPL-2.0

//! Pages for IOMMU tables, addressed by physical address.
//!
//! IOMMU tables (page tables, device directories, MSI page tables) are read
//! by the IOMMU at physical addresses, and table code written against the
//! hardware's formats naturally works in physical addresses too. This module
//! allocates such pages and reads and writes their words through [`Words`].
//!
//! C header: [`include/linux/gfp.h`](srctree/include/linux/gfp.h)

use core::marker::PhantomData;

use crate::{
    alloc::Flags,
    bindings,
    error::code::ENOMEM,
    error::Result,
    sync::atomic::{ordering::Release, Atomic}, //
};

/// Allocates `1 << order` zeroed, naturally aligned pages for a table and
/// returns their physical address.
///
/// # Errors
///
/// `ENOMEM` when the pages cannot be allocated.
pub fn alloc(order: u32, flags: Flags) -> Result<u64> {
    // SAFETY: `__get_free_pages` may be called with any flags and order.
    let virt = unsafe { bindings::__get_free_pages(flags.as_raw() | bindings::__GFP_ZERO, order) };
    if virt == 0 {
        return Err(ENOMEM);
    }
    // SAFETY: `virt` is a direct-mapped kernel address just allocated.
    Ok(unsafe { bindings::virt_to_phys(virt as *mut core::ffi::c_void) })
}

/// Frees pages returned by [`alloc`].
///
/// # Safety
///
/// `pa` was returned by [`alloc`] with the same `order`, is not freed yet,
/// and nothing (neither the CPU nor the IOMMU) uses it any more.
pub unsafe fn free(pa: u64, order: u32) {
    // SAFETY: by the safety requirements `pa` is the physical address of a
    // live allocation of `order` made by `__get_free_pages`.
    unsafe { bindings::free_pages(bindings::phys_to_virt(pa) as usize, order) };
}

/// Zeroed, naturally aligned pages owned by a table that does not link
/// them into others (an MSI page table, a set of interrupt files): freed
/// when dropped.
///
/// As with a coherent DMA allocation, the owner makes sure the IOMMU stops
/// reading and writing the pages (the entries pointing at them gone, the
/// IOMMU's caches of them invalidated) before it drops them.
///
/// # Examples
///
/// ```
/// use kernel::iommu::pages::Pages;
///
/// let table = Pages::new(1, GFP_KERNEL)?;
/// let words = table.words(510, 4);
/// assert_eq!((words.len(), words.read(3)), (4, 0));
/// words.write(3, 7);
/// assert_eq!(table.words(0, 1024).read(513), 7);
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// `pa` was returned by [`alloc`] with `order` and is freed only by `drop`.
#[derive(Debug)]
pub struct Pages {
    pa: u64,
    order: u32,
}

impl Pages {
    /// Allocates `1 << order` zeroed pages.
    ///
    /// # Errors
    ///
    /// `ENOMEM` when the pages cannot be allocated.
    pub fn new(order: u32, flags: Flags) -> Result<Self> {
        // INVARIANT: returned by `alloc` with `order`.
        Ok(Self {
            pa: alloc(order, flags)?,
            order,
        })
    }

    /// The pages' physical address.
    pub fn pa(&self) -> u64 {
        self.pa
    }

    /// The `len` words from word `first`, for as long as the pages are
    /// borrowed.
    ///
    /// # Panics
    ///
    /// When they do not lie inside the pages.
    pub fn words(&self, first: usize, len: usize) -> Words<'_> {
        let total = (crate::page::PAGE_SIZE << self.order) / 8;
        assert!(first <= total && len <= total - first);
        // CAST: `first` words lie inside the allocation, whose size fits.
        let pa = self.pa + 8 * first as u64;
        // SAFETY: `[pa, pa + 8 * len)` lies inside the allocation (checked
        // above), 8-byte aligned, which lives until `drop`, so while `self`
        // is borrowed; it is never borrowed as a Rust reference.
        unsafe { Words::new(pa, len) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        // SAFETY: allocated by `alloc` with `order` (type invariant); no view
        // outlives the borrow of `self`, and the owner stopped the IOMMU's
        // use of the pages.
        unsafe { free(self.pa, self.order) };
    }
}

/// Where table pages lie in the kernel's linear map, computed once with
/// `phys_to_virt()` and then applied inline.
///
/// On the 64-bit architectures Linux runs IOMMU drivers on, the linear map
/// is one offset for all of RAM (riscv64 `kernel_map.va_pa_offset`, arm64
/// `PAGE_OFFSET - PHYS_OFFSET`, x86-64 `PAGE_OFFSET`), which C code applies
/// with an inline `__va()`. Rust reaches `phys_to_virt()` only through an
/// out-of-line helper (`CONFIG_RUST_INLINE_HELPERS` is arm64 and x86-64
/// only), one call per table visited; a walk that knows the offset makes
/// none.
///
/// # Examples
///
/// ```
/// use kernel::iommu::pages::{self, LinearMap, Words};
///
/// let (a, b) = (pages::alloc(0, GFP_KERNEL)?, pages::alloc(2, GFP_KERNEL)?);
/// let linear = LinearMap::of(a);
/// // SAFETY: `b` is a fresh allocation of 2048 words, freed below after the
/// // last use of either view, and never referenced.
/// let (inline, helper) = unsafe { (linear.words(b + 8, 2047), Words::new(b + 8, 2047)) };
/// helper.write(2046, 42);
/// assert_eq!(inline.read(2046), 42);
/// // SAFETY: allocated above with these orders; the views are not used again.
/// unsafe {
///     pages::free(a, 0);
///     pages::free(b, 2);
/// }
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LinearMap {
    offset: u64,
}

impl LinearMap {
    /// The linear map's offset, read off `pa`, a page returned by [`alloc`].
    pub fn of(pa: u64) -> Self {
        // SAFETY: `phys_to_virt` only computes an address.
        let va = unsafe { bindings::phys_to_virt(pa) };
        Self {
            // CAST: kernel addresses are 64 bits wide where IOMMU tables live.
            offset: (va as u64).wrapping_sub(pa),
        }
    }

    /// The `len` words from `pa`, as [`Words::new`] makes them, without a
    /// helper call.
    ///
    /// # Safety
    ///
    /// As for [`Words::new`].
    #[inline]
    pub unsafe fn words<'a>(self, pa: u64, len: usize) -> Words<'a> {
        // INVARIANT: by the safety requirements `pa` is in a page of
        // `alloc`, in the linear map at the offset every such page has.
        Words {
            // CAST: as in `of`; the address is the page's linear-map address.
            ptr: pa.wrapping_add(self.offset) as *mut u64,
            len,
            _alloc: PhantomData,
        }
    }
}

/// The words of a table, or of part of one, as the CPU reaches them through
/// the kernel's linear map.
///
/// The address is translated once, when the view is made; each access is
/// then a single load or store the compiler inlines. Table walks make one
/// view per table they visit, not one translation per word.
///
/// Accesses are `READ_ONCE()`/`WRITE_ONCE()`-like (single, untorn, volatile
/// loads and stores) so that the IOMMU, which reads the tables concurrently,
/// sees the old or the new value of a word, never a mix; [`Words::cmpxchg`]
/// installs a word only if it still holds what the caller read, for walks
/// that run without a lock.
///
/// # Examples
///
/// ```
/// use kernel::iommu::pages::{self, Words};
///
/// let pa = pages::alloc(0, GFP_KERNEL)?;
/// // SAFETY: `pa` is a fresh page of 512 words, freed below after the last use
/// // of `table`, and never referenced.
/// let table = unsafe { Words::new(pa, 512) };
/// assert_eq!(table.read(511), 0);
/// table.write(3, 0x1001);
/// assert_eq!(table.cmpxchg(3, 0, 7), Err(0x1001));
/// assert_eq!(table.cmpxchg(3, 0x1001, 7), Ok(()));
/// assert_eq!(table.read(3), 7);
/// // SAFETY: allocated above with order 0; `table` is not used again.
/// unsafe { pages::free(pa, 0) };
/// # Ok::<(), Error>(())
/// ```
///
/// # Invariants
///
/// `ptr` is the linear-map address of `len` 8-byte aligned words inside a
/// live allocation made by [`alloc`], which lives at least as long as `'a`
/// and is never borrowed as a Rust reference.
#[derive(Clone, Copy)]
pub struct Words<'a> {
    ptr: *mut u64,
    len: usize,
    _alloc: PhantomData<&'a ()>,
}

/// Panics for words `first..first + n` of a view of `len`.
///
/// Out of line and cold, so that the checks of [`Words`] cost a compare and
/// a branch in table walks: building the message's arguments inline put
/// three stores to the stack in front of every check.
#[cold]
#[inline(never)]
#[track_caller]
fn out_of_view(first: usize, n: usize, len: usize) -> ! {
    panic!("table words {first}+{n} of {len}")
}

impl<'a> Words<'a> {
    /// The `len` words from `pa`.
    ///
    /// # Safety
    ///
    /// `pa` is 8-byte aligned and `[pa, pa + 8 * len)` lies inside a live
    /// allocation made by [`alloc`] that is not freed during `'a`, and no Rust
    /// reference to that memory exists during `'a`.
    #[inline]
    pub unsafe fn new(pa: u64, len: usize) -> Self {
        // SAFETY: `phys_to_virt` only computes an address; by the safety
        // requirements `pa` is in the linear map (pages from `alloc`).
        let va = unsafe { bindings::phys_to_virt(pa) };
        // INVARIANT: by the safety requirements.
        Self {
            ptr: va.cast(),
            len,
            _alloc: PhantomData,
        }
    }

    /// The number of words.
    #[inline]
    pub fn len(self) -> usize {
        self.len
    }

    /// Whether the view is empty.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.len == 0
    }

    /// The `len` words from word `first` of this view.
    ///
    /// # Panics
    ///
    /// If they do not all lie in this view.
    #[inline]
    pub fn sub(self, first: usize, len: usize) -> Self {
        if first.checked_add(len).is_none_or(|end| end > self.len) {
            out_of_view(first, len, self.len);
        }
        // INVARIANT: a part of this view, so of the same allocation.
        Self {
            // SAFETY: `first <= len`, so the address is inside the view or
            // just past it (type invariant).
            ptr: unsafe { self.ptr.add(first) },
            len,
            _alloc: PhantomData,
        }
    }

    #[inline]
    fn word(self, i: usize) -> *mut u64 {
        if i >= self.len {
            out_of_view(i, 1, self.len);
        }
        // SAFETY: `i < len`, so the word is inside the allocation (type invariant).
        unsafe { self.ptr.add(i) }
    }

    /// Reads word `i`, as `READ_ONCE()` does.
    ///
    /// # Panics
    ///
    /// If `i` is not below [`Words::len`].
    #[inline]
    pub fn read(self, i: usize) -> u64 {
        // SAFETY: the word is aligned, mapped and ours, never referenced
        // (type invariant); a volatile read is a single load.
        unsafe { core::ptr::read_volatile(self.word(i)) }
    }

    /// Writes word `i` with a single store, as `WRITE_ONCE()` does.
    ///
    /// # Panics
    ///
    /// If `i` is not below [`Words::len`].
    #[inline]
    pub fn write(self, i: usize, val: u64) {
        // SAFETY: as in `read`.
        unsafe { core::ptr::write_volatile(self.word(i), val) }
    }

    /// Replaces word `i` by `new` if it holds `old`, with release ordering:
    /// whoever reads `new` (and follows it, as a table walk follows a table
    /// entry) sees every store made before. Returns the word's value when
    /// it did not hold `old`.
    ///
    /// # Panics
    ///
    /// If `i` is not below [`Words::len`].
    #[inline]
    pub fn cmpxchg(self, i: usize, old: u64, new: u64) -> Result<(), u64> {
        // SAFETY: the word is valid for reads and writes for `'a` (type
        // invariant); every CPU access to table words is a single load or
        // store or this cmpxchg, so none races in the LKMM's sense.
        let word = unsafe { Atomic::<u64>::from_ptr(self.word(i)) };
        word.cmpxchg(old, new, Release).map(|_| ())
    }
}
