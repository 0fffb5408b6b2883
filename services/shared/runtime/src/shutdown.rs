//! One way to stop: a [`Shutdown`] is triggered once (by a signal or a test) and every server
//! and task waiting on it sees it.

use tokio::sync::watch;

/// A stop signal shared by everything in a process. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown { sender: watch::Sender::new(false) }
    }
}

impl Shutdown {
    /// Asks everything to stop. Idempotent.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    pub fn is_triggered(&self) -> bool {
        *self.sender.borrow()
    }

    /// Resolves once the stop is triggered (at once if it already was).
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut receiver = self.sender.subscribe();
        async move {
            let _ = receiver.wait_for(|stopped| *stopped).await;
        }
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM (Kubernetes, systemd).
pub async fn wait_for_stop_signal() {
    let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_waiter_sees_the_stop_even_if_it_came_first() {
        let shutdown = Shutdown::default();
        let early = shutdown.triggered();
        assert!(!shutdown.is_triggered());
        shutdown.trigger();
        early.await;
        shutdown.triggered().await;
        shutdown.trigger();
        assert!(shutdown.is_triggered());
    }
}
