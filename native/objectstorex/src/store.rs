//! Serves `ObjectStoreX.Store`: builds a store from its provider and configuration pairs.
//!
//! The Elixir side validates option names and maps them onto `object_store` configuration keys;
//! this module hands the pairs to the right builder and checks the settings that every request
//! carries unescaped, once the builder has merged in the provider's environment variables.

use std::str::FromStr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::client::{HttpClient, HttpConnector, ReqwestConnector};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::signer::Signer;
use object_store::{BackoffConfig, ClientConfigKey, ClientOptions, ObjectStore, RetryConfig};
use rustler::{Atom, Env, NifMap, Resource, ResourceArc, Term};

use crate::error::{NifError, Reason};
use crate::local::{self, LocalStore};
use crate::multipart::S3Multipart;
use crate::runtime::{self, TaskHandle};
use objectstorex_core::dav::DavStore;
use objectstorex_core::error::is_secret_key;

mod atoms {
    rustler::atoms! { memory, local, s3, gcs, azure, http }
}

/// A configured store, shared by every operation that names it.
pub struct StoreResource {
    pub store: Arc<dyn ObjectStore>,
    pub signer: Option<Arc<dyn Signer>>,
    pub prefix: Option<Path>,
    /// Values that must never appear in an error message.
    pub secrets: Vec<String>,
    /// The in-memory backend, which keeps every object as one contiguous buffer.
    pub in_memory: bool,
    /// The local backend, whose single-PUT checks the size it wrote before renaming the file
    /// into place (`LocalStore::put_whole`), so a transfer need not ask again, and whose
    /// downloads read the file they opened rather than ranges of the path.
    pub local: bool,
    /// S3's explicit-id multipart uploads, whose create never leaves an upload behind.
    pub s3: Option<Arc<S3Multipart>>,
    /// Paths per bulk delete request of this backend (S3: 1,000, Azure: 256); stores without
    /// bulk deletes answer path by path, for which any batch size works.
    pub bulk_delete: usize,
    /// Azure, whose request signing reads every header as ASCII text: object_store panics on
    /// a request with a non-ASCII header value, so such attributes are refused up front.
    pub ascii_headers: bool,
}

#[rustler::resource_impl]
impl Resource for StoreResource {}

impl StoreResource {
    /// The full path of `path` as the backend sees it, for APIs that bypass the prefix adapter.
    pub fn full_path(&self, path: &Path) -> Path {
        match &self.prefix {
            Some(prefix) => prefix.parts().chain(path.parts()).collect(),
            None => path.clone(),
        }
    }

    pub fn error(&self, err: impl Into<NifError>) -> NifError {
        err.into().redact(&self.secrets)
    }

    /// Every object under `prefix`, after `offset` when given (exclusive).
    pub fn listing(
        &self,
        prefix: Option<&Path>,
        offset: Option<String>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        match offset {
            Some(o) => self.store.list_with_offset(prefix, &Path::from(o)),
            None => self.store.list(prefix),
        }
    }
}

#[derive(NifMap)]
pub struct RetryOpts {
    max_retries: usize,
    retry_timeout_ms: u64,
    init_backoff_ms: u64,
    max_backoff_ms: u64,
    base: f64,
}

impl From<&RetryOpts> for RetryConfig {
    fn from(r: &RetryOpts) -> Self {
        RetryConfig {
            max_retries: r.max_retries,
            retry_timeout: Duration::from_millis(r.retry_timeout_ms),
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(r.init_backoff_ms),
                max_backoff: Duration::from_millis(r.max_backoff_ms),
                base: r.base,
            },
        }
    }
}

#[derive(NifMap)]
pub struct StoreConfig {
    /// `object_store` configuration keys and values, e.g. `{"aws_region", "eu-west-1"}`.
    pairs: Vec<(String, String)>,
    retry: Option<RetryOpts>,
    prefix: Option<String>,
    /// Local root directory.
    root: Option<String>,
    /// HTTP base URL.
    url: Option<String>,
    /// Read the provider's standard environment variables first.
    from_env: bool,
    /// Those variables as the VM sees them (`System.put_env/2` included; the OS process's
    /// own environment is not updated by it): `AWS_*`, `AZURE_*` and `IDENTITY_ENDPOINT`,
    /// `GOOGLE_*` and `SERVICE_ACCOUNT`.
    env: Vec<(String, String)>,
}

fn parse_key<K: FromStr>(key: &str) -> Result<K, NifError> {
    K::from_str(key).map_err(|_| {
        NifError::new(
            Reason::InvalidArgument,
            format!("unknown configuration key {key:?}"),
        )
    })
}

