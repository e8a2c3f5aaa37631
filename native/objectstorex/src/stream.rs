//! Serves `ObjectStoreX.Stream`: demand-driven producers for downloads, listings, `get_many`
//! and `put_many`.
//!
//! Flow control is by credit, except for `get_many` and `put_many`, whose consumer bounds the
//! work itself by pushing no more objects than it may hold results for. A producer sends
//! `{ref, {:data, item}}` only while it holds a credit; the consumer returns one credit
//! (`stream_ack/2`) for each item it takes from its mailbox. The producer takes a credit
//! *before* it reads the next item, so the items in the consumer's mailbox plus the one being
//! read never exceed the initial credit (`:prefetch`).
//! A stream ends with exactly one terminal message, `{ref, {:done, summary}}` or
//! `{ref, {:error, error}}`; after it nothing more is sent for that ref.

use std::collections::VecDeque;
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use object_store::path::Path;
use object_store::{GetOptions, GetResultPayload, ObjectMeta, PutOptions, PutPayload};
use objectstorex_core::gunzip::{Gunzip, GzipError};
use objectstorex_core::hash::Hasher;
use objectstorex_core::pace::Pace;
use objectstorex_core::pool;
use objectstorex_core::rechunk::Rechunker;
use rustler::{Atom, Env, LocalPid, Monitor, NifMap, NifResult, Resource, ResourceArc, Term};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

use crate::args::{get_options, get_range, parse_path, put_options, GetOpts, PutOpts};
use crate::error::{NifError, Reason};
use crate::local;
use crate::meta::Meta;
use crate::payload::{self, Blob, Releases};
use crate::read::{self, changed_or, pinned_range, resumable, Pin};
use crate::runtime::{runtime, CancelSlot, Emitter, Live, LIVE_STREAMS};
use crate::store::StoreResource;

mod atoms {
    rustler::atoms! { ok, error, data, start, done, running, got }
}

/// A running producer: its credit, the means to stop it, for `get_many` and `put_many`
/// where the objects it is to handle go (dropped to say that no more will come), and for
/// `put_many` the payloads it has written, freed on the consumer's scheduler (see `Releases`).
pub struct StreamResource {
    credit: Arc<Semaphore>,
    producer: CancelSlot,
    jobs: Mutex<Option<JobSender>>,
    releases: Arc<Releases>,
}

#[rustler::resource_impl]
impl Resource for StreamResource {
    const IMPLEMENTS_DOWN: bool = true;

    /// The consumer died: stop the work it asked for.
    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        self.producer.cancel();
        self.releases.close();
    }
}

/// A stream dropped while suspended (its continuation garbage-collected) is freed here: its
/// producer and connection must not outlive it.
impl Drop for StreamResource {
    fn drop(&mut self) {
        self.producer.cancel();
        self.releases.close();
    }
}

/// What a producer has for sending and for waiting on credit.
struct Producer {
    emitter: Emitter,
    credit: Arc<Semaphore>,
}

impl Producer {
    /// Waits for one credit. Borrows only the semaphore, so the producer need not be `Sync`.
    fn reserve(&self) -> impl Future<Output = ()> + Send + 'static {
        let credit = self.credit.clone();
        async move {
            // The semaphore is never closed, so acquire cannot fail.
            if let Ok(permit) = credit.acquire().await {
                permit.forget();
            }
        }
    }

    /// Takes one credit if one is free, without waiting.
    fn try_reserve(&self) -> bool {
        self.credit
            .try_acquire()
            .map(|permit| permit.forget())
            .is_ok()
    }

    fn send<T: rustler::Encoder>(&mut self, message: T) {
        self.emitter.send(message);
    }
}

