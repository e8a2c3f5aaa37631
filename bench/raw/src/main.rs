//! The ceiling for any binding of object_store: the benchmark's work done in Rust directly.
//!
//! objectstorex_bench_raw WORKLOAD STORE ARGS...
//!
//!   upload    SIZE_MIB PART_MIB CONCURRENCY   WriteMultipart to bench/big.bin
//!   download  SIZE_MIB CHUNK_MIB              streaming get of bench/big.bin, each chunk
//!                                             handed to a consumer thread
//!   put_many  COUNT SIZE_BYTES CONCURRENCY    bench/many-SIZE_BYTES/NNNNNN
//!   get_many  COUNT SIZE_BYTES CONCURRENCY
//!   list      COUNT                           everything under bench/list/
//!   fill_list COUNT                           writes COUNT empty objects under bench/list/
//!
//! STORE is `memory`, `local:DIR` or `s3:ENDPOINT:BUCKET` (credentials from AWS_ACCESS_KEY_ID
//! and AWS_SECRET_ACCESS_KEY, default "test"). Prints `RESULT units micros`, units being bytes
//! or operations, after `CPU micros`, the process's user + system time during the timed part.
//! With `memory`, reads first write their own data, untimed. The timed part begins no earlier
//! than `BENCH_START_AT`, if set (see bench/bench.py, BENCH_SETTLE).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};

const MIB: usize = 1024 * 1024;
const BIG: &str = "bench/big.bin";

fn open(spec: &str) -> Arc<dyn ObjectStore> {
    if spec == "memory" {
        Arc::new(InMemory::new())
    } else if let Some(dir) = spec.strip_prefix("local:") {
        std::fs::create_dir_all(dir).expect("create local root");
        Arc::new(LocalFileSystem::new_with_prefix(dir).expect("local store"))
    } else if let Some(rest) = spec.strip_prefix("s3:") {
        let (endpoint, bucket) = rest.rsplit_once(':').expect("s3:ENDPOINT:BUCKET");
        let env = |key: &str| std::env::var(key).unwrap_or_else(|_| "test".to_string());
        let s3 = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id(env("AWS_ACCESS_KEY_ID"))
            .with_secret_access_key(env("AWS_SECRET_ACCESS_KEY"))
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

/// User + system time of this process, every thread, from /proc/self/stat (as the other
/// contenders read it: the same source and 10 ms resolution for all).
fn cpu_micros() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let (_, fields) = stat.rsplit_once(')').expect("stat has a command name");
    let fields: Vec<&str> = fields.split_whitespace().collect();
    // Fields 14 and 15 of the file (utime, stime), in clock ticks of 10 ms.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks * 10_000
}

/// When the timed part started, by the clock and by the process's CPU time.
struct Started {
    at: Instant,
    cpu: u64,
}

impl Started {
    /// The timed part starts now, or at `BENCH_START_AT` (seconds since the epoch) if that is
    /// later: the driver sets it so that every contender's timed part starts at the same moment
    /// after the driver's `sync`, whatever its start-up took. Prints `LATE micros` if that
    /// moment had passed.
    fn now() -> Self {
        wait_for_start();
        Started {
            cpu: cpu_micros(),
            at: Instant::now(),
        }
    }
}

fn wait_for_start() {
    let Some(at) = std::env::var("BENCH_START_AT")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
    else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs_f64();
    if at > now {
        std::thread::sleep(std::time::Duration::from_secs_f64(at - now));
    } else {
        println!("LATE {}", ((now - at) * 1e6) as u64);
    }
}

fn arg(args: &[String], i: usize, name: &str) -> usize {
    args.get(i)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("{name} expected as argument {i}"))
}

fn many_path(size: usize, i: usize) -> Path {
    Path::from(format!("bench/many-{size}/{i:06}"))
}

async fn upload(store: &Arc<dyn ObjectStore>, size_mib: usize, part_mib: usize, inflight: usize) {
    let block = block();
    let upload = store
        .put_multipart(&Path::from(BIG))
        .await
        .expect("put_multipart");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_mib * MIB);
    for _ in 0..size_mib {
        writer.wait_for_capacity(inflight).await.expect("capacity");
        writer.put(block.clone());
    }
    writer.finish().await.expect("finish");
}

