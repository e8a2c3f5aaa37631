//! The multipart upload of one object, whichever feature drives it: created so that no attempt
//! is ever orphaned, and aborted when it is dropped unfinished.
//!
//! On S3 the upload runs on explicit ids (object_store's `MultipartStore`). Its create request
//! goes through a client that never retries by itself, because object_store's own retry of a
//! create whose answer was lost starts a second upload and hides the first one's id. Each
//! attempt is retried here instead, and once any attempt may have reached the server without its
//! answer reaching us, the key's in-progress uploads begun since the first attempt (other than the
//! one kept) are listed and aborted. Other stores use the crate's `MultipartUpload`: Azure only
//! stages blocks, with nothing to create, and a local upload is a temporary file.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, AwsAuthorizer};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    ClientConfigKey, ClientOptions, MultipartId, MultipartUpload, PutMultipartOptions, PutPayload,
    PutResult, RetryConfig,
};
use objectstorex_core::s3_uploads::{parse_page, parse_parts, Part, Upload};

use rustler::{Env, ResourceArc, Term};

use crate::args::parse_path;
use crate::error::{NifError, Reason};
use crate::runtime::{self, runtime, TaskHandle};
use crate::store::{SharedClients, StoreResource};

/// How far the server's clock may differ from ours when judging which uploads an attempt began.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// A multipart upload in progress.
pub struct Multipart {
    kind: Option<Kind>,
}

enum Kind {
    Crate(Box<dyn MultipartUpload>),
    Explicit(Explicit),
}

struct Explicit {
    s3: Arc<S3Multipart>,
    /// The full path, prefix included: `MultipartStore` is not behind the prefix adapter.
    path: Path,
    id: MultipartId,
    /// Each part's id, by index, filled in as parts finish.
    parts: Arc<Mutex<Vec<Option<PartId>>>>,
}

impl Multipart {
    /// Creates the upload in a task of its own: if the caller's future is dropped meanwhile, the
    /// task still learns the outcome, and the upload it made, with nobody left to take it, is
    /// dropped and so aborted.
    pub async fn create(
        store: &StoreResource,
        path: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Multipart, NifError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (inner, s3, full) = (store.store.clone(), store.s3.clone(), store.full_path(path));
        let path = path.clone();
        runtime().spawn(async move {
            let created = match s3 {
                Some(s3) => s3.create(full, opts).await.map(Kind::Explicit),
                None => inner
                    .put_multipart_opts(&path, opts)
                    .await
                    .map(Kind::Crate)
                    .map_err(NifError::from),
            };
            let _ = tx.send(created.map(|kind| Multipart { kind: Some(kind) }));
        });
        match rx.await {
            Ok(created) => created.map_err(|e| e.redact(&store.secrets)),
            Err(_) => Err(NifError::new(
                Reason::Internal,
                "multipart create task vanished",
            )),
        }
    }

    /// Takes up the newest upload of `path` in progress on the store, to continue it: the parts
    /// it holds numbered from 1 without a gap, each of `part_size` bytes, are kept (how many is
    /// returned), and every other upload of `path` is aborted. `None` where uploads cannot be
    /// listed and continued (stores without explicit ids, S3 with checksums configured) or
    /// where there is none.
    pub async fn adopt(
        store: &StoreResource,
        path: &Path,
        part_size: usize,
    ) -> Result<Option<(Multipart, usize)>, NifError> {
        let Some(s3) = store.s3.clone().filter(|s3| !s3.checksum) else {
            return Ok(None);
        };
        let full = store.full_path(path);
        let mut uploads = s3.uploads_of(&full).await.map_err(|e| store.error(e))?;
        uploads.sort_by_key(|u| std::cmp::Reverse(initiated(u)));
        let Some(newest) = uploads.first().cloned() else {
            return Ok(None);
        };
        for other in &uploads[1..] {
            s3.abort(&full, &other.id)
                .await
                .map_err(|e| store.error(e))?;
        }
        let listed = s3
            .parts_of(&full, &newest.id)
            .await
            .map_err(|e| store.error(e))?;
        let kept: Vec<Option<PartId>> = listed
            .iter()
            .enumerate()
            .take_while(|(i, p)| p.number == i + 1 && p.size == part_size as u64)
            .map(|(_, p)| {
                Some(PartId {
                    content_id: p.etag.clone(),
                })
            })
            .collect();
        let count = kept.len();
        let upload = Explicit {
            s3,
            path: full,
            id: newest.id,
            parts: Arc::new(Mutex::new(kept)),
        };
        Ok(Some((
            Multipart {
                kind: Some(Kind::Explicit(upload)),
            },
            count,
        )))
    }

