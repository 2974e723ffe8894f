//! The HTTP endpoint of a process's metrics: `GET /metrics` (Prometheus text format) and
//! `GET /healthz` (200 while the process's main loop is alive, 503 once it has been silent
//! too long). Anything else is a 404.
//!
//! hyper's server, already in the build for the ECS agent client: two read-only routes do
//! not need a web framework.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Whether the process's main loop is alive: it calls [`Health::beat`] on every turn, and
/// `/healthz` fails once no beat came for `max_silence`.
#[derive(Debug, Clone)]
pub struct Health {
    started: Instant,
    last_beat_ms: Arc<AtomicU64>,
    max_silence: Duration,
}

impl Health {
    pub fn new(max_silence: Duration) -> Health {
        Health {
            started: Instant::now(),
            last_beat_ms: Arc::new(AtomicU64::new(0)),
            max_silence,
        }
    }

    /// The main loop is alive now.
    pub fn beat(&self) {
        self.last_beat_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long since the last beat (or since start, before the first).
    pub fn silence(&self) -> Duration {
        let last = Duration::from_millis(self.last_beat_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    pub fn is_healthy(&self) -> bool {
        self.silence() <= self.max_silence
    }
}

/// Binds `addr` and serves the metrics and health routes until the process exits. Returns
/// the bound address (useful with port 0). A bind failure names the address.
pub async fn serve(addr: SocketAddr, health: Health) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("cannot listen for metrics on {addr} ({e}); choose another --metrics-addr"),
        )
    })?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let health = health.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let health = health.clone();
                    async move { Ok::<_, Infallible>(respond(&request, &health)) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(error = %e, "metrics endpoint: connection ended with an error");
                }
            });
        }
    });
    Ok(bound)
}

fn respond(request: &Request<Incoming>, health: &Health) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&hyper::Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            super::render(),
        ),
        (&hyper::Method::GET, "/healthz") if health.is_healthy() => {
            (StatusCode::OK, "text/plain", "ok\n".to_string())
        }
        (&hyper::Method::GET, "/healthz") => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("main loop silent for {} s\n", health.silence().as_secs()),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics or /healthz\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_fails_after_silence() {
        let h = Health::new(Duration::from_millis(50));
        h.beat();
        assert!(h.is_healthy());
        std::thread::sleep(Duration::from_millis(80));
        assert!(!h.is_healthy());
        h.beat();
        assert!(h.is_healthy());
    }
}
