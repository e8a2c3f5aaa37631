//! One error type for every operation: a reason, a message free of secrets, and whether a retry
//! may succeed. The NIF crate encodes it as `{reason, message, retryable}`.

use std::any::Any;
use std::error::Error as StdError;

use object_store::client::{HttpError, HttpErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    NotFound,
    AlreadyExists,
    PreconditionFailed,
    NotModified,
    PermissionDenied,
    Unauthenticated,
    NotSupported,
    InvalidPath,
    InvalidArgument,
    InvalidRange,
    Timeout,
    Cancelled,
    NetworkError,
    Configuration,
    Internal,
    Generic,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub reason: Reason,
    pub message: String,
    pub retryable: bool,
}

impl Error {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        let retryable = matches!(reason, Reason::Timeout | Reason::NetworkError);
        Error {
            reason,
            message: message.into(),
            retryable,
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(Reason::InvalidArgument, message)
    }

    pub fn from_panic(panic: Box<dyn Any + Send>) -> Self {
        let detail = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Self::new(Reason::Internal, format!("native task panicked: {detail}"))
    }

    /// Removes every configured secret from the message; called before an error leaves a store.
    pub fn redact(mut self, secrets: &[String]) -> Self {
        self.message = redact(&self.message, secrets);
        self
    }
}

/// Replaces known secrets and strips URL query strings (which can carry SAS tokens or signatures).
pub fn redact(message: &str, secrets: &[String]) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find("http") {
        let (before, url_and_more) = rest.split_at(start);
        out.push_str(before);
        let end = url_and_more
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ')')
            .unwrap_or(url_and_more.len());
        let (url, more) = url_and_more.split_at(end);
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push_str("?[REDACTED]");
            }
            None => out.push_str(url),
        }
        rest = more;
    }
    out.push_str(rest);
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret.as_str(), "[REDACTED]");
    }
    out
}

impl From<object_store::Error> for Error {
    fn from(err: object_store::Error) -> Self {
        use object_store::Error as E;
        let reason = match &err {
            E::NotFound { .. } => Reason::NotFound,
            E::AlreadyExists { .. } => Reason::AlreadyExists,
            E::Precondition { .. } => Reason::PreconditionFailed,
            E::NotModified { .. } => Reason::NotModified,
            E::PermissionDenied { .. } => Reason::PermissionDenied,
            E::Unauthenticated { .. } => Reason::Unauthenticated,
            E::NotSupported { .. } | E::NotImplemented { .. } => Reason::NotSupported,
            E::InvalidPath { .. } => Reason::InvalidPath,
            E::UnknownConfigurationKey { .. } => Reason::Configuration,
            E::JoinError { .. } => Reason::Internal,
            _ => classify_generic(&err),
        };
        let message = err.to_string();
        let retryable = match reason {
            Reason::Timeout | Reason::NetworkError => true,
            Reason::Generic => server_side_status(&message),
            _ => false,
        };
        Error {
            reason,
            message,
            retryable,
        }
    }
}

/// object_store reports transport failures and odd HTTP statuses as `Generic`; the source chain
/// still says what happened.
fn classify_generic(err: &object_store::Error) -> Reason {
    let mut source: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return match http.kind() {
                HttpErrorKind::Timeout => Reason::Timeout,
                HttpErrorKind::Connect | HttpErrorKind::Request | HttpErrorKind::Interrupted => {
                    Reason::NetworkError
                }
                _ => Reason::Generic,
            };
        }
        source = e.source();
    }
    let text = err.to_string();
    if text.contains("416 Range Not Satisfiable")
        || text.contains("Range started at")
        || text.contains("Wanted range starting at")
        || text.contains("InvalidRange")
        || text.contains("Requested range was invalid")
    {
        Reason::InvalidRange
    } else {
        Reason::Generic
    }
}

/// Whether an `object_store` configuration key holds a credential.
pub fn is_secret_key(key: &str) -> bool {
    ["secret", "token", "key", "password", "sas", "credentials"]
        .iter()
        .any(|word| key.contains(word))
        && !key.ends_with("key_id")
}

/// Throttling and 5xx answers are worth retrying; anything else the server said is not.
fn server_side_status(message: &str) -> bool {
    ["429", "500", "502", "503", "504"]
        .iter()
        .any(|code| message.contains(&format!("status code: {code}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_secrets_and_query_strings() {
        let secrets = vec!["SECRETsecret123".to_string()];
        let msg = "Error performing GET http://h:1/b/k?sig=abc&se=1 in 2s - key SECRETsecret123";
        let out = redact(msg, &secrets);
        assert_eq!(
            out,
            "Error performing GET http://h:1/b/k?[REDACTED] in 2s - key [REDACTED]"
        );
    }

    #[test]
    fn secret_keys_are_recognised() {
        assert!(is_secret_key("aws_secret_access_key"));
        assert!(is_secret_key("aws_session_token"));
        assert!(is_secret_key("azure_storage_account_key"));
        assert!(is_secret_key("google_service_account_key"));
        assert!(!is_secret_key("aws_access_key_id"));
        assert!(!is_secret_key("aws_region"));
    }

    #[test]
    fn not_found_is_not_retryable() {
        let err: Error = object_store::Error::NotFound {
            path: "a".into(),
            source: "missing".into(),
        }
        .into();
        assert_eq!(err.reason, Reason::NotFound);
        assert!(!err.retryable);
    }

    #[test]
    fn server_errors_are_retryable() {
        assert!(server_side_status(
            "Server returned non-2xx status code: 503 Service Unavailable"
        ));
        assert!(!server_side_status(
            "Server returned non-2xx status code: 400 Bad Request"
        ));
    }
}
