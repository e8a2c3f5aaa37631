//! For the `:http` stores of `ObjectStoreX.Store` (WebDAV): writes into a directory that
//! other writes are creating at the same moment succeed.
//!
//! object_store's HTTP client answers a PUT (or COPY) refused for a missing parent with MKCOLs
//! of the parents, and fails if one of them fails. Writes running at once into one new
//! directory each send that MKCOL: the server creates the directory for one of them and
//! answers the others 423 Locked while it does (rclone, and every server built on Go's
//! `x/net/webdav`) or 405 Method Not Allowed once it exists. Nothing was written when that
//! happens (the refused PUT wrote nothing), so the write is simply sent again, and then finds
//! its directory.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// Tries of one write whose directory another write is creating; the waits between them add up
/// to at most about half a second.
const TRIES: u32 = 6;

/// The wait before the second try; it doubles for each later one.
const FIRST_WAIT: Duration = Duration::from_millis(15);

/// Why an upload of more than one part cannot go to a WebDAV store.
const NO_MULTIPART: &str = "a WebDAV store takes no multipart upload, so an upload to it \
     is one PUT of at most one part: set :part_size to at least the object's size (the part is \
     held in memory whole), or write it with put/4";

/// An HTTP store whose writes are sent again when a concurrent write holds or has just created
/// their directory.
#[derive(Debug)]
pub struct DavStore {
    inner: Arc<dyn ObjectStore>,
}

impl DavStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        DavStore { inner }
    }
}

impl fmt::Display for DavStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// Whether `err` is a parent directory's creation refused because another request is creating
/// it (423) or has created it (405).
fn lost_directory_race(err: &object_store::Error) -> bool {
    let text = err.to_string();
    text.contains("Error performing MKCOL")
        && (text.contains("status code: 423") || text.contains("status code: 405"))
}

/// Runs `write` until it succeeds, fails otherwise, or has been tried [`TRIES`] times. The
/// waits carry a little jitter, so that writes refused together do not come back together.
async fn retrying<T, F, Fut>(mut write: F) -> object_store::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = object_store::Result<T>>,
{
    let mut wait = FIRST_WAIT;
    for _ in 1..TRIES {
        match write().await {
            Err(e) if lost_directory_race(&e) => {
                tokio::time::sleep(wait + jitter(wait)).await;
                wait *= 2;
            }
            answer => return answer,
        }
    }
    write().await
}

/// Up to half of `wait`, from the clock's nanoseconds (no generator needed for this).
fn jitter(wait: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    wait.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

#[async_trait]
impl ObjectStore for DavStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        retrying(|| self.inner.put_opts(location, payload.clone(), opts.clone())).await
    }

    /// WebDAV has no multipart upload (object_store's HTTP client says only "not yet
    /// implemented"): the refusal says what the caller can change.
    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(object_store::Error::NotSupported {
            source: NO_MULTIPART.into(),
        })
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        retrying(|| self.inner.copy_opts(from, to, options.clone())).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        retrying(|| self.inner.rename_opts(from, to, options.clone())).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_error(text: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "HTTP",
            source: text.to_string().into(),
        }
    }

    #[test]
    fn only_a_parent_directory_lost_to_another_request_is_retried() {
        let mkcol = "Error performing MKCOL http://127.0.0.1:8801/a/b in 501µs - Server returned \
                     non-2xx status code";
        assert!(lost_directory_race(&request_error(&format!(
            "{mkcol}: 423 Locked: Locked"
        ))));
        assert!(lost_directory_race(&request_error(&format!(
            "{mkcol}: 405 Method Not Allowed: "
        ))));
        assert!(!lost_directory_race(&request_error(&format!(
            "{mkcol}: 403 Forbidden: "
        ))));
        assert!(!lost_directory_race(&request_error(
            "Error performing PUT http://127.0.0.1:8801/a/b in 1ms - Server returned non-2xx \
             status code: 423 Locked: Locked"
        )));
    }

    #[tokio::test]
    async fn a_multipart_upload_is_refused_with_what_to_change() {
        let store = DavStore::new(Arc::new(object_store::memory::InMemory::new()));
        let refused = store
            .put_multipart_opts(&Path::from("a"), PutMultipartOptions::default())
            .await;
        match refused {
            Err(object_store::Error::NotSupported { source }) => {
                assert!(source.to_string().contains(":part_size"))
            }
            _ => panic!("expected NotSupported"),
        }
    }

    #[tokio::test]
    async fn a_write_is_sent_again_until_its_directory_exists() {
        let mut tries = 0;
        let answer = retrying(|| {
            tries += 1;
            let refused = tries < 3;
            async move {
                if refused {
                    Err(request_error(
                        "Error performing MKCOL http://h/a - status code: 423 Locked",
                    ))
                } else {
                    Ok(tries)
                }
            }
        })
        .await;
        assert_eq!(answer.unwrap(), 3);
    }

    #[tokio::test]
    async fn other_failures_and_the_last_try_are_returned_as_they_are() {
        let mut tries = 0;
        let answer: object_store::Result<()> = retrying(|| {
            tries += 1;
            async { Err(request_error("status code: 500")) }
        })
        .await;
        assert!(answer.is_err());
        assert_eq!(tries, 1);

        let mut tries = 0;
        let answer: object_store::Result<()> = retrying(|| {
            tries += 1;
            async { Err(request_error("Error performing MKCOL x: status code: 405")) }
        })
        .await;
        assert!(lost_directory_race(&answer.unwrap_err()));
        assert_eq!(tries, TRIES);
    }
}
