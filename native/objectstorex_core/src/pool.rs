//! Reusable read buffers. On this kind of machine every freshly mapped page costs a fault, and
//! touching fresh memory for each multi-megabyte chunk caps local reads near 1 GB/s. Buffers
//! handed out here return to the pool when the last `Bytes` over them is dropped (for chunks
//! given to Elixir: when the BEAM frees the binary), so steady-state reads touch no new pages.
//!
//! The pool keeps the buffers returned last and hands out the one returned last first: a VM
//! whose reads change chunk size (another download's options) must not keep buffers of the old
//! size while every buffer of the new one is mapped afresh, and the buffer freed last is the
//! one most likely still in the CPU's caches.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, OnceLock};

use bytes::Bytes;

/// Bytes kept for reuse at most; beyond it, the buffers returned longest ago are freed.
pub const MAX_POOLED_BYTES: usize = 64 * 1024 * 1024;

pub struct BufferPool {
    free: Mutex<Free>,
    max_bytes: usize,
}

/// The buffers kept, oldest first, and their total size: counted under the same lock.
struct Free {
    buffers: VecDeque<Vec<u8>>,
    bytes: usize,
}

impl BufferPool {
    pub const fn new(max_bytes: usize) -> Self {
        BufferPool {
            free: Mutex::new(Free {
                buffers: VecDeque::new(),
                bytes: 0,
            }),
            max_bytes,
        }
    }

    /// A buffer of exactly `len` initialised bytes: the last returned of that size, or new.
    pub fn take(&'static self, len: usize) -> PooledBuf {
        let reused = {
            let mut free = self.lock();
            let found = free.buffers.iter().rposition(|b| b.len() == len);
            let buf = found.and_then(|i| free.buffers.remove(i));
            if buf.is_some() {
                free.bytes -= len;
            }
            buf
        };
        let buf = reused.unwrap_or_else(|| vec![0u8; len]);
        PooledBuf { buf, pool: self }
    }

    fn give(&self, buf: Vec<u8>) {
        let len = buf.len();
        if len == 0 || len > self.max_bytes {
            return;
        }
        let mut evicted = Vec::new();
        {
            let mut free = self.lock();
            while free.bytes + len > self.max_bytes {
                let Some(old) = free.buffers.pop_front() else {
                    break;
                };
                free.bytes -= old.len();
                evicted.push(old);
            }
            free.bytes += len;
            free.buffers.push_back(buf);
        }
        // Freed outside the lock: large buffers go back to the kernel, a system call each.
        drop(evicted);
    }

    fn lock(&self) -> MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn pooled_bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// The process-wide pool for read buffers.
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
    fn the_pool_never_holds_more_than_its_cap() {
        static POOL: BufferPool = BufferPool::new(150);
        let a = POOL.take(100);
        let b = POOL.take(100);
        drop(a);
        drop(b);
        assert_eq!(POOL.pooled_bytes(), 100);
        // Larger than the whole pool: never kept.
        drop(POOL.take(200));
        assert_eq!(POOL.pooled_bytes(), 100);
    }

    #[test]
    fn buffers_of_a_new_size_take_the_place_of_the_oldest() {
        static POOL: BufferPool = BufferPool::new(300);
        let old: Vec<_> = (0..3).map(|_| POOL.take(100)).collect();
        drop(old);
        assert_eq!(POOL.pooled_bytes(), 300);
        // Reads change to 50-byte chunks: each one returned evicts one of the old size.
        let new = POOL.take(50);
        let ptr = new.as_ref().as_ptr();
        drop(new);
        assert_eq!(POOL.pooled_bytes(), 250);
        let again = POOL.take(50);
        assert_eq!(again.as_ref().as_ptr(), ptr, "the new size is reused");
        drop(again);
        let sizes: Vec<usize> = POOL.lock().buffers.iter().map(Vec::len).collect();
        assert_eq!(sizes, [100, 100, 50]);
    }

    #[test]
    fn the_buffer_returned_last_is_taken_first() {
        static POOL: BufferPool = BufferPool::new(1000);
        let (a, b) = (POOL.take(100), POOL.take(100));
        let b_ptr = b.as_ref().as_ptr();
        drop(a);
        drop(b);
        assert_eq!(POOL.take(100).as_ref().as_ptr(), b_ptr);
    }
}
