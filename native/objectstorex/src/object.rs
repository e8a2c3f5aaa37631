//! Serves `ObjectStoreX`: the one-shot object operations. Each NIF validates what it cheaply
//! can, then runs the request on Tokio and replies `{ref, {:ok, value} | {:error, error}}`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::signer::Method;
use object_store::{
    Attribute, Attributes, CopyMode, CopyOptions, GetOptions, GetRange, ObjectStoreExt, PutMode,
    PutOptions, RenameOptions, RenameTargetMode, TagSet, UpdateVersion,
};
use rustler::{Atom, Env, NifMap, ResourceArc, Term};

use crate::error::{self, NifError, Reason};
use crate::local;
use crate::meta::Meta;
use crate::payload::{self, Blob};
use crate::read::{self, Pin};
use crate::runtime::{self, Progress, TaskHandle};
use crate::store::StoreResource;

mod atoms {
    rustler::atoms! {
        ok, overwrite, create, update, bounded, offset, suffix,
        content_type, content_encoding, content_disposition, content_language, cache_control,
    }
}

/// How many range requests of one `get_ranges` call run at once.
const RANGE_CONCURRENCY: usize = 8;

type Store = ResourceArc<StoreResource>;

pub fn parse_path(arg: &str, path: &str) -> Result<Path, NifError> {
    if path.is_empty() {
        return Err(NifError::new(
            Reason::InvalidPath,
            format!("{arg} is empty"),
        ));
    }
    Path::parse(path)
        .map_err(|e| NifError::new(Reason::InvalidPath, format!("invalid {arg} {path:?}: {e}")))
}

fn parse_prefix(prefix: Option<String>) -> Result<Option<Path>, NifError> {
    prefix
        .filter(|p| !p.is_empty())
        .map(|p| {
            Path::parse(&p).map_err(|e| {
                NifError::new(Reason::InvalidPath, format!("invalid :prefix {p:?}: {e}"))
            })
        })
        .transpose()
}

fn datetime(micros: Option<i64>) -> Option<DateTime<Utc>> {
    micros.and_then(DateTime::from_timestamp_micros)
}

#[derive(NifMap)]
pub struct PutOpts {
    mode: Atom,
    etag: Option<String>,
    version: Option<String>,
    attributes: Vec<(Atom, String)>,
    metadata: Vec<(String, String)>,
    tags: Vec<(String, String)>,
}

pub fn put_options(opts: PutOpts) -> Result<PutOptions, NifError> {
    let mode = if opts.mode == atoms::overwrite() {
        PutMode::Overwrite
    } else if opts.mode == atoms::create() {
        PutMode::Create
    } else if opts.mode == atoms::update() {
        PutMode::Update(UpdateVersion {
            e_tag: opts.etag,
            version: opts.version,
        })
    } else {
        return Err(NifError::invalid_argument("invalid :mode"));
    };
    let mut attributes = Attributes::new();
    for (key, value) in opts.attributes {
        let attribute = if key == atoms::content_type() {
            Attribute::ContentType
        } else if key == atoms::content_encoding() {
            Attribute::ContentEncoding
        } else if key == atoms::content_disposition() {
            Attribute::ContentDisposition
        } else if key == atoms::content_language() {
            Attribute::ContentLanguage
        } else if key == atoms::cache_control() {
            Attribute::CacheControl
        } else {
            return Err(NifError::invalid_argument("unknown attribute"));
        };
        attributes.insert(attribute, value.into());
    }
    for (key, value) in opts.metadata {
        attributes.insert(Attribute::Metadata(key.into()), value.into());
    }
    let mut tags = TagSet::default();
    for (key, value) in opts.tags {
        tags.push(&key, &value);
    }
    Ok(PutOptions {
        mode,
        tags,
        attributes,
        ..Default::default()
    })
}

