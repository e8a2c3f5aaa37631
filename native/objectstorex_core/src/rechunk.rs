//! Turns a stream of byte buffers of any sizes into chunks of exactly `chunk_size` bytes (the
//! last may be shorter). A buffer at least as large as what is missing is sliced without a
//! copy; only small buffers are gathered into a new chunk, in a reusable pooled buffer so that
//! gathering does not touch fresh memory for every chunk.

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::pool::{self, PooledBuf};

pub struct Rechunker<S> {
    inner: S,
    chunk_size: usize,
    pending: Bytes,
    done: bool,
    /// Bytes the stream is expected to yield from here on: a gathering buffer is never larger,
    /// so a large `chunk_size` over a small body allocates only what the body needs.
    remaining: u64,
}

impl<S, E> Rechunker<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    pub fn new(inner: S, chunk_size: usize) -> Self {
        assert!(chunk_size > 0, "chunk_size must be positive");
        Rechunker {
            inner,
            chunk_size,
            pending: Bytes::new(),
            done: false,
            remaining: u64::MAX,
        }
    }

    /// Caps gathering buffers at `total` bytes, the size the stream is expected to yield.
    pub fn with_total(mut self, total: u64) -> Self {
        self.remaining = total;
        self
    }

    fn emit(&mut self, chunk: Bytes) -> Option<Result<Bytes, E>> {
        self.remaining = self.remaining.saturating_sub(chunk.len() as u64);
        Some(Ok(chunk))
    }

    /// The next chunk, `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, E>> {
        // A pooled buffer and how much of it is filled.
        let mut gathered: Option<(PooledBuf, usize)> = None;
        loop {
            let have = gathered.as_ref().map_or(0, |(_, filled)| *filled);
            // A body longer than announced still gets whole chunks: the cap only sizes buffers.
            let capacity = match gathered.as_ref() {
                Some((buf, _)) => buf.len(),
                None if self.remaining == 0 => self.chunk_size,
                None => (self.chunk_size as u64).min(self.remaining) as usize,
            };
            let missing = capacity - have;
            if !self.pending.is_empty() {
                if have == 0 && self.pending.len() >= missing {
                    let chunk = self.pending.split_to(missing);
                    return self.emit(chunk);
                }
                let take = missing.min(self.pending.len());
                let (buf, filled) =
                    gathered.get_or_insert_with(|| (pool::global().take(capacity), 0));
                let piece = self.pending.split_to(take);
                buf.as_mut_slice()[*filled..*filled + take].copy_from_slice(&piece);
                *filled += take;
                if *filled == capacity {
                    let chunk = gathered.map(|(buf, filled)| buf.into_bytes(filled))?;
                    return self.emit(chunk);
                }
                continue;
            }
            if self.done {
                let chunk = gathered
                    .filter(|(_, filled)| *filled > 0)
                    .map(|(buf, filled)| buf.into_bytes(filled))?;
                return self.emit(chunk);
            }
            match self.inner.next().await {
                Some(Ok(bytes)) => self.pending = bytes,
                Some(Err(e)) => return Some(Err(e)),
                None => self.done = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn rechunk(parts: Vec<&'static [u8]>, size: usize) -> Vec<Vec<u8>> {
        let stream = futures::stream::iter(
            parts
                .into_iter()
                .map(|p| Ok::<_, ()>(Bytes::from_static(p))),
        );
        let mut r = Rechunker::new(stream, size);
        let mut out = Vec::new();
        while let Some(chunk) = r.next_chunk().await {
            out.push(chunk.unwrap().to_vec());
        }
        out
    }

    #[tokio::test]
    async fn gathers_small_and_slices_large_buffers() {
        let out = rechunk(vec![b"ab", b"c", b"defghij", b"", b"k"], 3).await;
        let expect: Vec<&[u8]> = vec![b"abc", b"def", b"ghi", b"jk"];
        assert_eq!(out, expect);
    }

    #[tokio::test]
    async fn exact_multiple_and_empty_input() {
        assert_eq!(
            rechunk(vec![b"abcd"], 2).await,
            vec![b"ab".to_vec(), b"cd".to_vec()]
        );
        assert!(rechunk(vec![], 4).await.is_empty());
        assert!(rechunk(vec![b""], 4).await.is_empty());
    }

    #[tokio::test]
    async fn large_buffer_is_sliced_without_copy() {
        let big = Bytes::from(vec![7u8; 10]);
        let ptr = big.as_ptr();
        let stream = futures::stream::iter(vec![Ok::<_, ()>(big)]);
        let mut r = Rechunker::new(stream, 4);
        let first = r.next_chunk().await.unwrap().unwrap();
        assert_eq!(first.as_ptr(), ptr);
    }

    #[tokio::test]
    async fn total_caps_buffers_but_not_the_data() {
        // A 2^40-byte chunk size over a 5-byte body must not allocate 2^40 bytes.
        let stream = futures::stream::iter(
            vec![&b"ab"[..], b"cde"]
                .into_iter()
                .map(|p| Ok::<_, ()>(Bytes::from_static(p))),
        );
        let mut r = Rechunker::new(stream, 1 << 40).with_total(5);
        assert_eq!(r.next_chunk().await.unwrap().unwrap().as_ref(), b"abcde");
        assert!(r.next_chunk().await.is_none());
        // A body that runs past its announced total is still delivered whole.
        let stream = futures::stream::iter(
            vec![&b"ab"[..], b"cd", b"ef"]
                .into_iter()
                .map(|p| Ok::<_, ()>(Bytes::from_static(p))),
        );
        let mut r = Rechunker::new(stream, 4).with_total(3);
        let mut out = Vec::new();
        while let Some(chunk) = r.next_chunk().await {
            out.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(out, b"abcdef");
    }
}
