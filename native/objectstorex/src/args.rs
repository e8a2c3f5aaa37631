//! Term-to-`object_store` conversions, the native twin of `ObjectStoreX.Args`: paths, prefixes,
//! put and get options, ranges and times, checked once here for every feature that takes them.

use chrono::{DateTime, Utc};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, PutMode, PutOptions, TagSet, UpdateVersion,
};
use rustler::{Atom, NifMap};

use crate::error::{NifError, Reason};

mod atoms {
    rustler::atoms! {
        overwrite, create, update, bounded, offset, suffix,
        content_type, content_encoding, content_disposition, content_language, cache_control,
    }
}

pub fn parse_path(arg: &str, path: &str) -> Result<Path, NifError> {
    if path.is_empty() {
        return Err(NifError::new(
            Reason::InvalidPath,
            format!("{arg} is empty"),
        ));
    }
    Path::parse(path)
        .map_err(|e| NifError::new(Reason::InvalidPath, format!("invalid {arg} {path:?}: {e}")))
}

pub fn parse_prefix(prefix: Option<String>) -> Result<Option<Path>, NifError> {
    prefix
        .filter(|p| !p.is_empty())
        .map(|p| {
            Path::parse(&p).map_err(|e| {
                NifError::new(Reason::InvalidPath, format!("invalid :prefix {p:?}: {e}"))
            })
        })
        .transpose()
}

fn datetime(micros: Option<i64>) -> Option<DateTime<Utc>> {
    micros.and_then(DateTime::from_timestamp_micros)
}

#[derive(NifMap)]
pub struct PutOpts {
    mode: Atom,
    etag: Option<String>,
    version: Option<String>,
    attributes: Vec<(Atom, String)>,
    metadata: Vec<(String, String)>,
    tags: Vec<(String, String)>,
}

/// `ascii_headers`: the store sends attributes and metadata only as ASCII (Azure).
pub fn put_options(opts: PutOpts, ascii_headers: bool) -> Result<PutOptions, NifError> {
    let mode = if opts.mode == atoms::overwrite() {
        PutMode::Overwrite
    } else if opts.mode == atoms::create() {
        PutMode::Create
    } else if opts.mode == atoms::update() {
        PutMode::Update(UpdateVersion {
            e_tag: opts.etag,
            version: opts.version,
        })
    } else {
        return Err(NifError::invalid_argument("invalid :mode"));
    };
    let mut attributes = Attributes::new();
    for (key, value) in opts.attributes {
        let (attribute, name) = if key == atoms::content_type() {
            (Attribute::ContentType, ":content_type")
        } else if key == atoms::content_encoding() {
            (Attribute::ContentEncoding, ":content_encoding")
        } else if key == atoms::content_disposition() {
            (Attribute::ContentDisposition, ":content_disposition")
        } else if key == atoms::content_language() {
            (Attribute::ContentLanguage, ":content_language")
        } else if key == atoms::cache_control() {
            (Attribute::CacheControl, ":cache_control")
        } else {
            return Err(NifError::invalid_argument("unknown attribute"));
        };
        if ascii_headers && !value.is_ascii() {
            return Err(not_ascii(name));
        }
        attributes.insert(attribute, value.into());
    }
    for (key, value) in opts.metadata {
        if ascii_headers && !value.is_ascii() {
            return Err(not_ascii(&format!(":metadata {key:?}")));
        }
        attributes.insert(Attribute::Metadata(key.into()), value.into());
    }
    let mut tags = TagSet::default();
    for (key, value) in opts.tags {
        tags.push(&key, &value);
    }
    Ok(PutOptions {
        mode,
        tags,
        attributes,
        ..Default::default()
    })
}

fn not_ascii(what: &str) -> NifError {
    NifError::invalid_argument(format!(
        "{what} must be ASCII on this store (Azure sends it as an ASCII header)"
    ))
}

#[derive(NifMap)]
pub struct GetOpts {
    range: Option<(Atom, u64, u64)>,
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<i64>,
    if_unmodified_since: Option<i64>,
    version: Option<String>,
    head: bool,
}

/// Ranges arrive as `{:bounded, start, end_exclusive}`, `{:offset, n, _}` or `{:suffix, n, _}`.
pub fn get_range((kind, a, b): (Atom, u64, u64)) -> Result<GetRange, NifError> {
    if kind == atoms::bounded() {
        Ok(GetRange::Bounded(a..b))
    } else if kind == atoms::offset() {
        Ok(GetRange::Offset(a))
    } else if kind == atoms::suffix() {
        Ok(GetRange::Suffix(a))
    } else {
        Err(NifError::invalid_argument("invalid :range"))
    }
}

pub fn get_options(opts: GetOpts) -> Result<GetOptions, NifError> {
    Ok(GetOptions {
        range: opts.range.map(get_range).transpose()?,
        if_match: opts.if_match,
        if_none_match: opts.if_none_match,
        if_modified_since: datetime(opts.if_modified_since),
        if_unmodified_since: datetime(opts.if_unmodified_since),
        version: opts.version,
        head: opts.head,
        ..Default::default()
    })
}
