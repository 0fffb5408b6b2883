//! The end-of-day sweep on a schedule: after each school day ends (configurable, in the
//! schools' time zone), the records seized that day and still in the school's hands with no
//! hold raise an action for the DSL — once: the event it records makes a later sweep (a
//! restart, a second process) raise nothing new.
//!
//! ```text
//!  every sweep_check_s: for yesterday and today, once the day has ended and not yet swept here:
//!    index.open_seized_between(day) ─▶ app.end_of_day_sweep ─▶ DeviceEndOfDayActionRaised
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use haven_proto::v1 as pb;
use haven_runtime::{ReadinessHandle, Shutdown};
use jiff::civil::Date;

use crate::domain::{EndOfDayAction, UnixTime};
use crate::{CommandContext, CustodyApp, CustodyConfig, CustodyIndex, Error};

/// The sweep's actor: Haven itself.
fn sweep_context(date: Date, at: UnixTime) -> CommandContext {
    CommandContext {
        actor: pb::Actor {
            principal_id: "haven".into(),
            kind: pb::ActorKind::System as i32,
            roles: vec!["custody-sweep".into()],
        },
        occurred_at: prost_types::Timestamp { seconds: at.0, nanos: 0 },
        // Derived from the day: two sweeps of the same day write the same events.
        request_id: format!("sweep:{date}"),
    }
}

/// Sweeps the school day of `date` at `now`: returns the actions raised now (none when the
/// day has not ended yet).
pub async fn sweep_day(
    app: &CustodyApp,
    index: &CustodyIndex,
    config: &CustodyConfig,
    date: Date,
    now: UnixTime,
) -> Result<Vec<EndOfDayAction>, Error> {
    let Some(day) = config.school_day(date) else { return Ok(vec![]) };
    if now < day.ends_at {
        return Ok(vec![]);
    }
    let ids = index.open_seized_between(day.starts_at, day.ends_at);
    app.end_of_day_sweep(&sweep_context(date, now), &ids, day, now).await
}

/// Runs the sweep after every school day until `shutdown`, once the index has caught up.
pub async fn run(
    app: CustodyApp,
    index: CustodyIndex,
    config: CustodyConfig,
    index_ready: ReadinessHandle,
    shutdown: Shutdown,
) {
    let mut swept: BTreeSet<Date> = BTreeSet::new();
    let zone = config.zone();
    while !shutdown.is_triggered() {
        let ready = index_ready.is_ready();
        if ready {
            let now = jiff::Timestamp::now();
            let today = now.to_zoned_datetime(zone.clone()).date();
            let unix_now = UnixTime(now.as_second());
            for date in [today.yesterday().unwrap_or(today), today] {
                let ended = config.school_day(date).is_some_and(|day| unix_now >= day.ends_at);
                if !ended || swept.contains(&date) {
                    continue;
                }
                match sweep_day(&app, &index, &config, date, unix_now).await {
                    Ok(actions) => {
                        tracing::info!(%date, actions = actions.len(), "end-of-day custody sweep");
                        swept.insert(date);
                    }
                    Err(error) => {
                        tracing::warn!(%date, code = error.code().as_str(), "end-of-day custody sweep failed; retrying")
                    }
                }
            }
            swept.retain(|date| *date >= today.yesterday().unwrap_or(today));
        }
        // Until the read model has caught up, look again soon.
        let wait = if ready { config.sweep_check_s } else { 1 };
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(wait)) => {}
            () = shutdown.triggered() => return,
        }
    }
}
