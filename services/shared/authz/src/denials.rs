//! `haven_authz_denials_total{action, reason}`: every refusal of the authorisation layer and
//! of [`crate::grpc::check`], counted per process. Labels are an action name (or `-` when the
//! call was refused before an action was known) and a fixed reason; never who asked or about
//! what.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    action: String,
    reason: &'static str,
}

static DENIALS: LazyLock<Family<DenialLabels, Counter>> = LazyLock::new(Family::default);

/// Registers the denial counter with the process's registry (once per registry).
pub fn register_metrics(metrics: &haven_runtime::Metrics) {
    metrics.register("authz_denials", "Calls refused by authorisation, by action and reason", DENIALS.clone());
}

fn labels(action: Option<crate::Action>, reason: &'static str) -> DenialLabels {
    let action = action.map_or_else(|| "-".to_owned(), |action| format!("{action:?}"));
    DenialLabels { action, reason }
}

pub(crate) fn count(action: Option<crate::Action>, reason: &'static str) {
    DENIALS.get_or_create(&labels(action, reason)).inc();
}

/// Denials counted so far for `action` (`None`: before an action was known) and `reason`.
pub fn denials(action: Option<crate::Action>, reason: &'static str) -> u64 {
    DENIALS.get(&labels(action, reason)).map_or(0, |counter| counter.get())
}