fn spawn_stream<F, T>(
    env: Env,
    reference: Term,
    credit: usize,
    jobs: Option<JobSender>,
    produce: F,
) -> ResourceArc<StreamResource>
where
    F: for<'p> FnOnce(&'p mut Producer) -> BoxFuture<'p, Result<T, NifError>> + Send + 'static,
    T: rustler::Encoder + Send + 'static,
{
    let credit = Arc::new(Semaphore::new(credit.max(1)));
    let mut producer = Producer {
        emitter: Emitter::new(env, reference),
        credit: credit.clone(),
    };
    let live = Live::new(&LIVE_STREAMS);
    let join = runtime().spawn(async move {
        let outcome = AssertUnwindSafe(produce(&mut producer))
            .catch_unwind()
            .await;
        // Uncounted before the consumer can see the end of the stream.
        drop(live);
        let result = outcome.unwrap_or_else(|panic| Err(NifError::from_panic(panic)));
        producer.emitter.finish_tagged(atoms::done(), result);
    });
    let resource = ResourceArc::new(StreamResource {
        credit,
        producer: CancelSlot::new(Some(join.abort_handle())),
        jobs: Mutex::new(jobs),
        releases: Arc::default(),
    });
    env.monitor(&resource, &env.pid());
    resource
}

#[rustler::nif]
fn stream_ack(stream: ResourceArc<StreamResource>, credits: usize) -> Atom {
    stream.credit.add_permits(credits);
    atoms::ok()
}

/// Stops the producer; answers `:running` when it had not finished (its terminal message is
/// still to come) and `:done` when it had, or was stopped before.
#[rustler::nif]
fn stream_cancel(stream: ResourceArc<StreamResource>) -> Atom {
    stream.releases.close();
    if stream.producer.cancel() {
        atoms::running()
    } else {
        atoms::done()
    }
}

// ------------------------------------------------------------------------------------------
// Downloads

#[derive(NifMap)]
pub struct DownloadOpts {
    range: Option<(Atom, u64, u64)>,
    chunk_size: usize,
    prefetch: usize,
    concurrency: usize,
    hash: Option<String>,
    /// Inflate a gzip object (every member) and send the inflated bytes.
    gunzip: bool,
}

struct Tally {
    started: Instant,
    bytes: u64,
    chunks: u64,
    hasher: Option<Hasher>,
}

impl Tally {
    fn new(hash: Option<&str>) -> Result<Self, NifError> {
        let hasher = match hash {
            Some(name) => Some(Hasher::new(name).ok_or_else(|| {
                NifError::invalid_argument(format!("unsupported :hash {name:?}"))
            })?),
            None => None,
        };
        Ok(Tally {
            started: Instant::now(),
            bytes: 0,
            chunks: 0,
            hasher,
        })
    }

    fn record(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        self.chunks += 1;
        if let Some(h) = self.hasher.as_mut() {
            h.update(chunk);
        }
    }

    /// `{bytes, chunks, duration_us, digest_hex | nil}`
    fn summary(self) -> (u64, u64, u64, Option<String>) {
        let micros = self.started.elapsed().as_micros() as u64;
        (
            self.bytes,
            self.chunks,
            micros,
            self.hasher.map(Hasher::finish_hex),
        )
    }
}

/// Where a download's chunks go: counted and hashed as read, then sent to the consumer as they
/// are, or inflated first. Each chunk read holds one credit; inflating one chunk may give any
/// number of pieces (each takes a credit of its own) or none (its credit is given back).
struct Outlet {
    tally: Tally,
    gunzip: Option<Gunzip>,
    /// The largest inflated piece.
    piece: usize,
}

impl Outlet {
    /// Whether every chunk read becomes exactly one message, paid by the credit its read took.
    /// Only then may reads run ahead holding credits: inflated pieces each need a credit of
    /// their own, and reads ahead holding the rest while the consumer waits for a batch of
    /// messages before giving any back would stall both.
    fn one_message_per_chunk(&self) -> bool {
        self.gunzip.is_none()
    }

    async fn emit(&mut self, p: &mut Producer, chunk: Bytes) -> Result<(), NifError> {
        self.tally.record(&chunk);
        let Some(gunzip) = self.gunzip.as_mut() else {
            p.send((atoms::data(), Blob(chunk)));
            return Ok(());
        };
        gunzip.push(&chunk);
        let mut sent = 0;
        while let Some(piece) = gunzip.pull(self.piece).map_err(not_gzip)? {
            if sent > 0 {
                p.reserve().await;
            }
            sent += 1;
            p.send((atoms::data(), Blob(piece)));
        }
        if sent == 0 {
            p.credit.add_permits(1);
        }
        Ok(())
    }

