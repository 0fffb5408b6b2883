//! The relay lease: at most one relay publishes at a time, whichever node it runs on.
//!
//! A JetStream key-value bucket, `HAVEN_RELAY`, whose entries expire `ttl` after their last
//! write (the bucket's max age). The lease is the key `leader`, holding the holder's id:
//!
//! ```text
//!  try_acquire: create(leader)          ── only if absent (or deleted, or expired)
//!  renew:       update(leader, revision) ── only if nobody wrote it since: a compare-and-set
//!  release:     delete(leader, revision)
//! ```
//! A holder that cannot renew stops treating itself as leader at `valid_until` (acquired or
//! renewed + ttl − a fifth of ttl), before the key can expire for anyone else. It does not
//! depend on the log's raft leadership. Correctness never rests on the lease alone: a relay
//! that publishes late produces duplicates (deduplicated by `Nats-Msg-Id`, or skipped by the
//! consumers' checkpoints); the lease keeps that rare and cheap.

use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use bytes::Bytes;
use tokio::sync::watch;

use crate::{BusError, Nats};

pub const LEASE_BUCKET: &str = "HAVEN_RELAY";
const LEASE_KEY: &str = "leader";

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    store: kv::Store,
    holder: String,
    revision: u64,
    ttl: Duration,
    valid_until: Instant,
}

impl Lease {
    /// Takes the lease if nobody holds it (or `holder` itself still does, after a restart of
    /// its connection). `Ok(None)`: someone else holds it.
    pub async fn try_acquire(nats: &Nats, holder: &str, ttl: Duration) -> Result<Option<Lease>, BusError> {
        if ttl < Duration::from_secs(1) {
            return Err(BusError::invalid("lease_ttl", "must be at least 1 s"));
        }
        let store = bucket(nats, ttl).await?;
        let started = Instant::now();
        let current = store.entry(LEASE_KEY).await.map_err(|error| BusError::nats("read relay lease", error))?;
        // `Ok(None)` from a write: someone else created or updated the key first.
        let written = match current {
            Some(entry) if entry.operation == kv::Operation::Put => {
                if entry.value.as_ref() != holder.as_bytes() {
                    return Ok(None);
                }
                match store.update(LEASE_KEY, Bytes::from(holder.to_owned()), entry.revision).await {
                    Ok(revision) => Some(revision),
                    Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => None,
                    Err(error) => return Err(BusError::nats("take relay lease", error)),
                }
            }
            _ => match store.create(LEASE_KEY, Bytes::from(holder.to_owned())).await {
                Ok(revision) => Some(revision),
                Err(error) if error.kind() == kv::CreateErrorKind::AlreadyExists => None,
                Err(error) => return Err(BusError::nats("take relay lease", error)),
            },
        };
        Ok(written.map(|revision| Lease {
            store,
            holder: holder.to_owned(),
            revision,
            ttl,
            valid_until: started + ttl - ttl / 5,
        }))
    }

    /// Extends the lease by `ttl`; [`BusError::LeaseLost`] if anyone else wrote the key since.
    pub async fn renew(&mut self) -> Result<(), BusError> {
        let started = Instant::now();
        match self.store.update(LEASE_KEY, Bytes::from(self.holder.clone()), self.revision).await {
            Ok(revision) => {
                self.revision = revision;
                self.valid_until = started + self.ttl - self.ttl / 5;
                Ok(())
            }
            Err(error) if error.kind() == kv::UpdateErrorKind::WrongLastRevision => Err(BusError::LeaseLost),
            Err(error) => Err(BusError::nats("renew relay lease", error)),
        }
    }

    /// Gives the lease up at once so another relay need not wait for it to expire.
    pub async fn release(self) {
        if let Err(error) = self.store.delete_expect_revision(LEASE_KEY, Some(self.revision)).await {
            tracing::debug!(%error, "relay lease not released; it expires by itself");
        }
    }

    /// Until when this holder may act as the leader without a successful renewal.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Renews in the background every `ttl / 3` until released or lost. The watch says until
    /// when the lease is valid (`None` once lost).
    pub fn keep(mut self) -> LeaseKeeper {
        let (valid_until, receiver) = watch::channel(Some(self.valid_until));
        let (release, mut release_requested) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let period = self.ttl / 3;
            loop {
                tokio::select! {
                    () = tokio::time::sleep(period) => {}
                    _ = &mut release_requested => {
                        valid_until.send_replace(None);
                        self.release().await;
                        return;
                    }
                }
                match self.renew().await {
                    Ok(()) => {
                        valid_until.send_replace(Some(self.valid_until));
                    }
                    Err(BusError::LeaseLost) => {
                        tracing::warn!("relay lease taken by another relay");
                        valid_until.send_replace(None);
                        return;
                    }
                    // NATS unreachable: keep trying until the lease runs out.
                    Err(error) => {
                        tracing::warn!(%error, "relay lease not renewed");
                        if Instant::now() >= self.valid_until {
                            valid_until.send_replace(None);
                            return;
                        }
                    }
                }
            }
        });
        LeaseKeeper { valid_until: receiver, release: Some(release), task }
    }
}

/// A lease being renewed in the background.
#[derive(Debug)]
pub struct LeaseKeeper {
    valid_until: watch::Receiver<Option<Instant>>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl LeaseKeeper {
    /// Whether this process may still publish as the leader.
    pub fn is_held(&self) -> bool {
        self.valid_until.borrow().is_some_and(|until| Instant::now() < until)
    }

    /// Stops renewing and deletes the key (best effort).
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        // A keeper dropped without `release` (its relay task was cancelled) stops renewing; the
        // key then expires after ttl.
        if self.release.is_some() {
            self.task.abort();
        }
    }
}

async fn bucket(nats: &Nats, ttl: Duration) -> Result<kv::Store, BusError> {
    if let Ok(store) = nats.jetstream.get_key_value(LEASE_BUCKET).await {
        return Ok(store);
    }
    let created = nats
        .jetstream
        .create_key_value(kv::Config {
            bucket: LEASE_BUCKET.into(),
            history: 1,
            max_age: ttl,
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        })
        .await;
    match created {
        Ok(store) => Ok(store),
        // Another relay created it at the same moment.
        Err(_) => nats
            .jetstream
            .get_key_value(LEASE_BUCKET)
            .await
            .map_err(|error| BusError::nats("open relay lease bucket", error)),
    }
}
