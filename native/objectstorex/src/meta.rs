//! Serves `ObjectStoreX.Meta`: object metadata crosses as a complete `%ObjectStoreX.Meta{}`
//! struct whose `last_modified` is a UTC `%DateTime{}`. Building both here costs a fraction of
//! `DateTime.from_unix!/2` in Elixir, which dominated the time of large listings.

use chrono::{Datelike, Timelike};
use object_store::ObjectMeta;
use rustler::{Encoder, Env, Term};

mod atoms {
    rustler::atoms! {
        __struct__,
        meta_module = "Elixir.ObjectStoreX.Meta",
        location,
        size,
        last_modified,
        etag,
        version,
        datetime_module = "Elixir.DateTime",
        calendar,
        iso_calendar = "Elixir.Calendar.ISO",
        year,
        month,
        day,
        hour,
        minute,
        second,
        microsecond,
        std_offset,
        utc_offset,
        zone_abbr,
        time_zone,
    }
}

pub struct Meta(pub ObjectMeta);

impl Encoder for Meta {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        let m = &self.0;
        let keys = [
            atoms::__struct__(),
            atoms::location(),
            atoms::size(),
            atoms::last_modified(),
            atoms::etag(),
            atoms::version(),
        ]
        .map(|k| k.encode(env));
        let values = [
            atoms::meta_module().encode(env),
            m.location.as_ref().encode(env),
            m.size.encode(env),
            utc_datetime(env, &m.last_modified),
            m.e_tag.as_deref().encode(env),
            m.version.as_deref().encode(env),
        ];
        Term::map_from_term_arrays(env, &keys, &values).expect("distinct keys")
    }
}

/// `%DateTime{}` in UTC with microsecond precision, as `DateTime.from_unix!(us, :microsecond)`.
fn utc_datetime<'a>(env: Env<'a>, t: &chrono::DateTime<chrono::Utc>) -> Term<'a> {
    let keys = [
        atoms::__struct__(),
        atoms::calendar(),
        atoms::year(),
        atoms::month(),
        atoms::day(),
        atoms::hour(),
        atoms::minute(),
        atoms::second(),
        atoms::microsecond(),
        atoms::std_offset(),
        atoms::utc_offset(),
        atoms::zone_abbr(),
        atoms::time_zone(),
    ]
    .map(|k| k.encode(env));
    let values = [
        atoms::datetime_module().encode(env),
        atoms::iso_calendar().encode(env),
        t.year().encode(env),
        t.month().encode(env),
        t.day().encode(env),
        t.hour().encode(env),
        t.minute().encode(env),
        // A leap second shows as nanoseconds past 1e9; Elixir has no second 60 here.
        t.second().encode(env),
        ((t.timestamp_subsec_micros() % 1_000_000), 6).encode(env),
        0.encode(env),
        0.encode(env),
        "UTC".encode(env),
        "Etc/UTC".encode(env),
    ];
    Term::map_from_term_arrays(env, &keys, &values).expect("distinct keys")
}