/// Hands out one HTTP client per distinct client configuration, process-wide. Building a client
/// loads the system's root certificates, hundreds of files: about 15 ms, three times for each S3
/// store (the store, its no-retry twin and its multipart client), before any request is made.
/// Stores that share a client also share its connection pool.
#[derive(Debug, Default, Clone, Copy)]
pub struct SharedClients;

/// Distinct configurations kept; past it the oldest is dropped (stores holding it keep it).
const SHARED_CLIENTS: usize = 16;

impl HttpConnector for SharedClients {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        static CLIENTS: OnceLock<Mutex<Vec<(String, HttpClient)>>> = OnceLock::new();
        // Every setting of a client shows in its Debug form. The key stays in this table, and
        // the lock is held while building, so that concurrent builds load the certificates once.
        let key = format!("{options:?}");
        let mut clients = CLIENTS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, client)) = clients.iter().find(|(k, _)| *k == key) {
            return Ok(client.clone());
        }
        let client = ReqwestConnector::default().connect(options)?;
        if clients.len() == SHARED_CLIENTS {
            clients.remove(0);
        }
        clients.push((key, client.clone()));
        Ok(client)
    }
}

/// The three cloud builders take their settings the same way: the provider's environment
/// variables or none (and the shared HTTP clients), then the configuration pairs, then the
/// retry settings.
trait Cloud: Sized {
    type Key: FromStr;
    fn fresh() -> Self;
    /// A variable of the environment that is not named after a configuration key.
    fn other_variable(self, name: &str, value: &str) -> Self;
    fn set(self, key: Self::Key, value: &str) -> Self;
    fn retry(self, retry: RetryConfig) -> Self;
}

macro_rules! cloud {
    ($builder:ty, $key:ty, |$b:ident, $name:ident, $value:ident| $other:expr) => {
        impl Cloud for $builder {
            type Key = $key;
            fn fresh() -> Self {
                Self::new().with_http_connector(SharedClients)
            }
            fn other_variable(self, $name: &str, $value: &str) -> Self {
                let $b = self;
                $other
            }
            fn set(self, key: $key, value: &str) -> Self {
                self.with_config(key, value)
            }
            fn retry(self, retry: RetryConfig) -> Self {
                self.with_retry(retry)
            }
        }
    };
}

cloud!(AmazonS3Builder, AmazonS3ConfigKey, |b, _name, _value| b);
cloud!(
    GoogleCloudStorageBuilder,
    GoogleConfigKey,
    |b, name, value| {
        if name == "SERVICE_ACCOUNT" {
            b.with_service_account_path(value)
        } else {
            b
        }
    }
);
cloud!(MicrosoftAzureBuilder, AzureConfigKey, |b, name, value| {
    if name == "IDENTITY_ENDPOINT" {
        b.with_msi_endpoint(value)
    } else {
        b
    }
});

/// Applies the environment as each builder's `from_env` does, from the variables the VM
/// passed: a prefixed name (`AWS_`, `AZURE_`, `GOOGLE_`) sets the configuration key it names
/// (case aside), and the unprefixed one is applied where `from_env` applies it: GCS's
/// `SERVICE_ACCOUNT` first (`GOOGLE_SERVICE_ACCOUNT` overrides it), Azure's
/// `IDENTITY_ENDPOINT` last.
fn from_env<B: Cloud>(mut builder: B, env: &[(String, String)]) -> B {
    const UNPREFIXED: [&str; 2] = ["SERVICE_ACCOUNT", "IDENTITY_ENDPOINT"];
    let named = |wanted: &'static str| env.iter().filter(move |(n, _)| n == wanted);
    for (name, value) in named("SERVICE_ACCOUNT") {
        builder = builder.other_variable(name, value);
    }
    for (name, value) in env
        .iter()
        .filter(|(n, _)| !UNPREFIXED.contains(&n.as_str()))
    {
        if let Ok(key) = name.to_ascii_lowercase().parse::<B::Key>() {
            builder = builder.set(key, value);
        }
    }
    for (name, value) in named("IDENTITY_ENDPOINT") {
        builder = builder.other_variable(name, value);
    }
    builder
}

fn configure<B: Cloud>(cfg: &StoreConfig, retry: Option<RetryConfig>) -> Result<B, NifError> {
    let mut builder = B::fresh();
    if cfg.from_env {
        builder = from_env(builder, &cfg.env);
    }
    for (k, v) in &cfg.pairs {
        builder = builder.set(parse_key::<B::Key>(k)?, v);
    }
    Ok(match retry {
        Some(r) => builder.retry(r),
        None => builder,
    })
}

type Built = (
    Arc<dyn ObjectStore>,
    Option<Arc<dyn Signer>>,
    Option<Arc<S3Multipart>>,
);

