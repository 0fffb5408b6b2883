//! Starting identity in a process: open the signing keys (generated on first start) and
//! announce them in the log, start the school and user read models, and build the accounts.
//! The binary wraps the service in haven-authz's `AuthLayer` with the same authenticator.

use std::path::Path;
use std::sync::Arc;

use haven_authz::Authenticator;
use haven_eventlog_client::EventLog;
use haven_runtime::{Readiness, Shutdown};

use crate::password::PasswordHasher;
use crate::tokens::Tokens;
use crate::{
    Accounts, Error, IdentityApp, IdentityConfig, IdentityService, SchoolDirectory, SubjectDirectory, UserDirectory,
};

/// Identity, running.
#[derive(Debug)]
pub struct Running {
    pub service: IdentityService,
    pub accounts: Accounts,
    /// The read models' followers; they end on shutdown.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Opens the keys in `keys_dir`, announces their public halves, and starts the read models
/// (registered with `readiness` as `identity`, `identity-users` and `identity-subjects`).
pub async fn start(
    log: Arc<dyn EventLog>,
    config: &IdentityConfig,
    keys_dir: &Path,
    authenticator: &Authenticator,
    readiness: &Readiness,
    shutdown: &Shutdown,
) -> Result<Running, Error> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let app = IdentityApp::new(Arc::clone(&log));
    let tokens = Tokens::open(keys_dir, now, authenticator.verifier().clone(), config.lifetimes())?;
    for key in tokens.verifying_keys(now) {
        app.announce_signing_key(&key).await?;
    }
    let hasher = PasswordHasher::new(config.password_cost()).map_err(Error::Internal)?;
    let schools = SchoolDirectory::default();
    let users = UserDirectory::default();
    let subjects = SubjectDirectory::default();
    let tasks = vec![
        tokio::spawn(subjects.clone().follow(
            Arc::clone(&log),
            readiness.register("identity-subjects", "subject directory catching up"),
            shutdown.clone(),
        )),
        tokio::spawn(schools.clone().follow(
            Arc::clone(&log),
            readiness.register("identity", "school directory catching up"),
            shutdown.clone(),
        )),
        tokio::spawn(users.clone().follow(
            Arc::clone(&log),
            readiness.register("identity-users", "user directory catching up"),
            shutdown.clone(),
        )),
    ];
    let accounts = Accounts::new(app, users, hasher, tokens);
    Ok(Running { service: IdentityService::new(schools, subjects, accounts.clone()), accounts, tasks })
}
