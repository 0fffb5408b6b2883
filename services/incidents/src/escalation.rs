//! The escalation timer: a critical alert nobody acknowledged in time goes to the deputies,
//! then the principal, then the trust's safeguarding lead, one `AlertEscalated` per step.
//!
//! ```text
//!  every tick (now) ─▶ index: alerts without a concern ─▶ app.concern_from_alert (raised once)
//!                   ─▶ index: unacknowledged alerts with a step due ─▶ app.escalate_alert(now)
//!                      (re-reads the stream, appends only the steps not yet taken, at its version)
//! ```
//! Time is a parameter: [`escalate_due`] is what a tick does at `now`, and tests call it with
//! the time they choose. Because the app decides on the stream, not on the index, a lagging
//! index or two timers at once still write each step once.

use std::time::Duration;

use haven_runtime::Shutdown;

use crate::domain::{AlertId, ConcernId, UnixTime, escalations_due};
use crate::metrics::AlertMetrics;
use crate::{CommandContext, Error, IncidentsApp, IncidentsIndex};

/// How often `haven up`'s timer looks for due escalations.
pub const TICK: Duration = Duration::from_secs(15);

/// Escalates every alert with a step due at `now`; returns each alert escalated and how many
/// steps it has taken in all.
pub async fn escalate_due(
    app: &IncidentsApp,
    index: &IncidentsIndex,
    now: UnixTime,
) -> Result<Vec<(AlertId, usize)>, Error> {
    let mut escalated = Vec::new();
    for indexed in index.unacknowledged_alerts() {
        if escalations_due(&indexed, now, app.escalation_policy()).is_empty() {
            continue;
        }
        // The index may lag: decide on the stream as it is now.
        let Some((alert, _)) = app.alert(&indexed.alert_id).await? else { continue };
        if escalations_due(&alert, now, app.escalation_policy()).is_empty() {
            continue;
        }
        let before = alert.escalations.len();
        let (after, _) = app.escalate_alert(&CommandContext::system(now), &alert.alert_id).await?;
        if after.escalations.len() > before {
            escalated.push((alert.alert_id.clone(), after.escalations.len()));
        }
    }
    Ok(escalated)
}

/// Opens a concern for every alert that has none yet (alerts from ingest open one
/// automatically, raised by Haven for the DSL's triage); returns the concerns raised. An alert
/// naming no learner is left to the DSL. Raising is idempotent (the concern's id is derived
/// from the alert's), so a lagging index raises nothing twice.
pub async fn open_concerns_for_alerts(
    app: &IncidentsApp,
    index: &IncidentsIndex,
    now: UnixTime,
) -> Result<Vec<ConcernId>, Error> {
    let mut raised = Vec::new();
    for alert in index.alerts_without_concern() {
        let context = CommandContext::system(now);
        if let Some(concern_id) =
            app.concern_from_alert(&context, &alert.alert_id, "raised from a safeguarding alert").await?
        {
            raised.push(concern_id);
        }
    }
    Ok(raised)
}

/// Runs [`open_concerns_for_alerts`] and [`escalate_due`] on the wall clock every `every` until
/// `shutdown`, and after each tick sets `metrics` from the alerts still waiting.
pub async fn run(app: IncidentsApp, index: IncidentsIndex, every: Duration, metrics: AlertMetrics, shutdown: Shutdown) {
    while !shutdown.is_triggered() {
        let now = UnixTime(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
        );
        if let Err(error) = open_concerns_for_alerts(&app, &index, now).await {
            tracing::warn!(code = error.code().as_str(), "raising concerns from alerts failed; retrying next tick");
        }
        match escalate_due(&app, &index, now).await {
            Ok(escalated) if !escalated.is_empty() => {
                tracing::info!(alerts = escalated.len(), "alerts escalated");
                metrics.escalated(escalated.len() as u64);
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(code = error.code().as_str(), "escalation tick failed; retrying next tick"),
        }
        metrics.observe_waiting(&index.unacknowledged_alerts(), now);
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.triggered() => return,
        }
    }
}
