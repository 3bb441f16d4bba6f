//! The musl build's global allocator: dlmalloc behind a spin lock.
//!
//! musl's own malloc unmaps freed memory eagerly (see Cargo.toml), so the
//! musl build uses dlmalloc. Its `global` feature guards the heap with a
//! pthread mutex, and musl's pthread_mutex_unlock is no inline store: in
//! tini mode, lock and unlock were 12% of every instruction corral ran
//! (callgrind). corral is one thread, so the lock is never contended in
//! the daemon; one atomic exchange takes it and one store gives it back.
//! Tests and any future thread stay correct: a waiter spins briefly, then
//! yields its CPU to the holder.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

use dlmalloc::Dlmalloc;

pub struct Allocator {
    locked: AtomicBool,
    heap: UnsafeCell<Dlmalloc>,
}

// SAFETY: `heap` is only reached through `with`, which holds `locked`.
unsafe impl Sync for Allocator {}

impl Allocator {
    pub const fn new() -> Allocator {
        Allocator {
            locked: AtomicBool::new(false),
            heap: UnsafeCell::new(Dlmalloc::new()),
        }
    }

    /// Runs `f` on the heap with the lock held. Nothing in `f` allocates
    /// or panics (dlmalloc's own code), so the lock is always released.
    fn with<R>(&self, f: impl FnOnce(&mut Dlmalloc) -> R) -> R {
        let mut spins = 0u32;
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                // The holder may be descheduled: let it run.
                std::thread::yield_now();
            }
        }
        // SAFETY: the lock is held, so this is the only reference.
        let result = f(unsafe { &mut *self.heap.get() });
        self.locked.store(false, Ordering::Release);
        result
    }
}

impl Default for Allocator {
    fn default() -> Self {
        Allocator::new()
    }
}

// SAFETY: every method forwards to dlmalloc, which upholds GlobalAlloc's
// contract, under the lock. Not inlined: with LTO, dlmalloc's code would
// otherwise be copied into every place that allocates (+430 KB of text).
unsafe impl GlobalAlloc for Allocator {
    #[inline(never)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.with(|h| unsafe { h.malloc(layout.size(), layout.align()) })
    }

    #[inline(never)]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.with(|h| unsafe { h.calloc(layout.size(), layout.align()) })
    }

    #[inline(never)]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.with(|h| unsafe { h.free(ptr, layout.size(), layout.align()) })
    }

    #[inline(never)]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.with(|h| unsafe { h.realloc(ptr, layout.size(), layout.align(), new_size) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four threads allocate, fill, check and free through one instance at
    /// once: a lock that let two in would corrupt the heap or the bytes.
    #[test]
    fn threads_share_one_heap_without_corrupting_it() {
        static HEAP: Allocator = Allocator::new();
        let workers: Vec<_> = (0..4u8)
            .map(|t| {
                std::thread::spawn(move || {
                    for round in 0..2000usize {
                        let size = 1 + (round * 37 + usize::from(t) * 101) % 3000;
                        let layout = Layout::from_size_align(size, 16).unwrap();
                        // SAFETY: a non-zero size; freed with its layout.
                        unsafe {
                            let p = HEAP.alloc(layout);
                            assert!(!p.is_null());
                            std::ptr::write_bytes(p, t, size);
                            let p = HEAP.realloc(p, layout, size * 2);
                            assert!(!p.is_null());
                            let kept = std::slice::from_raw_parts(p, size);
                            assert!(kept.iter().all(|&b| b == t), "thread {t} round {round}");
                            HEAP.dealloc(p, Layout::from_size_align(size * 2, 16).unwrap());
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    }
}
