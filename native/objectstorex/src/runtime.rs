//! Serves `ObjectStoreX.Native`'s task plumbing: the Tokio runtime, `{ref, result}` replies and
//! cancellation of in-flight work when the caller asks or dies.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures::FutureExt;
use rustler::env::SavedTerm;
use rustler::{Encoder, Env, LocalPid, Monitor, OwnedEnv, Resource, ResourceArc, Term};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use crate::error::{self, NifError, Reason};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Live counts of native work, for tests that prove cancelled work really stops.
pub static LIVE_TASKS: AtomicUsize = AtomicUsize::new(0);
pub static LIVE_STREAMS: AtomicUsize = AtomicUsize::new(0);
pub static LIVE_UPLOADS: AtomicUsize = AtomicUsize::new(0);

/// Counts itself in `counter` for as long as it lives.
pub struct Live(&'static AtomicUsize);

impl Live {
    pub fn new(counter: &'static AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Live(counter)
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

mod atoms {
    rustler::atoms! { ok, error, progress }
}

/// Starts the runtime once per loaded library; later loads (upgrades) reuse it.
pub fn start() -> std::io::Result<()> {
    if RUNTIME.get().is_some() {
        return Ok(());
    }
    tune_malloc();
    // Every setting is read now, so that the load reports the ones it refuses.
    io_nice();
    crate::local::threads();
    let cores = cores();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // Blocking file reads and writes: a few per core keep a disk busy, while Tokio's default
        // of 512 threads would, under many concurrent local streams, add up to more CPU weight
        // than the VM's schedulers, nice 10 or not (see `lower_priority`).
        .max_blocking_threads(4 * cores)
        .thread_name("objectstorex-io")
        .on_thread_start(lower_priority)
        .build()?;
    let _ = RUNTIME.set(rt);
    Ok(())
}

/// The cores this process may use (its CPU affinity and cgroup quota), 2 if unknown; read once,
/// as the standard library reads files of /proc and /sys for it at every call.
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// The environment variable `name`, `None` if unset. A value that is not valid UTF-8 comes
/// back with U+FFFD in place of the invalid bytes: no setting accepts it, so it is refused and
/// logged, never taken for unset.
fn variable(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// Tokio's threads (workers and the blocking pool) run at nice 10, so when the machine is
/// short of CPU the kernel runs the BEAM's schedulers first: heavy I/O through this library
/// slows itself down rather than the VM. Raising niceness needs no privileges.
/// `OBJECTSTOREX_IO_NICE` (0 to 19) sets another value, read once.
pub(crate) fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let nice = io_nice();
        if nice > 0 {
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, nice);
            }
        }
    }
}

const DEFAULT_IO_NICE: i32 = 10;

fn io_nice() -> i32 {
    static NICE: OnceLock<i32> = OnceLock::new();
    *NICE.get_or_init(|| setting("OBJECTSTOREX_IO_NICE", 0..=19, DEFAULT_IO_NICE))
}

/// Why settings read at load were refused, one line each, until the load logs them.
static REFUSED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn refuse(why: String) {
    REFUSED.lock().unwrap_or_else(|e| e.into_inner()).push(why);
}

/// A number the environment variable `name` sets, read at load: a value outside `range`, or not
/// a number, keeps `default` rather than failing the load, and is logged (`native_refused/0`).
/// An empty value is no value.
pub(crate) fn setting<T>(name: &str, range: std::ops::RangeInclusive<T>, default: T) -> T
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
{
    let value = variable(name).unwrap_or_default();
    let value = value.trim();
    if value.is_empty() {
        return default;
    }
    match value.parse() {
        Ok(n) if range.contains(&n) => n,
        _ => {
            refuse(format!(
                "{name} must be a whole number from {} to {}, got {value:?}: {default} is used",
                range.start(),
                range.end()
            ));
            default
        }
    }
}

/// glibc's mmap threshold as this library sets it at load: large enough for a 1 MiB object's
/// body, a 2 MiB download chunk and hyper's read buffers, small enough that the memory malloc
/// keeps for reuse stays a few MiB per thread.
const DEFAULT_MMAP_THRESHOLD: usize = 4 << 20;

/// The most `OBJECTSTOREX_MALLOC_MMAP_THRESHOLD` may ask for: glibc's own ceiling on 64-bit.
const MAX_MMAP_THRESHOLD: usize = 32 << 20;

/// What became of `OBJECTSTOREX_MALLOC_MMAP_THRESHOLD` at load: the threshold set, or `None`
/// when malloc was left as the VM set it.
static MALLOC: OnceLock<Option<usize>> = OnceLock::new();

