//! Serves the local stores of `ObjectStoreX.Store`, kept from harming the rest of the VM:
//!
//! - Their blocking file I/O runs on a thread pool of its own, a thread per core ([`threads`]),
//!   so a hung mount or a stalled disk can pin only those threads, never the pool that network
//!   clients (DNS lookups) and the memory store use.
//! - A path that is not a regular file (a FIFO, a device) is never opened: opening a FIFO
//!   blocks until a writer comes.
//! - Every operation has a deadline ([`DEADLINE`]) that frees its caller with `:timeout`; a
//!   thread stuck in the kernel stays stuck, but nothing waits on it.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};
use tokio::runtime::Runtime;

use objectstorex_core::walk::{etag, level, Walk};

use crate::error::{NifError, Reason};

/// How long one local file operation (an open, a block read or write, a rename) may take.
pub const DEADLINE: Duration = Duration::from_secs(60);

static FS: OnceLock<Runtime> = OnceLock::new();

/// Threads of the local pool: one per core (at least 2), or `OBJECTSTOREX_LOCAL_THREADS`
/// (1 to 1024), read once. Reads and writes of cached files are copies that keep a core busy
/// each: more threads than cores only queue behind one another and behind the VM's schedulers.
/// With 4 per core, 4 local downloads in one VM on 2 cores had 4-10 long schedules in each of
/// 4 runs and a `GenServer.call` p99 of 2.6-4.6 ms; with 1 per core none, 0.2 ms, and 14.4-16.0
/// GB/s instead of 12.7-15.5 (`bench/vm_health.exs local:DIR 4 downloads 1000`). A slow
/// network mount, where a read waits rather than copies, may want more.
pub(crate) fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| {
        let cores = crate::runtime::cores();
        crate::runtime::setting("OBJECTSTOREX_LOCAL_THREADS", 1..=1024, cores.max(2))
    })
}

fn fs() -> &'static Runtime {
    FS.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(threads())
            .thread_name("objectstorex-fs")
            .on_thread_start(crate::runtime::lower_priority)
            .enable_all()
            .build()
            .expect("the local file runtime starts")
    })
}

fn timed_out() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "a local file operation did not finish within {} s (a hung mount or disk?)",
            DEADLINE.as_secs()
        ),
    )
}

/// Runs blocking file I/O on the local pool, within the deadline.
pub async fn blocking<T, F>(f: F) -> Result<T, NifError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match tokio::time::timeout(DEADLINE, fs().spawn_blocking(f)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(join)) => Err(NifError::new(Reason::Internal, join.to_string())),
        Err(_) => Err(NifError::new(Reason::Timeout, timed_out().to_string())),
    }
}

/// Runs blocking file I/O on the local pool without waiting for it (cleanup in a `Drop`).
pub fn detach<F: FnOnce() + Send + 'static>(f: F) {
    drop(fs().spawn_blocking(f));
}

/// Opens a file for reading, only if it is a regular one (opening a FIFO would block).
pub fn open_regular(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    std::fs::File::open(path)
}

/// Reads up to `len` bytes at `pos` into a buffer allocated fallibly; shorter only at the end
/// of the file. Blocking: run it through [`blocking`].
pub fn read_at(file: &std::fs::File, pos: u64, len: usize) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = Vec::new();
    buf.try_reserve_exact(len)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))?;
    buf.resize(len, 0);
    let mut filled = 0;
    while filled < len {
        let n = file.read_at(&mut buf[filled..], pos + filled as u64)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf.into())
}

/// Runs `fut` (an operation of `LocalFileSystem`, whose blocking calls go to the runtime that
/// polls it) on the local runtime, within the deadline.
async fn on_fs<T, F>(fut: F) -> object_store::Result<T>
where
    F: Future<Output = object_store::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    match tokio::time::timeout(DEADLINE, fs().spawn(fut)).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(generic(join.to_string().into())),
        Err(_) => Err(generic(Box::new(timed_out()))),
    }
}

