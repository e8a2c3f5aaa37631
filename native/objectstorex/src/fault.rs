//! Serves `ObjectStoreX.Fault`: a store that behaves like the one it wraps except where a rule
//! makes a call fail, wait, or have its body cut, and that records every call it sees.
//!
//! It is an `ObjectStore` over the wrapped store's own `Arc<dyn ObjectStore>` (prefix adapter
//! included), so every function and stream of the library runs through it unchanged. Failing
//! calls never reach the wrapped store: a failed part is not sent, a failed completion leaves
//! the upload open for the abort that follows. The rules themselves live in
//! `objectstorex_core::fault`, where they are unit-tested.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, UploadPart,
};
use objectstorex_core::error::reason_of;
use objectstorex_core::fault::{self as rules, Action, Call, Cut, Op, Rule, Rules};
use rustler::{Atom, Encoder, Env, NifMap, Resource, ResourceArc, Term};

use crate::error::{self, NifError, Reason};
use crate::local;
use crate::store::StoreResource;

mod atoms {
    rustler::atoms! { pending, ok, error, fault, cancelled }
}

/// One rule as `ObjectStoreX.Fault` sends it, already validated there.
#[derive(NifMap)]
pub struct RuleSpec {
    action: String,
    ops: Vec<String>,
    glob: Option<String>,
    part: Option<u64>,
    nth: u64,
    times: Option<u64>,
    reason: String,
    retryable: bool,
    message: Option<String>,
    at: u64,
    ms: u64,
}

fn rule(spec: RuleSpec) -> Result<Rule, NifError> {
    let bad = |what: String| NifError::invalid_argument(format!("fault rule: {what}"));
    let action = match spec.action.as_str() {
        "fail" => Action::Fail,
        "cut_body" => Action::CutBody(spec.at),
        "latency" => Action::Delay(Duration::from_millis(spec.ms)),
        other => return Err(bad(format!("unknown kind {other:?}"))),
    };
    let ops = spec
        .ops
        .iter()
        .map(|o| Op::parse(o).ok_or_else(|| bad(format!("unknown operation {o:?}"))))
        .collect::<Result<_, _>>()?;
    let reason = rules::parse_reason(&spec.reason)
        .ok_or_else(|| bad(format!("unknown reason {:?}", spec.reason)))?;
    Ok(Rule {
        action,
        ops,
        glob: spec.glob,
        part: spec.part,
        nth: spec.nth.max(1),
        times: spec.times,
        reason,
        retryable: spec.retryable,
        message: spec.message,
    })
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Pending,
    Ok,
    Error(Reason),
    Fault(Reason),
    Cancelled,
}

#[derive(Debug)]
struct Record {
    op: Op,
    path: String,
    to: Option<String>,
    part: Option<u64>,
    outcome: Outcome,
}

#[derive(Debug)]
pub struct FaultState {
    rules: Mutex<Rules>,
    calls: Mutex<Vec<Record>>,
}

// A panic elsewhere must not make the record unreadable: the data stays consistent under
// every lock (each critical section is one push or one field write).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FaultState {
    /// Decides a call and records it, in the order calls start: the rules are held while the
    /// record is pushed, so decision order and record order agree.
    fn begin(self: &Arc<Self>, op: Op, path: &str, to: Option<&str>, part: Option<u64>) -> Pending {
        let mut rules = lock(&self.rules);
        let decision = rules.decide(Call { op, path, part });
        let mut calls = lock(&self.calls);
        calls.push(Record {
            op,
            path: path.to_string(),
            to: to.map(str::to_string),
            part,
            outcome: Outcome::Pending,
        });
        Pending {
            state: self.clone(),
            index: calls.len() - 1,
            done: false,
            delay: decision.delay,
            fail: decision.fail,
            path: path.to_string(),
        }
    }

    fn set(&self, index: usize, outcome: Outcome) {
        if let Some(record) = lock(&self.calls).get_mut(index) {
            record.outcome = outcome;
        }
    }
}

/// A recorded call in progress. Dropped before an outcome is known (its caller went away), it
/// is recorded as cancelled.
struct Pending {
    state: Arc<FaultState>,
    index: usize,
    done: bool,
    delay: Duration,
    fail: Option<NifError>,
    path: String,
}

impl Pending {
    fn set(&mut self, outcome: Outcome) {
        self.state.set(self.index, outcome);
        self.done = true;
    }

