//! A [`Projection`] kept in a redb file: the handler writes its tables inside the same write
//! transaction that stores the checkpoint (and any parked record), and one commit (one fsync)
//! makes the whole batch durable. A handler error aborts the transaction, so a refused batch
//! leaves nothing behind.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use haven_eventlog_client::EventFilter;
use haven_kernel::Position;
use haven_proto::v1::EventEnvelope;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use crate::projection::{ApplyError, Batch, ParkedEvent, Projection, ProjectionName};
use crate::{BusError, HandlerError};

const META: TableDefinition<&str, u64> = TableDefinition::new("haven_bus_meta");
const PARKED: TableDefinition<u64, &str> = TableDefinition::new("haven_bus_parked");
const CHECKPOINT_KEY: &str = "checkpoint";

/// The projection-specific part of a [`RedbProjection`].
pub trait RedbHandler: Send + 'static {
    /// Applies one event by writing this handler's tables in `txn`. Keep every piece of state
    /// in those tables: after an error the transaction is thrown away.
    fn handle(&mut self, txn: &WriteTransaction, event: &EventEnvelope) -> Result<(), HandlerError>;

    /// Deletes this handler's tables (`replay from 0`).
    fn reset(&mut self, txn: &WriteTransaction) -> Result<(), redb::Error>;
}

/// A projection whose state, checkpoint and parked events live in one redb file.
pub struct RedbProjection<H> {
    name: ProjectionName,
    filter: EventFilter,
    database: Arc<Database>,
    handler: H,
}

impl<H> std::fmt::Debug for RedbProjection<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbProjection").field("name", &self.name).finish_non_exhaustive()
    }
}

impl<H: RedbHandler> RedbProjection<H> {
    /// Opens (or creates) the projection's file.
    pub fn open(path: &Path, name: ProjectionName, filter: EventFilter, handler: H) -> Result<Self, BusError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|error| store_error(&name, error))?;
        }
        let database = Database::create(path).map_err(|error| store_error(&name, error))?;
        Ok(RedbProjection { name, filter, database: Arc::new(database), handler })
    }

    /// The file, for the projection's readers (its read model's queries).
    pub fn database(&self) -> Arc<Database> {
        Arc::clone(&self.database)
    }
}

/// The events parked in a projection's file, in position order.
pub fn parked_events(database: &Database) -> Result<Vec<ParkedEvent>, redb::Error> {
    let txn = database.begin_read()?;
    let table = match txn.open_table(PARKED) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(error) => return Err(error.into()),
    };
    let mut parked = Vec::new();
    for entry in table.iter()? {
        let (_, record) = entry?;
        let record = serde_json::from_str(record.value())
            .map_err(|error| redb::Error::Corrupted(format!("parked record: {error}")))?;
        parked.push(record);
    }
    Ok(parked)
}

fn store_error(name: &ProjectionName, error: impl std::fmt::Display) -> BusError {
    BusError::Store { projection: name.as_str().to_owned(), reason: error.to_string() }
}

fn apply_error(error: impl Into<redb::Error>) -> ApplyError {
    ApplyError::Store(error.into().to_string())
}

#[async_trait]
impl<H: RedbHandler> Projection for RedbProjection<H> {
    fn name(&self) -> &ProjectionName {
        &self.name
    }

    fn filter(&self) -> EventFilter {
        self.filter.clone()
    }

    async fn checkpoint(&mut self) -> Result<Position, ApplyError> {
        let txn = self.database.begin_read().map_err(apply_error)?;
        let table = match txn.open_table(META) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Position(0)),
            Err(error) => return Err(apply_error(error)),
        };
        let stored = table.get(CHECKPOINT_KEY).map_err(apply_error)?;
        Ok(Position(stored.map_or(0, |value| value.value())))
    }

    async fn apply(&mut self, batch: Batch<'_>) -> Result<(), ApplyError> {
        let txn = self.database.begin_write().map_err(apply_error)?;
        for (index, event) in batch.events.iter().enumerate() {
            if let Err(error) = self.handler.handle(&txn, event) {
                txn.abort().map_err(apply_error)?;
                return Err(ApplyError::Handler { index, error });
            }
        }
        {
            let mut meta = txn.open_table(META).map_err(apply_error)?;
            meta.insert(CHECKPOINT_KEY, batch.checkpoint.0).map_err(apply_error)?;
            if let Some(parked) = batch.parked {
                let record = serde_json::to_string(parked).map_err(|error| ApplyError::Store(error.to_string()))?;
                txn.open_table(PARKED)
                    .map_err(apply_error)?
                    .insert(parked.position, record.as_str())
                    .map_err(apply_error)?;
            }
        }
        txn.commit().map_err(apply_error)
    }

    async fn reset(&mut self) -> Result<(), ApplyError> {
        let txn = self.database.begin_write().map_err(apply_error)?;
        self.handler.reset(&txn).map_err(|error| ApplyError::Store(error.to_string()))?;
        txn.delete_table(META).map_err(apply_error)?;
        txn.delete_table(PARKED).map_err(apply_error)?;
        txn.commit().map_err(apply_error)
    }
}