#[rustler::nif]
fn object_put<'a>(
    env: Env<'a>,
    reference: Term<'a>,
    store: Store,
    path: String,
    data: Term<'a>,
    opts: PutOpts,
) -> ResourceArc<TaskHandle> {
    let prepared = parse_path("path", &path).and_then(|p| {
        let payload = payload::from_iovec(data)
            .map_err(|_| NifError::invalid_argument("data must be a binary or iodata"))?;
        Ok((p, payload, put_options(opts)?))
    });
    runtime::spawn(env, reference, async move {
        let (path, payload, opts) = prepared?;
        let result = store
            .store
            .put_opts(&path, payload, opts)
            .await
            .map_err(|e| store.error(e))?;
        Ok((result.e_tag, result.version))
    })
}

#[derive(NifMap)]
pub struct GetOpts {
    range: Option<(Atom, u64, u64)>,
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<i64>,
    if_unmodified_since: Option<i64>,
    version: Option<String>,
    head: bool,
}

/// Ranges arrive as `{:bounded, start, end_exclusive}`, `{:offset, n, _}` or `{:suffix, n, _}`.
pub fn get_range((kind, a, b): (Atom, u64, u64)) -> Result<GetRange, NifError> {
    if kind == atoms::bounded() {
        Ok(GetRange::Bounded(a..b))
    } else if kind == atoms::offset() {
        Ok(GetRange::Offset(a))
    } else if kind == atoms::suffix() {
        Ok(GetRange::Suffix(a))
    } else {
        Err(NifError::invalid_argument("invalid :range"))
    }
}

fn get_options(opts: GetOpts) -> Result<GetOptions, NifError> {
    Ok(GetOptions {
        range: opts.range.map(get_range).transpose()?,
        if_match: opts.if_match,
        if_none_match: opts.if_none_match,
        if_modified_since: datetime(opts.if_modified_since),
        if_unmodified_since: datetime(opts.if_unmodified_since),
        version: opts.version,
        head: opts.head,
        ..Default::default()
    })
}

#[rustler::nif]
fn object_get(
    env: Env,
    reference: Term,
    store: Store,
    path: String,
    opts: GetOpts,
) -> ResourceArc<TaskHandle> {
    let prepared = parse_path("path", &path).and_then(|p| Ok((p, get_options(opts)?)));
    runtime::spawn(env, reference, async move {
        let (path, opts) = prepared?;
        let head = opts.head;
        let result = store
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| store.error(e))?;
        let meta = Meta(result.meta.clone());
        // Some backends (InMemory) ignore `head`; never read a body the caller did not ask for.
        let bytes = if head {
            bytes::Bytes::new()
        } else {
            read::body(result).await.map_err(|e| store.error(e))?
        };
        Ok((Blob(bytes), meta))
    })
}

#[rustler::nif]
fn object_head(env: Env, reference: Term, store: Store, path: String) -> ResourceArc<TaskHandle> {
    let path = parse_path("path", &path);
    runtime::spawn(env, reference, async move {
        let path = path?;
        let opts = GetOptions {
            head: true,
            ..Default::default()
        };
        let result = store
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| store.error(e))?;
        Ok(Meta(result.meta))
    })
}

#[rustler::nif]
fn object_delete(env: Env, reference: Term, store: Store, path: String) -> ResourceArc<TaskHandle> {
    let path = parse_path("path", &path);
    runtime::spawn(env, reference, async move {
        let path = path?;
        match store.store.delete(&path).await {
            // Deleting what is not there is a success, as it is on S3, on every backend.
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(atoms::ok()),
            Err(e) => Err(store.error(e)),
        }
    })
}

#[rustler::nif]
fn object_copy(
    env: Env,
    reference: Term,
    store: Store,
    from: String,
    to: String,
    overwrite: bool,
) -> ResourceArc<TaskHandle> {
    let paths = parse_path("from", &from).and_then(|f| Ok((f, parse_path("to", &to)?)));
    runtime::spawn(env, reference, async move {
        let (from, to) = paths?;
        let mode = if overwrite {
            CopyMode::Overwrite
        } else {
            CopyMode::Create
        };
        let opts = CopyOptions::new().with_mode(mode);
        store
            .store
            .copy_opts(&from, &to, opts)
            .await
            .map_err(|e| store.error(e))?;
        Ok(atoms::ok())
    })
}