    /// Waits the rules' delay; the injected error if the call is to fail.
    async fn enter(&mut self) -> object_store::Result<()> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        match self.fail.take() {
            Some(e) => {
                self.set(Outcome::Fault(e.reason));
                Err(store_error(e, &self.path))
            }
            None => Ok(()),
        }
    }

    fn finish<T>(&mut self, result: &object_store::Result<T>) {
        self.set(match result {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Error(reason_of(e)),
        });
    }

    /// Runs `call` unless the rules fail it; `call` is not polled before that.
    async fn run<T>(
        mut self,
        call: impl Future<Output = object_store::Result<T>>,
    ) -> object_store::Result<T> {
        self.enter().await?;
        let result = call.await;
        self.finish(&result);
        result
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.done {
            self.state.set(self.index, Outcome::Cancelled);
        }
    }
}

/// The injected error as object_store would report its reason, so that the library treats it
/// as it treats the real one (a missing object on delete is a success, a failed precondition
/// on a pinned read means the object changed). The error itself travels as the source, which
/// the conversion at the boundary reads its reason and retryability from.
fn store_error(e: NifError, path: &str) -> object_store::Error {
    use object_store::Error as E;
    let path = path.to_string();
    let reason = e.reason;
    let source = Box::new(e);
    match reason {
        Reason::NotFound => E::NotFound { path, source },
        Reason::AlreadyExists => E::AlreadyExists { path, source },
        Reason::PreconditionFailed => E::Precondition { path, source },
        Reason::NotModified => E::NotModified { path, source },
        Reason::PermissionDenied => E::PermissionDenied { path, source },
        Reason::Unauthenticated => E::Unauthenticated { path, source },
        Reason::NotSupported => E::NotSupported { source },
        _ => E::Generic {
            store: "Fault",
            source,
        },
    }
}

#[derive(Debug)]
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    state: Arc<FaultState>,
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fault({})", self.inner)
    }
}

