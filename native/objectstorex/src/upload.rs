//! Serves `ObjectStoreX.Stream.upload/4`, `upload_sink/3` and `ObjectStoreX.upload_file/4`:
//! streaming multipart uploads that are aborted on every failure path.
//!
//! Elixir hands over chunks of any size; they are borrowed without copying and cut into parts
//! of exactly `part_size` bytes by slicing. Each part uploads in its own Tokio task; a write is
//! acknowledged only when fewer than `max_concurrency` parts are in flight, which holds the
//! producer back. Memory is therefore bounded by `(max_concurrency + 1) * part_size` plus the
//! chunk being written. An input of at most one part becomes a single PUT.
//!
//! The in-memory store is the exception: its multipart upload keeps every part until it copies
//! them all into the object, so there the chunks are kept as written and joined once, on
//! several threads, into the buffer that one PUT stores.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload,
};
use objectstorex_core::concat::concat;
use objectstorex_core::hash::Hasher;
use rustler::{Atom, Encoder, Env, LocalPid, Monitor, NifMap, Resource, ResourceArc, Term};
use tokio::task::JoinHandle;

use crate::args::{parse_path, put_options, PutOpts};
use crate::error::{self, NifError, Reason};
use crate::local;
use crate::multipart::Multipart;
use crate::payload::{self, Releases};
use crate::read::{changed_or, resumable};
use crate::runtime::{self, runtime, ByteCounter, CancelSlot, Live, TaskHandle, LIVE_UPLOADS};
use crate::store::StoreResource;

mod atoms {
    rustler::atoms! { ok, error }
}

#[derive(NifMap)]
pub struct UploadOpts {
    part_size: usize,
    max_concurrency: usize,
    hash: Option<String>,
    put: PutOpts,
    /// Report `{:progress, ...}` messages (`upload_file` and `upload_transfer`).
    progress: bool,
    /// `upload_transfer`: the source ETag an interrupted transfer of this object was copying;
    /// its upload, if still in progress, is continued from its last complete part.
    resume: Option<String>,
}

/// A part upload that is aborted if the upload is dropped.
struct PartTask(JoinHandle<object_store::Result<()>>);

impl Drop for PartTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct UploadState {
    store: ResourceArc<StoreResource>,
    path: Path,
    part_size: usize,
    max_concurrency: usize,
    options: PutOptions,
    upload: Option<Multipart>,
    in_flight: VecDeque<PartTask>,
    /// Data not yet sent: less than one part after every write (at most one before the first
    /// part is cut), or all of it on the in-memory store, which gets no parts (see the module
    /// docs).
    pending: VecDeque<Bytes>,
    pending_len: usize,
    hasher: Option<Hasher>,
    bytes: u64,
    parts: u64,
    started: Instant,
    /// The same moment by the wall clock, to compare with the store's last-modified times.
    started_at: chrono::DateTime<chrono::Utc>,
    /// Set once completed or aborted; nothing may be sent after it.
    closed: bool,
    _live: Live,
}

impl UploadState {
    async fn write(&mut self, payload: PutPayload) -> Result<(), NifError> {
        self.check_open()?;
        for chunk in payload {
            if let Some(h) = self.hasher.as_mut() {
                h.update(&chunk);
            }
            self.bytes += chunk.len() as u64;
            self.pending_len += chunk.len();
            self.pending.push_back(chunk);
            while !self.store.in_memory && self.part_ready() {
                let part = self.take_part();
                self.send_part(part).await?;
            }
        }
        Ok(())
    }

    /// Writes a chunk read natively and counts it as progress.
    async fn feed(&mut self, chunk: Bytes, counter: Option<&ByteCounter>) -> Result<(), NifError> {
        let len = chunk.len() as u64;
        self.write(PutPayload::from(chunk)).await?;
        if let Some(c) = counter {
            c.add(len);
        }
        Ok(())
    }

    /// Whether a part is to be cut. The first is held until a byte beyond it arrives: an input
    /// of exactly one part is then one PUT, as a shorter one is (a store without multipart
    /// uploads, WebDAV, takes it).
    fn part_ready(&self) -> bool {
        self.pending_len > self.part_size
            || (self.pending_len == self.part_size && self.upload.is_some())
    }