#[rustler::nif]
fn object_rename(
    env: Env,
    reference: Term,
    store: Store,
    from: String,
    to: String,
    overwrite: bool,
) -> ResourceArc<TaskHandle> {
    let paths = parse_path("from", &from).and_then(|f| Ok((f, parse_path("to", &to)?)));
    runtime::spawn(env, reference, async move {
        let (from, to) = paths?;
        let mode = if overwrite {
            RenameTargetMode::Overwrite
        } else {
            RenameTargetMode::Create
        };
        let opts = RenameOptions::new().with_target_mode(mode);
        store
            .store
            .rename_opts(&from, &to, opts)
            .await
            .map_err(|e| store.error(e))?;
        Ok(atoms::ok())
    })
}

/// Each range is fetched on its own so that, as with `get`, a range running past the end of
/// the object is clamped on every backend instead of failing on some. The answers must all
/// name one version of the object: ranges of two versions are never returned together.
#[rustler::nif]
fn object_get_ranges(
    env: Env,
    reference: Term,
    store: Store,
    path: String,
    ranges: Vec<(u64, u64)>,
) -> ResourceArc<TaskHandle> {
    let path = parse_path("path", &path);
    runtime::spawn(env, reference, async move {
        let path = Arc::new(path?);
        let answers: Vec<(Option<String>, Option<String>, Blob)> = futures::stream::iter(ranges)
            .map(|(start, end)| {
                let (store, path) = (store.clone(), path.clone());
                async move {
                    let opts = GetOptions {
                        range: Some(GetRange::Bounded(start..end)),
                        ..Default::default()
                    };
                    let result = store.store.get_opts(&path, opts).await?;
                    let (e_tag, version) = (result.meta.e_tag.clone(), result.meta.version.clone());
                    let bytes = read::body(result).await?;
                    Ok::<_, object_store::Error>((e_tag, version, Blob(bytes)))
                }
            })
            .buffered(RANGE_CONCURRENCY)
            .try_collect()
            .await
            .map_err(|e| store.error(e))?;
        if let Some((e_tag, version, _)) = answers.first() {
            if answers.iter().any(|(e, v, _)| e != e_tag || v != version) {
                return Err(store.error(NifError::new(
                    Reason::PreconditionFailed,
                    format!("{path} changed while its ranges were being read"),
                )));
            }
        }
        Ok(answers
            .into_iter()
            .map(|(_, _, blob)| blob)
            .collect::<Vec<_>>())
    })
}

/// Bulk requests of one `delete_many` call in flight at once.
const DELETE_CONCURRENCY: usize = 4;

/// Replies `{deleted_count, [{path, error}]}`, accounting for every path: `deleted +
/// length(failed) == length(paths)`. Missing objects count as deleted.
#[rustler::nif]
fn object_delete_many(
    env: Env,
    reference: Term,
    store: Store,
    paths: Vec<String>,
) -> ResourceArc<TaskHandle> {
    runtime::spawn(env, reference, async move {
        let mut failed: Vec<(String, NifError)> = Vec::new();
        let mut valid: Vec<(String, Path)> = Vec::with_capacity(paths.len());
        for raw in paths {
            match parse_path("path", &raw) {
                Ok(p) => valid.push((raw, p)),
                Err(e) => failed.push((raw, e)),
            }
        }
        // One batch is one bulk request of the store (S3: 1,000 keys, Azure: 256), so a failed
        // request, which object_store reports as one error, is known to concern that batch.
        let batches: Vec<Vec<(String, Path)>> =
            valid.chunks(store.bulk_delete).map(<[_]>::to_vec).collect();
        let outcomes: Vec<_> = futures::stream::iter(batches)
            .map(|batch| delete_batch(&store, batch))
            .buffered(DELETE_CONCURRENCY)
            .collect()
            .await;
        let mut deleted = 0usize;
        for (count, batch_failed) in outcomes {
            deleted += count;
            failed.extend(batch_failed);
        }
        let failed: Vec<_> = failed
            .into_iter()
            .map(|(p, e)| (p, error::term(&e)))
            .collect();
        Ok((deleted, failed))
    })
}

