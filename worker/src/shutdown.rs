//! Shutdown signalling, in one small type (after mini-redis).
//!
//! The process owns one [`Shutdown`]; tasks hold a clone and ask `is_triggered()` between
//! steps, or `await triggered()` in a `select!`. SIGTERM (ECS stopping a task) and Ctrl-C
//! trigger it; the consumer then stops receiving, finishes or releases what it holds, and
//! the process exits 0.

use tokio::sync::watch;

#[derive(Clone)]
pub struct Shutdown {
    sender: std::sync::Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (sender, receiver) = watch::channel(false);
        Shutdown {
            sender: std::sync::Arc::new(sender),
            receiver,
        }
    }

    /// Asks everything holding a clone to stop.
    pub fn trigger(&self) {
        let _ = self.sender.send(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once shutdown is triggered.
    pub async fn triggered(&self) {
        let mut receiver = self.receiver.clone();
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    /// Triggers on SIGTERM or Ctrl-C (SIGINT). The handlers are in place when this returns,
    /// and a background task waits for them: called first thing, a signal that comes before
    /// it can only kill a process that has not taken any work yet.
    pub fn trigger_on_signals(&self) {
        let signals = Signals::listen();
        let shutdown = self.clone();
        tokio::spawn(async move {
            signals.recv().await;
            tracing::info!("shutdown requested: finishing or releasing held messages");
            shutdown.trigger();
        });
    }
}

/// The process's SIGTERM and SIGINT handlers, registered when made.
#[cfg(unix)]
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Signals {
    fn listen() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for {name}: it will stop the worker without releasing what it holds");
                None
            }
        };
        Signals {
            term: listen(SignalKind::terminate(), "SIGTERM"),
            interrupt: listen(SignalKind::interrupt(), "SIGINT"),
        }
    }

    /// Resolves on the first of the signals (never, if neither could be listened for).
    async fn recv(self) {
        async fn one(signal: Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = one(self.term) => {}
            _ = one(self.interrupt) => {}
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn listen() -> Signals {
        Signals
    }

    async fn recv(self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