    /// Cuts exactly `part_size` bytes off the front of `pending`, slicing the last buffer.
    fn take_part(&mut self) -> PutPayload {
        let mut need = self.part_size;
        let mut part = Vec::new();
        while need > 0 {
            let Some(mut head) = self.pending.pop_front() else {
                break;
            };
            if head.len() > need {
                self.pending.push_front(head.split_off(need));
            }
            need -= head.len();
            part.push(head);
        }
        self.pending_len -= self.part_size;
        part.into_iter().collect()
    }

    async fn send_part(&mut self, part: PutPayload) -> Result<(), NifError> {
        if self.upload.is_none() {
            let opts = PutMultipartOptions {
                tags: self.options.tags.clone(),
                attributes: self.options.attributes.clone(),
                ..Default::default()
            };
            self.upload = Some(Multipart::create(&self.store, &self.path, opts).await?);
        }
        while self.in_flight.len() >= self.max_concurrency {
            self.wait_oldest().await?;
        }
        let future = self.upload.as_mut().expect("created above").put_part(part);
        self.parts += 1;
        self.in_flight.push_back(PartTask(runtime().spawn(future)));
        Ok(())
    }

    async fn wait_oldest(&mut self) -> Result<(), NifError> {
        if let Some(mut task) = self.in_flight.pop_front() {
            (&mut task.0)
                .await
                .map_err(|e| NifError::new(Reason::Internal, e.to_string()))?
                .map_err(|e| self.store.error(e))?;
        }
        Ok(())
    }

    /// Sends what is left, waits for every part and completes the upload (or does one PUT).
    async fn finish(&mut self) -> Result<FinishSummary, NifError> {
        self.check_open()?;
        let rest: PutPayload = if self.store.in_memory {
            assemble(std::mem::take(&mut self.pending)).await?
        } else {
            std::mem::take(&mut self.pending).into_iter().collect()
        };
        self.pending_len = 0;
        let result = if self.upload.is_none() {
            let opts = self.options.clone();
            self.store
                .store
                .put_opts(&self.path, rest, opts)
                .await
                .map_err(|e| self.store.error(e))?
        } else {
            if rest.content_length() > 0 {
                self.send_part(rest).await?;
            }
            while !self.in_flight.is_empty() {
                self.wait_oldest().await?;
            }
            let upload = self.upload.as_mut().expect("checked above");
            match upload.complete().await {
                Ok(result) => result,
                Err(e) => {
                    let confirmed = self.confirm(e).await?;
                    self.upload.as_mut().map(Multipart::forget);
                    confirmed
                }
            }
        };
        self.closed = true;
        Ok(FinishSummary {
            etag: result.e_tag,
            version: result.version,
            bytes: self.bytes,
            parts: self.parts.max(1),
            micros: self.started.elapsed().as_micros() as u64,
            digest: self.hasher.take().map(Hasher::finish_hex),
        })
    }

    /// A completion whose answer was lost (the connection broke, and the retry found the upload
    /// gone) may have been applied all the same. It counts as done only if the object now has
    /// this upload's size, was written after it began (a minute's clock skew allowed), and, for
    /// an ETag of S3's multipart form "...-N", has this upload's number of parts.
    async fn confirm(
        &mut self,
        e: object_store::Error,
    ) -> Result<object_store::PutResult, NifError> {
        // Owned copies: the state itself (its upload) cannot be held across an await here.
        let (store, path) = (self.store.clone(), self.path.clone());
        let (bytes, parts, started_at) = (self.bytes, self.parts, self.started_at);
        let error = store.error(e);
        let Ok(meta) = store.store.head(&path).await else {
            return Err(error);
        };
        let parts = meta
            .e_tag
            .as_deref()
            .and_then(|tag| tag.trim_matches('"').rsplit_once('-'))
            .is_none_or(|(_, n)| n == parts.to_string());
        let fresh = meta.last_modified >= started_at - chrono::Duration::seconds(60);
        if meta.size == bytes && fresh && parts {
            Ok(object_store::PutResult {
                e_tag: meta.e_tag,
                version: meta.version,
                extensions: Default::default(),
            })
        } else {
            Err(error)
        }
    }

    async fn abort(&mut self) -> Result<(), NifError> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.in_flight.clear();
        self.pending.clear();
        match self.upload.as_mut() {
            Some(upload) => upload.abort().await.map_err(|e| self.store.error(e)),
            None => Ok(()),
        }
    }

    fn check_open(&self) -> Result<(), NifError> {
        if self.closed {
            Err(NifError::invalid_argument(
                "the upload is already completed or aborted",
            ))
        } else {
            Ok(())
        }
    }
}