/// Deletes one batch; returns how many were deleted and the paths that were not, each with
/// its error.
async fn delete_batch(
    store: &StoreResource,
    batch: Vec<(String, Path)>,
) -> (usize, Vec<(String, NifError)>) {
    let locations =
        futures::stream::iter(batch.iter().map(|(_, p)| Ok(p.clone())).collect::<Vec<_>>());
    let results: Vec<_> = store.store.delete_stream(locations.boxed()).collect().await;
    if results.len() == batch.len() {
        // delete_stream answers in input order, one result per location.
        let mut deleted = 0;
        let mut failed = Vec::new();
        for ((raw, _), result) in batch.into_iter().zip(results) {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => deleted += 1,
                Err(e) => failed.push((raw, store.error(e))),
            }
        }
        return (deleted, failed);
    }
    // The request for the batch failed as a whole: every path it did not confirm failed with it.
    let confirmed: std::collections::HashSet<Path> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    let cause = results
        .into_iter()
        .find_map(|r| r.err())
        .map(|e| store.error(e))
        .unwrap_or_else(|| {
            NifError::new(
                Reason::Generic,
                "the bulk delete answered for too few paths",
            )
        });
    let mut deleted = 0;
    let mut failed = Vec::new();
    for (raw, path) in batch {
        if confirmed.contains(&path) {
            deleted += 1;
        } else {
            failed.push((raw, cause.clone()));
        }
    }
    (deleted, failed)
}

#[rustler::nif]
fn object_list_with_delimiter(
    env: Env,
    reference: Term,
    store: Store,
    prefix: Option<String>,
    offset: Option<String>,
) -> ResourceArc<TaskHandle> {
    let prefix = parse_prefix(prefix);
    runtime::spawn(env, reference, async move {
        let prefix = prefix?;
        let result = store
            .store
            .list_with_delimiter(prefix.as_ref())
            .await
            .map_err(|e| store.error(e))?;
        let after = |location: &str| offset.as_deref().is_none_or(|o| location > o);
        let objects: Vec<Meta> = result
            .objects
            .into_iter()
            .filter(|m| after(m.location.as_ref()))
            .map(Meta)
            .collect();
        let prefixes: Vec<String> = result
            .common_prefixes
            .into_iter()
            .map(String::from)
            .filter(|p| after(p))
            .collect();
        Ok((objects, prefixes))
    })
}

/// Every object under `prefix`, after `offset` when given (exclusive).
pub fn listing(
    store: &StoreResource,
    prefix: Option<&Path>,
    offset: Option<String>,
) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
    match offset {
        Some(o) => store.store.list_with_offset(prefix, &Path::from(o)),
        None => store.store.list(prefix),
    }
}

#[rustler::nif]
fn object_list(
    env: Env,
    reference: Term,
    store: Store,
    prefix: Option<String>,
    offset: Option<String>,
) -> ResourceArc<TaskHandle> {
    let prefix = parse_prefix(prefix);
    runtime::spawn(env, reference, async move {
        let prefix = prefix?;
        let listing = listing(&store, prefix.as_ref(), offset);
        let metas: Vec<Meta> = listing
            .map_ok(Meta)
            .try_collect()
            .await
            .map_err(|e| store.error(e))?;
        Ok(metas)
    })
}

#[rustler::nif]
fn object_sign_url(
    env: Env,
    reference: Term,
    store: Store,
    method: String,
    path: String,
    expires_in_secs: u64,
) -> ResourceArc<TaskHandle> {
    let path = parse_path("path", &path);
    runtime::spawn(env, reference, async move {
        let path = path?;
        let signer = store.signer.clone().ok_or_else(|| {
            NifError::new(
                Reason::NotSupported,
                "presigned URLs are supported for S3, GCS and Azure stores only",
            )
        })?;
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| NifError::invalid_argument(format!("invalid method {method:?}")))?;
        let url = signer
            .signed_url(
                method,
                &store.full_path(&path),
                Duration::from_secs(expires_in_secs),
            )
            .await
            .map_err(|e| store.error(e))?;
        Ok(url.to_string())
    })
}

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
    store: Store,
    path: String,
    local_path: String,
    opts: DownloadFileOpts,
) -> ResourceArc<TaskHandle> {
    let path = parse_path("path", &path);
    let progress = opts.progress.then(Progress::new);
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
    progress: Option<Arc<Progress>>,
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
