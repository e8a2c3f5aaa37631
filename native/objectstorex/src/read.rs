//! The one reader of object bytes: bodies are collected without trusting the size a server
//! announces, and every ranged or resumed request is pinned to one version of the object and
//! its answer checked against that version, so bytes of two versions are never joined.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, GetResult, GetResultPayload, ObjectMeta, ObjectStore};

use objectstorex_core::error::reason_of;

use crate::error::{NifError, Reason};
use crate::local;
use crate::store::StoreResource;

/// The largest buffer reserved up front for a body; a body beyond it grows the buffer as its
/// bytes actually arrive. A lying `Content-Length` therefore costs nothing.
const INITIAL_CAPACITY: u64 = 8 << 20;

/// Consecutive failed resumptions (without a byte of progress) before a download gives up.
const MAX_RESUMES: u32 = 3;

fn generic(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "ObjectStoreX",
        source: message.into(),
    }
}

/// Collects a body into one buffer. Allocation grows with the bytes received and is fallible,
/// so neither a lying size nor a huge body can abort the VM.
async fn collect(
    mut body: BoxStream<'static, object_store::Result<Bytes>>,
    expected: u64,
) -> object_store::Result<Bytes> {
    let Some(first) = body.next().await.transpose()? else {
        return Ok(Bytes::new());
    };
    let Some(second) = body.next().await.transpose()? else {
        return Ok(first);
    };
    let mut buf: Vec<u8> = Vec::new();
    let initial = expected.clamp((first.len() + second.len()) as u64, INITIAL_CAPACITY);
    reserve(&mut buf, initial as usize)?;
    buf.extend_from_slice(&first);
    buf.extend_from_slice(&second);
    while let Some(piece) = body.next().await {
        let piece = piece?;
        reserve(&mut buf, piece.len())?;
        buf.extend_from_slice(&piece);
    }
    Ok(buf.into())
}

/// The body of an answer, whole: a local file is read on the local pool in one read, any other
/// body collected as it arrives.
pub async fn body(result: GetResult) -> object_store::Result<Bytes> {
    let range = result.range.clone();
    let expected = range.end - range.start;
    match result.payload {
        GetResultPayload::File(file, path) => {
            let len = usize::try_from(expected)
                .map_err(|_| generic(format!("{expected} bytes do not fit in memory")))?;
            let read = local::blocking(move || local::read_at(&file, range.start, len))
                .await
                .map_err(|e| generic(e.message))?
                .map_err(|e| generic(format!("reading {}: {e}", path.display())))?;
            if read.len() != len {
                return Err(generic(format!(
                    "{} ended at byte {} of {}",
                    path.display(),
                    range.start + read.len() as u64,
                    range.end
                )));
            }
            Ok(read)
        }
        GetResultPayload::Stream(stream) => collect(stream, expected).await,
    }
}

fn reserve(buf: &mut Vec<u8>, more: usize) -> object_store::Result<()> {
    buf.try_reserve(more)
        .map_err(|e| generic(format!("cannot allocate memory for the body: {e}")))
}

/// A GET whose range means what `GetRange::as_range` says it means on every backend. Some
/// servers refuse or garble a suffix range that the in-process stores answer: an empty answer
/// for a suffix of an empty object (a `Content-Range` of "bytes 0--1/0") or of length 0 (416),
/// and object_store's Azure client sends none at all (`:not_supported`). Such a suffix is
/// resolved against the object's size (a HEAD) and read as a bounded range pinned to the
/// version the HEAD saw.
pub async fn get(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    opts: GetOptions,
) -> object_store::Result<GetResult> {
    let Some(GetRange::Suffix(n)) = opts.range else {
        return store.get_opts(path, opts).await;
    };
    match store.get_opts(path, opts.clone()).await {
        Err(e) if matches!(reason_of(&e), Reason::InvalidRange | Reason::NotSupported) => {}
        answer => return answer,
    }
    let head = GetOptions {
        head: true,
        range: None,
        ..opts.clone()
    };
    let head = store.get_opts(path, head).await?;
    let size = head.meta.size;
    let span = size.saturating_sub(n)..size;
    if span.is_empty() || opts.head {
        return Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::empty().boxed()),
            range: span,
            ..head
        });
    }
    // The HEAD checked the caller's conditions; the pin keeps the answer to that version.
    let pin = Pin::of(&head.meta);
    let result = store.get_opts(path, pin.options(span.clone())).await?;
    pin.check(path, &result, &span)?;
    Ok(result)
}

/// The version a read is pinned to: the ETag and version of the object as first seen.
#[derive(Clone, Default)]
pub struct Pin {
    e_tag: Option<String>,
    version: Option<String>,
}

impl Pin {
    pub fn of(meta: &ObjectMeta) -> Self {
        Pin {
            e_tag: meta.e_tag.clone(),
            version: meta.version.clone(),
        }
    }

