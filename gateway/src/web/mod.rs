//! The web pages: server-rendered HTML for the trust safeguarding lead, DSLs, governors and
//! auditors. No build step and no script: charts are SVG drawn here, styles are inline.
//!
//! ```text
//!  browser ──cookie haven_session (HttpOnly, SameSite=Strict)──▶ viewer(): token → Caller
//!     │                                                        (same Authenticator as gRPC)
//!     ├─ /sign-in, /aup, /sign-out ──▶ identity over gRPC (as the JSON routes do)
//!     └─ /dashboard, /schools/{id}, /registers/…, /audit, /governors
//!            each: haven_authz::authorize(caller, Action, Resource) per school ──▶ 403 page
//!                  or reporting's ReportView / Audit ──▶ html.rs + charts.rs
//! ```
//! What a page shows is decided by the one policy function: `ReadAggregates` for figures,
//! `ReadCase` for anything naming a case (registers, overdue actions), `ReadAuditTrail` for the
//! audit view. A school-scoped grant sees its school only; a trust-wide grant sees every
//! school. Every value written into a page goes through [`html::escape`].

pub(crate) mod api;
mod charts;
mod html;
mod pages;
mod session;

use axum::Router;
use axum::routing::{get, post};
use haven_authz::{Action, Authenticator, Caller, Resource, authorize};
use haven_kernel::SchoolId;
use haven_reporting::{Audit, ReportView};

use crate::GatewayState;

pub use api::{DashboardBody, SchoolBreachesBody};

/// What the pages need: the authenticator every service uses, and reporting's read model and
/// audit views (in `haven up`, in the same process).
#[derive(Clone)]
pub struct WebEdge {
    pub authenticator: Authenticator,
    pub view: ReportView,
    pub audit: Audit,
}

impl std::fmt::Debug for WebEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebEdge").finish_non_exhaustive()
    }
}

/// Which schools an action reaches for a caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Every school and the trust as a whole.
    Trust,
    /// These schools only (never empty).
    Schools(Vec<String>),
}

impl Reach {
    /// The schools for reporting's queries (`None`: all).
    pub fn scope(&self) -> Option<&[String]> {
        match self {
            Reach::Trust => None,
            Reach::Schools(schools) => Some(schools),
        }
    }

    pub fn includes(&self, school_id: &str) -> bool {
        match self {
            Reach::Trust => true,
            Reach::Schools(schools) => schools.iter().any(|school| school == school_id),
        }
    }
}

/// A signed-in person looking at a page.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub caller: Caller,
}

impl Viewer {
    /// Whether the policy allows `action` on `school` (`None`: the trust as a whole).
    pub fn may(&self, action: Action, school: Option<&str>) -> bool {
        let resource = match school {
            None => Resource::trust(),
            Some(raw) => match SchoolId::parse(raw) {
                Ok(id) => Resource::school(id),
                Err(_) => return false,
            },
        };
        authorize(&self.caller.principal, self.caller.aup_current, action, &resource).is_allowed()
    }

    /// Where `action` reaches among `schools`, or `None` when nowhere.
    pub fn reach(&self, action: Action, schools: &[String]) -> Option<Reach> {
        if self.may(action, None) {
            return Some(Reach::Trust);
        }
        let mine: Vec<String> = schools.iter().filter(|school| self.may(action, Some(school))).cloned().collect();
        (!mine.is_empty()).then_some(Reach::Schools(mine))
    }

    pub fn principal_id(&self) -> &str {
        &self.caller.principal.id
    }
}

/// The pages' routes, with expired sessions renewed from the refresh cookie first.
pub fn routes(state: GatewayState) -> Router<GatewayState> {
    Router::new()
        .route("/", get(pages::home))
        .route("/sign-in", get(session::sign_in_page).post(session::sign_in))
        .route("/aup", get(session::aup_page).post(session::accept_aup))
        .route("/sign-out", post(session::sign_out))
        .route("/dashboard", get(pages::dashboard))
        .route("/schools/{school_id}", get(pages::school))
        .route("/registers/{register}", get(pages::register))
        .route("/audit", get(pages::audit))
        .route("/audit/verify", post(pages::verify_chain))
        .route("/audit/pack", get(pages::audit_pack))
        .route("/audit/actor", get(pages::actor_actions))
        .route("/audit/accesses", get(pages::record_accesses))
        .route("/governors", get(pages::governors))
        .route("/api/v1/reporting/dashboard", get(api::dashboard))
        .layer(axum::middleware::from_fn_with_state(state, session::renew))
}