/// Passes a step's result on; a failed one aborts the upload first, and an abort that fails
/// too is reported in the error rather than hidden.
async fn settle<T>(state: &mut UploadState, result: Result<T, NifError>) -> Result<T, NifError> {
    let Err(mut e) = result else { return result };
    if let Err(abort) = state.abort().await {
        e.message = format!(
            "{}; aborting the multipart upload failed too, so it may be left on the store: {}",
            e.message, abort.message
        );
    }
    Err(e)
}

/// Joins the chunks into one buffer on the blocking pool, using the machine's cores.
async fn assemble(chunks: VecDeque<Bytes>) -> Result<PutPayload, NifError> {
    let chunks = Vec::from(chunks);
    let joined =
        tokio::task::spawn_blocking(move || concat(&chunks, crate::runtime::cores().min(4)))
            .await
            .map_err(|e| NifError::new(Reason::Internal, e.to_string()))?;
    Ok(joined.into())
}

impl Drop for UploadState {
    /// Parts still in flight stop before the upload, dropped unfinished, aborts itself.
    fn drop(&mut self) {
        self.in_flight.clear();
    }
}

pub struct FinishSummary {
    etag: Option<String>,
    version: Option<String>,
    bytes: u64,
    parts: u64,
    micros: u64,
    digest: Option<String>,
}

impl Encoder for FinishSummary {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        (
            self.etag.as_deref(),
            self.version.as_deref(),
            self.bytes,
            self.parts,
            self.micros,
            self.digest.as_deref(),
        )
            .encode(env)
    }
}

/// One upload in progress. Its owner's death, an explicit abort, any failed step, or the
/// resource being garbage-collected unfinished aborts the multipart upload.
pub struct UploadResource {
    state: Arc<tokio::sync::Mutex<UploadState>>,
    /// The write/finish in progress, cancelled when the owner dies.
    current: CancelSlot,
    /// The written parts' binaries, released on the owner's scheduler (see `Releases`).
    releases: Arc<Releases>,
}

impl UploadResource {
    fn abort_in_background(&self) {
        self.releases.close();
        self.current.cancel();
        let state = self.state.clone();
        runtime().spawn(async move {
            let _ = state.lock().await.abort().await;
        });
    }
}

impl Drop for UploadResource {
    fn drop(&mut self) {
        self.abort_in_background();
    }
}

#[rustler::resource_impl]
impl Resource for UploadResource {
    const IMPLEMENTS_DOWN: bool = true;

    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        self.abort_in_background();
    }
}

/// Prepares an upload (no I/O) owned by the calling process; answers `{:ok, upload}` or
/// `{:error, error}` at once.
fn new_state(
    store: ResourceArc<StoreResource>,
    path: &str,
    opts: UploadOpts,
) -> Result<UploadState, NifError> {
    let path = parse_path("path", path)?;
    let hasher = match opts.hash.as_deref() {
        Some(name) => Some(
            Hasher::new(name)
                .ok_or_else(|| NifError::invalid_argument(format!("unsupported :hash {name:?}")))?,
        ),
        None => None,
    };
    let options = put_options(opts.put, store.ascii_headers)?;
    Ok(UploadState {
        store,
        path,
        part_size: opts.part_size.max(1),
        max_concurrency: opts.max_concurrency.max(1),
        options,
        upload: None,
        in_flight: VecDeque::new(),
        pending: VecDeque::new(),
        pending_len: 0,
        hasher,
        bytes: 0,
        parts: 0,
        started: Instant::now(),
        started_at: chrono::Utc::now(),
        closed: false,
        _live: Live::new(&LIVE_UPLOADS),
    })
}

#[rustler::nif]
fn upload_new<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    path: String,
    opts: UploadOpts,
) -> Term<'a> {
    match new_state(store, &path, opts) {
        Ok(state) => {
            let resource = ResourceArc::new(UploadResource {
                state: Arc::new(tokio::sync::Mutex::new(state)),
                current: CancelSlot::new(None),
                releases: Arc::default(),
            });
            env.monitor(&resource, &env.pid());
            (atoms::ok(), resource).encode(env)
        }
        Err(e) => (atoms::error(), error::term(&e)).encode(env),
    }
}

