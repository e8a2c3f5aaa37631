//! Serves `ObjectStoreX.download_file/4`: an object into a local file, through a temporary file
//! beside it that is renamed into place only once it holds every byte (and, with `:hash`, once
//! its digest is computed).

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use rustler::{Env, NifMap, ResourceArc, Term};

use crate::args::parse_path;
use crate::error::{NifError, Reason};
use crate::local;
use crate::meta::Meta;
use crate::read::{self, Pin};
use crate::runtime::{self, ByteCounter, TaskHandle};
use crate::store::StoreResource;
use objectstorex_core::hash::Hasher;

/// `ObjectStoreX.download_file/4`'s options.
#[derive(NifMap)]
pub struct DownloadFileOpts {
    chunk_size: usize,
    concurrency: usize,
    /// Report `{:progress, ...}` messages while downloading.
    progress: bool,
    /// The digest to compute of the bytes written (`"sha256"`, ...), if any.
    hash: Option<String>,
}

/// Removes the temporary file unless the download was renamed into place, whichever way the
/// task ends: an error, a timeout that cancels it, or the caller's death.
struct TempFile {
    path: std::path::PathBuf,
    keep: bool,
}

impl TempFile {
    async fn discard(&mut self) {
        let path = std::mem::take(&mut self.path);
        self.keep = true;
        let _ = local::blocking(move || std::fs::remove_file(path)).await;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            // On the local pool: a drop may run on any thread, and nothing else may remove it.
            let path = std::mem::take(&mut self.path);
            local::detach(move || {
                let _ = std::fs::remove_file(path);
            });
        }
    }
}

/// Downloads an object into `local_path`: `concurrency` ranged GETs pinned to the object's
/// ETag (or version), each answer checked against it, write at their offsets into a temporary
/// file beside the target, whose size is checked before it is renamed into place. An object
/// with neither ETag nor version is read with one GET. On any failure the temporary file is
/// removed. Answers `{meta, bytes, duration_us, digest | nil}`.
#[rustler::nif]
fn object_download_file(
    env: Env,
    reference: Term,
    store: ResourceArc<StoreResource>,
    path: String,
    local_path: String,
    opts: DownloadFileOpts,
) -> ResourceArc<TaskHandle> {
    let path = parse_path("path", &path);
    let progress = opts.progress.then(ByteCounter::new);
    let counter = progress.clone();
    runtime::spawn_reporting(env, reference, progress, async move {
        let started = std::time::Instant::now();
        let path = path?;
        let hasher = match opts.hash.as_deref() {
            Some(name) => Some(Hasher::new(name).ok_or_else(|| {
                NifError::invalid_argument(format!("unsupported :hash {name:?}"))
            })?),
            None => None,
        };
        let target = std::path::PathBuf::from(&local_path);
        let name = target
            .file_name()
            .ok_or_else(|| NifError::invalid_argument("local_path names no file"))?
            .to_string_lossy()
            .into_owned();
        let mut tmp = TempFile {
            path: target.with_file_name(format!(
                ".{name}.objectstorex-{}.part",
                std::process::id() as u128 * 1_000_000 + rand_suffix()
            )),
            keep: false,
        };
        let (chunk_size, concurrency) = (opts.chunk_size.max(1), opts.concurrency.max(1));
        let outcome = async {
            let meta =
                download_into(&store, &path, &tmp.path, chunk_size, concurrency, counter).await?;
            let digest = match hasher {
                Some(hasher) => Some(hash_file(&tmp.path, meta.size, hasher).await?),
                None => None,
            };
            let (from, to) = (tmp.path.clone(), target.clone());
            local::blocking(move || std::fs::rename(from, to))
                .await?
                .map_err(|e| {
                    NifError::new(
                        Reason::Generic,
                        format!("cannot rename into {local_path:?}: {e}"),
                    )
                })?;
            Ok((meta, digest))
        }
        .await;
        match outcome {
            Ok((meta, digest)) => {
                tmp.keep = true;
                let (bytes, micros) = (meta.size, started.elapsed().as_micros() as u64);
                Ok((Meta(meta), bytes, micros, digest))
            }
            // Removed before the error is reported; the drop covers only a task cancelled.
            Err(e) => {
                tmp.discard().await;
                Err(e)
            }
        }
    })
}