async fn build(provider: Atom, cfg: &StoreConfig) -> Result<Built, NifError> {
    let retry = cfg.retry.as_ref().map(RetryConfig::from);
    if provider == atoms::memory() {
        Ok((Arc::new(InMemory::new()), None, None))
    } else if provider == atoms::local() {
        let root = cfg
            .root
            .as_deref()
            .ok_or_else(|| NifError::invalid_argument("option :root is required"))?;
        let dir = root.to_string();
        // On the local pool, as all file I/O: a hung mount pins none of the runtime's threads.
        let store =
            local::blocking(move || std::fs::create_dir_all(&dir).map(|()| LocalStore::new(&dir)))
                .await?
                .map_err(|e| {
                    NifError::new(
                        Reason::InvalidArgument,
                        format!("cannot create local root {root:?}: {e}"),
                    )
                })??;
        Ok((Arc::new(store), None, None))
    } else if provider == atoms::s3() {
        let b: AmazonS3Builder = configure(cfg, retry.clone())?;
        check_s3(&b)?;
        let s = Arc::new(b.clone().build()?);
        let multipart = S3Multipart::new(&b, s.clone(), retry)?.map(Arc::new);
        Ok((s.clone(), Some(s), multipart))
    } else if provider == atoms::gcs() {
        let b: GoogleCloudStorageBuilder = configure(cfg, retry)?;
        if let Some(bucket) = b.get_config_value(&GoogleConfigKey::Bucket) {
            check_name("option :bucket", &bucket, "._-")?;
        }
        let s = Arc::new(b.build()?);
        Ok((s.clone(), Some(s), None))
    } else if provider == atoms::azure() {
        let b: MicrosoftAzureBuilder = configure(cfg, retry)?;
        if let Some(endpoint) = b.get_config_value(&AzureConfigKey::Endpoint) {
            check_endpoint("option :endpoint", &endpoint)?;
        }
        if let Some(account) = b.get_config_value(&AzureConfigKey::AccountName) {
            check_name("option :account", &account, "-_")?;
        }
        if let Some(container) = b.get_config_value(&AzureConfigKey::ContainerName) {
            check_length(
                "option :container (or its environment variable)",
                &container,
            )?;
        }
        if let Some(token) = b.get_config_value(&AzureConfigKey::Token) {
            check_header("option :bearer_token", &token)?;
        }
        let s = Arc::new(b.build()?);
        Ok((s.clone(), Some(s), None))
    } else if provider == atoms::http() {
        let url = cfg
            .url
            .as_deref()
            .ok_or_else(|| NifError::invalid_argument("option :url is required"))?;
        check_length("option :url", url)?;
        // Parsed as object_store does (non-ASCII paths are encoded), but only an http(s) URL
        // with a host can take the object's path after it: "localhost:8080" parses too.
        let web = url::Url::parse(url).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        });
        if !web {
            return Err(NifError::invalid_argument(
                "option :url must be an http:// or https:// URL with a host",
            ));
        }
        let mut client = ClientOptions::new();
        for (k, v) in &cfg.pairs {
            client = client.with_config(parse_key::<ClientConfigKey>(k)?, v);
        }
        let mut b = HttpBuilder::new()
            .with_url(url)
            .with_client_options(client)
            .with_http_connector(SharedClients);
        if let Some(r) = retry {
            b = b.with_retry(r);
        }
        Ok((Arc::new(DavStore::new(Arc::new(b.build()?))), None, None))
    } else {
        Err(NifError::invalid_argument(format!(
            "unknown provider {provider:?}"
        )))
    }
}

// object_store puts these settings into every request unescaped, and a request it cannot
// build is a panic in the request, not an error; they are checked once, here, on what the
// builder holds (the options, or the provider's environment variables). The messages never
// quote a value: some are credentials, and an endpoint may carry a password.

fn check_s3(b: &AmazonS3Builder) -> Result<(), NifError> {
    if let Some(endpoint) = b.get_config_value(&AmazonS3ConfigKey::Endpoint) {
        check_endpoint("option :endpoint", &endpoint)?;
    }
    if let Some(bucket) = b.get_config_value(&AmazonS3ConfigKey::Bucket) {
        // ':' for Ceph's "tenant:bucket".
        check_name("option :bucket", &bucket, "._-:")?;
    }
    for (what, key) in [
        ("option :region", AmazonS3ConfigKey::Region),
        ("option :access_key_id", AmazonS3ConfigKey::AccessKeyId),
        ("option :session_token", AmazonS3ConfigKey::Token),
    ] {
        if let Some(value) = b.get_config_value(&key) {
            check_header(what, &value)?;
        }
    }
    Ok(())
}

