//! The ceiling for any binding of object_store: the benchmark's work done in Rust directly.
//!
//! raw download STORE PATH SIZE_MIB CHUNK_MIB
//! raw upload   STORE PATH SIZE_MIB PART_MIB CONCURRENCY
//!
//! STORE is `memory`, `local:DIR` or `s3:ENDPOINT:BUCKET` (credentials "test"/"test").
//! Prints `RESULT op store bytes micros`. A memory download first puts the object, untimed.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

const MIB: usize = 1024 * 1024;

fn open(spec: &str) -> Arc<dyn ObjectStore> {
    if spec == "memory" {
        Arc::new(InMemory::new())
    } else if let Some(dir) = spec.strip_prefix("local:") {
        std::fs::create_dir_all(dir).expect("create local root");
        Arc::new(LocalFileSystem::new_with_prefix(dir).expect("local store"))
    } else if let Some(rest) = spec.strip_prefix("s3:") {
        let (endpoint, bucket) = rest.rsplit_once(':').expect("s3:ENDPOINT:BUCKET");
        let s3 = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_allow_http(true)
            .build()
            .expect("s3 store");
        Arc::new(s3)
    } else {
        panic!("unknown store {spec}")
    }
}

/// One MiB of bytes that do not compress, repeated: generating data must not be what is timed.
fn block() -> Bytes {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let data: Vec<u8> = (0..MIB)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    Bytes::from(data)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (op, spec, path) = (&args[1], &args[2], Path::from(args[3].as_str()));
    let size_mib: usize = args[4].parse().expect("SIZE_MIB");
    let store = open(spec);
    let kind = spec.split(':').next().unwrap_or(spec);
    match op.as_str() {
        "download" => {
            if kind == "memory" {
                let payload: PutPayload = std::iter::repeat_n(block(), size_mib).collect();
                store.put(&path, payload).await.expect("put");
            }
            let chunk_size: usize = args[5].parse::<usize>().expect("CHUNK_MIB") * MIB;
            let started = Instant::now();
            let mut body = store.get(&path).await.expect("get").into_stream();
            let (mut bytes, mut chunks) = (0usize, 0usize);
            // Walk the body in chunk-size pieces (zero-copy slices), as a consumer of
            // ObjectStoreX's stream sees it.
            while let Some(buf) = body.next().await {
                let mut buf = buf.expect("chunk");
                while !buf.is_empty() {
                    let piece = buf.split_to(chunk_size.min(buf.len()));
                    bytes += piece.len();
                    chunks += 1;
                }
            }
            assert!(chunks > 0 || bytes == 0);
            let micros = started.elapsed().as_micros();
            println!("RESULT download {kind} {bytes} {micros}");
        }
        "upload" => {
            let part_mib: usize = args[5].parse().expect("PART_MIB");
            let concurrency: usize = args[6].parse().expect("CONCURRENCY");
            let block = block();
            let started = Instant::now();
            let upload = store.put_multipart(&path).await.expect("put_multipart");
            let mut writer = WriteMultipart::new_with_chunk_size(upload, part_mib * MIB);
            for _ in 0..size_mib {
                writer
                    .wait_for_capacity(concurrency)
                    .await
                    .expect("capacity");
                writer.put(block.clone());
            }
            writer.finish().await.expect("finish");
            let micros = started.elapsed().as_micros();
            println!("RESULT upload {kind} {} {micros}", size_mib * MIB);
        }
        other => panic!("unknown op {other}"),
    }
}
