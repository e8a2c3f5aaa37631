//! Serves `ObjectStoreX.Meta`: object metadata crosses as
//! `{location, size, last_modified_unix_microseconds, etag, version}`.

use object_store::ObjectMeta;
use rustler::{Encoder, Env, Term};

pub struct Meta(pub ObjectMeta);

impl Encoder for Meta {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let m = &self.0;
        (
            m.location.as_ref(),
            m.size,
            m.last_modified.timestamp_micros(),
            m.e_tag.as_deref(),
            m.version.as_deref(),
        )
            .encode(env)
    }
}