/// The digest of the first `size` bytes of `file`, read back in order once every range is
/// written: parallel ranges arrive out of order, and a hash needs its bytes in order. Each block
/// is read and hashed on the local pool, under its deadline.
async fn hash_file(file: &std::path::Path, size: u64, hasher: Hasher) -> Result<String, NifError> {
    const BLOCK: usize = 8 * 1024 * 1024;
    let opened = file.to_path_buf();
    let file = local::blocking(move || std::fs::File::open(opened))
        .await?
        .map_err(|e| local_error(&format!("cannot read back {file:?}"), e))
        .map(Arc::new)?;
    let (mut hasher, mut buf, mut offset) = (hasher, vec![0u8; BLOCK], 0u64);
    while offset < size {
        let want = BLOCK.min((size - offset) as usize);
        let file = file.clone();
        let (h, b, read) = local::blocking(move || {
            use std::os::unix::fs::FileExt;
            let read = file.read_exact_at(&mut buf[..want], offset);
            if read.is_ok() {
                hasher.update(&buf[..want]);
            }
            (hasher, buf, read)
        })
        .await?;
        read.map_err(|e| local_error("reading back the download", e))?;
        (hasher, buf, offset) = (h, b, offset + want as u64);
    }
    Ok(hasher.finish_hex())
}

fn rand_suffix() -> u128 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u128)
        .unwrap_or(0)
}

fn local_error(what: &str, e: impl std::fmt::Display) -> NifError {
    NifError::new(Reason::Generic, format!("{what}: {e}"))
}

/// Writes `bytes` at `offset` of `file` on the local pool.
async fn write_at(
    file: &Arc<std::fs::File>,
    bytes: bytes::Bytes,
    offset: u64,
) -> Result<(), NifError> {
    let file = file.clone();
    local::blocking(move || {
        use std::os::unix::fs::FileExt;
        file.write_all_at(&bytes, offset)
    })
    .await?
    .map_err(|e| local_error("local write", e))
}

async fn download_into(
    store: &StoreResource,
    path: &Path,
    tmp: &std::path::Path,
    chunk_size: usize,
    concurrency: usize,
    progress: Option<Arc<ByteCounter>>,
) -> Result<object_store::ObjectMeta, NifError> {
    let meta = store.store.head(path).await.map_err(|e| store.error(e))?;
    if let Some(p) = &progress {
        p.set_total(meta.size);
    }
    let (created, size) = (tmp.to_path_buf(), meta.size);
    let file = local::blocking(move || {
        let file = std::fs::File::create(&created)?;
        file.set_len(size).map(|()| file)
    })
    .await?
    .map_err(|e| local_error(&format!("cannot create {tmp:?}"), e))?;
    let file = Arc::new(file);
    let pin = Pin::of(&meta);
    let added = |len: usize| {
        if let Some(p) = &progress {
            p.add(len as u64);
        }
    };
    if pin.is_pinned() {
        let starts: Vec<u64> = (0..meta.size).step_by(chunk_size).collect();
        futures::stream::iter(starts)
            .map(|start| {
                let end = (start + chunk_size as u64).min(meta.size);
                let (file, pin) = (file.clone(), pin.clone());
                async move {
                    let bytes = read::pinned_range(&store.store, path, &pin, start..end)
                        .await
                        .map_err(|e| read::changed_or(store, path, e))?;
                    let len = bytes.len();
                    write_at(&file, bytes, start).await?;
                    added(len);
                    Ok::<(), NifError>(())
                }
            })
            .buffer_unordered(concurrency)
            .try_collect::<Vec<()>>()
            .await?;
    } else {
        // Nothing to pin parallel ranges to: one GET, never resumed, written in order.
        let result = store.store.get(path).await.map_err(|e| store.error(e))?;
        let mut body = result.into_stream();
        let mut offset = 0u64;
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| store.error(e))?;
            let len = piece.len();
            write_at(&file, piece, offset).await?;
            offset += len as u64;
            added(len);
        }
        if offset != meta.size {
            return Err(NifError::new(
                Reason::Generic,
                format!("the body held {offset} bytes, expected {}", meta.size),
            ));
        }
    }
    let written = file
        .metadata()
        .map_err(|e| NifError::new(Reason::Generic, e.to_string()))?
        .len();
    if written != meta.size {
        return Err(NifError::new(
            Reason::Generic,
            format!("wrote {written} bytes, expected {}", meta.size),
        ));
    }
    Ok(meta)
}
