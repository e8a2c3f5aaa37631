//! Serves `ObjectStoreX.Native`'s task plumbing: the Tokio runtime, `{ref, result}` replies and
//! cancellation of in-flight work when the caller asks or dies.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, OnceLock};

use futures::FutureExt;
use rustler::env::SavedTerm;
use rustler::{Encoder, Env, LocalPid, Monitor, OwnedEnv, Resource, ResourceArc, Term};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use crate::error::{self, NifError, Reason};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

mod atoms {
    rustler::atoms! { ok, error }
}

/// Starts the runtime once per loaded library; later loads (upgrades) reuse it.
pub fn start() -> std::io::Result<()> {
    if RUNTIME.get().is_some() {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("objectstorex-io")
        .build()?;
    let _ = RUNTIME.set(rt);
    Ok(())
}

pub fn runtime() -> &'static Runtime {
    RUNTIME
        .get()
        .expect("runtime is started in the NIF load callback")
}

/// Sends exactly one `{ref, result}` message to the caller. If the task is dropped before it
/// replies (aborted, cancelled, runtime gone), `Drop` sends `{:error, :cancelled}` instead, so a
/// caller waiting on the ref never hangs.
pub struct Replier {
    pid: LocalPid,
    env: OwnedEnv,
    reference: Option<SavedTerm>,
}

impl Replier {
    pub fn new(env: Env, reference: Term) -> Self {
        let owned = OwnedEnv::new();
        let saved = owned.save(reference);
        Replier {
            pid: env.pid(),
            env: owned,
            reference: Some(saved),
        }
    }

    pub fn reply<T: Encoder>(mut self, result: Result<T, NifError>) {
        self.send(result);
    }

    fn send<T: Encoder>(&mut self, result: Result<T, NifError>) {
        let Some(reference) = self.reference.take() else {
            return;
        };
        // The caller may have exited; a failed send is not an error for us.
        let _ = self.env.send_and_clear(&self.pid, |env| {
            let payload = match result {
                Ok(value) => (atoms::ok(), value).encode(env),
                Err(err) => (atoms::error(), error::term(&err)).encode(env),
            };
            (reference.load(env), payload)
        });
    }
}

impl Drop for Replier {
    fn drop(&mut self) {
        if self.reference.is_none() {
            return;
        }
        let err: Result<(), NifError> = Err(NifError::new(
            Reason::Cancelled,
            "the operation was cancelled before it completed",
        ));
        if rustler::thread::is_scheduler_thread() {
            // OwnedEnv cannot send from a scheduler thread: hand the reply to Tokio.
            let pid = self.pid;
            let env = std::mem::replace(&mut self.env, OwnedEnv::new());
            let reference = self.reference.take();
            runtime().spawn(async move {
                let mut replier = Replier {
                    pid,
                    env,
                    reference,
                };
                replier.send(err);
            });
        } else {
            self.send(err);
        }
    }
}

/// A running operation. Dropping the Elixir handle does not cancel it; `cancel/1` or the death
/// of the process that started it does.
pub struct TaskHandle {
    abort: Mutex<Option<AbortHandle>>,
}

impl TaskHandle {
    pub fn cancel(&self) {
        if let Some(handle) = self.abort.lock().unwrap_or_else(|e| e.into_inner()).take() {
            handle.abort();
        }
    }
}

#[rustler::resource_impl]
impl Resource for TaskHandle {
    const IMPLEMENTS_DOWN: bool = true;

    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        self.cancel();
    }
}

/// Runs `fut` on Tokio and replies `{reference, {:ok, value} | {:error, error}}` to the calling
/// process. A panic in `fut` becomes an `:internal` error reply.
pub fn spawn<T, F>(env: Env, reference: Term, fut: F) -> ResourceArc<TaskHandle>
where
    T: Encoder + Send + 'static,
    F: Future<Output = Result<T, NifError>> + Send + 'static,
{
    let replier = Replier::new(env, reference);
    let join = runtime().spawn(async move {
        let result = match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => Err(NifError::from_panic(panic)),
        };
        replier.reply(result);
    });
    let handle = ResourceArc::new(TaskHandle {
        abort: Mutex::new(Some(join.abort_handle())),
    });
    env.monitor(&handle, &env.pid());
    handle
}

#[rustler::nif]
fn task_cancel(handle: ResourceArc<TaskHandle>) -> rustler::Atom {
    handle.cancel();
    atoms::ok()
}