    /// Aborts every upload of `path` in progress on the store (uploads of an older version of
    /// what is to be written there); returns how many. Stores without explicit ids have none.
    pub async fn discard_all(store: &StoreResource, path: &Path) -> Result<usize, NifError> {
        match store.s3.clone() {
            Some(s3) => s3
                .sweep(&store.full_path(path), DateTime::<Utc>::MIN_UTC, None)
                .await
                .map_err(|e| store.error(e)),
            None => Ok(0),
        }
    }

    /// Starts uploading the next part; the future is `'static` so that it can run as a task.
    pub fn put_part(&mut self, data: PutPayload) -> BoxFuture<'static, object_store::Result<()>> {
        match self.kind.as_mut() {
            Some(Kind::Crate(upload)) => upload.put_part(data),
            Some(Kind::Explicit(e)) => {
                let (s3, path, id, parts) =
                    (e.s3.clone(), e.path.clone(), e.id.clone(), e.parts.clone());
                let idx = {
                    let mut parts = lock(&parts);
                    parts.push(None);
                    parts.len() - 1
                };
                Box::pin(async move {
                    let part = s3.store.put_part(&path, &id, idx, data).await?;
                    lock(&parts)[idx] = Some(part);
                    Ok(())
                })
            }
            None => Box::pin(async { Err(closed()) }),
        }
    }

    /// Completes the upload from every part sent. After an error the upload is still open: the
    /// caller decides whether the object was written all the same, or aborts.
    pub async fn complete(&mut self) -> object_store::Result<PutResult> {
        let result = match self.kind.as_mut() {
            Some(Kind::Crate(upload)) => upload.complete().await,
            Some(Kind::Explicit(e)) => {
                let parts: Option<Vec<PartId>> = lock(&e.parts).iter().cloned().collect();
                let parts = parts.ok_or_else(|| object_store::Error::Generic {
                    store: "ObjectStoreX",
                    source: "completing a multipart upload with a part not uploaded".into(),
                })?;
                e.s3.store.complete_multipart(&e.path, &e.id, parts).await
            }
            None => Err(closed()),
        };
        if result.is_ok() {
            self.forget();
        }
        result
    }

    /// Marks the upload as finished by other means (a completion confirmed afterwards).
    pub fn forget(&mut self) {
        self.kind = None;
    }

    /// Aborts the upload; it is closed afterwards whatever the outcome, so that a failed abort is
    /// reported once rather than retried behind the caller's back.
    pub async fn abort(&mut self) -> Result<(), NifError> {
        match self.kind.take() {
            Some(kind) => kind.abort().await,
            None => Ok(()),
        }
    }
}

impl Kind {
    async fn abort(self) -> Result<(), NifError> {
        match self {
            Kind::Crate(mut upload) => upload.abort().await.map_err(NifError::from),
            Kind::Explicit(e) => e.s3.abort(&e.path, &e.id).await,
        }
    }
}

impl Drop for Multipart {
    /// However an upload goes away unfinished, it must not be left on the store.
    fn drop(&mut self) {
        if let Some(kind) = self.kind.take() {
            runtime().spawn(async move {
                let _ = kind.abort().await;
            });
        }
    }
}

/// When an upload began; one whose time cannot be read sorts first, as the oldest.
fn initiated(upload: &Upload) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&upload.initiated)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn closed() -> object_store::Error {
    object_store::Error::Generic {
        store: "ObjectStoreX",
        source: "the multipart upload is already completed or aborted".into(),
    }
}

/// What an S3 store needs to run uploads on explicit ids and to find the uploads of a key.
pub struct S3Multipart {
    /// The store's own client, retrying as configured: parts, completion, abort.
    store: Arc<AmazonS3>,
    /// The same store with retries off, for create requests.
    once: AmazonS3,
    retry: RetryConfig,
    http: HttpClient,
    /// `https://host/bucket` or `https://bucket.host`, as the store addresses its bucket.
    bucket_url: String,
    region: String,
    sign: bool,
    request_payer: bool,
    /// Parts carry checksums, which a listing of parts does not give back.
    checksum: bool,
}