fn prefix_str(prefix: Option<&Path>) -> &str {
    prefix.map_or("", |p| p.as_ref())
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.state
            .begin(Op::Put, location.as_ref(), None, None)
            .run(self.inner.put_opts(location, payload, opts))
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let upload = self
            .state
            .begin(Op::CreateMultipart, location.as_ref(), None, None)
            .run(self.inner.put_multipart_opts(location, opts))
            .await?;
        Ok(Box::new(FaultUpload {
            inner: upload,
            state: self.state.clone(),
            path: location.to_string(),
            parts: 0,
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let op = if options.head { Op::Head } else { Op::Get };
        let mut pending = self.state.begin(op, location.as_ref(), None, None);
        pending.enter().await?;
        let result = match self.inner.get_opts(location, options).await {
            Ok(result) => result,
            Err(e) => {
                pending.set(Outcome::Error(reason_of(&e)));
                return Err(e);
            }
        };
        if op == Op::Get {
            let cut = lock(&self.state.rules).cut(location.as_ref(), result.range.end);
            if let Some(cut) = cut {
                pending.set(Outcome::Fault(cut.error.reason));
                return Ok(cut_body(result, cut, location.as_ref()));
            }
        }
        pending.set(Outcome::Ok);
        Ok(result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        delete_stream(&self.inner, &self.state, locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let pending = self.state.begin(Op::List, prefix_str(prefix), None, None);
        watched(pending, self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let pending = self.state.begin(Op::List, prefix_str(prefix), None, None);
        watched(pending, self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.state
            .begin(Op::List, prefix_str(prefix), None, None)
            .run(self.inner.list_with_delimiter(prefix))
            .await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.state
            .begin(Op::Copy, from.as_ref(), Some(to.as_ref()), None)
            .run(self.inner.copy_opts(from, to, options))
            .await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.state
            .begin(Op::Rename, from.as_ref(), Some(to.as_ref()), None)
            .run(self.inner.rename_opts(from, to, options))
            .await
    }
}

/// The answer of a GET whose body fails when it reaches object byte `cut.at` (which lies before
/// the end of the answer's range): the bytes before it are delivered, then the error.
fn cut_body(result: GetResult, cut: Cut, path: &str) -> GetResult {
    let GetResult {
        payload,
        meta,
        range,
        attributes,
        extensions,
    } = result;
    let keep = cut.at.saturating_sub(range.start);
    let error = store_error(cut.error, path);
    let body = match payload {
        GetResultPayload::Stream(body) => truncated(body, keep, error),
        // A local file: the bytes before the cut in one read, on the local pool.
        GetResultPayload::File(file, _) => {
            let start = range.start;
            let head = futures::stream::once(async move {
                let read = local::blocking(move || local::read_at(&file, start, keep as usize))
                    .await
                    .map_err(|e| object_store::Error::Generic {
                        store: "Fault",
                        source: Box::new(e),
                    })?;
                read.map_err(|e| object_store::Error::Generic {
                    store: "Fault",
                    source: Box::new(e),
                })
            });
            head.filter(|b| futures::future::ready(!matches!(b, Ok(b) if b.is_empty())))
                .chain(futures::stream::once(async move { Err(error) }))
                .boxed()
        }
    };
    GetResult {
        payload: GetResultPayload::Stream(body),
        meta,
        range,
        attributes,
        extensions,
    }
}

/// `body` up to `keep` bytes, then `error`.
fn truncated(
    body: BoxStream<'static, object_store::Result<Bytes>>,
    keep: u64,
    error: object_store::Error,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    futures::stream::unfold(
        (Some(body), keep, Some(error)),
        |(body, left, error)| async move {
            let mut body = body?;
            if left == 0 {
                return error.map(|e| (Err(e), (None, 0, None)));
            }
            match body.next().await {
                Some(Ok(bytes)) if (bytes.len() as u64) <= left => {
                    let left = left - bytes.len() as u64;
                    Some((Ok(bytes), (Some(body), left, error)))
                }
                Some(Ok(bytes)) => Some((Ok(bytes.slice(..left as usize)), (Some(body), 0, error))),
                // The real body failed first, or ended before the cut.
                Some(Err(e)) => Some((Err(e), (None, 0, None))),
                None => None,
            }
        },
    )
    .boxed()
}

/// A listing that is recorded: failed at once if the rules say so, else passed through, its
/// outcome the first error or, at its end, success.
fn watched<T: Send + 'static>(
    mut pending: Pending,
    inner: BoxStream<'static, object_store::Result<T>>,
) -> BoxStream<'static, object_store::Result<T>> {
    futures::stream::once(async move {
        match pending.enter().await {
            Err(e) => futures::stream::iter([Err(e)]).boxed(),
            Ok(()) => futures::stream::unfold(
                (Some(pending), inner),
                |(mut pending, mut inner)| async move {
                    let item = inner.next().await;
                    match (&item, pending.as_mut()) {
                        (Some(Err(e)), Some(p)) => p.set(Outcome::Error(reason_of(e))),
                        (None, Some(p)) if !p.done => p.set(Outcome::Ok),
                        _ => {}
                    }
                    if matches!(item, Some(Err(_))) {
                        // Only the first error is the outcome.
                        pending = None;
                    }
                    item.map(|item| (item, (pending, inner)))
                },
            )
            .boxed(),
        }
    })
    .flatten()
    .boxed()
}

/// What happened to one location of a delete stream, in input order.
enum Slot {
    /// Sent to the wrapped store, whose answer comes in its turn (`None`: an input error).
    Passed(Option<Pending>),
    /// Failed by the rules; never sent.
    Failed(object_store::Error),
}

/// Deletes through the wrapped store's own (bulk) delete stream, minus the locations the rules
/// fail, and answers in input order, one result per location, as delete streams do.
fn delete_stream(
    inner: &Arc<dyn ObjectStore>,
    state: &Arc<FaultState>,
    locations: BoxStream<'static, object_store::Result<Path>>,
) -> BoxStream<'static, object_store::Result<Path>> {
    let slots: Arc<Mutex<VecDeque<Slot>>> = Arc::default();
    let (state, queue) = (state.clone(), slots.clone());
    let passed = locations
        .then(move |location| {
            let state = state.clone();
            async move {
                match location {
                    Ok(path) => {
                        let mut pending = state.begin(Op::Delete, path.as_ref(), None, None);
                        match pending.enter().await {
                            Ok(()) => (Slot::Passed(Some(pending)), Some(Ok(path))),
                            Err(e) => (Slot::Failed(e), None),
                        }
                    }
                    Err(e) => (Slot::Passed(None), Some(Err(e))),
                }
            }
        })
        .filter_map(move |(slot, item)| {
            lock(&queue).push_back(slot);
            futures::future::ready(item)
        })
        .boxed();
    let mut answers = Some(inner.delete_stream(passed));
    let mut answered: VecDeque<object_store::Result<Path>> = VecDeque::new();
    futures::stream::poll_fn(move |cx| loop {
        {
            // Never held while the wrapped stream is polled: that pushes slots.
            let mut slots = lock(&slots);
            match slots.front() {
                Some(Slot::Failed(_)) => {
                    let Some(Slot::Failed(e)) = slots.pop_front() else {
                        unreachable!("the front was just seen")
                    };
                    return Poll::Ready(Some(Err(e)));
                }
                Some(Slot::Passed(_)) if !answered.is_empty() => {
                    let answer = answered.pop_front().expect("not empty");
                    if let Some(Slot::Passed(Some(mut pending))) = slots.pop_front() {
                        pending.finish(&answer);
                    }
                    return Poll::Ready(Some(answer));
                }
                _ => {}
            }
            if answers.is_none() {
                // The wrapped store has answered all it will: answers beyond the slots pass
                // on as they are, slots without an answer are left out (their calls are
                // recorded as cancelled), and the failed ones still come in their turn.
                if let Some(answer) = answered.pop_front() {
                    return Poll::Ready(Some(answer));
                }
                match slots.pop_front() {
                    Some(Slot::Failed(e)) => return Poll::Ready(Some(Err(e))),
                    Some(Slot::Passed(_)) => continue,
                    None => return Poll::Ready(None),
                }
            }
        }
        match answers.as_mut().map(|a| a.poll_next_unpin(cx)) {
            Some(Poll::Ready(Some(answer))) => answered.push_back(answer),
            Some(Poll::Ready(None)) => answers = None,
            Some(Poll::Pending) => return Poll::Pending,
            None => {}
        }
    })
    .boxed()
}

/// A multipart upload whose part, completion and abort calls are recorded and may fail.
#[derive(Debug)]
struct FaultUpload {
    inner: Box<dyn MultipartUpload>,
    state: Arc<FaultState>,
    path: String,
    /// Parts cut so far; parts are numbered in the order the caller cuts them.
    parts: u64,
}

#[async_trait]
impl MultipartUpload for FaultUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.parts += 1;
        let pending = self
            .state
            .begin(Op::PutPart, &self.path, None, Some(self.parts));
        if pending.fail.is_some() {
            // The wrapped upload never hears of a failed part: it would number the next one
            // after it.
            return Box::pin(pending.run(std::future::ready(Ok(()))));
        }
        Box::pin(pending.run(self.inner.put_part(data)))
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.state
            .begin(Op::CompleteMultipart, &self.path, None, None)
            .run(self.inner.complete())
            .await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.state
            .begin(Op::AbortMultipart, &self.path, None, None)
            .run(self.inner.abort())
            .await
    }
}

/// The record of a fault store, held by `ObjectStoreX.Store`'s `:fault` field.
pub struct FaultHandle(Arc<FaultState>);

#[rustler::resource_impl]
impl Resource for FaultHandle {}

/// Wraps a store: `{:ok, {store, record}}` or `{:error, error}`. No I/O: it returns at once.
#[rustler::nif]
fn fault_wrap<'a>(
    env: Env<'a>,
    store: ResourceArc<StoreResource>,
    rules: Vec<RuleSpec>,
) -> Term<'a> {
    let rules = match rules.into_iter().map(rule).collect::<Result<Vec<_>, _>>() {
        Ok(rules) => rules,
        Err(e) => return (atoms::error(), error::term(&e)).encode(env),
    };
    let state = Arc::new(FaultState {
        rules: Mutex::new(Rules::new(rules)),
        calls: Mutex::new(Vec::new()),
    });
    let wrapped = StoreResource {
        store: Arc::new(FaultStore {
            inner: store.store.clone(),
            state: state.clone(),
        }),
        signer: store.signer.clone(),
        prefix: store.prefix.clone(),
        secrets: store.secrets.clone(),
        // Uploads go through parts as on a network store, so that part rules apply and are
        // seen; the memory store's single-PUT shortcut would hide them.
        in_memory: false,
        // Every call, the HEAD after a transfer's PUT included, must meet the rules.
        local: false,
        // Not S3's explicit ids, which would bypass the wrapper: every multipart call must meet
        // the rules and be recorded.
        s3: None,
        bulk_delete: store.bulk_delete,
        ascii_headers: store.ascii_headers,
    };
    let handles = (
        ResourceArc::new(wrapped),
        ResourceArc::new(FaultHandle(state)),
    );
    (atoms::ok(), handles).encode(env)
}