async fn put_many(store: &Arc<dyn ObjectStore>, count: usize, size: usize, inflight: usize) {
    let body = block().slice(0..size);
    futures::stream::iter(0..count)
        .map(|i| {
            let payload = PutPayload::from_bytes(body.clone());
            async move { store.put(&many_path(size, i), payload).await }
        })
        .buffer_unordered(inflight)
        .try_collect::<Vec<_>>()
        .await
        .expect("put");
}

// Empty objects: a listing reads no data, and on a disk mounted with `discard` removing a
// million 1-byte files takes many minutes (one discard per freed block); empty ones free none.
async fn fill_list(store: &Arc<dyn ObjectStore>, count: usize) {
    futures::stream::iter(0..count)
        .map(|i| async move {
            let path = Path::from(format!("bench/list/{i:06}"));
            store.put(&path, PutPayload::new()).await
        })
        .buffer_unordered(64)
        .try_collect::<Vec<_>>()
        .await
        .expect("fill_list");
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (workload, spec) = (args[1].as_str(), args[2].as_str());
    let store = open(spec);
    let memory = spec == "memory";

    let (units, started) = match workload {
        "upload" => {
            let size_mib = arg(&args, 3, "SIZE_MIB");
            let started = Started::now();
            upload(
                &store,
                size_mib,
                arg(&args, 4, "PART_MIB"),
                arg(&args, 5, "CONCURRENCY"),
            )
            .await;
            (size_mib * MIB, started)
        }
        "download" => {
            let size_mib = arg(&args, 3, "SIZE_MIB");
            let chunk_size = arg(&args, 4, "CHUNK_MIB") * MIB;
            if memory {
                let payload: PutPayload = std::iter::repeat_n(block(), size_mib).collect();
                store.put(&Path::from(BIG), payload).await.expect("put");
            }
            let started = Started::now();
            let mut body = store
                .get(&Path::from(BIG))
                .await
                .expect("get")
                .into_stream();
            // Hand each chunk-size piece (a zero-copy slice) to a consumer on another thread
            // through a channel of two, as a binding hands chunks to its caller: the in-memory
            // store's body is one buffer, and slicing it alone would measure nothing.
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(2);
            let consumer = std::thread::spawn(move || {
                let mut bytes = 0usize;
                while let Some(chunk) = rx.blocking_recv() {
                    bytes += chunk.len();
                }
                bytes
            });
            while let Some(buf) = body.next().await {
                let mut buf = buf.expect("chunk");
                while !buf.is_empty() {
                    let piece = buf.split_to(chunk_size.min(buf.len()));
                    tx.send(piece).await.expect("consumer alive");
                }
            }
            drop(tx);
            (consumer.join().expect("consumer"), started)
        }
        "put_many" => {
            let count = arg(&args, 3, "COUNT");
            let started = Started::now();
            put_many(
                &store,
                count,
                arg(&args, 4, "SIZE_BYTES"),
                arg(&args, 5, "CONCURRENCY"),
            )
            .await;
            (count, started)
        }
        "get_many" => {
            let (count, size) = (arg(&args, 3, "COUNT"), arg(&args, 4, "SIZE_BYTES"));
            let inflight = arg(&args, 5, "CONCURRENCY");
            if memory {
                put_many(&store, count, size, inflight).await;
            }
            let started = Started::now();
            let sizes: Vec<usize> = futures::stream::iter(0..count)
                .map(|i| {
                    let store = &store;
                    async move { store.get(&many_path(size, i)).await?.bytes().await }
                })
                .buffer_unordered(inflight)
                .map_ok(|body| body.len())
                .try_collect()
                .await
                .expect("get");
            assert!(sizes.iter().all(|&n| n == size), "short body");
            (count, started)
        }
        "list" => {
            let count = arg(&args, 3, "COUNT");
            if memory {
                fill_list(&store, count).await;
            }
            let started = Started::now();
            let prefix = Path::from("bench/list");
            let seen = store
                .list(Some(&prefix))
                .try_fold(0usize, |n, _| async move { Ok(n + 1) })
                .await
                .expect("list");
            assert_eq!(seen, count, "listed {seen} entries, expected {count}");
            (seen, started)
        }
        "fill_list" => {
            let count = arg(&args, 3, "COUNT");
            let started = Started::now();
            fill_list(&store, count).await;
            (count, started)
        }
        other => panic!("unknown workload {other}"),
    };
    let micros = started.at.elapsed().as_micros();
    println!("CPU {}", cpu_micros() - started.cpu);
    println!("RESULT {units} {micros}");
}