/// An endpoint comes before the bucket (or container) and key in each request's URI: an
/// absolute http(s) URI with a host, nothing after its path (on S3 a query or fragment would
/// swallow the key).
fn check_endpoint(what: &str, endpoint: &str) -> Result<(), NifError> {
    check_length(&format!("{what} (or its environment variable)"), endpoint)?;
    let valid = http::Uri::try_from(endpoint).is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.host().is_some_and(|h| !h.is_empty())
            && uri.query().is_none()
    }) && !endpoint.contains(['?', '#']);
    if valid {
        Ok(())
    } else {
        Err(NifError::invalid_argument(format!(
            "{what} (or its environment variable) must be an http:// or https:// URL with a \
             host and no query or fragment"
        )))
    }
}

/// Addresses longer than real ones are (a URI of the HTTP client holds 64 KiB at most, and a
/// request's URI carries the address, the path and perhaps a version).
fn check_length(what: &str, address: &str) -> Result<(), NifError> {
    const MAX: usize = 2048;
    if address.len() <= MAX {
        Ok(())
    } else {
        Err(NifError::invalid_argument(format!(
            "{what} must be at most {MAX} bytes, got {}",
            address.len()
        )))
    }
}

/// Bucket and account names: ASCII letters, digits and `punctuation`, at most 255 bytes.
fn check_name(what: &str, name: &str, punctuation: &str) -> Result<(), NifError> {
    const MAX: usize = 255;
    let valid = !name.is_empty()
        && name.len() <= MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || punctuation.contains(c));
    if valid {
        Ok(())
    } else {
        let allowed: Vec<String> = punctuation.chars().map(|c| format!("'{c}'")).collect();
        Err(NifError::invalid_argument(format!(
            "{what} (or its environment variable) must be 1 to {MAX} ASCII letters, digits or {}",
            allowed.join(", ")
        )))
    }
}

/// Values sent as (part of) a header: visible ASCII, spaces and tabs.
fn check_header(what: &str, value: &str) -> Result<(), NifError> {
    match http::HeaderValue::from_str(value) {
        Ok(_) => Ok(()),
        Err(_) => Err(NifError::invalid_argument(format!(
            "{what} (or its environment variable) must be visible ASCII characters"
        ))),
    }
}

/// Every value that must not appear in a message: configured credentials, the password of a
/// URL's userinfo, and, when the builder reads the environment, the provider's credential
/// variables.
fn secrets_of(cfg: &StoreConfig) -> Vec<String> {
    let mut secrets: Vec<String> = cfg
        .pairs
        .iter()
        .filter(|(k, _)| is_secret_key(k))
        .map(|(_, v)| v.clone())
        .collect();
    if let Some(url) = cfg.url.as_deref().and_then(|u| url::Url::parse(u).ok()) {
        secrets.extend(url.password().map(str::to_string));
    }
    if cfg.from_env {
        secrets.extend(
            cfg.env
                .iter()
                .filter(|(k, _)| is_secret_key(&k.to_lowercase()))
                .map(|(_, v)| v.clone()),
        );
    }
    secrets
}

async fn open(provider: Atom, cfg: StoreConfig) -> Result<ResourceArc<StoreResource>, NifError> {
    let secrets = secrets_of(&cfg);
    let (store, signer, s3) = build(provider, &cfg)
        .await
        .map_err(|e| e.redact(&secrets))?;
    let prefix = match cfg.prefix.as_deref() {
        Some(p) => Some(Path::parse(p).map_err(|e| {
            NifError::new(Reason::InvalidPath, format!("invalid :prefix {p:?}: {e}"))
        })?),
        None => None,
    }
    .filter(|p| p.parts().count() > 0);
    let store: Arc<dyn ObjectStore> = match &prefix {
        Some(p) => Arc::new(PrefixStore::new(store, p.clone())),
        None => store,
    };
    Ok(ResourceArc::new(StoreResource {
        store,
        signer,
        s3,
        prefix,
        secrets,
        in_memory: provider == atoms::memory(),
        local: provider == atoms::local(),
        ascii_headers: provider == atoms::azure(),
        bulk_delete: if provider == atoms::azure() {
            256
        } else {
            1000
        },
    }))
}

/// Builds a store on Tokio (building a local store touches the disk).
#[rustler::nif]
fn store_new(
    env: Env,
    reference: Term,
    provider: Atom,
    config: StoreConfig,
) -> ResourceArc<TaskHandle> {
    runtime::spawn(env, reference, open(provider, config))
}

/// Whether `term` is a store resource of this library, built in this VM: a hand-built
/// `%ObjectStoreX.Store{}` or one from another node is not, and must be refused by name.
#[rustler::nif]
fn store_valid(term: Term) -> bool {
    term.decode::<ResourceArc<StoreResource>>().is_ok()
}