type CallTerm = (
    Atom,
    String,
    Option<String>,
    Option<u64>,
    Atom,
    Option<Atom>,
);

/// Every call so far, in the order they started:
/// `{op, path, to, part, :ok | :error | :fault | :pending | :cancelled, reason}`.
#[rustler::nif]
fn fault_calls(env: Env, handle: ResourceArc<FaultHandle>) -> Vec<CallTerm> {
    let reason = |r: Reason| error::term(&NifError::new(r, "")).0;
    lock(&handle.0.calls)
        .iter()
        .map(|c| {
            let (kind, why) = match c.outcome {
                Outcome::Pending => (atoms::pending(), None),
                Outcome::Ok => (atoms::ok(), None),
                Outcome::Error(r) => (atoms::error(), Some(reason(r))),
                Outcome::Fault(r) => (atoms::fault(), Some(reason(r))),
                Outcome::Cancelled => (atoms::cancelled(), None),
            };
            let op = Atom::from_str(env, c.op.name()).expect("an atom");
            (op, c.path.clone(), c.to.clone(), c.part, kind, why)
        })
        .collect()
}

/// Whether `term` is a fault record of this VM.
#[rustler::nif]
fn fault_valid(term: Term) -> bool {
    term.decode::<ResourceArc<FaultHandle>>().is_ok()
}
