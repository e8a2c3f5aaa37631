//! Reusable read buffers. On this kind of machine every freshly mapped page costs a fault, and
//! touching fresh memory for each multi-megabyte chunk caps local reads near 1 GB/s. Buffers
//! handed out here return to the pool when the last `Bytes` over them is dropped (for chunks
//! given to Elixir: when the BEAM frees the binary), so steady-state reads touch no new pages.
//! Inside the VM, glibc maps every block of 128 KiB or more afresh (its threshold for that does
//! not rise as it does in a plain program: seen with strace), so without the pool each such
//! buffer is mapped, faulted in page by page and unmapped again.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;

/// The size from which glibc maps each block afresh inside the VM (its default mmap threshold):
/// buffers this large come from the pool, and are freed off the VM's schedulers when the BEAM
/// lets them go.
pub const MAPPED_FROM: usize = 128 * 1024;

/// Bytes kept for reuse at most; beyond it, returned buffers are freed.
pub const MAX_POOLED_BYTES: usize = 64 * 1024 * 1024;

pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    pooled: AtomicUsize,
    max_bytes: usize,
}

impl BufferPool {
    pub const fn new(max_bytes: usize) -> Self {
        BufferPool {
            free: Mutex::new(Vec::new()),
            pooled: AtomicUsize::new(0),
            max_bytes,
        }
    }

    /// A buffer of exactly `len` initialised bytes, reused when one of that size is free.
    pub fn take(&'static self, len: usize) -> PooledBuf {
        let buf = self.reuse(len).unwrap_or_else(|| vec![0u8; len]);
        PooledBuf { buf, pool: self }
    }

    /// A buffer of at least `len` bytes (`class_of(len)`, so that objects of nearly the same
    /// size share buffers), or `None` when memory for a new one cannot be had.
    pub fn try_take_class(&'static self, len: usize) -> Option<PooledBuf> {
        let class = class_of(len);
        let buf = match self.reuse(class) {
            Some(buf) => buf,
            None => zeroed(class)?,
        };
        Some(PooledBuf { buf, pool: self })
    }

    fn reuse(&self, len: usize) -> Option<Vec<u8>> {
        let buf = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let i = free.iter().position(|b| b.len() == len)?;
            free.remove(i)
        };
        self.pooled.fetch_sub(buf.len(), Ordering::Relaxed);
        Some(buf)
    }

    /// Keeps `buf` for reuse. When that would exceed the cap, the buffers kept longest are
    /// freed to make room (outside the lock): sizes no longer asked for do not clog the pool.
    fn give(&self, buf: Vec<u8>) {
        let len = buf.len();
        if len == 0 || len > self.max_bytes {
            return;
        }
        let evicted: Vec<Vec<u8>> = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let mut pooled = self.pooled.load(Ordering::Relaxed);
            let mut oldest = 0;
            while pooled + len > self.max_bytes && oldest < free.len() {
                pooled -= free[oldest].len();
                oldest += 1;
            }
            let evicted = free.drain(..oldest).collect();
            free.push(buf);
            self.pooled.store(pooled + len, Ordering::Relaxed);
            evicted
        };
        drop(evicted);
    }

    pub fn pooled_bytes(&self) -> usize {
        self.pooled.load(Ordering::Relaxed)
    }
}

/// The process-wide pool for read buffers.
/// The size a buffer for `len` bytes is made with: `len` rounded up to a sixteenth of the next
/// power of two, so at most an eighth of `len` is wasted.
pub fn class_of(len: usize) -> usize {
    let step = (len.next_power_of_two() / 16).max(1);
    len.div_ceil(step) * step
}

/// A zeroed buffer of `len` bytes, or `None` if the allocation fails. Zeroed by the allocator
/// (`calloc`): a fresh mapping is zero already and is not written twice.
fn zeroed(len: usize) -> Option<Vec<u8>> {
    if len == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u8>(len).ok()?;
    // SAFETY: the layout has a non-zero size; a non-null result is `len` zeroed bytes
    // allocated by the global allocator with that layout, which is what `Vec` expects to own.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout);
        (!ptr.is_null()).then(|| Vec::from_raw_parts(ptr, len, len))
    }
}

pub fn global() -> &'static BufferPool {
    static POOL: OnceLock<BufferPool> = OnceLock::new();
    POOL.get_or_init(|| BufferPool::new(MAX_POOLED_BYTES))
}

/// A buffer that goes back to its pool when dropped.
pub struct PooledBuf {
    buf: Vec<u8>,
    pool: &'static BufferPool,
}

impl PooledBuf {
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    /// Shortens the visible length (after a short read); the buffer keeps its size class.
    pub fn into_bytes(self, len: usize) -> Bytes {
        Bytes::from_owner(self).slice(..len)
    }
}

impl AsRef<[u8]> for PooledBuf {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledBuf {
    fn drop(&mut self) {
        self.pool.give(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_after_the_bytes_are_dropped() {
        static POOL: BufferPool = BufferPool::new(1024);
        let mut first = POOL.take(100);
        first.as_mut_slice()[0] = 7;
        let ptr = first.as_ref().as_ptr();
        let bytes = first.into_bytes(50);
        assert_eq!(bytes.len(), 50);
        assert_eq!(POOL.pooled_bytes(), 0);
        drop(bytes);
        assert_eq!(POOL.pooled_bytes(), 100);
        let again = POOL.take(100);
        assert_eq!(again.as_ref().as_ptr(), ptr);
        assert_eq!(POOL.pooled_bytes(), 0);
    }

    #[test]
    fn classes_round_up_by_at_most_an_eighth() {
        assert_eq!(class_of(1 << 20), 1 << 20);
        assert_eq!(class_of((1 << 20) + 1), (1 << 20) + (1 << 17));
        assert_eq!(class_of(1_000_000), 1_048_576);
        assert_eq!(class_of(3), 3);
        for len in [1usize, 7, 4097, 300_000, 1_048_577, 5_000_000] {
            let class = class_of(len);
            assert!(class >= len && class - len <= len / 8, "{len} -> {class}");
        }
    }

    #[test]
    fn buffers_of_a_class_are_shared_and_the_oldest_make_room() {
        static POOL: BufferPool = BufferPool::new(300);
        let a = POOL.try_take_class(100).unwrap();
        assert_eq!(a.len(), 104);
        let ptr = a.as_ref().as_ptr();
        drop(a);
        let b = POOL.try_take_class(101).unwrap();
        assert_eq!(b.as_ref().as_ptr(), ptr);
        let c = POOL.try_take_class(200).unwrap();
        drop(b);
        assert_eq!(POOL.pooled_bytes(), 104);
        // 104 + 208 > 300: the 104-byte buffer, kept longest, goes.
        drop(c);
        assert_eq!(POOL.pooled_bytes(), 208);
        assert_eq!(POOL.try_take_class(101).unwrap().len(), 104);
    }

    #[test]
    fn the_pool_never_holds_more_than_its_cap() {
        static POOL: BufferPool = BufferPool::new(150);
        let a = POOL.take(100);
        let b = POOL.take(100);
        drop(a);
        drop(b);
        assert_eq!(POOL.pooled_bytes(), 100);
    }
}