/// The VM sets glibc's trim threshold and top pad when it starts (`+MYtt`, `+MYtp`), and glibc
/// then no longer adapts its mmap and trim thresholds as it does in a plain process: every
/// allocation of 128 KiB or more (a response body, hyper's read buffers) becomes an `mmap`, a
/// page fault per 4 KiB touched and a `munmap` on free, and freed memory at the top of a heap
/// is handed back at once, to be faulted in again. For 1 MiB GETs that doubled the client's CPU
/// per byte. This sets what glibc would have adapted to: the mmap threshold, and the trim
/// threshold at twice it. Process-wide; `OBJECTSTOREX_MALLOC_MMAP_THRESHOLD` (bytes, 0 to
/// leave malloc alone) sets another value, read once.
fn tune_malloc() {
    MALLOC.get_or_init(|| {
        let value = variable("OBJECTSTOREX_MALLOC_MMAP_THRESHOLD");
        parse_mmap_threshold(value.as_deref()).filter(|&t| t > 0 && set_mmap_threshold(t))
    });
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_mmap_threshold(bytes: usize) -> bool {
    let (Ok(mmap), Ok(trim)) = (
        libc::c_int::try_from(bytes),
        libc::c_int::try_from(2 * bytes),
    ) else {
        return false;
    };
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, trim) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_mmap_threshold(_bytes: usize) -> bool {
    false
}

/// The threshold to set (`Some(0)`: none). A value that is not a byte count is refused (and
/// logged) and sets nothing, so that a typo never changes malloc behind the user's back.
fn parse_mmap_threshold(value: Option<&str>) -> Option<usize> {
    match value.map(str::trim) {
        None | Some("") => Some(DEFAULT_MMAP_THRESHOLD),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n <= MAX_MMAP_THRESHOLD => Some(n),
            _ => {
                refuse(format!(
                    "OBJECTSTOREX_MALLOC_MMAP_THRESHOLD must be a number of bytes from 0 to \
                     {MAX_MMAP_THRESHOLD}, got {v:?}: malloc is left as the VM set it"
                ));
                None
            }
        },
    }
}

/// The size from which glibc maps each block afresh (and unmaps it when freed): the threshold
/// set at load, or glibc's default, which the VM's settings keep it at.
pub fn mapped_from() -> usize {
    MALLOC.get().copied().flatten().unwrap_or(128 << 10)
}

/// Why settings read at load were refused, each once: the load logs them.
#[rustler::nif]
fn native_refused() -> Vec<String> {
    std::mem::take(&mut *REFUSED.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The mmap threshold this library set at load, or `nil` if it left malloc alone.
#[rustler::nif]
fn native_malloc() -> Option<usize> {
    MALLOC.get().copied().flatten()
}

pub fn runtime() -> &'static Runtime {
    RUNTIME
        .get()
        .expect("runtime is started in the NIF load callback")
}

/// Sends `{ref, message}` messages to one process: any number of intermediate ones, then exactly
/// one terminal message. If it is dropped before the terminal message (task aborted, cancelled,
/// runtime gone), `Drop` sends `{ref, {:error, cancelled}}`, so a caller waiting for the end
/// never hangs and knows when nothing more will arrive.
pub struct Emitter {
    pid: LocalPid,
    /// Holds the saved reference; never cleared.
    keep: OwnedEnv,
    reference: Option<SavedTerm>,
    /// Reused for every message and cleared after each send.
    msg: OwnedEnv,
}

impl Emitter {
    pub fn new(env: Env, reference: Term) -> Self {
        let keep = OwnedEnv::new();
        let saved = keep.save(reference);
        Emitter {
            pid: env.pid(),
            keep,
            reference: Some(saved),
            msg: OwnedEnv::new(),
        }
    }

    /// Sends `{ref, message}`; returns false once the terminal message has gone out.
    pub fn send<T: Encoder>(&mut self, message: T) -> bool {
        let Some(reference) = self.reference.as_ref() else {
            return false;
        };
        let (pid, msg) = (&self.pid, &mut self.msg);
        self.keep.run(|keep| {
            let reference = reference.load(keep);
            // The caller may have exited; a failed send is not an error for us.
            let _ = msg.send_and_clear(pid, |env| (reference.in_env(env), message).encode(env));
        });
        true
    }

    /// Sends the terminal `{ref, {:ok, value}}` or `{ref, {:error, error}}`.
    pub fn finish<T: Encoder>(mut self, result: Result<T, NifError>) {
        self.send_terminal(result.map(|value| (atoms::ok(), value)));
    }

    /// Sends the terminal `{ref, {tag, value}}` or `{ref, {:error, error}}`.
    pub fn finish_tagged<T: Encoder>(mut self, tag: rustler::Atom, result: Result<T, NifError>) {
        self.send_terminal(result.map(|value| (tag, value)));
    }

    fn send_terminal<T: Encoder>(&mut self, result: Result<T, NifError>) {
        match result {
            Ok(tagged) => self.send(tagged),
            Err(err) => self.send((atoms::error(), error::term(&err))),
        };
        self.reference = None;
    }
}

impl Drop for Emitter {
    fn drop(&mut self) {
        if self.reference.is_none() {
            return;
        }
        let err: Result<(), NifError> = Err(NifError::new(
            Reason::Cancelled,
            "the operation was cancelled before it completed",
        ));
        if rustler::thread::is_scheduler_thread() {
            // OwnedEnv cannot send from a scheduler thread: hand the message to Tokio.
            let moved = Emitter {
                pid: self.pid,
                keep: std::mem::replace(&mut self.keep, OwnedEnv::new()),
                reference: self.reference.take(),
                msg: OwnedEnv::new(),
            };
            runtime().spawn(async move { moved.finish(err) });
        } else {
            self.send_terminal(err);
        }
    }
}

/// The Tokio task a resource may cancel, shared by every resource that owns running work.
pub struct CancelSlot(Mutex<Option<AbortHandle>>);

impl CancelSlot {
    pub fn new(handle: Option<AbortHandle>) -> Self {
        CancelSlot(Mutex::new(handle))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<AbortHandle>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self) -> Option<AbortHandle> {
        self.slot().clone()
    }

    pub fn set(&self, handle: Option<AbortHandle>) {
        *self.slot() = handle;
    }

    /// Aborts the task, once. Returns whether it was still running: only then may a message
    /// of its own still be on its way.
    pub fn cancel(&self) -> bool {
        match self.slot().take() {
            Some(handle) => {
                let running = !handle.is_finished();
                handle.abort();
                running
            }
            None => false,
        }
    }
}

/// A running operation. Dropping the Elixir handle does not cancel it; `cancel/1` or the death
/// of the process that started it does.
pub struct TaskHandle {
    pub task: CancelSlot,
}

#[rustler::resource_impl]
impl Resource for TaskHandle {
    const IMPLEMENTS_DOWN: bool = true;

    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        self.task.cancel();
    }
}

