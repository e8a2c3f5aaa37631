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

#[derive(Debug, Clone, thiserror::Error)]
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

    /// The same error with `retryable` set as given.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
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

    /// Whether the request that failed this way may still have been carried out by the server:
    /// anything but a refusal the server stated (a 4xx status or its named forms). A lost or
    /// unreadable answer, a timeout or a server error leaves the outcome unknown.
    pub fn may_have_applied(&self) -> bool {
        match self.reason {
            Reason::NotFound
            | Reason::AlreadyExists
            | Reason::PreconditionFailed
            | Reason::NotModified
            | Reason::PermissionDenied
            | Reason::Unauthenticated
            | Reason::NotSupported
            | Reason::InvalidPath
            | Reason::InvalidArgument
            | Reason::InvalidRange
            | Reason::Configuration => false,
            _ => !client_side_status(&self.message),
        }
    }

    /// Removes every configured secret from the message; called before an error leaves a store.
    pub fn redact(mut self, secrets: &[String]) -> Self {
        self.message = redact(&self.message, secrets);
        self
    }
}

/// Query parameters, headers and XML elements that carry credentials or signatures, wherever
/// they appear in a message (a server may quote the request back, as S3 does on signature
/// errors). Matched without regard to case.
const SECRET_PARAMS: &[&str] = &[
    "sig=",
    "signature=",
    "x-amz-signature=",
    "x-amz-security-token=",
    "x-amz-credential=",
    "x-amz-security-token:",
    "authorization:",
    "token=",
];
const SECRET_ELEMENTS: &[&str] = &[
    "SignatureProvided",
    "StringToSign",
    "StringToSignBytes",
    "CanonicalRequest",
    "CanonicalRequestBytes",
];
const REDACTED: &str = "[REDACTED]";

/// Removes credentials from a message by their structure, then every known secret value: a
/// URL's userinfo and query string, signature and token parameters, the request a server
/// quotes back, and each secret as written, percent-encoded, and without a leading `?`.
pub fn redact(message: &str, secrets: &[String]) -> String {
    let mut out = redact_urls(message);
    for param in SECRET_PARAMS {
        out = redact_after(&out, param);
    }
    for element in SECRET_ELEMENTS {
        out = redact_element(&out, element);
    }
    for secret in secrets {
        for form in secret_forms(secret) {
            if form.len() >= 4 {
                out = out.replace(form.as_str(), REDACTED);
            }
        }
    }
    out
}

fn redact_urls(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find("://") {
        let (before, url_and_more) = rest.split_at(start + 3);
        out.push_str(before);
        let end = url_and_more
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '<' | '>'))
            .unwrap_or(url_and_more.len());
        let (url, more) = url_and_more.split_at(end);
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let url = match url[..authority_end].rfind('@') {
            Some(at) => format!("{REDACTED}{}", &url[at..]),
            None => url.to_string(),
        };
        match url.find('?') {
            Some(q) => {
                out.push_str(&url[..q]);
                out.push('?');
                out.push_str(REDACTED);
            }
            None => out.push_str(&url),
        }
        rest = more;
    }
    out.push_str(rest);
    out
}

/// Replaces what follows each (case-insensitive) `marker` up to a delimiter.
fn redact_after(message: &str, marker: &str) -> String {
    let lower = message.to_ascii_lowercase();
    let mut out = String::with_capacity(message.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(marker) {
        let mut value_start = pos + found + marker.len();
        // A header's value follows its colon after optional spaces.
        value_start +=
            message[value_start..].len() - message[value_start..].trim_start_matches(' ').len();
        // A marker inside a longer name (`x-amz-signature=` in `sig=`'s search) is still a
        // credential parameter; only an empty value is left alone.
        let value_len = message[value_start..]
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '&' | '"' | '\'' | '<' | '>' | ',' | ';' | ')')
            })
            .unwrap_or(message.len() - value_start);
        out.push_str(&message[pos..value_start]);
        if value_len > 0 && &message[value_start..value_start + value_len] != REDACTED {
            out.push_str(REDACTED);
        } else {
            out.push_str(&message[value_start..value_start + value_len]);
        }
        pos = value_start + value_len;
    }
    out.push_str(&message[pos..]);
    out
}

/// Replaces the content of every `<element>...</element>`.
fn redact_element(message: &str, element: &str) -> String {
    let (open, close) = (format!("<{element}>"), format!("</{element}>"));
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(&open) {
        let content = start + open.len();
        let Some(len) = rest[content..].find(&close) else {
            break;
        };
        out.push_str(&rest[..content]);
        out.push_str(REDACTED);
        rest = &rest[content + len..];
    }
    out.push_str(rest);
    out
}

