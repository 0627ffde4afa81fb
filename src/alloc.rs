//! An allocator that starts every large buffer on a cache line.
//!
//! The kernels load 64 bytes (16 floats) at a time. A row that starts on a cache line is read
//! one line per load; one that starts anywhere else splits every load across two lines, and
//! the load ports, not the multipliers, set the pace. The system allocator aligns to 16
//! bytes, so where a tensor started, and how fast the kernels ran, changed from run to run
//! (BENCHMARKS.md has the micro-benchmark of conv3's products that showed it).
//!
//! [`CacheAligned`] asks the system allocator for 64-byte alignment for every allocation of
//! [`LARGE`] bytes or more (a `Vec<f32>` of 256 values or more), and passes smaller ones
//! through unchanged. It is the global allocator of the `lenet` binary and the benchmarks;
//! results never depend on it (every kernel loads unaligned data correctly), only speed does.
//!
//! ```
//! #[global_allocator]
//! static ALLOC: lenet::alloc::CacheAligned = lenet::alloc::CacheAligned;
//!
//! let v = vec![0.0f32; 1024];
//! assert!((v.as_ptr() as usize).is_multiple_of(lenet::alloc::LINE));
//! ```

use std::alloc::{GlobalAlloc, Layout, System};

/// Bytes of a cache line.
pub const LINE: usize = 64;

/// Allocations of this many bytes or more start on a cache line.
pub const LARGE: usize = 1024;

/// The system allocator, with allocations of [`LARGE`] bytes or more aligned to [`LINE`].
pub struct CacheAligned;

/// The layout actually requested from the system for `layout`.
fn adjusted(layout: Layout) -> Layout {
    if layout.size() >= LARGE && layout.align() < LINE {
        // A size and LINE, a power of two, always make a valid layout unless the size
        // overflows when rounded up to LINE, which no allocation of this process reaches.
        Layout::from_size_align(layout.size(), LINE).unwrap_or(layout)
    } else {
        layout
    }
}

// SAFETY: every method forwards to `System` with the layout `adjusted` gives, and `dealloc`
// and `realloc` recompute that same layout from the one the caller passes (the layout of the
// allocation, as GlobalAlloc requires), so each block is freed with the layout it was
// allocated with. A reallocation that crosses LARGE changes the alignment, so it allocates,
// copies and frees instead of asking the system to resize.
unsafe impl GlobalAlloc for CacheAligned {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded; the adjusted layout has the caller's nonzero size.
        unsafe { System.alloc(adjusted(layout)) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in alloc.
        unsafe { System.alloc_zeroed(adjusted(layout)) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by this allocator with `layout`, so by the system with
        // `adjusted(layout)`.
        unsafe { System.dealloc(ptr, adjusted(layout)) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = adjusted(layout);
        // SAFETY: GlobalAlloc::realloc's contract: new_size, rounded up to layout.align(),
        // does not overflow, so this is a valid layout.
        let new = adjusted(unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) });
        if new.align() == old.align() {
            // SAFETY: ptr was allocated by the system with `old`; the system keeps the
            // alignment of `old` (it copies into a new aligned block when it must move one
            // aligned above its minimum).
            return unsafe { System.realloc(ptr, old, new_size) };
        }
        // SAFETY: `new` is a valid nonzero layout; both blocks hold at least the smaller size;
        // ptr is freed with the layout it was allocated with.
        unsafe {
            let moved = System.alloc(new);
            if !moved.is_null() {
                std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                System.dealloc(ptr, old);
            }
            moved
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large blocks start on a cache line, through allocation, zeroed allocation and
    /// reallocation across the threshold both ways, and keep their contents.
    #[test]
    fn large_blocks_start_on_a_cache_line_and_keep_their_contents() {
        let a = CacheAligned;
        let aligned = |p: *mut u8| (p as usize).is_multiple_of(LINE);
        // SAFETY: every block is used within its size and freed with its layout.
        unsafe {
            let small = Layout::from_size_align(100, 4).unwrap();
            let p = a.alloc(small);
            assert!(!p.is_null());
            for i in 0..100 {
                *p.add(i) = i as u8;
            }
            // Small to large: moves to an aligned block.
            let p = a.realloc(p, small, 5000);
            assert!(aligned(p));
            assert!((0..100).all(|i| *p.add(i) == i as u8));
            for i in 100..5000 {
                *p.add(i) = (i % 251) as u8;
            }
            // Large to larger: stays aligned.
            let large = Layout::from_size_align(5000, 4).unwrap();
            let p = a.realloc(p, large, 70_000);
            assert!(aligned(p));
            assert!(
                (0..5000).all(|i| *p.add(i) == if i < 100 { i as u8 } else { (i % 251) as u8 })
            );
            // Large to small.
            let p = a.realloc(p, Layout::from_size_align(70_000, 4).unwrap(), 50);
            assert!((0..50).all(|i| *p.add(i) == i as u8));
            a.dealloc(p, Layout::from_size_align(50, 4).unwrap());

            let zeroed = Layout::from_size_align(4096, 4).unwrap();
            let z = a.alloc_zeroed(zeroed);
            assert!(aligned(z));
            assert!((0..4096).all(|i| *z.add(i) == 0));
            a.dealloc(z, zeroed);

            // An alignment above a line is kept.
            let wide = Layout::from_size_align(2048, 4096).unwrap();
            let w = a.alloc(wide);
            assert!((w as usize).is_multiple_of(4096));
            a.dealloc(w, wide);
        }
    }
}