    fn finish(self) -> Result<(u64, u64, u64, Option<String>), NifError> {
        if let Some(gunzip) = &self.gunzip {
            gunzip.finish().map_err(not_gzip)?;
        }
        Ok(self.tally.summary())
    }
}

fn not_gzip(e: GzipError) -> NifError {
    NifError::new(
        Reason::Generic,
        format!("the object is not a valid gzip stream: {e}"),
    )
}

/// Inflated pieces are at most this large, whatever the chunk size: lines are cut from them.
const GUNZIP_PIECE: usize = 256 << 10;

/// Aborts the task when dropped, so a cancelled download stops its range requests too.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn download(
    p: &mut Producer,
    store: &StoreResource,
    path: &Path,
    opts: DownloadOpts,
) -> Result<(u64, u64, u64, Option<String>), NifError> {
    let mut out = Outlet {
        tally: Tally::new(opts.hash.as_deref())?,
        gunzip: opts.gunzip.then(Gunzip::new),
        piece: opts.chunk_size.clamp(1, GUNZIP_PIECE),
    };
    let range = opts.range.map(get_range).transpose()?;
    let chunk_size = opts.chunk_size.max(1);
    p.reserve().await;
    // A local file is read through one open handle, ahead of the consumer within its credit
    // (`local_file`): ranged reads would each open the file and fill a fresh buffer.
    if opts.concurrency > 1 && !store.local {
        let head = store
            .store
            .get_opts(
                path,
                GetOptions {
                    head: true,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| store.error(e))?;
        let meta = head.meta;
        // Without an ETag or version the parts could not be pinned to one object version.
        if meta.e_tag.is_some() || meta.version.is_some() {
            let span = match &range {
                Some(r) => r
                    .as_range(meta.size)
                    .map_err(|e| NifError::new(Reason::InvalidRange, e.to_string()))?,
                None => 0..meta.size,
            };
            p.send((atoms::start(), Meta(meta.clone()), span.end - span.start));
            parallel(
                p,
                store,
                path,
                &meta,
                span,
                chunk_size,
                opts.concurrency,
                &mut out,
            )
            .await?;
            return out.finish();
        }
    }
    let opts = GetOptions {
        range,
        ..Default::default()
    };
    let result = read::get(&store.store, path, opts)
        .await
        .map_err(|e| store.error(e))?;
    let span = result.range.clone();
    p.send((
        atoms::start(),
        Meta(result.meta.clone()),
        span.end - span.start,
    ));
    match result.payload {
        GetResultPayload::File(file, _) => {
            local_file(p, Arc::new(file), span, chunk_size, &mut out).await?;
        }
        GetResultPayload::Stream(body) => {
            let body = resumable(store, path, &result.meta, span.clone(), body);
            let mut chunks = Rechunker::new(body, chunk_size).with_total(span.end - span.start);
            let mut first = true;
            while let Some(chunk) = chunks.next_chunk().await {
                let chunk = chunk.map_err(|e| changed_or(store, path, e))?;
                if !first {
                    p.reserve().await;
                }
                first = false;
                out.emit(p, chunk).await?;
            }
        }
    }
    out.finish()
}

/// Reads a local file in `chunk_size` blocking reads: object_store's own stream reads 8 KiB at
/// a time, which caps a page-cached file at a few hundred MB/s. Reads run ahead of the consumer
/// as far as its credit allows, each holding one credit, so the bound is unchanged; with two in
/// flight the copy out of the page cache, most of a local download's cost, uses two cores.
/// Inflating, one read at a time (see [`Outlet::one_message_per_chunk`]).
async fn local_file(
    p: &mut Producer,
    file: Arc<std::fs::File>,
    span: std::ops::Range<u64>,
    chunk_size: usize,
    out: &mut Outlet,
) -> Result<(), NifError> {
    type Read = Result<std::io::Result<Bytes>, NifError>;
    let mut reads: VecDeque<AbortOnDrop<Read>> = VecDeque::new();
    let mut pos = span.start;
    let ahead = out.one_message_per_chunk();
    // The caller reserved the first read's credit.
    let mut held = 1;
    loop {
        while pos < span.end && (held > 0 || (ahead && p.try_reserve())) {
            held = 0;
            let len = chunk_size.min((span.end - pos) as usize);
            let (file, at) = (file.clone(), pos);
            reads.push_back(AbortOnDrop(runtime().spawn(local::blocking(
                move || -> std::io::Result<Bytes> {
                    let mut buf = pool::global().take(len);
                    file.read_exact_at(buf.as_mut_slice(), at)?;
                    Ok(buf.into_bytes(len))
                },
            ))));
            pos += len as u64;
        }
        let Some(front) = reads.front_mut() else {
            if pos == span.end {
                break;
            }
            p.reserve().await;
            held = 1;
            continue;
        };
        // A credit that comes back while the oldest read is still running starts the next one.
        let read = if pos < span.end && ahead {
            let credit = p.reserve();
            tokio::select! {
                biased;
                read = &mut front.0 => read,
                () = credit => {
                    held = 1;
                    continue;
                }
            }
        } else {
            (&mut front.0).await
        };
        reads.pop_front();
        let chunk = read
            .map_err(|e| NifError::new(Reason::Internal, e.to_string()))??
            .map_err(|e| NifError::new(Reason::Generic, format!("local read failed: {e}")))?;
        out.emit(p, chunk).await?;
    }
    Ok(())
}

/// `concurrency` ranged GETs in flight, each pinned to the object's ETag (or version), delivered
/// in order.
#[allow(clippy::too_many_arguments)]
async fn parallel(
    p: &mut Producer,
    store: &StoreResource,
    path: &Path,
    meta: &object_store::ObjectMeta,
    span: std::ops::Range<u64>,
    chunk_size: usize,
    concurrency: usize,
    out: &mut Outlet,
) -> Result<(), NifError> {
    let mut starts = (span.start..span.end).step_by(chunk_size);
    let mut window: VecDeque<AbortOnDrop<object_store::Result<Bytes>>> = VecDeque::new();
    let pin = Pin::of(meta);
    let mut first = true;
    loop {
        while window.len() < concurrency {
            let Some(start) = starts.next() else { break };
            let end = (start + chunk_size as u64).min(span.end);
            let (inner, path, pin) = (store.store.clone(), path.clone(), pin.clone());
            window.push_back(AbortOnDrop(runtime().spawn(async move {
                pinned_range(&inner, &path, &pin, start..end).await
            })));
        }
        let Some(mut next) = window.pop_front() else {
            break;
        };
        let chunk = (&mut next.0)
            .await
            .map_err(|e| NifError::new(Reason::Internal, e.to_string()))?
            .map_err(|e| changed_or(store, path, e))?;
        if !first {
            p.reserve().await;
        }
        first = false;
        out.emit(p, chunk).await?;
    }
    Ok(())
}

#[rustler::nif]
fn stream_download(
    env: Env,
    reference: Term,
    store: ResourceArc<StoreResource>,
    path: String,
    opts: DownloadOpts,
) -> ResourceArc<StreamResource> {
    let path = parse_path("path", &path);
    let credit = opts.prefetch;
    spawn_stream(env, reference, credit, None, move |p| {
        Box::pin(async move { download(p, &store, &path?, opts).await })
    })
}

// ------------------------------------------------------------------------------------------
// Many objects

/// The most results one `{:got, results}` message carries: those that completed while the
/// previous message was being sent, or while the first waited for company (`Pace`), so that
/// a burst of small objects costs the consumer one wake-up, not one each.
const MAX_GOT: usize = 64;

/// One object for a `get_many` or `put_many` producer: its index in the consumer's order, its
/// path and, to write, its payload (or why the payload was refused).
enum Job {
    Get(u64, String),
    Put(u64, String, Result<PutPayload, NifError>),
}

type JobSender = mpsc::UnboundedSender<Vec<Job>>;

/// What every object of one `get_many` or `put_many` is asked with.
enum Work {
    Get(GetOptions),
    Put(PutOptions),
}

/// One object's outcome: `{:ok, {data, meta}}` read, `{:ok, {etag, version}}` written, or
/// `{:error, error}`.
enum Outcome {
    Got(Result<(Blob, Meta), NifError>),
    Put(Result<(Option<String>, Option<String>), NifError>),
}

impl rustler::Encoder for Outcome {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let ok = atoms::ok();
        match self {
            Outcome::Got(Ok(value)) => (ok, value).encode(env),
            Outcome::Put(Ok(value)) => (ok, value).encode(env),
            Outcome::Got(Err(err)) | Outcome::Put(Err(err)) => {
                (atoms::error(), crate::error::term(err)).encode(env)
            }
        }
    }
}