/// Moves a stream's polling onto the local runtime; an item that does not come within the
/// deadline ends it with an error.
fn pump<T: Send + 'static>(
    inner: BoxStream<'static, object_store::Result<T>>,
) -> BoxStream<'static, object_store::Result<T>> {
    // Items cross in batches of what is ready: one channel hop and one deadline timer per
    // batch rather than per item. At most `PUMP_BATCHES` batches of `PUMP_BATCH` items wait.
    let (tx, rx) = tokio::sync::mpsc::channel(PUMP_BATCHES);
    fs().spawn(async move {
        let mut batches = inner.ready_chunks(PUMP_BATCH);
        while let Some(batch) = batches.next().await {
            // The receiver is gone: nobody wants the rest.
            if tx.send(batch).await.is_err() {
                break;
            }
        }
    });
    futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match tokio::time::timeout(DEADLINE, rx.recv()).await {
            Ok(Some(batch)) => Some((batch, Some(rx))),
            Ok(None) => None,
            Err(_) => Some((vec![Err(generic(Box::new(timed_out())))], None)),
        }
    })
    .flat_map(futures::stream::iter)
    .boxed()
}

/// Items per batch a local stream hands over, and batches waiting at most (see `pump`).
const PUMP_BATCH: usize = 256;
const PUMP_BATCHES: usize = 2;

#[derive(Debug)]
pub struct LocalStore {
    inner: Arc<LocalFileSystem>,
    /// The directory `inner` stores under, as it resolved it (canonical).
    root: std::path::PathBuf,
}

impl LocalStore {
    /// A store of the files under `root`. Blocking: it resolves `root` (run it through
    /// [`blocking`]).
    pub fn new(root: &str) -> object_store::Result<Self> {
        let inner = LocalFileSystem::new_with_prefix(root)?;
        let root = std::fs::canonicalize(root).map_err(|e| generic(Box::new(e)))?;
        Ok(LocalStore {
            inner: Arc::new(inner),
            root,
        })
    }

    /// The directory of the store's location `prefix`.
    fn dir(&self, prefix: Option<&Path>) -> std::path::PathBuf {
        match prefix {
            Some(prefix) => self.root.join(prefix.as_ref()),
            None => self.root.clone(),
        }
    }

    /// The objects under `prefix` after `offset`, as `LocalFileSystem` lists them, walked on
    /// the local pool a batch at a time.
    fn walk(
        &self,
        prefix: Option<&Path>,
        offset: Option<&Path>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let walk = Walk::new(self.dir(prefix), prefix, offset.cloned());
        let batches = futures::stream::unfold(Some(walk), |walk| async move {
            let mut walk = walk?;
            let batch = blocking(move || {
                let batch = walk.batch(PUMP_BATCH);
                (walk, batch)
            });
            match batch.await {
                Ok((_, batch)) if batch.is_empty() => None,
                Ok((walk, batch)) => Some((batch, Some(walk))),
                Err(e) => Some((vec![Err(generic(Box::new(e)))], None)),
            }
        });
        pump(batches.flat_map(futures::stream::iter).boxed())
    }

    /// Refuses a location that exists and is not a regular file, before anything opens it.
    async fn regular(&self, location: &Path) -> object_store::Result<()> {
        let path = self.inner.path_to_filesystem(location)?;
        let checked = path.clone();
        let meta = blocking(move || std::fs::metadata(&checked))
            .await
            .map_err(|e| generic(Box::new(e)))?;
        match meta {
            Ok(meta) if !meta.is_file() && !meta.is_dir() => Err(generic(
                format!("{} is not a regular file", path.display()).into(),
            )),
            // Missing files and directories: the store says what it says of them.
            _ => Ok(()),
        }
    }

    /// Writes `payload` where no listing sees it (see [`write_staged`]), checks its size and
    /// puts it in place, all in one blocking call: the object appears complete or not at all,
    /// and nothing is left on failure (a drop of the caller does not interrupt the call).
    async fn put_whole(
        &self,
        location: &Path,
        payload: PutPayload,
    ) -> object_store::Result<PutResult> {
        let target = self.inner.path_to_filesystem(location)?;
        let shown = location.to_string();
        blocking(move || write_staged(&target, &payload))
            .await
            .map_err(|e| generic(Box::new(e)))?
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => object_store::Error::NotFound {
                    path: shown,
                    source: Box::new(source),
                },
                _ => generic(Box::new(source)),
            })
    }
}

