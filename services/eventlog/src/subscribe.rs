//! Catch-up subscriptions: history from the store, then live events as the head moves, with
//! no gap and no duplicate at the switch — both come from the same loop, which only ever
//! reads forwards from its own checkpoint up to the durable head.
//!
//! ```text
//!  head (watch) ──changed──▶ feeder task ──read page [checkpoint, head)──▶ bounded channel ──▶ subscriber
//!                                 └─ channel full for longer than the timeout: end with ResourceExhausted
//! ```
//! Memory per subscriber is bounded by the channel's capacity times one page.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use haven_eventlog_client::{LogError, Subscription, SubscriptionBatch};
use haven_kernel::Position;
use haven_proto::v1::EventFilter;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::read;
use crate::store::{Store, StoreHead};

/// Settings of one subscription.
#[derive(Clone, Copy, Debug)]
pub struct SubscribeLimits {
    pub page_events: usize,
    pub buffer_batches: usize,
    pub slow_timeout: Duration,
}

/// Starts a subscription from `from`.
pub fn subscribe(
    store: Arc<dyn Store>,
    head: watch::Receiver<StoreHead>,
    from: Position,
    filter: EventFilter,
    limits: SubscribeLimits,
) -> Subscription {
    let (batches, received) = mpsc::channel(limits.buffer_batches);
    let (end, ended) = oneshot::channel::<LogError>();
    tokio::spawn(feed(store, head, from, filter, limits, batches, end));
    // The error that ends a subscription travels beside the channel, so a full channel can
    // still be ended with a reason.
    let ending = futures_util::stream::once(ended).filter_map(|end| async move { end.ok().map(Err) });
    Box::pin(ReceiverStream::new(received).map(Ok).chain(ending))
}

async fn feed(
    store: Arc<dyn Store>,
    mut head: watch::Receiver<StoreHead>,
    from: Position,
    filter: EventFilter,
    limits: SubscribeLimits,
    batches: mpsc::Sender<SubscriptionBatch>,
    end: oneshot::Sender<LogError>,
) {
    let mut checkpoint = from;
    // The checkpoint of the last batch handed to the channel: the subscriber receives every
    // such batch before the ending error, so this is where it resumes.
    let mut delivered = from;
    let mut caught_up_sent = false;
    loop {
        let durable = *head.borrow_and_update();
        if checkpoint < durable.next_position || !caught_up_sent {
            let page = {
                let store = Arc::clone(&store);
                let filter = filter.clone();
                tokio::task::spawn_blocking(move || {
                    read::read_all(store.as_ref(), durable, checkpoint, limits.page_events, &filter)
                })
                .await
            };
            let page = match page {
                Ok(Ok(page)) => page,
                Ok(Err(error)) => {
                    let _ = end.send(error);
                    return;
                }
                Err(join_error) => {
                    let _ = end.send(LogError::Internal(format!("subscription reader failed: {join_error}")));
                    return;
                }
            };
            let reached_head = page.next_position >= durable.next_position;
            let caught_up = reached_head && !caught_up_sent;
            checkpoint = page.next_position;
            if page.events.is_empty() && !caught_up {
                continue;
            }
            caught_up_sent |= caught_up;
            let batch = SubscriptionBatch { events: page.events, checkpoint, caught_up };
            match tokio::time::timeout(limits.slow_timeout, batches.send(batch)).await {
                Ok(Ok(())) => {
                    delivered = checkpoint;
                    continue;
                }
                Ok(Err(_closed)) => return,
                Err(_elapsed) => {
                    let _ = end.send(LogError::ResourceExhausted(format!(
                        "subscriber too slow: its buffer stayed full for {} ms; resume from position {}",
                        limits.slow_timeout.as_millis(),
                        delivered
                    )));
                    return;
                }
            }
        }
        tokio::select! {
            changed = head.changed() => if changed.is_err() {
                let _ = end.send(LogError::Unavailable("the event log is shutting down".into()));
                return;
            },
            () = batches.closed() => return,
        }
    }
}