/// Fetches the objects whose paths the consumer pushes (`stream_many_push/2`), `limit` at a
/// time, the others queued: the consumer bounds how many it has pushed and not yet taken. Sends
/// `{:got, [{index, outcome}]}` as objects complete; once the consumer has closed its side
/// (`stream_many_close/1`) and the last object is sent, replies with the number of objects.
#[rustler::nif]
fn stream_get_many(
    env: Env,
    reference: Term,
    store: ResourceArc<StoreResource>,
    opts: GetOpts,
    limit: usize,
    timeout_ms: Option<u64>,
) -> ResourceArc<StreamResource> {
    let work = get_options(opts).map(Work::Get);
    spawn_many(env, reference, store, work, limit, timeout_ms)
}

/// As `stream_get_many/6`, writing the payloads pushed with their paths.
#[rustler::nif]
fn stream_put_many(
    env: Env,
    reference: Term,
    store: ResourceArc<StoreResource>,
    opts: PutOpts,
    limit: usize,
    timeout_ms: Option<u64>,
) -> ResourceArc<StreamResource> {
    let work = put_options(opts, store.ascii_headers).map(Work::Put);
    spawn_many(env, reference, store, work, limit, timeout_ms)
}

fn spawn_many(
    env: Env,
    reference: Term,
    store: ResourceArc<StoreResource>,
    work: Result<Work, NifError>,
    limit: usize,
    timeout_ms: Option<u64>,
) -> ResourceArc<StreamResource> {
    let (jobs, incoming) = mpsc::unbounded_channel();
    spawn_stream(env, reference, 1, Some(jobs), move |p| {
        Box::pin(async move {
            let timeout = timeout_ms.map(Duration::from_millis);
            many(p, &store, &work?, limit, timeout, incoming).await
        })
    })
}