    /// Whether there is anything to pin to; without it, parts of a read cannot be proven to
    /// belong to one version.
    pub fn is_pinned(&self) -> bool {
        self.e_tag.is_some() || self.version.is_some()
    }

    fn options(&self, range: std::ops::Range<u64>) -> GetOptions {
        GetOptions {
            range: Some(GetRange::Bounded(range)),
            if_match: self.e_tag.clone(),
            version: self.version.clone(),
            ..Default::default()
        }
    }

    /// A server may ignore `If-Match`: the answer itself must name the pinned version and
    /// the range asked for.
    fn check(
        &self,
        path: &Path,
        result: &GetResult,
        range: &std::ops::Range<u64>,
    ) -> object_store::Result<()> {
        let changed = |what: String| object_store::Error::Precondition {
            path: path.to_string(),
            source: what.into(),
        };
        if let Some(want) = &self.e_tag {
            if result.meta.e_tag.as_ref() != Some(want) {
                return Err(changed(format!(
                    "the answer has ETag {:?}, not the pinned {want:?}",
                    result.meta.e_tag
                )));
            }
        }
        if let (Some(want), Some(got)) = (&self.version, &result.meta.version) {
            if want != got {
                return Err(changed(format!(
                    "the answer is version {got:?}, not {want:?}"
                )));
            }
        }
        let end = range.end.min(result.meta.size);
        if result.range != (range.start..end) {
            return Err(generic(format!(
                "asked for bytes {}..{end} and the answer holds {:?}",
                range.start, result.range
            )));
        }
        Ok(())
    }
}

/// Reads one range of a pinned object, checked against the pin, and collected whole.
pub async fn pinned_range(
    store: &Arc<dyn ObjectStore>,
    path: &Path,
    pin: &Pin,
    range: std::ops::Range<u64>,
) -> object_store::Result<Bytes> {
    let result = store.get_opts(path, pin.options(range.clone())).await?;
    pin.check(path, &result, &range)?;
    let expected = result.range.end - result.range.start;
    let bytes = body(result).await?;
    if bytes.len() as u64 != expected {
        return Err(generic(format!(
            "range {}..{} returned {} bytes",
            range.start,
            range.start + expected,
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// The body of a GET that, when the connection breaks or a request timeout cuts it, asks again
/// for the rest of the range, pinned to the object's ETag (or version) and checked against it,
/// so that the parts cannot come from two versions. An object without either is never resumed:
/// its body ending early is an error. This does not depend on object_store's own retry window,
/// which ends a few minutes after the first request: a slowly consumed stream may last longer.
pub fn resumable(
    store: &StoreResource,
    path: &Path,
    meta: &ObjectMeta,
    span: std::ops::Range<u64>,
    body: BoxStream<'static, object_store::Result<Bytes>>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    struct Resume {
        store: Arc<dyn ObjectStore>,
        path: Path,
        pin: Pin,
        pos: u64,
        end: u64,
        failures: u32,
        body: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    }
    let state = Resume {
        store: store.store.clone(),
        path: path.clone(),
        pin: Pin::of(meta),
        pos: span.start,
        end: span.end,
        failures: 0,
        body: Some(body),
    };
    let give_up = |e, st: Resume| Some((Err(e), Resume { pos: st.end, ..st }));
    futures::stream::unfold(state, move |mut st| async move {
        loop {
            if st.pos >= st.end {
                return None;
            }
            let body = match st.body.as_mut() {
                Some(body) => body,
                None => {
                    let range = st.pos..st.end;
                    let answer = st.store.get_opts(&st.path, st.pin.options(range.clone()));
                    let checked = match answer.await {
                        Ok(result) => st.pin.check(&st.path, &result, &range).map(|_| result),
                        Err(e) => Err(e),
                    };
                    match checked {
                        Ok(result) => st.body.insert(result.into_stream()),
                        Err(e) => return give_up(e, st),
                    }
                }
            };
            let failure = match body.next().await {
                Some(Ok(bytes)) => {
                    st.pos += bytes.len() as u64;
                    st.failures = 0;
                    return Some((Ok(bytes), st));
                }
                Some(Err(e)) => e,
                None if st.pos < st.end => {
                    generic(format!("the body ended at byte {} of {}", st.pos, st.end))
                }
                None => return None,
            };
            st.failures += 1;
            if !st.pin.is_pinned() || st.failures > MAX_RESUMES {
                return give_up(failure, st);
            }
            st.body = None;
        }
    })
    .boxed()
}

/// A failed pin while reading means the object was replaced mid-read.
pub fn changed_or(store: &StoreResource, path: &Path, e: object_store::Error) -> NifError {
    match e {
        object_store::Error::Precondition { source, .. } => store.error(NifError::new(
            Reason::PreconditionFailed,
            format!("{path} changed while it was being read ({source})"),
        )),
        e => store.error(e),
    }
}