/// Runs `fut` on Tokio and replies `{reference, {:ok, value} | {:error, error}}` to the calling
/// process. A panic in `fut` becomes an `:internal` error reply.
pub fn spawn<T, F>(env: Env, reference: Term, fut: F) -> ResourceArc<TaskHandle>
where
    T: Encoder + Send + 'static,
    F: Future<Output = Result<T, NifError>> + Send + 'static,
{
    spawn_reporting(env, reference, None, fut)
}

/// Bytes moved so far by a running operation, and its total once known.
pub struct ByteCounter {
    done: AtomicU64,
    total: AtomicU64,
}

impl ByteCounter {
    const UNKNOWN: u64 = u64::MAX;

    pub fn new() -> Arc<Self> {
        Arc::new(ByteCounter {
            done: AtomicU64::new(0),
            total: AtomicU64::new(Self::UNKNOWN),
        })
    }

    pub fn add(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn set_total(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
    }

    fn snapshot(&self) -> (u64, Option<u64>) {
        let total = self.total.load(Ordering::Relaxed);
        let total = (total != Self::UNKNOWN).then_some(total);
        (self.done.load(Ordering::Relaxed), total)
    }
}

/// Like `spawn`; with `progress`, also sends `{reference, {:progress, done, total | nil}}` while
/// `fut` runs, at most every 100 ms and only when bytes have moved.
pub fn spawn_reporting<T, F>(
    env: Env,
    reference: Term,
    progress: Option<Arc<ByteCounter>>,
    fut: F,
) -> ResourceArc<TaskHandle>
where
    T: Encoder + Send + 'static,
    F: Future<Output = Result<T, NifError>> + Send + 'static,
{
    let mut emitter = Emitter::new(env, reference);
    let live = Live::new(&LIVE_TASKS);
    let join = runtime().spawn(async move {
        let fut = AssertUnwindSafe(fut).catch_unwind();
        let outcome = match progress {
            Some(progress) => report_while(fut, &progress, &mut emitter).await,
            None => fut.await,
        };
        let result = match outcome {
            Ok(result) => result,
            Err(panic) => Err(NifError::from_panic(panic)),
        };
        // Uncounted before the caller can see the reply.
        drop(live);
        emitter.finish(result);
    });
    let handle = ResourceArc::new(TaskHandle {
        task: CancelSlot::new(Some(join.abort_handle())),
    });
    env.monitor(&handle, &env.pid());
    handle
}

async fn report_while<O>(
    fut: impl Future<Output = O>,
    progress: &ByteCounter,
    emitter: &mut Emitter,
) -> O {
    let mut fut = std::pin::pin!(fut);
    let mut ticks = tokio::time::interval(Duration::from_millis(100));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = 0;
    loop {
        tokio::select! {
            out = &mut fut => return out,
            _ = ticks.tick() => {
                let (done, total) = progress.snapshot();
                if done != reported {
                    reported = done;
                    emitter.send((atoms::progress(), done, total));
                }
            }
        }
    }
}

/// `{live_tasks, live_streams, live_uploads}`
#[rustler::nif]
fn native_stats() -> (usize, usize, usize) {
    (
        LIVE_TASKS.load(Ordering::SeqCst),
        LIVE_STREAMS.load(Ordering::SeqCst),
        LIVE_UPLOADS.load(Ordering::SeqCst),
    )
}

#[rustler::nif]
fn task_cancel(handle: ResourceArc<TaskHandle>) -> rustler::Atom {
    handle.task.cancel();
    atoms::ok()
}
