//! The parts of ObjectStoreX that do not touch the Erlang VM, so that `cargo test` can check
//! them without loading a NIF.

pub mod concat;
pub mod dav;
pub mod error;
pub mod fault;
pub mod gunzip;
pub mod hash;
pub mod pace;
pub mod pool;
pub mod rechunk;
pub mod s3_uploads;
pub mod walk;