/// Hands `[{index, path}]` (reads) or `[{index, path, iovec}]` (writes) to a `get_many` or
/// `put_many` producer; `:done` if it has stopped or was closed. First frees the payloads
/// written since the previous call, whose results the consumer has taken.
#[rustler::nif]
fn stream_many_push<'a>(
    stream: ResourceArc<StreamResource>,
    jobs: Vec<Term<'a>>,
) -> NifResult<Atom> {
    stream.releases.release();
    let jobs = jobs
        .into_iter()
        .map(|j| job(j, &stream.releases))
        .collect::<NifResult<Vec<_>>>()?;
    let sender = stream.jobs.lock().unwrap_or_else(|e| e.into_inner());
    Ok(match sender.as_ref().map(|tx| tx.send(jobs)) {
        Some(Ok(())) => atoms::ok(),
        _ => atoms::done(),
    })
}

/// A job from `{index, path}` or `{index, path, iovec}`. The consumer validates paths and
/// data first; a payload refused here still gets its own outcome.
fn job(term: Term, releases: &Arc<Releases>) -> NifResult<Job> {
    if let Ok((index, path, iovec)) = term.decode::<(u64, String, Term)>() {
        let payload = payload::from_iovec(iovec, Some(releases))
            .map_err(|_| NifError::invalid_argument("data must be a binary or iodata"));
        return Ok(Job::Put(index, path, payload));
    }
    let (index, path) = term.decode::<(u64, String)>()?;
    Ok(Job::Get(index, path))
}

/// Tells a `get_many` or `put_many` producer that no more objects will come.
#[rustler::nif]
fn stream_many_close(stream: ResourceArc<StreamResource>) -> Atom {
    stream.releases.release();
    stream.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
    atoms::ok()
}

