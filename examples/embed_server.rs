//! Embedding the REST witness server in another program.
//!
//! `zfs-sync-http` is a library as well as the `zfs-sync-server` binary: [`AppState`] holds
//! the store, the sync service and the settings, and [`app`] is the whole HTTP application
//! (API, `/openapi.json`, `/docs`, `/metrics`) as a poem endpoint to serve however the host
//! program likes. Here it runs on a SQLite file in a temporary directory, on 127.0.0.1 with
//! a port the system picks; the program asks itself for its health and registers a host with
//! a fresh admin key, prints the answers and stops. With `--serve` it keeps serving (with the
//! scheduler, as `zfs-sync-server` does) until Ctrl-C.
//!
//!     cargo run -p zfs-sync-examples --example embed_server
//!     cargo run -p zfs-sync-examples --example embed_server -- --serve

use std::error::Error;
use std::net::SocketAddr;

use chrono::Utc;
use poem::Server;
use poem::listener::{Acceptor, Listener, TcpListener};
use serde_json::{Value, json};
use tokio::sync::watch;
use zfs_sync::service::auth::create_admin_key;
use zfs_sync_http::config::Settings;
use zfs_sync_http::{AppState, app, scheduler};

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let serve = std::env::args().skip(1).any(|a| a == "--serve");

    // The store: a SQLite file, created and migrated on open.
    let dir = tempfile::tempdir()?;
    let settings = Settings {
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("zfs_sync.db").display()
        )),
        ..Settings::default()
    };
    let store = zfs_sync_http::store::open(&settings).await?;
    let admin_key = create_admin_key(store.as_ref(), "embedded example", Utc::now())
        .await?
        .key;
    let state = AppState::new(store, settings);

    // The server, on a port the system picks.
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let addr: SocketAddr = *acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr())
        .ok_or("the listener has no socket address")?;
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let scheduler = serve.then(|| tokio::spawn(scheduler::run(state.clone(), stop_rx.clone())));
    let server = tokio::spawn(
        Server::new_with_acceptor(acceptor).run_with_graceful_shutdown(
            app(state),
            async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            },
            None,
        ),
    );
    let base = format!("http://{addr}/api/v1");
    println!("serving on http://{addr}");

    // The program talks to its own server like any client.
    let client = reqwest::Client::new();
    let health = client.get(format!("{base}/health")).send().await?;
    println!("GET /api/v1/health -> {}", health.status());
    println!("{}", health.json::<Value>().await?);
    let created = client
        .post(format!("{base}/systems"))
        .header("X-API-Key", &admin_key)
        .json(&json!({"hostname": "hub", "ssh_user": "zfs"}))
        .send()
        .await?;
    let status = created.status();
    let system = created.json::<Value>().await?;
    println!("POST /api/v1/systems -> {status}");
    println!("registered {} as {}", system["hostname"], system["id"]);

    if serve {
        println!("admin key: {admin_key}; Ctrl-C stops");
        tokio::signal::ctrl_c().await?;
    }
    let _ = stop_tx.send(true);
    server.await??;
    if let Some(scheduler) = scheduler {
        scheduler.await?;
    }
    if !status.is_success() {
        return Err(format!("registering a host failed: {status} {system}").into());
    }
    Ok(())
}