impl S3Multipart {
    /// Built beside the store from the same builder. `None` for S3 Express buckets, whose zonal
    /// endpoints this module does not address: they keep the crate's own uploads.
    pub fn new(
        builder: &AmazonS3Builder,
        store: Arc<AmazonS3>,
        retry: Option<RetryConfig>,
    ) -> Result<Option<Self>, NifError> {
        let config = |key| builder.get_config_value(&key);
        let flag = |key| config(key).is_some_and(|v: String| v == "true");
        if flag(AmazonS3ConfigKey::S3Express) {
            return Ok(None);
        }
        let retry = retry.unwrap_or_default();
        let once = builder
            .clone()
            .with_retry(RetryConfig {
                max_retries: 0,
                ..retry.clone()
            })
            .build()?;
        let mut client = ClientOptions::new();
        for key in [
            ClientConfigKey::AllowHttp,
            ClientConfigKey::AllowInvalidCertificates,
            ClientConfigKey::ConnectTimeout,
            ClientConfigKey::Timeout,
            ClientConfigKey::PoolIdleTimeout,
            ClientConfigKey::ProxyUrl,
            ClientConfigKey::ProxyCaCertificate,
            ClientConfigKey::ProxyExcludes,
            ClientConfigKey::Http1Only,
            ClientConfigKey::Http2Only,
            ClientConfigKey::UserAgent,
        ] {
            if let Some(value) = config(AmazonS3ConfigKey::Client(key)) {
                client = client.with_config(key, value);
            }
        }
        let bucket = config(AmazonS3ConfigKey::Bucket).unwrap_or_default();
        let region = config(AmazonS3ConfigKey::Region).unwrap_or_else(|| "us-east-1".into());
        let endpoint =
            config(AmazonS3ConfigKey::S3Endpoint).or_else(|| config(AmazonS3ConfigKey::Endpoint));
        // The same addressing as the store's own requests.
        let bucket_url = match (endpoint, flag(AmazonS3ConfigKey::VirtualHostedStyleRequest)) {
            (Some(endpoint), true) => endpoint,
            (Some(endpoint), false) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            (None, true) => format!("https://{bucket}.s3.{region}.amazonaws.com"),
            (None, false) => format!("https://s3.{region}.amazonaws.com/{bucket}"),
        };
        Ok(Some(S3Multipart {
            store,
            once,
            retry,
            http: SharedClients.connect(&client)?,
            bucket_url,
            region,
            sign: !flag(AmazonS3ConfigKey::SkipSignature),
            request_payer: flag(AmazonS3ConfigKey::RequestPayer),
            checksum: config(AmazonS3ConfigKey::Checksum).is_some(),
        }))
    }

    /// Creates an upload, retrying as the store is configured to; an attempt whose outcome is
    /// unknown is followed by a sweep of the key's uploads that no answer told us about.
    async fn create(
        self: Arc<Self>,
        path: Path,
        opts: PutMultipartOptions,
    ) -> Result<Explicit, NifError> {
        let since = Utc::now() - CLOCK_SKEW;
        let started = Instant::now();
        let mut backoff = self.retry.backoff.init_backoff;
        let mut uncertain = false;
        let mut retries = 0;
        let created = loop {
            match self.once.create_multipart_opts(&path, opts.clone()).await {
                Ok(id) => break Ok(id),
                Err(e) => {
                    let e = NifError::from(e);
                    uncertain |= e.may_have_applied();
                    let spent = started.elapsed() + backoff >= self.retry.retry_timeout;
                    if !e.retryable || retries >= self.retry.max_retries || spent {
                        break Err(e);
                    }
                    retries += 1;
                    tokio::time::sleep(backoff).await;
                    backoff = backoff
                        .mul_f64(self.retry.backoff.base.max(1.0))
                        .min(self.retry.backoff.max_backoff);
                }
            }
        };
        let upload = created.map(|id| Explicit {
            s3: self.clone(),
            path: path.clone(),
            id,
            parts: Arc::default(),
        });
        if !uncertain {
            return upload;
        }
        // Dropping `upload` on any error below aborts it.
        let keep = upload.as_ref().ok().map(|u| u.id.clone());
        match (self.sweep(&path, since, keep.as_deref()).await, upload) {
            (Ok(_), upload) => upload,
            (Err(sweep), Ok(_)) => Err(NifError::new(
                sweep.reason,
                format!(
                    "creating the multipart upload took more than one attempt, and the uploads \
                     the lost attempts may have begun could not be listed to abort them: {}",
                    sweep.message
                ),
            )),
            (Err(sweep), Err(mut e)) => {
                e.message = format!(
                    "{}; an attempt may have begun an upload, and listing the key's uploads to \
                     abort it failed too, so it may be left on the store: {}",
                    e.message, sweep.message
                );
                Err(e)
            }
        }
    }

    /// Aborts every in-progress upload of exactly `path` begun since `since`, except `keep`;
    /// returns how many it aborted.
    async fn sweep(
        &self,
        path: &Path,
        since: DateTime<Utc>,
        keep: Option<&str>,
    ) -> Result<usize, NifError> {
        let mut aborted = 0;
        for upload in self.uploads_of(path).await? {
            if keep == Some(upload.id.as_str()) {
                continue;
            }
            let initiated = DateTime::parse_from_rfc3339(&upload.initiated).map_err(|e| {
                NifError::new(
                    Reason::Generic,
                    format!("unreadable Initiated time {:?}: {e}", upload.initiated),
                )
            })?;
            if initiated >= since {
                self.abort(path, &upload.id).await?;
                aborted += 1;
            }
        }
        Ok(aborted)
    }

