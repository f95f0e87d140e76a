//! Serves the Prometheus query API ([`vigil_collector::promql::api::router`]) over an
//! existing data directory on 127.0.0.1, without authentication, for the interop script
//! `tests/interop/promql_compare.sh` and benchmarks: `promql_serve DATA_DIR [PORT]` prints
//! `listening on http://127.0.0.1:PORT` (port 0, the default, picks a free one) and serves
//! until it is killed. The collector's own HTTP listener nests the same router at `/api/v1`.

use std::path::PathBuf;
use std::time::Duration;

use vigil_collector::promql::api::router;
use vigil_collector::store::{Store, StoreConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let data_dir = PathBuf::from(args.next().ok_or("usage: promql_serve DATA_DIR [PORT]")?);
    let port: u16 = match args.next() {
        Some(port) => port
            .parse()
            .map_err(|_| format!("port '{port}' is not a number"))?,
        None => 0,
    };
    let mut config = StoreConfig::new(&data_dir);
    // The imported files may be older than the default raw retention of thirty days.
    config.raw_retention = Duration::from_secs(100 * 365 * 86_400);
    config.rollup_retention = config.raw_retention;
    let store = Store::open_existing(&config)
        .map_err(|error| format!("opening the store in {}: {error}", data_dir.display()))?;
    let app = axum::Router::new().nest("/api/v1", router(store));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
