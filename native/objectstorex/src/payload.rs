//! Moves object bytes across the boundary without copying them, except where a copy is cheaper
//! (4 KiB or less).
//!
//! Into Rust: the caller's binaries are kept alive in an `OwnedEnv` (copying a refc binary term
//! copies only its header) and exposed as `Bytes` that borrow them. Out of Rust: a `Bytes` is
//! wrapped in a resource and handed to the BEAM as a resource binary, and a large one is freed
//! off the VM's schedulers when the BEAM lets it go.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use object_store::PutPayload;
use rustler::{
    Binary, Encoder, Env, NifResult, OwnedBinary, OwnedEnv, Resource, ResourceArc, Term,
};

use crate::runtime;

/// Below this size a plain copy is cheaper than a resource allocation.
const COPY_THRESHOLD: usize = 4096;

/// Keeps the BEAM binaries that `Bytes` slices point into alive.
struct KeptTerms {
    env: Option<OwnedEnv>,
    back: Option<Arc<Releases>>,
}

impl Drop for KeptTerms {
    fn drop(&mut self) {
        if let (Some(back), Some(env)) = (&self.back, self.env.take()) {
            if !rustler::thread::is_scheduler_thread() {
                back.hold(env);
            }
        }
    }
}

/// Binaries that a streaming upload or a `put_many` has finished with, released by its owner
/// on a scheduler (`upload_release` after each acknowledged write, and every later write,
/// finish or abort; `stream_many_push` and the stream's close or cancel) rather than by the
/// Tokio thread that finished them. A binary freed off the schedulers goes back to the
/// allocator of the scheduler that made it only after every scheduler has made progress, which
/// on busy cores comes late: parts of 64 MiB written to a contended disk then stayed allocated
/// two or three at a time beyond the upload's bound. And the VM wakes that scheduler to take
/// the block back: a second wake-up per object of a `put_many`. Once the owner is finishing,
/// nothing more is held (its caller may make no further call).
#[derive(Default)]
pub struct Releases {
    held: std::sync::Mutex<Vec<OwnedEnv>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Releases {
    fn hold(&self, env: OwnedEnv) {
        if !self.closed.load(std::sync::atomic::Ordering::Acquire) {
            self.held
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(env);
        }
    }

    /// Frees what is held, on the calling thread (a scheduler, in a NIF call).
    pub fn release(&self) {
        // Taken under the lock (the guard ends with this statement), freed after it.
        let held = std::mem::take(&mut *self.held.lock().unwrap_or_else(|e| e.into_inner()));
        drop(held);
    }

    /// Releases what is held and holds nothing more.
    pub fn close(&self) {
        self.closed
            .store(true, std::sync::atomic::Ordering::Release);
        self.release();
    }
}

// The env is written once (in `from_iovec`) and only read afterwards; freeing it from any thread
// is allowed by the NIF API.
unsafe impl Sync for KeptTerms {}
unsafe impl Send for KeptTerms {}

struct BorrowedSlice {
    _keep: Arc<KeptTerms>,
    ptr: *const u8,
    len: usize,
}

unsafe impl Send for BorrowedSlice {}

impl AsRef<[u8]> for BorrowedSlice {
    fn as_ref(&self) -> &[u8] {
        // Safe: the binary lives in `_keep`'s env, which is never cleared while we exist.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Builds a payload from a list of binaries (what `:erlang.iolist_to_iovec/1` returns), the
/// binaries released through `back` if given (see [`Releases`]).
pub fn from_iovec(iovec: Term, back: Option<&Arc<Releases>>) -> NifResult<PutPayload> {
    // A small payload is copied: cheaper than an environment that keeps its binaries alive.
    let list: Vec<Binary> = iovec.decode()?;
    let total: usize = list.iter().map(|b| b.len()).sum();
    if total <= COPY_THRESHOLD {
        let mut copy = Vec::with_capacity(total);
        list.iter()
            .for_each(|b| copy.extend_from_slice(b.as_slice()));
        return Ok(PutPayload::from(Bytes::from(copy)));
    }
    kept_payload(iovec, back.cloned())
}

fn kept_payload(iovec: Term, back: Option<Arc<Releases>>) -> NifResult<PutPayload> {
    let kept = OwnedEnv::new();
    let saved = kept.save(iovec);
    let slices: Vec<(usize, usize)> = kept.run(|env| -> NifResult<Vec<(usize, usize)>> {
        let list: Vec<Binary> = saved.load(env).decode()?;
        Ok(list
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| (b.as_slice().as_ptr() as usize, b.len()))
            .collect())
    })?;
    let keep = Arc::new(KeptTerms {
        env: Some(kept),
        back,
    });
    Ok(slices
        .into_iter()
        .map(|(ptr, len)| {
            Bytes::from_owner(BorrowedSlice {
                _keep: keep.clone(),
                ptr: ptr as *const u8,
                len,
            })
        })
        .collect())
}

/// Buffers waiting to be freed off the schedulers; with the queue full, the scheduler frees
/// the buffer itself, so what waits here stays bounded (16 chunks).
const RELEASE_QUEUE: usize = 16;

/// Owns the bytes behind a resource binary handed to the BEAM.
pub struct BytesResource(Bytes);

#[rustler::resource_impl]
impl Resource for BytesResource {}

impl Drop for BytesResource {
    fn drop(&mut self) {
        // A block malloc mapped is unmapped when freed, which takes milliseconds while many
        // streams contend for the address space; a scheduler paying it in a consumer's garbage
        // collection stalls every process queued behind it.
        if self.0.len() >= runtime::mapped_from() && rustler::thread::is_scheduler_thread() {
            let bytes = std::mem::take(&mut self.0);
            match releaser().try_send(bytes) {
                Ok(()) => {}
                Err(TrySendError::Full(bytes) | TrySendError::Disconnected(bytes)) => drop(bytes),
            }
        }
    }
}

/// The queue of the thread (`objectstorex-gc`) that frees the large buffers the BEAM's garbage
/// collector has let go. Should the thread not start, the queue is disconnected and every
/// buffer is freed where it is dropped.
fn releaser() -> &'static SyncSender<Bytes> {
    static RELEASER: OnceLock<SyncSender<Bytes>> = OnceLock::new();
    RELEASER.get_or_init(|| {
        let (queue, released) = sync_channel::<Bytes>(RELEASE_QUEUE);
        let _ = std::thread::Builder::new()
            .name("objectstorex-gc".into())
            .spawn(move || released.into_iter().for_each(drop));
        queue
    })
}

/// Object bytes on their way to Elixir.
pub struct Blob(pub Bytes);

impl Encoder for Blob {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        if self.0.len() <= COPY_THRESHOLD {
            let mut bin = OwnedBinary::new(self.0.len());
            bin.as_mut_slice().copy_from_slice(&self.0);
            return bin.release(env).encode(env);
        }
        let resource = ResourceArc::new(BytesResource(self.0.clone()));
        resource.make_binary(env, |r| r.0.as_ref()).encode(env)
    }
}
