//! The S3 server of `make bench`: the file system of s3s-fs behind s3s, served as the `s3s-fs`
//! binary serves it (same arguments), but with `TCP_NODELAY` on every connection, as S3
//! services set it. Without it a small object's body, written after its headers, waits until
//! the client acknowledges the headers, which a client may delay by up to 40 ms; a run of
//! small GETs measures that delay rather than the client (ObjectStoreX.Sync copied 5,008
//! objects S3 to local in 7.5-8.3 s with it, 3.5-5.3 s without; raw object_store got 2,400
//! GETs of 1 KiB a second with it, 8,500 without).
//!
//! `objectstorex-bench-s3s --host HOST --port PORT --access-key KEY --secret-key SECRET ROOT`

use std::path::PathBuf;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use s3s_fs::FileSystem;
use tokio::net::TcpListener;

struct Args {
    host: String,
    port: u16,
    access_key: String,
    secret_key: String,
    root: PathBuf,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let (mut host, mut port, mut access_key, mut secret_key, mut root) =
        (None, None, None, None, None);
    while let Some(arg) = argv.next() {
        let mut value = || argv.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--host" => host = Some(value()?),
            "--port" => port = Some(value()?.parse().map_err(|e| format!("--port: {e}"))?),
            "--access-key" => access_key = Some(value()?),
            "--secret-key" => secret_key = Some(value()?),
            "--version" => {
                println!("objectstorex-bench-s3s {}", env!("CARGO_PKG_VERSION"));
                std::process::exit(0);
            }
            other if !other.starts_with("--") && root.is_none() => root = Some(other.into()),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok(Args {
        host: host.ok_or("--host is required")?,
        port: port.ok_or("--port is required")?,
        access_key: access_key.ok_or("--access-key is required")?,
        secret_key: secret_key.ok_or("--secret-key is required")?,
        root: root.ok_or("the root directory is required")?,
    })
}

#[tokio::main]
async fn main() {
    // Errors to stderr, as s3s-fs logs them (RUST_LOG for more): the sync bench reads them.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_ansi(false)
        .init();
    let args = parse(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!("objectstorex-bench-s3s: {e}");
        std::process::exit(2);
    });
    let fs = FileSystem::new(&args.root).unwrap_or_else(|e| {
        eprintln!("objectstorex-bench-s3s: {}: {e:?}", args.root.display());
        std::process::exit(1);
    });
    let mut service = S3ServiceBuilder::new(fs);
    service.set_auth(SimpleAuth::from_single(args.access_key, args.secret_key));
    let service = service.build();

    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .unwrap_or_else(|e| {
            eprintln!("objectstorex-bench-s3s: {}:{}: {e}", args.host, args.port);
            std::process::exit(1);
        });
    let http = Builder::new(TokioExecutor::new());
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        let conn = http
            .serve_connection(TokioIo::new(socket), service.clone())
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
