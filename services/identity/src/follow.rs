//! How identity's read models follow the log: subscribe from their checkpoint, hand every
//! event to the model, report ready once caught up, and resubscribe from the checkpoint when a
//! subscription ends (a restart of the log, a slow-subscriber cut) until shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use haven_eventlog_client::{EventEnvelope, EventFilter, EventLog};
use haven_kernel::Position;
use haven_runtime::{ReadinessHandle, Shutdown};

/// Follows `filter` from position 0 until `shutdown`, calling `apply` on each event in order.
/// `model` names the read model in log lines.
pub(crate) async fn follow_log(
    log: Arc<dyn EventLog>,
    filter: EventFilter,
    model: &'static str,
    mut apply: impl FnMut(&EventEnvelope),
    readiness: ReadinessHandle,
    shutdown: Shutdown,
) {
    let mut checkpoint = Position(0);
    while !shutdown.is_triggered() {
        let mut subscription = match log.subscribe(checkpoint, filter.clone()).await {
            Ok(subscription) => subscription,
            Err(error) => {
                readiness.set_not_ready("cannot subscribe to the event log");
                tracing::warn!(%error, model, "read model cannot subscribe; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = shutdown.triggered() => return,
                }
            }
        };
        loop {
            let next = tokio::select! {
                next = subscription.next() => next,
                () = shutdown.triggered() => return,
            };
            match next {
                Some(Ok(batch)) => {
                    for envelope in &batch.events {
                        apply(envelope);
                    }
                    checkpoint = batch.checkpoint;
                    if batch.caught_up {
                        readiness.set_ready();
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(%error, model, position = checkpoint.0, "subscription ended; resuming");
                    break;
                }
                None => break,
            }
        }
    }
}