async fn many(
    p: &mut Producer,
    store: &StoreResource,
    work: &Work,
    limit: usize,
    timeout: Option<Duration>,
    mut incoming: mpsc::UnboundedReceiver<Vec<Job>>,
) -> Result<u64, NifError> {
    let limit = limit.max(1);
    let mut running = FuturesUnordered::new();
    // Objects pushed beyond `limit`: each starts as soon as one running finishes, without
    // waiting for the consumer to hear of it.
    let mut queued = VecDeque::new();
    let mut open = true;
    let mut done = 0u64;
    let mut pace = Pace::new();
    // Results finished and not yet sent, and until when they wait for more (see `Pace`): jobs
    // the consumer pushes meanwhile start at once.
    let mut got = Vec::new();
    let mut until: Option<tokio::time::Instant> = None;
    while open || !running.is_empty() || !got.is_empty() {
        // select! builds a disabled branch's future too, so this must not unwrap.
        let deadline = until.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            batch = incoming.recv(), if open => match batch {
                Some(batch) => {
                    queued.extend(batch);
                    start(&mut running, &mut queued, limit, |j| run_job(store, work, j, timeout));
                }
                None => open = false,
            },
            Some(result) = running.next(), if !running.is_empty() => {
                got.push(result);
                while got.len() < MAX_GOT {
                    match running.next().now_or_never() {
                        Some(Some(more)) => got.push(more),
                        _ => break,
                    }
                }
                let had_queued = !queued.is_empty();
                start(&mut running, &mut queued, limit, |j| run_job(store, work, j, timeout));
                // Once the queue has run dry, only the consumer's next push fills a free slot.
                let dry = had_queued && queued.is_empty();
                if got.len() >= MAX_GOT || running.is_empty() || dry {
                    until = None;
                } else if !queued.is_empty() {
                    // Nothing waits on these results: they wait for company.
                    if until.is_none() {
                        let hold = pace.hold_queued(running.len());
                        until = hold.map(|h| tokio::time::Instant::now() + h);
                    }
                } else {
                    // Nothing queued: the consumer's next push fills the slots that free up
                    // now, so it must hear soon, unless many small objects finish close
                    // together.
                    let soon = pace.hold(running.len()).map(|h| tokio::time::Instant::now() + h);
                    until = soon.map(|soon| until.map_or(soon, |u| u.min(soon)));
                }
                if until.is_none() {
                    done += send_got(p, &mut pace, &mut got);
                }
            }
            _ = tokio::time::sleep_until(deadline), if until.is_some() => {
                done += send_got(p, &mut pace, &mut got);
                until = None;
            }
        }
    }
    Ok(done)
}

/// Starts queued objects until `limit` run.
fn start<F: Future>(
    running: &mut FuturesUnordered<F>,
    queued: &mut VecDeque<Job>,
    limit: usize,
    run: impl Fn(Job) -> F,
) {
    while running.len() < limit {
        let Some(job) = queued.pop_front() else {
            break;
        };
        running.push(run(job));
    }
}

/// Sends `{:got, results}` with the results in hand; returns how many.
fn send_got(p: &mut Producer, pace: &mut Pace, got: &mut Vec<(u64, Outcome)>) -> u64 {
    pace.sent(Instant::now(), got.len());
    let count = got.len() as u64;
    p.send((atoms::got(), std::mem::take(got)));
    count
}

async fn run_job(
    store: &StoreResource,
    work: &Work,
    job: Job,
    timeout: Option<Duration>,
) -> (u64, Outcome) {
    match (job, work) {
        (Job::Get(index, path), Work::Get(options)) => {
            let got = limited(timeout, async {
                let path = parse_path("path", &path)?;
                crate::object::fetch(store, &path, options.clone()).await
            });
            (index, Outcome::Got(got.await))
        }
        (Job::Put(index, path, payload), Work::Put(options)) => {
            let put = limited(timeout, async {
                let path = parse_path("path", &path)?;
                crate::object::write(store, &path, payload?, options.clone()).await
            });
            (index, Outcome::Put(put.await))
        }
        (Job::Get(index, _) | Job::Put(index, _, _), _) => {
            let wrong = NifError::invalid_argument("this stream does not take such objects");
            (index, Outcome::Got(Err(wrong)))
        }
    }
}

