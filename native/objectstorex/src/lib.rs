//! ObjectStoreX native library: a Rustler NIF over the `object_store` crate.
//!
//! Every NIF that touches the network or the disk returns at once with a task handle; the work
//! runs on one Tokio runtime and its result reaches the caller as a `{ref, result}` message.

mod args;
mod download;
mod error;
mod fault;
mod local;
mod meta;
mod multipart;
mod object;
mod payload;
mod read;
mod runtime;
mod store;
mod stream;
mod upload;

fn load(_env: rustler::Env, _info: rustler::Term) -> bool {
    runtime::start().is_ok()
}

rustler::init!("Elixir.ObjectStoreX.Native", load = load);
