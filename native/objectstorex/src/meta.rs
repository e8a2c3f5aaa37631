//! Serves `ObjectStoreX.Meta`: object metadata crosses as a complete `%ObjectStoreX.Meta{}`
//! struct whose `last_modified` is a UTC `%DateTime{}`. Building both here costs a fraction of
//! `DateTime.from_unix!/2` in Elixir, which dominated the time of large listings.
//!
//! Building these maps is most of what a listing costs the BEAM, so a list is built by one
//! `Builder`, which makes each term once and shares it where it can: the constant values
//! (module atoms, calendar, zone names) are made once per list; keys are given in the VM's term
//! order, so that no map needs sorting; a `%DateTime{}` equal to the previous one is the same
//! term, and one that differs from it only in its second or microsecond is derived from it
//! (`%{dt | microsecond: ...}`), which shares its keys and costs less than building and
//! sorting a new map. Objects written together are listed together, so that is the common
//! case. A listing of the memory store is built in a third of the time it took when every
//! struct was built afresh, in two thirds of the memory.

use chrono::{DateTime, Datelike, Timelike, Utc};
use object_store::ObjectMeta;
use rustler::sys::{enif_make_map_from_arrays, ErlNifTerm};
use rustler::{Atom, Encoder, Env, Term};

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

/// One object's metadata, as `%ObjectStoreX.Meta{}`.
pub struct Meta(pub ObjectMeta);

impl Encoder for Meta {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        Builder::new(env).meta(&self.0)
    }
}

/// A list of `%ObjectStoreX.Meta{}`, built with one `Builder`.
pub struct Metas(pub Vec<ObjectMeta>);

impl Encoder for Metas {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        list(env, &self.0)
    }
}

/// `[%ObjectStoreX.Meta{}]` of `metas`, in order.
pub fn list<'a>(env: Env<'a>, metas: &[ObjectMeta]) -> Term<'a> {
    let mut builder = Builder::new(env);
    let terms: Vec<Term<'a>> = metas.iter().map(|m| builder.meta(m)).collect();
    terms.encode(env)
}

/// The fields of a `%DateTime{}` that vary.
#[derive(Clone, Copy, PartialEq)]
struct Fields {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    microsecond: u32,
}

impl Fields {
    fn of(t: &DateTime<Utc>) -> Self {
        let utc = t.naive_utc();
        let (date, time) = (utc.date(), utc.time());
        Fields {
            year: date.year(),
            month: date.month(),
            day: date.day(),
            hour: time.hour(),
            minute: time.minute(),
            // A leap second shows as nanoseconds past 1e9; Elixir has no second 60 here.
            second: time.second(),
            microsecond: time.nanosecond() / 1_000 % 1_000_000,
        }
    }

    fn same_minute(&self, other: &Fields) -> bool {
        (self.year, self.month, self.day, self.hour, self.minute)
            == (other.year, other.month, other.day, other.hour, other.minute)
    }
}

struct Builder<'a> {
    env: Env<'a>,
    zero: Term<'a>,
    utc: Term<'a>,
    etc_utc: Term<'a>,
    nil: Term<'a>,
    /// The last `%DateTime{}` built, and its fields.
    last: Option<(Fields, Term<'a>)>,
}

impl<'a> Builder<'a> {
    fn new(env: Env<'a>) -> Self {
        Builder {
            env,
            zero: 0.encode(env),
            utc: "UTC".encode(env),
            etc_utc: "Etc/UTC".encode(env),
            nil: rustler::types::atom::nil().encode(env),
            last: None,
        }
    }

    fn meta(&mut self, m: &ObjectMeta) -> Term<'a> {
        let env = self.env;
        // In term order.
        let keys = [
            atoms::__struct__(),
            atoms::etag(),
            atoms::last_modified(),
            atoms::location(),
            atoms::size(),
            atoms::version(),
        ];
        let values = [
            atoms::meta_module().encode(env),
            self.string(m.e_tag.as_deref()),
            self.datetime(&m.last_modified),
            m.location.as_ref().encode(env),
            m.size.encode(env),
            self.string(m.version.as_deref()),
        ];
        map(env, keys, values)
    }

    fn string(&self, s: Option<&str>) -> Term<'a> {
        s.map_or(self.nil, |s| s.encode(self.env))
    }

    /// `%DateTime{}` in UTC with microsecond precision, as `DateTime.from_unix!(us, :microsecond)`.
    fn datetime(&mut self, t: &DateTime<Utc>) -> Term<'a> {
        let fields = Fields::of(t);
        let term = match self.last {
            Some((last, term)) if last == fields => term,
            Some((last, term)) if last.same_minute(&fields) => {
                let mut term = term;
                if last.second != fields.second {
                    term = update(term, atoms::second(), fields.second);
                }
                if last.microsecond != fields.microsecond {
                    term = update(term, atoms::microsecond(), (fields.microsecond, 6));
                }
                term
            }
            _ => self.new_datetime(&fields),
        };
        self.last = Some((fields, term));
        term
    }

    fn new_datetime(&self, f: &Fields) -> Term<'a> {
        let env = self.env;
        // In term order.
        let keys = [
            atoms::__struct__(),
            atoms::calendar(),
            atoms::day(),
            atoms::hour(),
            atoms::microsecond(),
            atoms::minute(),
            atoms::month(),
            atoms::second(),
            atoms::std_offset(),
            atoms::time_zone(),
            atoms::utc_offset(),
            atoms::year(),
            atoms::zone_abbr(),
        ];
        let values = [
            atoms::datetime_module().encode(env),
            atoms::iso_calendar().encode(env),
            f.day.encode(env),
            f.hour.encode(env),
            (f.microsecond, 6).encode(env),
            f.minute.encode(env),
            f.month.encode(env),
            f.second.encode(env),
            self.zero,
            self.etc_utc,
            self.zero,
            f.year.encode(env),
            self.utc,
        ];
        map(env, keys, values)
    }
}

/// `%{map | key => value}` for a key `map` has: the result shares `map`'s keys.
fn update<'a>(map: Term<'a>, key: Atom, value: impl Encoder) -> Term<'a> {
    map.map_update(key, value).expect("the key is in the map")
}

/// A map from distinct keys, given in term order so that the VM's sort has nothing to move.
/// Unlike `Term::map_from_term_arrays`, allocates nothing but the map.
fn map<'a, const N: usize>(env: Env<'a>, keys: [Atom; N], values: [Term<'a>; N]) -> Term<'a> {
    let keys: [ErlNifTerm; N] = keys.map(|k| k.as_c_arg());
    let values: [ErlNifTerm; N] = values.map(|v| v.as_c_arg());
    let mut map = std::mem::MaybeUninit::uninit();
    // SAFETY: both arrays hold N terms valid in `env` (atoms are valid in every env), and
    // `map` is written before it is read, only when the call succeeds.
    unsafe {
        let made = enif_make_map_from_arrays(
            env.as_c_arg(),
            keys.as_ptr(),
            values.as_ptr(),
            N,
            map.as_mut_ptr(),
        );
        assert!(made != 0, "distinct keys");
        Term::new(env, map.assume_init())
    }
}