    /// Aborts one upload; an answer lost on the way is retried, and an upload already gone
    /// counts as aborted.
    async fn abort(&self, path: &Path, id: &MultipartId) -> Result<(), NifError> {
        let mut attempt = 0;
        loop {
            match self.store.abort_multipart(path, id).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => return Ok(()),
                Err(e) => {
                    let e = NifError::from(e);
                    attempt += 1;
                    if !e.retryable || attempt == 3 {
                        return Err(e);
                    }
                    tokio::time::sleep(self.retry.backoff.init_backoff).await;
                }
            }
        }
    }

    /// The in-progress uploads whose key is exactly `path`, every page of them.
    async fn uploads_of(&self, path: &Path) -> Result<Vec<Upload>, NifError> {
        let mut found = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut query = vec![("uploads", String::new()), ("prefix", path.to_string())];
            if let Some((key, id)) = marker.take() {
                query.push(("key-marker", key));
                query.push(("upload-id-marker", id));
            }
            let query: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            let url = format!(
                "{}/?{}",
                self.bucket_url.trim_end_matches('/'),
                query.join("&")
            );
            let page = parse_page(&self.get(&url).await?).map_err(|e| {
                NifError::new(Reason::Generic, format!("listing multipart uploads: {e}"))
            })?;
            found.extend(page.uploads.into_iter().filter(|u| u.key == path.as_ref()));
            match page.next {
                Some(next) => marker = Some(next),
                None => return Ok(found),
            }
        }
    }

    /// The parts of one upload, every page of them, in part-number order.
    async fn parts_of(&self, path: &Path, id: &str) -> Result<Vec<Part>, NifError> {
        let key: Vec<String> = path.parts().map(|p| encode(p.as_ref())).collect();
        let mut found = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/{}?uploadId={}",
                self.bucket_url.trim_end_matches('/'),
                key.join("/"),
                encode(id)
            );
            if let Some(m) = marker.take() {
                url.push_str(&format!("&part-number-marker={}", encode(&m)));
            }
            let page = parse_parts(&self.get(&url).await?).map_err(|e| {
                NifError::new(
                    Reason::Generic,
                    format!("listing the parts of an upload: {e}"),
                )
            })?;
            found.extend(page.parts);
            match page.next {
                Some(next) => marker = Some(next),
                None => {
                    found.sort_by_key(|p| p.number);
                    return Ok(found);
                }
            }
        }
    }

    /// One signed GET, answered with its body as text.
    async fn get(&self, url: &str) -> Result<String, NifError> {
        let failed = |e: &dyn std::fmt::Display| {
            NifError::new(
                Reason::NetworkError,
                format!("listing multipart uploads: {e}"),
            )
        };
        let mut request = http::Request::builder()
            .method(http::Method::GET)
            .uri(url)
            .body(HttpRequestBody::empty())
            .map_err(|e| NifError::new(Reason::Configuration, e.to_string()))?;
        if self.sign {
            let credential = self.store.credentials().get_credential().await?;
            AwsAuthorizer::new(&credential, "s3", &self.region)
                .with_request_payer(self.request_payer)
                .try_authorize(&mut request, None)?;
        }
        let response = self.http.execute(request).await.map_err(|e| failed(&e))?;
        let status = response.status();
        let body = response.into_body().bytes().await.map_err(|e| failed(&e))?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            Ok(text)
        } else {
            let mut e = NifError::new(
                Reason::Generic,
                format!("listing multipart uploads: status code: {status}: {text:.500}"),
            );
            e.retryable = status.is_server_error() || status.as_u16() == 429;
            Err(e)
        }
    }
}

/// Aborts the in-progress multipart uploads of `path` begun since `since_ms` (Unix time in
/// milliseconds, less the allowed clock skew), for uploads whose writer died with its node and
/// so could not abort them (`ObjectStoreX.Sync`). Replies `{:ok, aborted}`; a store without
/// explicit multipart ids has none to find and replies `{:ok, 0}`.
#[rustler::nif]
fn multipart_sweep(
    env: Env,
    reference: Term,
    store: ResourceArc<StoreResource>,
    path: String,
    since_ms: i64,
) -> ResourceArc<TaskHandle> {
    let path = parse_path("path", &path);
    runtime::spawn(env, reference, async move {
        let path = path?;
        let since = DateTime::from_timestamp_millis(since_ms)
            .ok_or_else(|| NifError::invalid_argument(format!("invalid time {since_ms}")))?;
        match store.s3.clone() {
            Some(s3) => s3
                .sweep(&store.full_path(&path), since - CLOCK_SKEW, None)
                .await
                .map_err(|e| store.error(e)),
            None => Ok(0),
        }
    })
}

/// Percent-encodes a query value the way SigV4 canonicalises it: unreserved bytes as they are.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
