//! Serves `ObjectStoreX.download_file/4`: an object into a local file, through a temporary file
//! beside it that is renamed into place only once it holds every byte.

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

/// `ObjectStoreX.download_file/4`'s options.
#[derive(NifMap)]
pub struct DownloadFileOpts {
    chunk_size: usize,
    concurrency: usize,
    /// Report `{:progress, ...}` messages while downloading.
    progress: bool,
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
/// removed.
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
        let path = path?;
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
            let (from, to) = (tmp.path.clone(), target.clone());
            local::blocking(move || std::fs::rename(from, to))
                .await?
                .map_err(|e| {
                    NifError::new(
                        Reason::Generic,
                        format!("cannot rename into {local_path:?}: {e}"),
                    )
                })?;
            Ok(meta)
        }
        .await;
        match outcome {
            Ok(meta) => {
                tmp.keep = true;
                Ok(Meta(meta))
            }
            // Removed before the error is reported; the drop covers only a task cancelled.
            Err(e) => {
                tmp.discard().await;
                Err(e)
            }
        }
    })
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
