//! Serves `ObjectStoreX.Error`: encodes the core error once at the boundary as
//! `{reason, message, retryable}`.

use rustler::Atom;

pub use objectstorex_core::error::{redact, Error as NifError, Reason};

mod atoms {
    rustler::atoms! {
        not_found, already_exists, precondition_failed, not_modified, permission_denied,
        unauthenticated, not_supported, invalid_path, invalid_argument, invalid_range, timeout,
        cancelled, network_error, configuration, internal, generic,
    }
}

fn reason_atom(reason: Reason) -> Atom {
    match reason {
        Reason::NotFound => atoms::not_found(),
        Reason::AlreadyExists => atoms::already_exists(),
        Reason::PreconditionFailed => atoms::precondition_failed(),
        Reason::NotModified => atoms::not_modified(),
        Reason::PermissionDenied => atoms::permission_denied(),
        Reason::Unauthenticated => atoms::unauthenticated(),
        Reason::NotSupported => atoms::not_supported(),
        Reason::InvalidPath => atoms::invalid_path(),
        Reason::InvalidArgument => atoms::invalid_argument(),
        Reason::InvalidRange => atoms::invalid_range(),
        Reason::Timeout => atoms::timeout(),
        Reason::Cancelled => atoms::cancelled(),
        Reason::NetworkError => atoms::network_error(),
        Reason::Configuration => atoms::configuration(),
        Reason::Internal => atoms::internal(),
        Reason::Generic => atoms::generic(),
    }
}

/// The term an error crosses as.
pub fn term(err: &NifError) -> (Atom, String, bool) {
    // Every message crosses here: whatever built it, credentials are removed by structure.
    (
        reason_atom(err.reason),
        redact(&err.message, &[]),
        err.retryable,
    )
}