/// `fut`'s result, or `:timeout` once `timeout` has passed.
async fn limited<T>(
    timeout: Option<Duration>,
    fut: impl Future<Output = Result<T, NifError>>,
) -> Result<T, NifError> {
    match timeout {
        None => fut.await,
        Some(limit) => tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| {
            Err(NifError::new(
                Reason::Timeout,
                format!("the object took longer than {} ms", limit.as_millis()),
            ))
        }),
    }
}

// ------------------------------------------------------------------------------------------
// Listings

#[rustler::nif]
fn stream_list(
    env: Env,
    reference: Term,
    store: ResourceArc<StoreResource>,
    prefix: Option<String>,
    offset: Option<String>,
    page_size: usize,
    prefetch: usize,
) -> ResourceArc<StreamResource> {
    let prefix = prefix
        .filter(|p| !p.is_empty())
        .map(|p| parse_path("prefix", &p))
        .transpose();
    spawn_stream(env, reference, prefetch, None, move |p| {
        Box::pin(async move { list(p, &store, prefix, offset, page_size.clamp(1, MAX_PAGE)).await })
    })
}

/// The largest page: `ready_chunks` reserves a whole page up front.
const MAX_PAGE: usize = 100_000;

/// One page of a listing, sent to the consumer as listed: the consumer builds the
/// `%ObjectStoreX.Meta{}` terms on its own heap (`stream_list_page/1`), a slice at a time.
/// Terms built here would reach it in hundreds of heap fragments per page, which this thread
/// allocates and the consumer's collections copy and free; that costs about twice the CPU per
/// object of building them in the consumer.
pub struct ListPage(Mutex<std::vec::IntoIter<ObjectMeta>>);

#[rustler::resource_impl]
impl Resource for ListPage {}

impl ListPage {
    fn new(metas: Vec<ObjectMeta>) -> Self {
        ListPage(Mutex::new(metas.into_iter()))
    }
}

/// Objects built per `stream_list_page/1` call: tens of microseconds on a scheduler, and
/// what the consumer's next collection copies if it comes mid-slice. A whole page of 1,000 at
/// a time costs a fifth more per object, its larger collections moving to a dirty scheduler.
const SLICE: usize = 250;

/// The next objects of a page, `[]` once it is exhausted.
#[rustler::nif]
fn stream_list_page(env: Env, page: ResourceArc<ListPage>) -> Term {
    let slice: Vec<ObjectMeta> = {
        let mut metas = page.0.lock().unwrap_or_else(|e| e.into_inner());
        metas.by_ref().take(SLICE).collect()
    };
    crate::meta::list(env, &slice)
}

/// Sends pages of `{:data, page}` (`ListPage`); replies with the number of objects listed.
async fn list(
    p: &mut Producer,
    store: &StoreResource,
    prefix: Result<Option<Path>, NifError>,
    offset: Option<String>,
    page_size: usize,
) -> Result<u64, NifError> {
    let prefix = prefix?;
    let listing = store.listing(prefix.as_ref(), offset);
    let mut pages = listing.ready_chunks(page_size);
    let mut count = 0u64;
    loop {
        p.reserve().await;
        let Some(page) = pages.next().await else {
            break;
        };
        let metas = page
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| store.error(e))?;
        count += metas.len() as u64;
        p.send((atoms::data(), ResourceArc::new(ListPage::new(metas))));
    }
    Ok(count)
}

/// For the test suite: a producer that panics with `message` once it holds its first credit,
/// so that the suite can prove a panic reaches the consumer as `:internal` with its message.
#[rustler::nif]
fn stream_test_panic(env: Env, reference: Term, message: String) -> ResourceArc<StreamResource> {
    spawn_stream(env, reference, 1, None, move |p| {
        Box::pin(async move {
            p.reserve().await;
            if !message.is_empty() {
                panic!("{message}");
            }
            Ok(0u64)
        })
    })
}
