//! Serves `ObjectStoreX`: the one-shot object operations. Each NIF validates what it cheaply
//! can, then runs the request on Tokio and replies `{ref, {:ok, value} | {:error, error}}`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::signer::Method;
use object_store::{
    CopyMode, CopyOptions, GetOptions, GetRange, ObjectMeta, ObjectStoreExt, PutOptions,
    PutPayload, RenameOptions, RenameTargetMode,
};
use rustler::{Atom, Env, ResourceArc, Term};

use crate::args::{get_options, parse_path, parse_prefix, put_options, GetOpts, PutOpts};
use crate::error::{self, NifError, Reason};
use crate::meta::{Meta, Metas};
use crate::payload::{self, Blob};
use crate::read;
use crate::runtime::{self, TaskHandle};
use crate::store::StoreResource;

mod atoms {
    rustler::atoms! { ok, copy, rename }
}

/// How many range requests of one `get_ranges` call run at once.
const RANGE_CONCURRENCY: usize = 8;

type Store = ResourceArc<StoreResource>;

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
        let payload = payload::from_iovec(data, None)
            .map_err(|_| NifError::invalid_argument("data must be a binary or iodata"))?;
        Ok((p, payload, put_options(opts, store.ascii_headers)?))
    });
    runtime::spawn(env, reference, async move {
        let (path, payload, opts) = prepared?;
        write(&store, &path, payload, opts).await
    })
}

/// Writes one object as `put_with_result/4` does, answering its ETag and version;
/// `ObjectStoreX.Stream.put_many/3` writes each of its objects with this too.
pub async fn write(
    store: &StoreResource,
    path: &Path,
    payload: PutPayload,
    opts: PutOptions,
) -> Result<(Option<String>, Option<String>), NifError> {
    let result = store
        .store
        .put_opts(path, payload, opts)
        .await
        .map_err(|e| store.error(e))?;
    Ok((result.e_tag, result.version))
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
        fetch(&store, &path, opts).await
    })
}

/// One object's data and metadata, as `get/3` answers them; `ObjectStoreX.Stream.get_many/3`
/// fetches each of its objects with this too.
pub async fn fetch(
    store: &StoreResource,
    path: &Path,
    opts: GetOptions,
) -> Result<(Blob, Meta), NifError> {
    let head = opts.head;
    let result = read::get(&store.store, path, opts)
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

/// Copies or renames (`op`: `:copy` or `:rename`) an object within the store, replacing the
/// target only when `overwrite` is set.
#[rustler::nif]
fn object_copy(
    env: Env,
    reference: Term,
    store: Store,
    op: Atom,
    from: String,
    to: String,
    overwrite: bool,
) -> ResourceArc<TaskHandle> {
    let paths = parse_path("from", &from).and_then(|f| Ok((f, parse_path("to", &to)?)));
    runtime::spawn(env, reference, async move {
        let (from, to) = paths?;
        let done = if op == atoms::copy() {
            let mode = if overwrite {
                CopyMode::Overwrite
            } else {
                CopyMode::Create
            };
            let opts = CopyOptions::new().with_mode(mode);
            store.store.copy_opts(&from, &to, opts).await
        } else if op == atoms::rename() {
            let mode = if overwrite {
                RenameTargetMode::Overwrite
            } else {
                RenameTargetMode::Create
            };
            let opts = RenameOptions::new().with_target_mode(mode);
            store.store.rename_opts(&from, &to, opts).await
        } else {
            return Err(NifError::invalid_argument(format!(
                "unknown operation {op:?}"
            )));
        };
        done.map_err(|e| store.error(e))?;
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
    let deleting = store
        .store
        .delete_stream(locations.boxed())
        .collect::<Vec<_>>();
    // object_store panics on some malformed answers of a faulty or hostile server (S3's naming
    // a key the request did not, an Azure batch part with an invalid header): then nothing of
    // the batch is confirmed, and the other batches go on.
    let Ok(results) = AssertUnwindSafe(deleting).catch_unwind().await else {
        let cause = NifError::new(
            Reason::Generic,
            "the server's answer to the bulk delete was malformed (it named a path not asked \
             about, or a part could not be read)",
        );
        let failed = batch.into_iter().map(|(raw, _)| (raw, cause.clone()));
        return (0, failed.collect());
    };
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
        let objects: Vec<ObjectMeta> = result
            .objects
            .into_iter()
            .filter(|m| after(m.location.as_ref()))
            .collect();
        let prefixes: Vec<String> = result
            .common_prefixes
            .into_iter()
            .map(String::from)
            .filter(|p| after(p))
            .collect();
        Ok((Metas(objects), prefixes))
    })
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
        let listing = store.listing(prefix.as_ref(), offset);
        let metas: Vec<ObjectMeta> = listing.try_collect().await.map_err(|e| store.error(e))?;
        Ok(Metas(metas))
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
