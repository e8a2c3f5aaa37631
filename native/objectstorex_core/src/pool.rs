//! Reusable read buffers. On this kind of machine every freshly mapped page costs a fault, and
//! touching fresh memory for each multi-megabyte chunk caps local reads near 1 GB/s. Buffers
//! handed out here return to the pool when the last `Bytes` over them is dropped (for chunks
//! given to Elixir: when the BEAM frees the binary), so steady-state reads touch no new pages.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use bytes::Bytes;

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
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            free.iter()
                .position(|b| b.len() == len)
                .map(|i| free.swap_remove(i))
        };
        let buf = match reused {
            Some(buf) => {
                self.pooled.fetch_sub(buf.len(), Ordering::Relaxed);
                buf
            }
            None => vec![0u8; len],
        };
        PooledBuf { buf, pool: self }
    }

    fn give(&self, buf: Vec<u8>) {
        let len = buf.len();
        if len == 0 || self.pooled.load(Ordering::Relaxed) + len > self.max_bytes {
            return;
        }
        self.pooled.fetch_add(len, Ordering::Relaxed);
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buf);
    }

    pub fn pooled_bytes(&self) -> usize {
        self.pooled.load(Ordering::Relaxed)
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
    }
}