/// Runs one step of the upload; a failed write or finish aborts the whole upload before the
/// error is reported.
fn step<T, F>(
    env: Env,
    reference: Term,
    upload: &ResourceArc<UploadResource>,
    op: F,
) -> ResourceArc<TaskHandle>
where
    T: Encoder + Send + 'static,
    F: for<'s> FnOnce(&'s mut UploadState) -> futures::future::BoxFuture<'s, Result<T, NifError>>
        + Send
        + 'static,
{
    let state = upload.state.clone();
    let handle = runtime::spawn(env, reference, async move {
        let mut guard = state.lock().await;
        let result = op(&mut guard).await;
        settle(&mut guard, result).await
    });
    upload.current.set(handle.task.get());
    handle
}

#[rustler::nif]
fn upload_write<'a>(
    env: Env<'a>,
    reference: Term<'a>,
    upload: ResourceArc<UploadResource>,
    iovec: Term<'a>,
) -> ResourceArc<TaskHandle> {
    upload.releases.release();
    let payload = payload::from_iovec(iovec, Some(&upload.releases))
        .map_err(|_| NifError::invalid_argument("upload chunks must be binaries or iodata"));
    step(env, reference, &upload, move |state| {
        Box::pin(async move {
            state.write(payload?).await?;
            Ok(atoms::ok())
        })
    })
}

/// Frees the binaries of the parts written so far, on the caller's scheduler: called after
/// each acknowledged write, before the caller gathers the next part (see `Releases`).
#[rustler::nif]
fn upload_release(upload: ResourceArc<UploadResource>) -> Atom {
    upload.releases.release();
    atoms::ok()
}

#[rustler::nif]
fn upload_finish(
    env: Env,
    reference: Term,
    upload: ResourceArc<UploadResource>,
) -> ResourceArc<TaskHandle> {
    upload.releases.close();
    step(env, reference, &upload, |state| Box::pin(state.finish()))
}

#[rustler::nif]
fn upload_abort(
    env: Env,
    reference: Term,
    upload: ResourceArc<UploadResource>,
) -> ResourceArc<TaskHandle> {
    upload.releases.close();
    step(env, reference, &upload, |state| {
        Box::pin(async move {
            state.abort().await?;
            Ok(atoms::ok())
        })
    })
}

/// Uploads a local file, read natively in part-size blocks.
#[rustler::nif]
fn upload_file(
    env: Env,
    reference: Term,
    store: ResourceArc<StoreResource>,
    path: String,
    local_path: String,
    opts: UploadOpts,
) -> ResourceArc<TaskHandle> {
    let progress = opts.progress.then(ByteCounter::new);
    let counter = progress.clone();
    let state = new_state(store, &path, opts);
    runtime::spawn_reporting(env, reference, progress, async move {
        let mut state = state?;
        let opened = std::path::PathBuf::from(&local_path);
        let (file, size) = local::blocking(move || {
            let file = local::open_regular(&opened)?;
            let size = file.metadata()?.len();
            Ok::<_, std::io::Error>((file, size))
        })
        .await?
        .map_err(|e| NifError::new(Reason::NotFound, format!("cannot open {local_path:?}: {e}")))?;
        if let Some(counter) = &counter {
            counter.set_total(size);
        }
        let file = Arc::new(file);
        let result =
            match copy_file(&mut state, &file, 0, size, counter.as_deref(), &local_path).await {
                Ok(()) => state.finish().await,
                Err(e) => Err(e),
            };
        settle(&mut state, result).await
    })
}

/// Writes exactly `size` bytes of `file` into the upload, in part-size blocks read on the
/// blocking pool. A file that shrank or grew meanwhile fails the upload before anything is
/// completed: an object is never committed from bytes that were not read in full.
async fn copy_file(
    state: &mut UploadState,
    file: &Arc<std::fs::File>,
    start: u64,
    size: u64,
    counter: Option<&ByteCounter>,
    name: &str,
) -> Result<(), NifError> {
    let mut pos = start;
    while pos < size {
        let (f, len) = (
            file.clone(),
            (state.part_size as u64).min(size - pos) as usize,
        );
        let chunk = local::blocking(move || local::read_at(&f, pos, len))
            .await?
            .map_err(|e| NifError::new(Reason::Generic, format!("reading {name:?}: {e}")))?;
        if chunk.is_empty() {
            break;
        }
        pos += chunk.len() as u64;
        state.feed(chunk, counter).await?;
    }
    let f = file.clone();
    let now = local::blocking(move || f.metadata().map(|m| m.len()))
        .await?
        .unwrap_or(pos);
    if pos != size || now != size {
        return Err(NifError::new(
            Reason::PreconditionFailed,
            format!("{name:?} changed while it was being read: {size} bytes at the start, {pos} read, {now} now"),
        ));
    }
    Ok(())
}