/// An error of this store that object_store has no kind for.
fn generic(source: Box<dyn std::error::Error + Send + Sync>) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source,
    }
}

/// The staging file of `LocalFileSystem`'s own puts, `<target>#<n>`, created exclusively (its
/// listings skip such names, so one left by a crash never shows as an object).
fn create_staged(target: &std::path::Path) -> std::io::Result<(std::fs::File, std::path::PathBuf)> {
    claim_staged(target, |staged| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(staged)
    })
}

/// Claims the first free staging name of `target` with `claim`, which fails with
/// `AlreadyExists` on a name in use; the target's missing directories are created on the way.
fn claim_staged<T>(
    target: &std::path::Path,
    mut claim: impl FnMut(&std::path::Path) -> std::io::Result<T>,
) -> std::io::Result<(T, std::path::PathBuf)> {
    let (mut n, mut made_dirs) = (1u32, false);
    loop {
        let staged = staged_name(target, n);
        match claim(&staged) {
            Ok(claimed) => return Ok((claimed, staged)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            // Created once: a second NotFound means something removes them meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !made_dirs => {
                std::fs::create_dir_all(target.parent().ok_or(e)?)?;
                made_dirs = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `<target>#<n>`.
fn staged_name(target: &std::path::Path, n: u32) -> std::path::PathBuf {
    let mut name = target.as_os_str().to_owned();
    name.push(format!("#{n}"));
    name.into()
}

/// Blocking: see [`LocalStore::put_whole`]. On Linux the data goes into an unnamed file (see
/// `unnamed`), elsewhere into a staging file renamed into place. The ETag is the one
/// `LocalFileSystem` gives the same file (inode, modification time in microseconds and size,
/// in hex), so a later HEAD agrees with it.
fn write_staged(target: &std::path::Path, payload: &PutPayload) -> std::io::Result<PutResult> {
    #[cfg(target_os = "linux")]
    if let Some(meta) = unnamed::write(target, payload)? {
        return Ok(put_result(&meta));
    }
    let (mut file, staged) = create_staged(target)?;
    let written = write_all(&mut file, payload).and_then(|meta| {
        drop(file);
        std::fs::rename(&staged, target)?;
        Ok(meta)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    written.map(|meta| put_result(&meta))
}

/// Writes `payload` into `file` and checks that the file holds all of it.
fn write_all(file: &mut std::fs::File, payload: &PutPayload) -> std::io::Result<std::fs::Metadata> {
    use std::io::Write;
    for chunk in payload.iter() {
        file.write_all(chunk)?;
    }
    let meta = file.metadata()?;
    let expected = payload.content_length() as u64;
    if meta.len() != expected {
        return Err(std::io::Error::other(format!(
            "the file written holds {} bytes, expected {expected}",
            meta.len()
        )));
    }
    Ok(meta)
}

fn put_result(meta: &std::fs::Metadata) -> PutResult {
    PutResult {
        e_tag: Some(etag(meta)),
        version: None,
        extensions: Default::default(),
    }
}

/// Linux: the data goes into an unnamed file in the target's directory (`O_TMPFILE`), linked
/// under the target's name once complete. A new object then changes its directory once (the
/// link) rather than twice (a create and a rename), and the writers into one directory queue
/// on its lock half as often: a third less system time copying 5,000 small objects into one
/// directory. A crash leaves nothing behind. A target that exists cannot be replaced by a
/// link: the file is linked under a staging name and renamed over it, two changes as before.
#[cfg(target_os = "linux")]
mod unnamed {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    use std::path::Path;

    use object_store::PutPayload;

    /// The file's metadata once it is in place, or `None` when this filesystem (or a missing
    /// `/proc`) does not allow it, before anything is visible: the caller then stages by name.
    pub(super) fn write(
        target: &Path,
        payload: &PutPayload,
    ) -> std::io::Result<Option<std::fs::Metadata>> {
        let Some(dir) = target.parent() else {
            return Ok(None);
        };
        let Some(mut file) = open(dir)? else {
            return Ok(None);
        };
        let meta = super::write_all(&mut file, payload)?;
        // The unnamed file is reached through /proc, as linkat(2) with AT_EMPTY_PATH would
        // need CAP_DAC_READ_SEARCH.
        let fd = c_path(format!("/proc/self/fd/{}", file.as_raw_fd()).as_ref())?;
        match link(&fd, target) {
            Ok(()) => Ok(Some(meta)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                replace(&fd, target)?;
                Ok(Some(meta))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !dir.exists() => Err(e),
            // No /proc, or a link refused where a rename would not be.
            Err(_) => Ok(None),
        }
    }

    /// The unnamed file in `dir`, creating missing directories once; `None` where the
    /// filesystem has no `O_TMPFILE` (older kernels say EISDIR).
    fn open(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
        let attempt = || {
            std::fs::OpenOptions::new()
                .write(true)
                .mode(0o666)
                .custom_flags(libc::O_TMPFILE)
                .open(dir)
        };
        let opened = match attempt() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                attempt()
            }
            other => other,
        };
        match opened {
            Ok(file) => Ok(Some(file)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Links the file under `<target>#<n>` (the staging names listings skip) and renames that
    /// over `target`.
    fn replace(fd: &CString, target: &Path) -> std::io::Result<()> {
        let ((), staged) = super::claim_staged(target, |staged| link(fd, staged))?;
        std::fs::rename(&staged, target).inspect_err(|_| {
            let _ = std::fs::remove_file(&staged);
        })
    }

    fn link(fd: &CString, to: &Path) -> std::io::Result<()> {
        let to = c_path(to)?;
        // SAFETY: both are NUL-terminated paths that outlive the call.
        let done = unsafe {
            libc::linkat(
                libc::AT_FDCWD,
                fd.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::AT_SYMLINK_FOLLOW,
            )
        };
        if done == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    fn c_path(path: &Path) -> std::io::Result<CString> {
        CString::new(path.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::other("a path with a NUL byte"))
    }
}

impl fmt::Display for LocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        // The common put (overwrite, no attributes) in one trip to the local pool; the others
        // go through `LocalFileSystem`, which runs its blocking part from the local runtime: two.
        if matches!(opts.mode, PutMode::Overwrite) && opts.attributes.is_empty() {
            return self.put_whole(location, payload).await;
        }
        let (inner, location) = (self.inner.clone(), location.clone());
        on_fs(async move { inner.put_opts(&location, payload, opts).await }).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let (inner, location) = (self.inner.clone(), location.clone());
        let upload = on_fs(async move { inner.put_multipart_opts(&location, opts).await }).await?;
        Ok(Box::new(LocalUpload(Arc::new(tokio::sync::Mutex::new(
            upload,
        )))))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.regular(location).await?;
        let (inner, location) = (self.inner.clone(), location.clone());
        on_fs(async move { inner.get_opts(&location, options).await }).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        pump(self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.walk(prefix, None)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.walk(prefix, Some(offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let (dir, prefix) = (self.dir(prefix), prefix.cloned());
        blocking(move || level(&dir, prefix.as_ref()))
            .await
            .map_err(|e| generic(Box::new(e)))?
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let (inner, from, to) = (self.inner.clone(), from.clone(), to.clone());
        on_fs(async move { inner.copy_opts(&from, &to, options).await }).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let (inner, from, to) = (self.inner.clone(), from.clone(), to.clone());
        on_fs(async move { inner.rename_opts(&from, &to, options).await }).await
    }
}

/// A local multipart upload whose part writes, completion and abort run on the local pool.
#[derive(Debug)]
struct LocalUpload(Arc<tokio::sync::Mutex<Box<dyn MultipartUpload>>>);

#[async_trait]
impl MultipartUpload for LocalUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        // Parts are cut one after another by the caller, never during a completion or abort.
        match self.0.try_lock() {
            Ok(mut inner) => {
                let part = inner.put_part(data);
                Box::pin(on_fs(part))
            }
            Err(_) => Box::pin(async {
                Err(generic(
                    "a part was written while the upload was completing".into(),
                ))
            }),
        }
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let inner = self.0.clone();
        on_fs(async move { inner.lock().await.complete().await }).await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        let inner = self.0.clone();
        on_fs(async move { inner.lock().await.abort().await }).await
    }
}
