//! What a verified token alone cannot say, learnt from identity's events in the log: the AUP
//! in force, who has left, which sessions and school systems were revoked, and the public
//! signing keys. Every service follows it, so a leaver's or a revoked session's tokens stop
//! working everywhere at once, not when they expire.
//!
//! ```text
//!  log ─(user, aup, system, signingkeys streams)─▶ apply ─▶ AccessState ─▶ Authenticator
//!       identity.UserDisabled · SessionsRevoked · AupPublished ·
//!       SchoolSystemCredentialRevoked · SigningKeyRotated (─▶ TokenVerifier)
//! ```
//! Revocations are kept only as long as a token issued before them can live (15 minutes):
//! after that, nothing they could refuse is still valid.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use haven_eventlog_client::{EventEnvelope, EventFilter, EventLog, follow_log};
use haven_proto::v1 as pb;
use haven_runtime::{ReadinessHandle, Shutdown};
use prost::Message;

use crate::token::{LEEWAY_S, MAX_ACCESS_TOKEN_TTL_S};
use crate::{Principal, PrincipalKind, TokenError, TokenVerifier};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo, before the 32 key bytes.
const SPKI_ED25519_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

#[derive(Debug, Default)]
struct Inner {
    /// The AUP version in force; 0 until one is published.
    current_aup: u32,
    /// Principal ids of leavers.
    disabled: HashSet<String>,
    /// Session id → when it was revoked (Unix seconds).
    revoked_sessions: HashMap<String, i64>,
    /// Principal id → tokens issued at or before this time are refused (every session of a
    /// user revoked, a school system's credential revoked).
    revoked_before: HashMap<String, i64>,
}

/// The access facts every service checks tokens against.
#[derive(Clone, Debug, Default)]
pub struct AccessState {
    inner: Arc<RwLock<Inner>>,
    /// Set by tests and by embedders that apply events themselves.
    caught_up: Arc<AtomicBool>,
    /// The follower's readiness, once following.
    follower: Arc<OnceLock<ReadinessHandle>>,
}

/// A verified, unrevoked caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub principal: Principal,
    /// Whether the principal has accepted the AUP in force.
    pub aup_current: bool,
}

impl AccessState {
    /// Whether it has caught up with the log (until then, authenticated calls are refused
    /// as unavailable: a leaver's token must not pass after a restart).
    pub fn is_caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire) || self.follower.get().is_some_and(ReadinessHandle::is_ready)
    }

    /// Marks it caught up (done by [`AccessState::follow`]; tests may call it directly).
    pub fn mark_caught_up(&self) {
        self.caught_up.store(true, Ordering::Release);
    }

    /// The AUP version in force (0: none published).
    pub fn current_aup(&self) -> u32 {
        self.inner.read().expect("access lock").current_aup
    }

    /// Refuses a principal who left or whose session or credential was revoked after the
    /// token was issued (`issued_at`, Unix seconds); otherwise says whether their AUP is current.
    pub fn check(&self, principal: &Principal, issued_at: i64) -> Result<Caller, TokenError> {
        let inner = self.inner.read().expect("access lock");
        if inner.disabled.contains(&principal.id) {
            return Err(TokenError::Disabled);
        }
        if inner.revoked_before.get(&principal.id).is_some_and(|before| issued_at <= *before) {
            return Err(TokenError::Revoked);
        }
        if principal.session_id.as_ref().is_some_and(|session| inner.revoked_sessions.contains_key(session)) {
            return Err(TokenError::Revoked);
        }
        let aup_current = match principal.kind {
            PrincipalKind::User => inner.current_aup >= 1 && principal.aup_version == inner.current_aup,
            PrincipalKind::SchoolSystem => true,
        };
        Ok(Caller { principal: principal.clone(), aup_current })
    }

    /// Applies one identity event; events of other types are ignored. Keys go to `verifier`.
    pub fn apply(&self, envelope: &EventEnvelope, verifier: &TokenVerifier) {
        let at = envelope.occurred_at.as_ref().map_or(0, |time| time.seconds);
        let mut inner = self.inner.write().expect("access lock");
        let payload = envelope.payload.as_slice();
        match envelope.event_type.as_str() {
            "identity.UserDisabled" => {
                if let Ok(event) = pb::UserDisabled::decode(payload) {
                    inner.disabled.insert(format!("user-{}", event.user_id));
                }
            }
            "identity.SessionsRevoked" => {
                if let Ok(event) = pb::SessionsRevoked::decode(payload) {
                    let revoked_at = event.revoked_at.map_or(at, |time| time.seconds);
                    if event.session_id.is_empty() {
                        inner.revoked_before.insert(format!("user-{}", event.user_id), revoked_at);
                    } else {
                        inner.revoked_sessions.insert(event.session_id, revoked_at);
                    }
                }
            }
            "identity.AupPublished" => {
                if let Ok(event) = pb::AupPublished::decode(payload) {
                    inner.current_aup = inner.current_aup.max(event.aup_version);
                }
            }
            "identity.SchoolSystemCredentialRevoked" => {
                if let Ok(event) = pb::SchoolSystemCredentialRevoked::decode(payload) {
                    inner.revoked_before.insert(format!("system-{}", event.system_id), at);
                }
            }
            "identity.SigningKeyRotated" => {
                if let Ok(event) = pb::SigningKeyRotated::decode(payload)
                    && let Some(raw) = event.public_key_der.strip_prefix(SPKI_ED25519_PREFIX.as_slice())
                    && let Ok(public_key) = <[u8; 32]>::try_from(raw)
                {
                    verifier.rotate_in(&event.key_id, &public_key, at);
                }
            }
            _ => {}
        }
    }

    /// Forgets revocations older than any token they could refuse.
    pub fn prune(&self, now: i64) {
        let horizon = now - MAX_ACCESS_TOKEN_TTL_S - LEEWAY_S as i64;
        let mut inner = self.inner.write().expect("access lock");
        inner.revoked_sessions.retain(|_, at| *at >= horizon);
        inner.revoked_before.retain(|_, at| *at >= horizon);
    }

    /// Follows identity's access events until `shutdown`, feeding keys to `verifier`.
    pub async fn follow(
        self,
        log: Arc<dyn EventLog>,
        verifier: TokenVerifier,
        readiness: ReadinessHandle,
        shutdown: Shutdown,
    ) {
        let filter = EventFilter {
            stream_categories: vec!["user".into(), "aup".into(), "system".into(), "signingkeys".into()],
            ..Default::default()
        };
        let _ = self.follower.set(readiness.clone());
        let apply = |envelope: &EventEnvelope| {
            self.apply(envelope, &verifier);
            self.prune(envelope.recorded_at.as_ref().map_or(0, |time| time.seconds));
        };
        follow_log(log, filter, "access", apply, readiness, shutdown).await;
    }
}