/// Streams an object from one store into another: the download and the part uploads overlap,
/// memory stays within the upload's bound, and the digest is computed once in flight.
#[rustler::nif]
fn upload_transfer(
    env: Env,
    reference: Term,
    source: ResourceArc<StoreResource>,
    source_path: String,
    store: ResourceArc<StoreResource>,
    path: String,
    opts: UploadOpts,
) -> ResourceArc<TaskHandle> {
    let progress = opts.progress.then(ByteCounter::new);
    let counter = progress.clone();
    let resume = opts.resume.clone();
    let state = new_state(store, &path, opts);
    let source_path = parse_path("source_path", &source_path);
    runtime::spawn_reporting(env, reference, progress, async move {
        let (mut state, source_path) = (state?, source_path?);
        let counter = counter.as_deref();
        let result = copy_object(&mut state, &source, &source_path, counter, resume).await;
        settle(&mut state, result).await
    })
}

/// Takes up the upload an interrupted transfer of the source version `etag` left in progress at
/// the destination, when the source is still that version: its complete parts are kept and the
/// copy goes on after them. Otherwise the destination's uploads in progress (of an older
/// version) are aborted and the copy starts over. Returns the offset to copy from.
async fn continue_from(
    state: &mut UploadState,
    source: &StoreResource,
    source_path: &Path,
    etag: &str,
) -> Result<u64, NifError> {
    let head = source
        .store
        .head(source_path)
        .await
        .map_err(|e| source.error(e))?;
    if head.e_tag.as_deref() != Some(etag) {
        Multipart::discard_all(&state.store, &state.path).await?;
        return Ok(0);
    }
    let Some((upload, parts)) =
        Multipart::adopt(&state.store, &state.path, state.part_size).await?
    else {
        return Ok(0);
    };
    let start = parts as u64 * state.part_size as u64;
    if start > head.size {
        // Not this object's parts after all; dropped, the upload aborts itself.
        return Ok(0);
    }
    state.upload = Some(upload);
    state.parts = parts as u64;
    state.bytes = start;
    // A digest now would cover only the bytes copied in this call.
    state.hasher = None;
    Ok(start)
}

/// Copies the source object into the upload and completes it, after checking that exactly the
/// source's size was read; then checks the size the destination reports.
async fn copy_object(
    state: &mut UploadState,
    source: &StoreResource,
    source_path: &Path,
    counter: Option<&ByteCounter>,
    resume: Option<String>,
) -> Result<FinishSummary, NifError> {
    use futures::StreamExt;
    let start = match &resume {
        Some(etag) => continue_from(state, source, source_path, etag).await?,
        None => 0,
    };
    let got = if start > 0 {
        // Only the version whose bytes the kept parts hold may follow them.
        let opts = GetOptions {
            if_match: resume,
            range: Some(GetRange::Offset(start)),
            ..Default::default()
        };
        source.store.get_opts(source_path, opts).await
    } else {
        source.store.get(source_path).await
    }
    .map_err(|e| source.error(e))?;
    let expected = got.meta.size;
    if let Some(c) = counter {
        c.set_total(expected);
        c.add(start);
    }
    let name = source_path.to_string();
    match got.payload {
        object_store::GetResultPayload::File(file, _) => {
            copy_file(state, &Arc::new(file), start, expected, counter, &name).await?;
        }
        object_store::GetResultPayload::Stream(body) => {
            let span = got.range.clone();
            let mut body = resumable(source, source_path, &got.meta, span, body);
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| changed_or(source, source_path, e))?;
                state.feed(chunk, counter).await?;
            }
        }
    }
    // Checked before completing: a short or long read must never replace the destination.
    if state.bytes != expected {
        return Err(NifError::new(
            Reason::PreconditionFailed,
            format!(
                "read {} bytes but the source object has {expected}",
                state.bytes
            ),
        ));
    }
    let single = state.upload.is_none();
    let summary = state.finish().await?;
    if single && state.store.local {
        // The local PUT checked the staging file's size before renaming it into place.
        return Ok(summary);
    }
    let written = state
        .store
        .store
        .head(&state.path)
        .await
        .map_err(|e| state.store.error(e))?;
    if written.size != expected {
        return Err(NifError::new(
            Reason::Generic,
            format!(
                "wrote {expected} bytes but the destination reports {}",
                written.size
            ),
        ));
    }
    Ok(summary)
}
