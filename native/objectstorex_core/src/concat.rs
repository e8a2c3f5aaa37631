//! Joins many buffers into one contiguous buffer. Building a large buffer is mostly page faults
//! and memory copying, both of which scale with cores, so a large join is split into disjoint
//! ranges of the output that are filled on several threads at once.

use std::sync::Mutex;

use bytes::Bytes;

/// A range of the output and its offset in the concatenation, taken by whoever fills it.
type Piece<'a> = Mutex<Option<(&'a mut [u8], usize)>>;

/// Each thread copies at least this much; below it starting a thread costs more than it saves.
const PER_THREAD_MIN: usize = 16 << 20;

/// Concatenates `chunks` using up to `max_threads` threads (the caller's included). A single
/// chunk is returned as is, without copying.
pub fn concat(chunks: &[Bytes], max_threads: usize) -> Bytes {
    match chunks {
        [] => return Bytes::new(),
        [one] => return one.clone(),
        _ => {}
    }
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let threads = (total / PER_THREAD_MIN).clamp(1, max_threads.max(1));
    // A large zeroed allocation comes straight from the kernel: no page is touched before the
    // copy writes it.
    let mut out = vec![0u8; total];
    if threads == 1 {
        fill(&mut out, chunks, 0);
        return out.into();
    }
    // Disjoint ranges of the output, each taken by whoever fills it: a helper thread, or the
    // caller when the OS refuses to start one.
    let piece = total.div_ceil(threads);
    let ranges: Vec<Piece> = out
        .chunks_mut(piece)
        .enumerate()
        .map(|(i, range)| Mutex::new(Some((range, i * piece))))
        .collect();
    let run = |range: &Piece| {
        let taken = range.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((dst, at)) = taken {
            fill(dst, chunks, at);
        }
    };
    std::thread::scope(|scope| {
        for range in &ranges[1..] {
            let started = std::thread::Builder::new()
                .name("objectstorex-concat".into())
                .spawn_scoped(scope, move || run(range));
            if started.is_err() {
                run(range);
            }
        }
        run(&ranges[0]);
    });
    drop(ranges);
    out.into()
}

/// Fills `dst` with the bytes of `chunks`' concatenation starting at offset `skip`.
fn fill(dst: &mut [u8], chunks: &[Bytes], mut skip: usize) {
    let mut at = 0;
    for chunk in chunks {
        if at == dst.len() {
            break;
        }
        if skip >= chunk.len() {
            skip -= chunk.len();
            continue;
        }
        let src = &chunk[skip..];
        skip = 0;
        let n = src.len().min(dst.len() - at);
        dst[at..at + n].copy_from_slice(&src[..n]);
        at += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize, seed: u8) -> Bytes {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>()
            .into()
    }

    fn joined(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn empty_and_single() {
        assert!(concat(&[], 4).is_empty());
        let one = pattern(1000, 1);
        let out = concat(std::slice::from_ref(&one), 4);
        assert_eq!(out, one);
        assert_eq!(out.as_ptr(), one.as_ptr(), "a single chunk is not copied");
    }

    #[test]
    fn small_join_on_one_thread() {
        let chunks = vec![
            pattern(3, 1),
            Bytes::new(),
            pattern(70_000, 2),
            pattern(1, 3),
        ];
        assert_eq!(&concat(&chunks, 8)[..], &joined(&chunks)[..]);
    }

    #[test]
    fn large_join_split_across_threads_at_odd_boundaries() {
        // 40 MiB in odd-sized chunks: the ranges of the 2 threads end inside a chunk.
        let mut chunks = Vec::new();
        let mut total = 0;
        let mut seed = 0u8;
        while total < 40 << 20 {
            let len = 1_234_567 + (seed as usize) * 7;
            chunks.push(pattern(len, seed));
            total += len;
            seed = seed.wrapping_add(1);
        }
        let expected = joined(&chunks);
        for threads in [1, 2, 3, 64] {
            let out = concat(&chunks, threads);
            assert_eq!(out.len(), expected.len());
            assert!(out[..] == expected[..], "{threads} threads");
        }
    }
}