/// The ways a secret may be written in a message.
fn secret_forms(secret: &str) -> Vec<String> {
    let trimmed = secret.trim().trim_start_matches('?');
    let mut forms = vec![
        secret.to_string(),
        trimmed.to_string(),
        percent_encode(trimmed),
    ];
    // A SAS token is a query string: each of its values is secret on its own too.
    if trimmed.contains('=') {
        forms.extend(
            trimmed
                .split('&')
                .filter_map(|pair| pair.split_once('=').map(|(_, v)| v.to_string()))
                .filter(|v| v.len() >= 8),
        );
    }
    // Longest first, so that a secret's longer form is not cut by a shorter one.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl From<object_store::Error> for Error {
    fn from(err: object_store::Error) -> Self {
        let message = err.to_string();
        // An error of ours carried inside object_store's (a fault injected on purpose, a local
        // deadline) already says what it is and whether a retry may succeed.
        if let Some(ours) = carried(&err) {
            return Error {
                reason: ours.reason,
                message,
                retryable: ours.retryable,
            };
        }
        let reason = reason_of(&err);
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

/// The first error of this crate in `err`'s source chain.
fn carried(err: &object_store::Error) -> Option<&Error> {
    let mut source: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(e) = source {
        if let Some(ours) = e.downcast_ref::<Error>() {
            return Some(ours);
        }
        source = e.source();
    }
    None
}

/// The reason an `object_store` error is reported with, without consuming it.
pub fn reason_of(err: &object_store::Error) -> Reason {
    use object_store::Error as E;
    if let Some(ours) = carried(err) {
        return ours.reason;
    }
    match err {
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
        _ => classify_generic(err),
    }
}

/// object_store reports transport failures and odd HTTP statuses as `Generic`; the source chain
/// still says what happened.
fn classify_generic(err: &object_store::Error) -> Reason {
    let mut source: Option<&(dyn StdError + 'static)> = err.source();
    while let Some(e) = source {
        // A local operation past its deadline.
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return Reason::Timeout;
            }
        }
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
        // What rclone, Azurite and the S3 emulators answer a range of an empty object with: a
        // 206 whose Content-Range names no byte, which object_store cannot parse.
        || text.contains("CONTENT_RANGE header: \"bytes 0--1/0\"")
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

/// A 4xx answer other than throttling or a request timeout: the server refused the request.
fn client_side_status(message: &str) -> bool {
    (400..500)
        .filter(|code| ![408, 429].contains(code))
        .any(|code| message.contains(&format!("status code: {code}")))
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
    fn only_a_stated_refusal_rules_out_the_request_having_applied() {
        let refused = Error::new(
            Reason::Generic,
            "Client error with status code: 400 Bad Request",
        );
        assert!(!refused.may_have_applied());
        assert!(!Error::new(Reason::PermissionDenied, "denied").may_have_applied());
        let throttled = Error::new(Reason::Generic, "Server returned status code: 429");
        assert!(throttled.may_have_applied());
        assert!(Error::new(Reason::Generic, "status code: 503").may_have_applied());
        assert!(Error::new(Reason::NetworkError, "connection closed").may_have_applied());
        assert!(Error::new(Reason::Generic, "error decoding response body").may_have_applied());
    }

    #[test]
    fn redacts_by_structure() {
        let msg = "GET http://alice:hunter22@h:1/dav/k failed";
        assert_eq!(redact(msg, &[]), "GET http://[REDACTED]@h:1/dav/k failed");
        let msg = "<Error><StringToSign>AWS4 x-amz-security-token:tok</StringToSign>\
                   <SignatureProvided>abc</SignatureProvided></Error>";
        let out = redact(msg, &[]);
        assert!(!out.contains("tok") && !out.contains("abc"), "{out}");
        let out = redact(
            "X-Amz-Security-Token=FwoGZXIvYXdz&X-Amz-Signature=deadbeef x",
            &[],
        );
        assert!(!out.contains("FwoG") && !out.contains("deadbeef"), "{out}");
        assert!(out.ends_with(" x"), "{out}");
    }

    #[test]
    fn redacts_sas_tokens_in_every_form() {
        let sas = "?sv=2022-11-02&ss=b&sig=Zm9vYmFyYmF6cXV4%2Bslash%3D".to_string();
        let secrets = vec![sas.clone()];
        for msg in [
            format!("request with {sas} failed"),
            format!("request with {} failed", sas.trim_start_matches('?')),
            "sig value Zm9vYmFyYmF6cXV4%2Bslash%3D leaked".to_string(),
        ] {
            let out = redact(&msg, &secrets);
            assert!(!out.contains("Zm9vYmFyYmF6cXV4"), "{out}");
        }
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
    fn a_timed_out_io_error_is_a_timeout() {
        let err: Error = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow")),
        }
        .into();
        assert_eq!(err.reason, Reason::Timeout);
        assert!(err.retryable);
    }

    #[test]
    fn an_error_of_ours_inside_object_stores_keeps_its_reason_and_retryability() {
        let ours = Error::new(Reason::Timeout, "injected").retryable(false);
        let err = object_store::Error::NotFound {
            path: "a/b".into(),
            source: Box::new(ours),
        };
        assert_eq!(reason_of(&err), Reason::Timeout);
        let err: Error = err.into();
        assert_eq!(err.reason, Reason::Timeout);
        assert!(!err.retryable);
        assert!(err.message.contains("injected"), "{}", err.message);

        let generic = object_store::Error::Generic {
            store: "Fault",
            source: Box::new(Error::new(Reason::PermissionDenied, "no").retryable(true)),
        };
        let err: Error = generic.into();
        assert_eq!(err.reason, Reason::PermissionDenied);
        assert!(err.retryable);
    }

    #[test]
    fn a_range_of_an_empty_object_is_an_invalid_range() {
        let err = object_store::Error::Generic {
            store: "HTTP",
            source: "Failed to parse value for CONTENT_RANGE header: \"bytes 0--1/0\"".into(),
        };
        assert_eq!(reason_of(&err), Reason::InvalidRange);
        let other = object_store::Error::Generic {
            store: "HTTP",
            source: "Failed to parse value for CONTENT_RANGE header: \"bytes x\"".into(),
        };
        assert_eq!(reason_of(&other), Reason::Generic);
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
